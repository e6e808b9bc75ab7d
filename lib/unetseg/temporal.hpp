// Temporal smoothing of the model's maps across video frames: still areas stop flickering,
// moving edges do not smear.
#pragma once

#include <cstdint>

#include <opencv2/core.hpp>

#include "unetseg/frame.hpp"

namespace unetseg {

// The grey level of one RGB pixel: BT.601 luma in 8-bit fixed point, (77 R + 150 G + 29 B) / 256
// rounded. Thumbnails and the guided filter's guide both use it, so that they agree.
inline int grey_level(int r, int g, int b) { return (77 * r + 150 * g + 29 * b + 128) >> 8; }

// A grey CV_8UC1 thumbnail of the frame at `size` (stretched, any aspect ratio), into `gray`
// (reallocated only when its size or type differs). Each thumbnail pixel covers a cell of
// frame.width / size.width by frame.height / size.height frame pixels and is the rounded mean
// of 2 x 2 samples in it, at a quarter and three quarters of the cell along each axis (rounded
// down to whole pixels): four reads per thumbnail pixel whatever the frame size, so it is cheap
// enough for every frame at 1080p, and it averages out some of the sensor noise a single sample
// would carry. Reads the frame through its stride and layout; padding and alpha bytes are never
// read. Throws unetseg::Error on an empty frame or size, or a stride shorter than a row.
void frame_thumbnail(const FrameView& frame, cv::Size size, cv::Mat& gray);

// Mean of |a - b| over the pixels, in grey levels 0..255; a and b non-empty CV_8UC1 of one
// size (else unetseg::Error).
double mean_abs_difference(const cv::Mat& a, const cv::Mat& b);

// An exponential moving average of the model's probability maps over frames, reset where the
// picture moved.
class TemporalSmoother {
 public:
  // How far (in thumbnail pixels) the changed area is grown before it resets: the model's edge
  // is a few of its pixels wide, and the picture changes only where the moving edge itself is,
  // so without it the outer ramp of a moving edge would still smear.
  static constexpr int kResetGrowth = 1;

  // foreground: the model's CV_32FC1 map; thumbnail: frame_thumbnail() of the frame it came from
  // at foreground's size. Returns out = factor * previous out + (1 - factor) * foreground, except
  // where the thumbnail changed by more than reset_threshold grey levels since the previous call
  // (that area grown by kResetGrowth pixels, a square): there out = foreground exactly. factor in
  // [0, 1): 0 returns the new map; reset_threshold >= 0, and 255 or more never resets. The first
  // call, and a call whose size differs from the previous one, has no history and returns the
  // new map. The returned Mat is owned by the smoother, valid until the next call, and nothing is
  // allocated after the first call at a size. Bad arguments throw unetseg::Error (the history is
  // then left as it was).
  const cv::Mat& apply(const cv::Mat& foreground, const cv::Mat& thumbnail, double factor,
                       double reset_threshold);
  // Forgets the history: the next apply() returns its map (a cut, a seek, a new stream).
  void reset();

 private:
  bool has_history_ = false;
  cv::Mat out_;             // CV_32FC1: the last result, and the history for the next call
  cv::Mat previous_thumb_;  // CV_8UC1
  cv::Mat changed_;         // CV_8UC1: 1 where the thumbnail changed (then grown) and resets
  cv::Mat scratch_;         // CV_8UC1: the growth's horizontal pass
};

}  // namespace unetseg
