// From the model's probability map to a mask at frame size.
#pragma once

#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

#include "unetseg/alpha_rows.hpp"
#include "unetseg/bilinear_upscaler.hpp"
#include "unetseg/frame.hpp"
#include "unetseg/model_spec.hpp"

namespace unetseg {

struct MaskOptions {
  // Hard mask: foreground where probability >= threshold, compared at 8-bit precision (alpha
  // round(p * 255) >= round(threshold * 255), both rounded the same way): 0 makes everything
  // foreground, 1 only p == 1 (to 8 bits). Values outside [0,1] are clamped.
  double threshold = 0.5;
  bool soft = false;  // keep the soft probability as alpha 0..255 instead of 0/255
  MaskScaling scaling = MaskScaling::Bilinear;  // the model's sidecar says (output.resize)

  // Refinement, all off by default (the output is then exactly the plain upscale above). The
  // steps run in this order:
  //   1. min_island, at model resolution (cheap there, and the fraction does not depend on the
  //      frame size);
  //   2. the upscale to the frame: guided when guided_radius > 0, else `scaling`;
  //   3. the threshold, unless soft;
  //   4. smooth_contour;
  //   5. feather.
  // Radii are in frame pixels, up to 1024. Bad values (out of range, NaN, guided_eps <= 0 with
  // guided_radius > 0) throw unetseg::Error. Each step is single-threaded and allocates nothing
  // once the size is stable; the guided filter works at frame size / (radius / 2), the others'
  // cost does not depend on the radius (their times: docs/BENCHMARKS.md, "Refinement costs").

  // Fraction of the map's area, in [0,1]: foreground components (8-connected, at the threshold)
  // smaller than it are dropped (set to 0), and background holes (4-connected background that
  // does not touch the map's border) smaller than it are filled (set to 255). A component of
  // exactly the fraction stays. Soft pixels below the threshold around a dropped island stay.
  double min_island = 0;
  // Radius: smooths the outline (the jaggies of a low-resolution map upscaled). Two box blurs of
  // this radius (a tent reaching 2 * radius), then a hard mask is thresholded again at 50%; a
  // soft mask stays blurred. Corners get rounded and details thinner than about the radius go.
  int smooth_contour = 0;
  // Signed width of a linear ramp at the mask's edge, which makes alpha soft there even for a
  // hard mask: > 0 grows the mask, alpha 255 up to the old 50% contour falling to 0 at `feather`
  // pixels outside it (the 50% contour moves out by feather / 2); < 0 pulls it in, alpha 0 from
  // the old contour rising to 255 at |feather| inside (the 50% contour moves in by |feather| / 2).
  // One box blur of radius |feather| and a linear map: exact across straight axis-parallel edges,
  // about sqrt(2) wider across diagonal ones.
  int feather = 0;
  // > 0: edge-aware upsampling guided by the frame (the fast guided filter of He and Sun, 2015:
  // the local linear model alpha = a * I + b fitted at reduced resolution over windows of this
  // radius, then applied to the frame's full-resolution grey I), so that the edge follows hair,
  // fingers and the outline in the image instead of the model's coarse pixels. The result
  // replaces the plain bilinear upscale only where the model is unsure: fully where the upscaled
  // p is within [1/4, 3/4], fading linearly to none at 0 and 1 (alone the filter blurs the
  // model's confident areas, which costs MAE). The radius must reach across the model's own
  // edge ramp, a pixel or two of the model: about 2 to 3 times frame size / model size. Replaces
  // `scaling`. Needs the frame: apply(foreground, FrameView, options); apply(foreground, Size,
  // options) throws.
  int guided_radius = 0;
  // The guided filter's regularisation, as a variance of the guide in [0,1] grey units (the
  // guide is grey / 255): windows whose grey varies much less than sqrt(guided_eps) keep the
  // upsampled probability, windows with edges much stronger than that follow the image. 1e-3
  // is a grey standard deviation of about 8 levels.
  double guided_eps = 1e-3;
};

// Foreground statistics of a frame-size alpha mask.
struct MaskStats {
  double foreground_fraction = 0;  // mean alpha / 255 over the frame
  cv::Rect bounding_box;           // of pixels with alpha >= 128; empty when there are none
};

// Also the rows of its last result (AlphaRows), for drawing without the whole mask.
class MaskFilter final : public AlphaRows {
 public:
  // foreground: CV_32FC1 in [0,1] at model resolution. Returns CV_8UC1 alpha at frame_size:
  // OpenCV's 8-bit bilinear resize (byte for byte: BilinearUpscaler), or with MaskScaling::Pil
  // PIL's Image.resize BILINEAR as the official U2-Net code saves its masks (a triangle filter
  // widened by the factor when a side shrinks), then 0/255 at the threshold unless
  // options.soft. The returned Mat is owned by the filter, reused across frames and valid until
  // the next call. Single-threaded; nothing is allocated once the sizes are stable, with or
  // without the refinements (but where the frame is smaller than the model on a side: then
  // the plain upscale is cv::resize's, which allocates its tables).
  // With the refinements of MaskOptions on top (in the order listed there). This overload has no
  // guide, so options.guided_radius > 0 throws unetseg::Error.
  const cv::Mat& apply(const cv::Mat& foreground, cv::Size frame_size, const MaskOptions& options);
  // The same at the frame's size, with the frame as the guided filter's guide (any layout and
  // stride; only read). Without guided_radius the frame's pixels are not read and the result is
  // that of apply(foreground, Size(frame.width, frame.height), options).
  const cv::Mat& apply(const cv::Mat& foreground, const FrameView& frame,
                       const MaskOptions& options);

  // The same, but where nothing after the upscale needs the mask whole (no guided_radius,
  // smooth_contour or feather, scaling Bilinear, the frame at least the model's size) it stays
  // at model size (min_island done there) and its frame-size rows are computed only when asked
  // for: row() (AlphaRows, what Compositor::draw takes), stats(), alpha(). Otherwise it is
  // made whole as apply() makes it. Either way the bytes are apply()'s. Valid until the next
  // apply() or apply_rows(); allocates nothing once the sizes are stable.
  void apply_rows(const cv::Mat& foreground, const FrameView& frame, const MaskOptions& options);
  // The last result whole (apply_rows(): made now, once, if it was left in rows).
  const cv::Mat& alpha();
  // stats(alpha()) of the last result. When it is in rows: with keep, each row is stored as it
  // is measured, so that the mask is whole afterwards (alpha() then costs nothing and drawing
  // reads the rows instead of computing them again: one pass for upscale, threshold and stats);
  // without, nothing is stored (every later row() computes its row again).
  MaskStats stats(bool keep = false);
  // AlphaRows: the last result's rows, computed into per-worker scratch when it is in rows (the
  // vertical mix of two rows of the upscale's horizontal pass, made once in apply_rows(), and
  // the threshold).
  cv::Size size() const override { return frame_size_; }
  void begin(int workers) override;
  const std::uint8_t* row(int y, int worker) override;

  // Throws unetseg::Error when an option is out of its range (apply() checks the same).
  static void check(const MaskOptions& options);

  // class_map: CV_8UC1 class ids at model resolution -> frame_size, nearest neighbour.
  const cv::Mat& upscale_classes(const cv::Mat& class_map, cv::Size frame_size);

  // Soft probability as 8-bit alpha (round(p * 255)) at the map's own size, into `out`.
  static void to_alpha8(const cv::Mat& foreground, cv::Mat& out);

  static MaskStats stats(const cv::Mat& alpha);

  enum class BoxShape { Mean, Half, Grow, Shrink };  // see box_mean

 private:
  // One axis of PIL's 8-bit BILINEAR resample: per output, first input index, tap count and
  // fixed-point weights (taps per output in `taps`); rebuilt only when the sizes change.
  struct Axis {
    int in = 0, out = 0, taps = 0;
    std::vector<int> start, count, weights;
    void build(int in_size, int out_size);
  };
  void resample(const cv::Mat& src, cv::Size size);
  void threshold_row(std::uint8_t* row) const;  // 0/255 at level_ unless soft_
  const cv::Mat& refine(const cv::Mat& foreground, const FrameView* guide, cv::Size frame_size,
                        const MaskOptions& options);
  // Steps of the refinement (MaskOptions says what each does).
  void remove_islands(cv::Mat& alpha, int level, double fraction);
  void flip_small_components(cv::Mat& alpha, int level, bool foreground, double min_area);
  void guided_upsample(const cv::Mat& small, const FrameView& frame, int radius, double eps);
  // Mean over a (2 rx + 1) x (2 ry + 1) window, borders replicated, of an 8-bit Mat into another
  // (not in place). The mean v (rounded) is then shaped: kept,
  // 0/255 at 128 (Half: a hard mask again), min(255, 2 v) (Grow) or max(0, 2 v - 255) (Shrink).
  void box_mean(const cv::Mat& src, cv::Mat& dst, int rx, int ry,
                BoxShape shape = BoxShape::Mean);

  // The last result: whole in alpha_, or (in_rows_) small_alpha_ upscaled a row at a time.
  bool in_rows_ = false;
  bool soft_ = false;
  int level_ = 0;
  cv::Size frame_size_;
  BilinearUpscaler upscaler_;
  cv::Mat worker_out_;  // one row of output per worker
  // Per row of small_alpha_: dark (every value below the threshold level, or 0 for a soft
  // mask), so that the output rows between two dark ones are all 0; and whether its horizontal
  // pass can be skipped (it and its neighbours dark).
  std::vector<std::uint8_t> dark_rows_, unused_rows_;
  cv::Mat zero_row_;  // a frame row of 0, handed out for those

  Axis axis_x_, axis_y_;
  cv::Mat between_;       // the horizontal pass's 8-bit result
  std::vector<int> row_;  // the vertical pass's accumulators
  cv::Mat small_alpha_;
  cv::Mat alpha_;
  cv::Mat classes_;

  // Refinement buffers, kept across frames so that a stable size allocates nothing.
  cv::Mat blurred_;                // 8-bit: a box blur's result
  std::vector<std::uint32_t> box_sums8_;  // box_mean's column sums (padded) and prefix sums
  std::vector<double> box_sumsf_;  // the guided filter's (float maps, two at a time)
  cv::Mat visited_;                // remove_islands: pixels already in a component
  std::vector<int> component_;     // remove_islands: the pixels of the component being grown
  cv::Mat guide_small_;                                       // guided: 8-bit grey
  cv::Mat guide_, p_, mean_i_, mean_p_, corr_ii_, corr_ip_;   // guided: float, reduced size
  cv::Mat a_, b_, mean_a_, mean_b_;
  std::vector<int> up_x0_;         // guided: per output column, the left source column
  std::vector<float> up_wx_;       // and the weight of the right one
  std::vector<float> row_a_, row_b_;  // guided: a and b interpolated to one frame row
};

}  // namespace unetseg
