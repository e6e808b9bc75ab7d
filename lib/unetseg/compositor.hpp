// Draws a mask onto the frame, in place.
#pragma once

#include <opencv2/core.hpp>

#include "unetseg/frame.hpp"

namespace unetseg {

enum class Mode {
  None,     // leave the pixels alone (the mask travels as metadata only)
  Overlay,  // tint the foreground (multi-class: each class from the palette, class 0 clear)
  Alpha,    // write the mask into the alpha channel (layouts with alpha only)
  Blur,     // blur the background, keep the foreground sharp
  Replace,  // background becomes a solid colour or an image scaled to the frame
  Mask,     // paint the mask itself: white foreground on black (alpha, if any, set opaque)
};
const char* to_string(Mode mode);

struct CompositorOptions {
  cv::Scalar overlay_color{0, 255, 0};  // R, G, B
  double overlay_opacity = 0.5;         // 0 = invisible, 1 = solid
  int blur_radius = 21;                 // pixels, >= 1
  cv::Scalar background_color{0, 255, 0};  // R, G, B; used by Replace without an image
};

class Compositor {
 public:
  // The picture Replace puts behind the foreground: CV_8UC3 RGB of any size, scaled (stretched)
  // to each frame's size once and cached. An empty Mat goes back to background_color.
  void set_background_image(const cv::Mat& rgb);
  bool has_background_image() const { return !background_rgb_.empty(); }

  // alpha: CV_8UC1 at frame size, 255 = foreground. classes: CV_8UC1 class ids at frame size,
  // used by Overlay for multi-class models; empty for binary models.
  // Throws unetseg::Error for Alpha on a layout without alpha or for mismatched sizes.
  void draw(const FrameView& frame, Mode mode, const cv::Mat& alpha, const cv::Mat& classes,
            const CompositorOptions& options);

  // RGB colour of a class in multi-class overlays (class 0 is never drawn).
  static cv::Vec3b palette_color(int class_id);

 private:
  cv::Mat background_rgb_;     // as given
  cv::Mat background_scaled_;  // in the frame's layout and size, rebuilt when either changes
  int background_layout_ = -1;
  cv::Mat blur_small_, blur_tmp_, blur_full_;  // reused by Blur
};

}  // namespace unetseg
