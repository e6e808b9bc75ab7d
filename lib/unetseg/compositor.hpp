// Draws a mask onto the frame, in place.
#pragma once

#include <string>

#include <opencv2/core.hpp>

#include "unetseg/alpha_rows.hpp"
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
// Parses "none", "overlay", ... (to_string's names); returns false for anything else.
bool mode_from_string(const std::string& name, Mode* mode);

struct CompositorOptions {
  // Colours are R, G, B, A; the alpha is carried (the element's ARGB properties read back what
  // was set) but not drawn.
  cv::Scalar overlay_color{0, 255, 0, 255};
  double overlay_opacity = 0.5;         // 0 = invisible, 1 = solid (clamped to [0,1])
  int blur_radius = 21;                 // frame pixels, >= 1: a Gaussian of sigma radius / 2
  cv::Scalar background_color{0, 255, 0, 255};  // used by Replace without an image
};

class Compositor {
 public:
  // Whether `mode` can draw on frames of `layout`: every mode can, but Alpha needs a layout
  // with an alpha channel. The one place that knows it (caps, drawing, rehearsal ask here).
  static bool can_draw(Mode mode, PixelLayout layout) {
    return mode != Mode::Alpha || has_alpha(layout);
  }

  // The picture Replace puts behind the foreground: CV_8UC3 RGB of any size, scaled (stretched)
  // to each frame's size once and cached. An empty Mat goes back to background_color.
  void set_background_image(const cv::Mat& rgb);
  bool has_background_image() const { return !background_rgb_.empty(); }

  // alpha: CV_8UC1 at frame size, 255 = foreground. classes: CV_8UC1 class ids at frame size,
  // used by Overlay for multi-class models; empty for binary models.
  // Blending is integer, rounded to nearest: out = (p * (255 - w) + q * w + 127) / 255, so
  // w = 0 keeps p and w = 255 gives q exactly. Overlay: q = overlay colour, w = round(alpha *
  // round(opacity * 255) / 255); with classes, q = palette_color(class) and w = round(opacity *
  // 255) (class 0: w = 0), scaled by alpha / 255 when alpha is given (it may then be empty).
  // Blur and Replace: w = 255 - alpha, i.e. out = p * a + q * (1 - a) with a = alpha / 255.
  // Replace: q = the background colour, or the image. Blur: q = the background blurred from
  // background pixels only, q = G(p * (255 - alpha)) / G(255 - alpha) per colour, rounded to a
  // byte, G a Gaussian of sigma = blur_radius / 2 (run on blocks of about sigma / 1.5 pixels,
  // at least 2 from radius 4 and full size below, and brought back bilinearly; the kernel stops
  // at 3 sigma and at the frame's edges, which the division renormalises). So the foreground never
  // bleeds into the blur around it: beside a hard-edged person on a flat background, the
  // background keeps its exact colour. Where the kernel holds no background, q = 0, never seen
  // (alpha is 255 there). Blur allocates nothing once the frame's size and layout and the
  // radius are stable; it runs on OpenCV's threads (in the calling thread inside a
  // SerialFrames scope: frame_threads.hpp).
  // Alpha and padding bytes are left as they are, except Alpha (writes alpha there) and Mask
  // (alpha byte set to 255).
  // Mode::None touches nothing and checks nothing.
  // Throws unetseg::Error for Alpha on a layout without alpha, for mismatched sizes or types,
  // a stride shorter than a row, or a blur radius below 1.
  void draw(const FrameView& frame, Mode mode, const cv::Mat& alpha, const cv::Mat& classes,
            const CompositorOptions& options);
  // The same with the mask given a row at a time (no class map): the rows of `alpha`, each asked
  // for once per pass in order down the frame (Blur: twice, from its stripes on OpenCV's
  // threads, one worker per stripe), so a mask computed row by row (MaskFilter::apply_rows) is
  // never made whole. The pixels come out exactly as draw() with those rows as a Mat.
  void draw(const FrameView& frame, Mode mode, AlphaRows& alpha, const CompositorOptions& options);

  // RGB colour of a class in multi-class overlays (class 0 is never drawn).
  static cv::Vec3b palette_color(int class_id);

 private:
  cv::Mat background_rgb_;     // as given
  cv::Mat background_scaled_;  // in the frame's layout and size, rebuilt when either changes
  int background_layout_ = -1;
  cv::Mat row_weights_, row_targets_;  // one row of per-byte weights / target bytes
  cv::Mat row_colour_;                 // one row: 0xFF on colour bytes, 0 on the others
  // Blur's buffers, kept from frame to frame: per block, the background-weighted colour sums and
  // the weight sum (floats); the blurred background upscaled along rows (one per block row);
  // per-stripe scratch rows; the kernel; where each frame column samples a block row.
  cv::Mat blur_sums_, blur_rows_, blur_scratch_, blur_kernel_, blur_columns_, blur_column_weights_;
  cv::Mat blur_colour_;  // 0xFF on a row's colour bytes, 0 on the others

  void draw_rows(const FrameView& frame, Mode mode, AlphaRows& alpha,
                 const CompositorOptions& options);
  void blur(const FrameView& frame, AlphaRows& alpha, int radius);
  const cv::Mat& scaled_background(const FrameView& frame);  // background_scaled_, cached
};

}  // namespace unetseg
