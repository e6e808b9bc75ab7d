// From the model's probability map to a mask at frame size.
#pragma once

#include <vector>

#include <opencv2/core.hpp>

#include "unetseg/model_spec.hpp"

namespace unetseg {

struct MaskOptions {
  // Hard mask: foreground where probability >= threshold, compared at 8-bit precision (alpha
  // round(p * 255) >= round(threshold * 255), both rounded the same way): 0 makes everything
  // foreground, 1 only p == 1 (to 8 bits). Values outside [0,1] are clamped.
  double threshold = 0.5;
  bool soft = false;  // keep the soft probability as alpha 0..255 instead of 0/255
  MaskScaling scaling = MaskScaling::Bilinear;  // the model's sidecar says (output.resize)
};

// Foreground statistics of a frame-size alpha mask.
struct MaskStats {
  double foreground_fraction = 0;  // mean alpha / 255 over the frame
  cv::Rect bounding_box;           // of pixels with alpha >= 128; empty when there are none
};

class MaskFilter {
 public:
  // foreground: CV_32FC1 in [0,1] at model resolution. Returns CV_8UC1 alpha at frame_size:
  // OpenCV's 8-bit bilinear resize, or with MaskScaling::Pil PIL's Image.resize BILINEAR as the
  // official U2-Net code saves its masks (a triangle filter widened by the factor when a side
  // shrinks), then 0/255 at the threshold unless options.soft. The returned Mat is owned
  // by the filter, reused across frames (no allocation once the frame size is stable) and valid
  // until the next call.
  const cv::Mat& apply(const cv::Mat& foreground, cv::Size frame_size, const MaskOptions& options);

  // class_map: CV_8UC1 class ids at model resolution -> frame_size, nearest neighbour.
  const cv::Mat& upscale_classes(const cv::Mat& class_map, cv::Size frame_size);

  // Soft probability as 8-bit alpha (round(p * 255)) at the map's own size, into `out`.
  static void to_alpha8(const cv::Mat& foreground, cv::Mat& out);

  static MaskStats stats(const cv::Mat& alpha);

 private:
  // One axis of PIL's 8-bit BILINEAR resample: per output, first input index, tap count and
  // fixed-point weights (taps per output in `taps`); rebuilt only when the sizes change.
  struct Axis {
    int in = 0, out = 0, taps = 0;
    std::vector<int> start, count, weights;
    void build(int in_size, int out_size);
  };
  void resample(const cv::Mat& src, cv::Size size);

  Axis axis_x_, axis_y_;
  cv::Mat between_;       // the horizontal pass's 8-bit result
  std::vector<int> row_;  // the vertical pass's accumulators
  cv::Mat small_alpha_;
  cv::Mat alpha_;
  cv::Mat classes_;
};

}  // namespace unetseg
