#include "unetseg/mask_filter.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include <opencv2/imgproc.hpp>

#include "unetseg/error.hpp"
#include "unetseg/temporal.hpp"

namespace unetseg {

namespace {

std::string describe(const cv::Mat& m) {
  return std::to_string(m.cols) + "x" + std::to_string(m.rows) + " " +
         cv::typeToString(m.type());
}

void require_frame_size(cv::Size frame_size, const char* who) {
  if (frame_size.width <= 0 || frame_size.height <= 0)
    throw Error(std::string(who) + ": frame size " + std::to_string(frame_size.width) + "x" +
                std::to_string(frame_size.height) + " is empty");
}

// The 8-bit level a probability threshold becomes: the threshold converted exactly as the
// probabilities are (float, times 255, rounded half to even). That conversion is monotone, so
// p >= t implies alpha >= level: no probability at or above the threshold is lost, and only
// those within half an 8-bit step below it are counted in as well. t <= 0 gives level 0
// (everything is foreground), t >= 1 gives 255 (only p == 1, to 8 bits).
int threshold_level(double threshold) {
  float t = threshold > 0 ? static_cast<float>(std::min(threshold, 1.0)) : 0.f;  // NaN -> 0
  std::uint8_t level = 0;
  cv::Mat level_mat(1, 1, CV_8UC1, &level);  // headers on the stack: nothing allocated
  MaskFilter::to_alpha8(cv::Mat(1, 1, CV_32FC1, &t), level_mat);
  return level;
}

// Radii beyond this are refused: a box sum of 8-bit values over (2r + 1)^2 pixels must fit an int.
constexpr int kMaxRadius = 1024;

// The guided filter works at a reduced size where its radius is this many pixels (He and Sun's
// fast guided filter subsamples by radius / 4; 2 costs a quarter of that and measured as well on
// person-dev: boundary F 0.448 against 0.444 with 4, portrait-unet, radius 8, before the blend).
constexpr int kGuidedReducedRadius = 2;

void check_radius(int radius, const char* name) {
  if (radius < 0 || radius > kMaxRadius)
    throw Error(std::string("MaskFilter: ") + name + " must be 0 to " +
                std::to_string(kMaxRadius) + " pixels, got " + std::to_string(radius));
}

void check_options(const MaskOptions& options) {
  if (!(options.min_island >= 0 && options.min_island <= 1))  // NaN fails too
    throw Error("MaskFilter: min_island must be a fraction of the area in [0, 1], got " +
                std::to_string(options.min_island));
  check_radius(options.smooth_contour, "smooth_contour");
  if (options.feather < -kMaxRadius || options.feather > kMaxRadius)
    throw Error("MaskFilter: feather must be -" + std::to_string(kMaxRadius) + " to " +
                std::to_string(kMaxRadius) + " pixels, got " + std::to_string(options.feather));
  check_radius(options.guided_radius, "guided_radius");
  if (options.guided_radius > 0 && !(options.guided_eps > 0 && std::isfinite(options.guided_eps)))
    throw Error("MaskFilter: guided_eps must be a positive number, got " +
                std::to_string(options.guided_eps));
}

// How much of the guided filter's result replaces the plain upscale, by the plain upscale's
// alpha v: none where the model is sure (v <= kSure or v >= 255 - kSure), all from 1/4 to 3/4
// (64 to 191), linear between. The filter averages p over its windows, so on its own it blurs the
// model's confident areas and edges that the image does not show (a halo, and a worse MAE on
// person-dev); this way the model says where the edge is, and the image says exactly where
// within the model's uncertain band. The sure levels are also where most of a frame is, which
// the filter then skips: models leave a few levels of noise on the background (portrait-unet:
// 71% of a photo's pixels are neither 0 nor 255), hence kSure rather than exactly 0 and 255.
constexpr int kSure = 16;
struct GuidedTrust {
  float weight[256];
  GuidedTrust() {
    for (int v = 0; v < 256; ++v)
      weight[v] = std::clamp((std::min(v, 255 - v) - kSure) / (64.f - kSure), 0.f, 1.f);
  }
};
const GuidedTrust kGuidedTrust;

// Whether any of n alphas is unsure (kSure < v < 255 - kSure, i.e. v - kSure - 1 in 8 bits
// below 255 - 2 kSure - 1): a minimum over bytes, which vectorises.
bool any_unsure(const std::uint8_t* alpha, int n) {
  std::uint8_t lowest = 255;
  for (int i = 0; i < n; ++i)
    lowest = std::min(lowest, static_cast<std::uint8_t>(alpha[i] - (kSure + 1)));
  return lowest < 255 - 2 * kSure - 1;
}

// Box means by running sums: a column sum per x, updated by one row in and one row out per
// output row (every column at once, vectorisable), then along the row, so the cost does not
// grow with the radius. Borders are replicated.

// One row of 8-bit means from prefix sums, shaped (MaskFilter::BoxShape): arithmetic rather than
// a table, so that the whole row vectorises.
template <MaskFilter::BoxShape kShape>
void row_of_means(const std::uint32_t* prefix, int span, float inv_area, std::uint8_t* out, int w) {
  for (int x = 0; x < w; ++x) {
    // Float holds the window sums exactly up to radius 127, within far less than a level beyond.
    const int sum = static_cast<int>(prefix[x + span] - prefix[x]);
    const int v = static_cast<int>(static_cast<float>(sum) * inv_area + 0.5f);
    if constexpr (kShape == MaskFilter::BoxShape::Mean) out[x] = static_cast<std::uint8_t>(v);
    else if constexpr (kShape == MaskFilter::BoxShape::Half) out[x] = v >= 128 ? 255 : 0;
    else if constexpr (kShape == MaskFilter::BoxShape::Grow)
      out[x] = static_cast<std::uint8_t>(std::min(255, 2 * v));
    else out[x] = static_cast<std::uint8_t>(std::max(0, 2 * v - 255));
  }
}

// 8-bit, exact sums: the row pass is a prefix sum over the padded column sums (one add per
// pixel, the only serial part), then differences of it, scaled and rounded over the whole row at
// once (vectorisable). The prefix wraps modulo 2^32, but each difference, at most
// 255 (2r + 1)^2 with r <= kMaxRadius, does not.
void box_mean8(const cv::Mat& src, cv::Mat& dst, int rx, int ry, std::vector<std::uint32_t>& sums,
               MaskFilter::BoxShape shape) {
  const int w = src.cols, h = src.rows;
  dst.create(src.size(), CV_8UC1);
  const int padded = w + 2 * rx;
  sums.resize(2 * static_cast<std::size_t>(padded) + 1);
  std::uint32_t* cols = sums.data() + rx;  // cols[-rx, w + rx)
  std::uint32_t* prefix = sums.data() + padded;  // prefix[0, padded]
  std::fill(cols, cols + w, 0u);
  for (int k = -ry; k <= ry; ++k) {
    const std::uint8_t* in = src.ptr<std::uint8_t>(std::clamp(k, 0, h - 1));
    for (int x = 0; x < w; ++x) cols[x] += in[x];
  }
  const float inv_area = 1.f / (static_cast<float>(2 * rx + 1) * (2 * ry + 1));
  const int span = 2 * rx + 1;
  for (int y = 0; y < h; ++y) {
    std::fill(cols - rx, cols, cols[0]);
    std::fill(cols + w, cols + w + rx, cols[w - 1]);
    // prefix[k] = the sum of the padded columns before k.
    std::uint32_t running = 0;
    const std::uint32_t* padded_cols = cols - rx;
    for (int k = 0; k < padded; ++k) {
      const std::uint32_t c = padded_cols[k];
      prefix[k] = running;
      running += c;
    }
    prefix[padded] = running;
    std::uint8_t* out = dst.ptr<std::uint8_t>(y);
    switch (shape) {
      case MaskFilter::BoxShape::Mean:
        row_of_means<MaskFilter::BoxShape::Mean>(prefix, span, inv_area, out, w);
        break;
      case MaskFilter::BoxShape::Half:
        row_of_means<MaskFilter::BoxShape::Half>(prefix, span, inv_area, out, w);
        break;
      case MaskFilter::BoxShape::Grow:
        row_of_means<MaskFilter::BoxShape::Grow>(prefix, span, inv_area, out, w);
        break;
      case MaskFilter::BoxShape::Shrink:
        row_of_means<MaskFilter::BoxShape::Shrink>(prefix, span, inv_area, out, w);
        break;
    }
    if (y + 1 < h) {
      const std::uint8_t* in = src.ptr<std::uint8_t>(std::min(y + ry + 1, h - 1));
      const std::uint8_t* gone = src.ptr<std::uint8_t>(std::max(y - ry, 0));
      for (int x = 0; x < w; ++x) cols[x] += static_cast<std::uint32_t>(in[x]) - gone[x];
    }
  }
}

// Float (the guided filter's small maps), two maps of one size at once: double sums, so that the
// running updates do not drift, and two independent running sums along each row, which is what
// bounds the speed (one add after another).
void box_mean_pair(const cv::Mat& src1, const cv::Mat& src2, cv::Mat& dst1, cv::Mat& dst2, int rx,
                   int ry, std::vector<double>& sums) {
  const int w = src1.cols, h = src1.rows;
  dst1.create(src1.size(), CV_32FC1);
  dst2.create(src1.size(), CV_32FC1);
  const std::size_t padded = static_cast<std::size_t>(w) + 2 * rx + 2;
  sums.resize(2 * padded);
  double* cols1 = sums.data() + rx;  // cols[-rx, w + rx]
  double* cols2 = sums.data() + padded + rx;
  std::fill(cols1, cols1 + w, 0.0);
  std::fill(cols2, cols2 + w, 0.0);
  for (int k = -ry; k <= ry; ++k) {
    const float* in1 = src1.ptr<float>(std::clamp(k, 0, h - 1));
    const float* in2 = src2.ptr<float>(std::clamp(k, 0, h - 1));
    for (int x = 0; x < w; ++x) {
      cols1[x] += in1[x];
      cols2[x] += in2[x];
    }
  }
  const double inv_area = 1.0 / (static_cast<double>(2 * rx + 1) * (2 * ry + 1));
  for (int y = 0; y < h; ++y) {
    std::fill(cols1 - rx, cols1, cols1[0]);
    std::fill(cols1 + w, cols1 + w + rx + 1, cols1[w - 1]);
    std::fill(cols2 - rx, cols2, cols2[0]);
    std::fill(cols2 + w, cols2 + w + rx + 1, cols2[w - 1]);
    double sum1 = 0, sum2 = 0;
    for (int k = -rx; k <= rx; ++k) {
      sum1 += cols1[k];
      sum2 += cols2[k];
    }
    float* out1 = dst1.ptr<float>(y);
    float* out2 = dst2.ptr<float>(y);
    for (int x = 0; x < w; ++x) {
      out1[x] = static_cast<float>(sum1 * inv_area);
      out2[x] = static_cast<float>(sum2 * inv_area);
      sum1 += cols1[x + rx + 1] - cols1[x - rx];
      sum2 += cols2[x + rx + 1] - cols2[x - rx];
    }
    if (y + 1 < h) {
      const int in_row = std::min(y + ry + 1, h - 1), gone_row = std::max(y - ry, 0);
      const float* in1 = src1.ptr<float>(in_row);
      const float* gone1 = src1.ptr<float>(gone_row);
      const float* in2 = src2.ptr<float>(in_row);
      const float* gone2 = src2.ptr<float>(gone_row);
      for (int x = 0; x < w; ++x) {
        cols1[x] += static_cast<double>(in1[x]) - gone1[x];
        cols2[x] += static_cast<double>(in2[x]) - gone2[x];
      }
    }
  }
}

}  // namespace

void MaskFilter::check(const MaskOptions& options) { check_options(options); }

void MaskFilter::box_mean(const cv::Mat& src, cv::Mat& dst, int rx, int ry, BoxShape shape) {
  box_mean8(src, dst, rx, ry, box_sums8_, shape);
}

void MaskFilter::to_alpha8(const cv::Mat& foreground, cv::Mat& out) {
  if (foreground.empty() || foreground.type() != CV_32FC1)
    throw Error("MaskFilter: the foreground map must be a non-empty CV_32FC1 Mat, got " +
                describe(foreground));
  // convertTo rounds to nearest and saturates, so values outside [0,1] clamp to 0/255.
  foreground.convertTo(out, CV_8U, 255.0);
}

const cv::Mat& MaskFilter::apply(const cv::Mat& foreground, cv::Size frame_size,
                                 const MaskOptions& options) {
  require_frame_size(frame_size, "MaskFilter::apply");
  if (options.guided_radius > 0)
    throw Error("MaskFilter::apply: guided_radius needs the frame as its guide: call "
                "apply(foreground, FrameView, options)");
  return refine(foreground, nullptr, frame_size, options);
}

const cv::Mat& MaskFilter::apply(const cv::Mat& foreground, const FrameView& frame,
                                 const MaskOptions& options) {
  const cv::Size frame_size(frame.width, frame.height);
  require_frame_size(frame_size, "MaskFilter::apply");
  const std::size_t row_bytes = static_cast<std::size_t>(frame.width) * frame.bytes_per_pixel();
  if (options.guided_radius > 0 && (!frame.data || frame.stride < row_bytes))
    throw Error("MaskFilter::apply: the guide frame has no pixels or a stride (" +
                std::to_string(frame.stride) + ") shorter than a row");
  return refine(foreground, &frame, frame_size, options);
}

const cv::Mat& MaskFilter::refine(const cv::Mat& foreground, const FrameView* guide,
                                  cv::Size frame_size, const MaskOptions& options) {
  check_options(options);
  const int level = threshold_level(options.threshold);
  const bool islands = options.min_island > 0;
  const bool guided = options.guided_radius > 0;
  // Quantise at model size (small) and interpolate in 8 bits: a quarter of the memory traffic of
  // upscaling floats, and OpenCV's 8-bit bilinear resize is its fastest path.
  if (foreground.size() == frame_size && !guided) {
    to_alpha8(foreground, alpha_);
    if (islands) remove_islands(alpha_, level, options.min_island);
  } else {
    to_alpha8(foreground, small_alpha_);
    if (islands) remove_islands(small_alpha_, level, options.min_island);
    if (guided) {
      guided_upsample(small_alpha_, *guide, options.guided_radius, options.guided_eps);
    } else if (options.scaling == MaskScaling::Pil) {
      // PIL's Image.resize BILINEAR, as the official U2-Net code saves its masks: bilinear with
      // half-pixel centres when a side grows (8-bit between the passes), a triangle filter
      // widened by the factor when it shrinks (bilinear alone would skip pixels).
      resample(small_alpha_, frame_size);
    } else {
      upscaler_.resize(small_alpha_, frame_size, alpha_);
    }
  }
  in_rows_ = false;
  frame_size_ = frame_size;
  level_ = level;
  soft_ = options.soft;
  if (!options.soft)
    for (int y = 0; y < alpha_.rows; ++y) threshold_row(alpha_.ptr<std::uint8_t>(y));
  if (options.smooth_contour > 0) {
    // Two box passes make a tent, rounder than one square box; a hard mask is cut at 50% again.
    const int r = options.smooth_contour;
    box_mean(alpha_, blurred_, r, r);
    box_mean(blurred_, alpha_, r, r, options.soft ? BoxShape::Mean : BoxShape::Half);
  }
  if (options.feather != 0) {
    // Across a straight edge a box mean of radius n ramps linearly from the inside to the
    // outside over 2n + 1 pixels, 50% at the edge: doubling it (grow) keeps the inside and ramps
    // over the n pixels outside, 2v - 255 (shrink) ramps over the n pixels inside.
    const int n = std::abs(options.feather);
    box_mean(alpha_, blurred_, n, n, options.feather > 0 ? BoxShape::Grow : BoxShape::Shrink);
    blurred_.copyTo(alpha_);  // the returned buffer stays the same from frame to frame
  }
  return alpha_;
}

void MaskFilter::apply_rows(const cv::Mat& foreground, const FrameView& frame,
                            const MaskOptions& options) {
  const cv::Size frame_size(frame.width, frame.height);
  const bool whole = options.guided_radius > 0 || options.smooth_contour != 0 ||
                     options.feather != 0 || options.scaling != MaskScaling::Bilinear ||
                     frame_size.width < foreground.cols || frame_size.height < foreground.rows;
  if (whole) {
    apply(foreground, frame, options);
    return;
  }
  require_frame_size(frame_size, "MaskFilter::apply_rows");
  check_options(options);
  level_ = threshold_level(options.threshold);
  soft_ = options.soft;
  to_alpha8(foreground, small_alpha_);
  if (options.min_island > 0) remove_islands(small_alpha_, level_, options.min_island);
  // OpenCV's bilinear mix never exceeds the largest value it mixes (its weights add up to at
  // most 2049 / 2048 per axis, which its rounding absorbs below 256), so the output rows between
  // two model rows below the threshold level are all 0 once thresholded, and between two rows of
  // 0 all 0 soft too: row() hands out zero_row_ for those, and the model rows that feed only
  // such output rows skip the horizontal pass.
  const int dark_below = soft_ ? 1 : level_;
  const int h = small_alpha_.rows;
  dark_rows_.resize(h);
  unused_rows_.resize(h);
  for (int y = 0; y < h; ++y) {
    const std::uint8_t* p = small_alpha_.ptr<std::uint8_t>(y);
    dark_rows_[y] = *std::max_element(p, p + small_alpha_.cols) < dark_below;
  }
  for (int y = 0; y < h; ++y)
    unused_rows_[y] = dark_rows_[std::max(y - 1, 0)] && dark_rows_[y] &&
                      dark_rows_[std::min(y + 1, h - 1)];
  upscaler_.prepare(small_alpha_.size(), frame_size);
  upscaler_.load(small_alpha_, unused_rows_.data());
  if (zero_row_.cols < frame_size.width) zero_row_ = cv::Mat::zeros(1, frame_size.width, CV_8UC1);
  frame_size_ = frame_size;
  in_rows_ = true;
}

const cv::Mat& MaskFilter::alpha() {
  if (in_rows_) stats(/*keep=*/true);
  return alpha_;
}

void MaskFilter::begin(int workers) {
  if (!in_rows_) return;
  if (worker_out_.rows < workers || worker_out_.cols < frame_size_.width)
    worker_out_.create(std::max(workers, worker_out_.rows),
                       std::max(frame_size_.width, worker_out_.cols), CV_8UC1);
}

const std::uint8_t* MaskFilter::row(int y, int worker) {
  if (!in_rows_) return alpha_.ptr<std::uint8_t>(y);
  if (dark_rows_[upscaler_.source_row(y, 0)] && dark_rows_[upscaler_.source_row(y, 1)])
    return zero_row_.ptr<std::uint8_t>();
  std::uint8_t* out = worker_out_.ptr<std::uint8_t>(worker);
  upscaler_.row(y, out);
  threshold_row(out);
  return out;
}

// THRESH_BINARY at level - 1, as cv::threshold did it: alpha >= level -> 255 (level 0: all).
void MaskFilter::threshold_row(std::uint8_t* row) const {
  if (soft_) return;
  const int n = frame_size_.width;
  const std::uint8_t level = static_cast<std::uint8_t>(level_);
  int x = 0;
  for (; x + 32 <= n; x += 32)  // fixed blocks: vectorised at -O2
    for (int j = 0; j < 32; ++j) row[x + j] = row[x + j] >= level ? 255 : 0;
  for (; x < n; ++x) row[x] = row[x] >= level ? 255 : 0;
}

// Holes first: an island inside a small hole joins the mask when the hole is filled, and a
// speck with a hole in it is dropped whole.
void MaskFilter::remove_islands(cv::Mat& alpha, int level, double fraction) {
  const double min_area = fraction * static_cast<double>(alpha.total());
  if (min_area <= 1) return;  // no component is smaller than one pixel
  flip_small_components(alpha, level, false, min_area);
  flip_small_components(alpha, level, true, min_area);
}

// Grows each component of one class (foreground: alpha >= level, 8-connected; background:
// 4-connected, the usual pairing that keeps a diagonal line of foreground a wall) breadth first
// through component_ (which then holds all its pixels), and flips the small ones: foreground
// to 0, and background that does not touch the border (a hole, not the scene around) to 255.
void MaskFilter::flip_small_components(cv::Mat& alpha, int level, bool foreground,
                                       double min_area) {
  const int w = alpha.cols, h = alpha.rows;
  visited_.create(alpha.size(), CV_8UC1);
  visited_ = cv::Scalar(0);  // (setTo would allocate a temporary)
  component_.resize(alpha.total());
  static const int kDx[8] = {1, -1, 0, 0, 1, 1, -1, -1};
  static const int kDy[8] = {0, 0, 1, -1, 1, -1, 1, -1};
  const int neighbours = foreground ? 8 : 4;
  const auto in_class = [&](int x, int y) {
    return (alpha.at<std::uint8_t>(y, x) >= level) == foreground;
  };
  for (int y0 = 0; y0 < h; ++y0)
    for (int x0 = 0; x0 < w; ++x0) {
      if (visited_.at<std::uint8_t>(y0, x0) || !in_class(x0, y0)) continue;
      std::size_t head = 0, tail = 0;
      component_[tail++] = y0 * w + x0;
      visited_.at<std::uint8_t>(y0, x0) = 1;
      bool touches_border = false;
      while (head < tail) {
        const int x = component_[head] % w, y = component_[head] / w;
        ++head;
        if (x == 0 || y == 0 || x == w - 1 || y == h - 1) touches_border = true;
        for (int k = 0; k < neighbours; ++k) {
          const int nx = x + kDx[k], ny = y + kDy[k];
          if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
          std::uint8_t& seen = visited_.at<std::uint8_t>(ny, nx);
          if (seen || !in_class(nx, ny)) continue;
          seen = 1;
          component_[tail++] = ny * w + nx;
        }
      }
      if (static_cast<double>(tail) >= min_area || (!foreground && touches_border)) continue;
      const std::uint8_t value = foreground ? 0 : 255;
      for (std::size_t i = 0; i < tail; ++i)
        alpha.at<std::uint8_t>(component_[i] / w, component_[i] % w) = value;
    }
}

// He and Sun's fast guided filter (arXiv:1505.00996), grey guide I in [0,1] and input p the
// model's map: at a reduced size, per window a linear fit p ~ a I + b (a = cov(I, p) / (var(I)
// + eps), b = mean(p) - a mean(I)), a and b averaged over the windows covering each pixel, then
// bilinearly upsampled to the frame and applied to the frame's own grey: alpha = a I + b. Where
// the window's grey varies little, a ~ 0 and alpha is the smoothed map; across an edge of the
// image, alpha takes that edge's shape and position. Then blended into the plain bilinear
// upscale by GuidedTrust.
void MaskFilter::guided_upsample(const cv::Mat& small, const FrameView& frame, int radius,
                                 double eps) {
  const cv::Size full(frame.width, frame.height);
  const double subsample = std::max(1.0, static_cast<double>(radius) / kGuidedReducedRadius);
  const cv::Size reduced(std::max(1, static_cast<int>(std::lround(full.width / subsample))),
                         std::max(1, static_cast<int>(std::lround(full.height / subsample))));
  const int rx = std::max(1, static_cast<int>(std::lround(
                                 static_cast<double>(radius) * reduced.width / full.width)));
  const int ry = std::max(1, static_cast<int>(std::lround(
                                 static_cast<double>(radius) * reduced.height / full.height)));

  frame_thumbnail(frame, reduced, guide_small_);
  guide_small_.convertTo(guide_, CV_32F, 1.0 / 255);
  // The map at the reduced size, bilinear (pixel centres aligned, as cv::resize, which would
  // allocate its tables on every call).
  const auto source = [](int i, int out_size, int in_size, int* i0, float* w) {
    const double f = std::clamp((i + 0.5) * in_size / out_size - 0.5, 0.0, in_size - 1.0);
    *i0 = static_cast<int>(f);
    *w = static_cast<float>(f - *i0);
  };
  p_.create(reduced, CV_32FC1);
  up_x0_.resize(reduced.width);
  up_wx_.resize(reduced.width);
  for (int x = 0; x < reduced.width; ++x)
    source(x, reduced.width, small.cols, &up_x0_[x], &up_wx_[x]);
  for (int y = 0; y < reduced.height; ++y) {
    int y0;
    float wy;
    source(y, reduced.height, small.rows, &y0, &wy);
    const std::uint8_t* s0 = small.ptr<std::uint8_t>(y0);
    const std::uint8_t* s1 = small.ptr<std::uint8_t>(std::min(y0 + 1, small.rows - 1));
    float* out = p_.ptr<float>(y);
    for (int x = 0; x < reduced.width; ++x) {
      const int i0 = up_x0_[x], i1 = std::min(i0 + 1, small.cols - 1);
      const float top = s0[i0] + up_wx_[x] * (s0[i1] - s0[i0]);
      const float bottom = s1[i0] + up_wx_[x] * (s1[i1] - s1[i0]);
      out[x] = (top + wy * (bottom - top)) * (1.f / 255);
    }
  }

  a_.create(reduced, CV_32FC1);
  b_.create(reduced, CV_32FC1);
  for (int y = 0; y < reduced.height; ++y) {
    const float* i = guide_.ptr<float>(y);
    const float* p = p_.ptr<float>(y);
    float* ii = a_.ptr<float>(y);
    float* ip = b_.ptr<float>(y);
    for (int x = 0; x < reduced.width; ++x) {
      ii[x] = i[x] * i[x];
      ip[x] = i[x] * p[x];
    }
  }
  box_mean_pair(guide_, p_, mean_i_, mean_p_, rx, ry, box_sumsf_);
  box_mean_pair(a_, b_, corr_ii_, corr_ip_, rx, ry, box_sumsf_);
  const float e = static_cast<float>(eps);
  for (int y = 0; y < reduced.height; ++y) {
    const float* mi = mean_i_.ptr<float>(y);
    const float* mp = mean_p_.ptr<float>(y);
    const float* cii = corr_ii_.ptr<float>(y);
    const float* cip = corr_ip_.ptr<float>(y);
    float* a = a_.ptr<float>(y);
    float* b = b_.ptr<float>(y);
    for (int x = 0; x < reduced.width; ++x) {
      const float var = std::max(0.f, cii[x] - mi[x] * mi[x]);
      a[x] = (cip[x] - mi[x] * mp[x]) / (var + e);
      b[x] = mp[x] - a[x] * mi[x];
    }
  }
  box_mean_pair(a_, b_, mean_a_, mean_b_, rx, ry, box_sumsf_);

  // a and b to the frame, bilinear likewise: along x the same for every row.
  up_x0_.resize(full.width);
  up_wx_.resize(full.width);
  for (int x = 0; x < full.width; ++x)
    source(x, full.width, reduced.width, &up_x0_[x], &up_wx_[x]);
  row_a_.resize(reduced.width + 1);  // one more: the right neighbour of the last column
  row_b_.resize(reduced.width + 1);
  // The plain upscale, which the guided result is blended into where the model is unsure.
  upscaler_.resize(small, full, alpha_);
  const ChannelOffsets off = channel_offsets(frame.layout);
  const int bpp = off.bytes_per_pixel;
  for (int y = 0; y < full.height; ++y) {
    int y0;
    float wy;
    source(y, full.height, reduced.height, &y0, &wy);
    const int y1 = std::min(y0 + 1, reduced.height - 1);
    const std::uint8_t* px = frame.data + static_cast<std::size_t>(y) * frame.stride;
    std::uint8_t* out = alpha_.ptr<std::uint8_t>(y);  // holds the plain upscale on entry
    bool row_ready = false;
    // Most of the frame is where the model is sure: nothing to do there, so 32 pixels at a time
    // are tested and skipped when all are sure. Within a chunk that is not, no branch: a sure
    // pixel has trust 0 and keeps its value exactly.
    for (int start = 0; start < full.width; start += 32) {
      const int end = std::min(start + 32, full.width);
      if (!any_unsure(out + start, end - start)) continue;
      if (!row_ready) {  // a and b along this row, once it has a pixel that needs them
        const float* a0 = mean_a_.ptr<float>(y0);
        const float* a1 = mean_a_.ptr<float>(y1);
        const float* b0 = mean_b_.ptr<float>(y0);
        const float* b1 = mean_b_.ptr<float>(y1);
        // alpha = 255 (a I + b) with I = grey / 255: a * grey + 255 b.
        for (int i = 0; i < reduced.width; ++i) {
          row_a_[i] = a0[i] + wy * (a1[i] - a0[i]);
          row_b_[i] = 255.f * (b0[i] + wy * (b1[i] - b0[i]));
        }
        row_a_[reduced.width] = row_a_[reduced.width - 1];
        row_b_[reduced.width] = row_b_[reduced.width - 1];
        row_ready = true;
      }
      for (int x = start; x < end; ++x) {
        const int i = up_x0_[x];
        const float w = up_wx_[x];
        const float a = row_a_[i] + w * (row_a_[i + 1] - row_a_[i]);
        const float b = row_b_[i] + w * (row_b_[i + 1] - row_b_[i]);
        const std::uint8_t* q = px + static_cast<std::size_t>(x) * bpp;
        const float guided = a * static_cast<float>(grey_level(q[off.r], q[off.g], q[off.b])) + b;
        const float plain = out[x];
        const float v = plain + kGuidedTrust.weight[out[x]] *
                                    (std::min(std::max(guided, 0.f), 255.f) - plain);
        out[x] = static_cast<std::uint8_t>(v + 0.5f);
      }
    }
  }
}

namespace {
constexpr int kPrecisionBits = 32 - 8 - 2;  // PIL's fixed point for 8-bit resampling
}

// PIL's precompute_coeffs + normalize_coeffs_8bpc (Pillow's Resample.c) for the bilinear filter.
void MaskFilter::Axis::build(int in_size, int out_size) {
  if (in == in_size && out == out_size) return;
  in = in_size;
  out = out_size;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  start.assign(out_size, 0);
  count.assign(out_size, 0);
  weights.assign(static_cast<size_t>(out_size) * taps, 0);
  std::vector<double> k(taps);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0;
    for (int x = 0; x < xmax; ++x) {
      const double t = std::fabs((x + xmin - center + 0.5) * ss);
      k[x] = t < 1.0 ? 1.0 - t : 0.0;
      ww += k[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[x] / ww : k[x];
      weights[static_cast<size_t>(xx) * taps + x] =
          static_cast<int>(w < 0 ? w * (1 << kPrecisionBits) - 0.5 : w * (1 << kPrecisionBits) + 0.5);
    }
    start[xx] = xmin;
    count[xx] = xmax;
  }
}

// PIL's ImagingResample for one 8-bit channel: horizontal pass (8-bit result), then vertical.
void MaskFilter::resample(const cv::Mat& src, cv::Size size) {
  const auto clip8 = [](int v) {
    v >>= kPrecisionBits;
    return static_cast<std::uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
  };
  const cv::Mat* h = &src;
  if (size.width != src.cols) {
    axis_x_.build(src.cols, size.width);
    between_.create(src.rows, size.width, CV_8UC1);
    for (int y = 0; y < src.rows; ++y) {
      const std::uint8_t* in = src.ptr<std::uint8_t>(y);
      std::uint8_t* o = between_.ptr<std::uint8_t>(y);
      for (int x = 0; x < size.width; ++x) {
        const int* w = &axis_x_.weights[static_cast<size_t>(x) * axis_x_.taps];
        const std::uint8_t* p = in + axis_x_.start[x];
        int ss = 1 << (kPrecisionBits - 1);
        for (int k = 0; k < axis_x_.count[x]; ++k) ss += p[k] * w[k];
        o[x] = clip8(ss);
      }
    }
    h = &between_;
  }
  if (size.height == h->rows) {
    h->copyTo(alpha_);
    return;
  }
  axis_y_.build(h->rows, size.height);
  alpha_.create(size, CV_8UC1);
  row_.resize(size.width);
  for (int y = 0; y < size.height; ++y) {
    const int* w = &axis_y_.weights[static_cast<size_t>(y) * axis_y_.taps];
    std::uint8_t* o = alpha_.ptr<std::uint8_t>(y);
    int* acc = row_.data();
    std::fill(acc, acc + size.width, 1 << (kPrecisionBits - 1));
    for (int k = 0; k < axis_y_.count[y]; ++k) {  // row by row: contiguous, vectorisable
      const std::uint8_t* in = h->ptr<std::uint8_t>(axis_y_.start[y] + k);
      const int wk = w[k];
      for (int x = 0; x < size.width; ++x) acc[x] += in[x] * wk;
    }
    for (int x = 0; x < size.width; ++x) o[x] = clip8(acc[x]);
  }
}

const cv::Mat& MaskFilter::upscale_classes(const cv::Mat& class_map, cv::Size frame_size) {
  require_frame_size(frame_size, "MaskFilter::upscale_classes");
  if (class_map.empty() || class_map.type() != CV_8UC1)
    throw Error("MaskFilter: the class map must be a non-empty CV_8UC1 Mat, got " +
                describe(class_map));
  // NEAREST_EXACT samples at pixel centres; plain INTER_NEAREST is shifted by half a pixel for
  // non-integer factors. Interpolating class ids would invent classes, so nearest it is.
  cv::resize(class_map, classes_, frame_size, 0, 0, cv::INTER_NEAREST_EXACT);
  return classes_;
}

namespace {

// Foreground statistics gathered a row at a time: the sum of alpha, and the box of alpha >= 128.
struct StatsAccumulator {
  std::uint64_t sum = 0;
  int left = 0, right = -1, top = -1, bottom = -1;
  explicit StatsAccumulator(int width) : left(width) {}

  void add(const std::uint8_t* row, int width, int y) {
    std::uint32_t row_sum = 0;  // at most 255 * width: fits up to 16 million pixels a row
    int x = 0;
    for (; x + 32 <= width; x += 32)
      for (int j = 0; j < 32; ++j) row_sum += row[x + j];
    for (; x < width; ++x) row_sum += row[x];
    sum += row_sum;
    // One scan per row from both ends, 32 bytes at a time (foreground: the top bit set): rows
    // without foreground cost one pass, others stop at the outermost foreground pixels. No
    // temporary mask, unlike threshold + boundingRect.
    int first = 0;
    while (first + 32 <= width && !any_foreground(row + first)) first += 32;
    while (first < width && row[first] < 128) ++first;
    if (first == width) return;
    int last = width - 1;
    while (last - 31 > first && !any_foreground(row + last - 31)) last -= 32;
    while (row[last] < 128) --last;
    left = std::min(left, first);
    right = std::max(right, last);
    if (top < 0) top = y;
    bottom = y;
  }

  static bool any_foreground(const std::uint8_t* bytes) {
    std::uint8_t any = 0;
    for (int j = 0; j < 32; ++j) any |= bytes[j];
    return any & 0x80;
  }

  MaskStats result(cv::Size size) const {
    MaskStats stats;
    // As cv::mean computes it (the exact sum times 1 / count), then / 255.
    stats.foreground_fraction =
        static_cast<double>(sum) * (1. / static_cast<double>(size.area())) / 255.0;
    if (top >= 0) stats.bounding_box = cv::Rect(left, top, right - left + 1, bottom - top + 1);
    return stats;
  }
};

}  // namespace

MaskStats MaskFilter::stats(const cv::Mat& alpha) {
  if (alpha.empty()) return MaskStats();
  if (alpha.type() != CV_8UC1)
    throw Error("MaskFilter::stats: alpha must be CV_8UC1, got " + describe(alpha));
  StatsAccumulator acc(alpha.cols);
  for (int y = 0; y < alpha.rows; ++y) acc.add(alpha.ptr<std::uint8_t>(y), alpha.cols, y);
  return acc.result(alpha.size());
}

MaskStats MaskFilter::stats(bool keep) {
  if (!in_rows_) return stats(alpha_);
  StatsAccumulator acc(frame_size_.width);
  if (keep) {
    alpha_.create(frame_size_, CV_8UC1);
    for (int y = 0; y < frame_size_.height; ++y) {
      std::uint8_t* out = alpha_.ptr<std::uint8_t>(y);
      if (dark_rows_[upscaler_.source_row(y, 0)] && dark_rows_[upscaler_.source_row(y, 1)]) {
        std::memset(out, 0, frame_size_.width);
      } else {
        upscaler_.row(y, out);
        threshold_row(out);
      }
      acc.add(out, frame_size_.width, y);
    }
    in_rows_ = false;
    return acc.result(frame_size_);
  }
  begin(1);
  for (int y = 0; y < frame_size_.height; ++y) acc.add(row(y, 0), frame_size_.width, y);
  return acc.result(frame_size_);
}

}  // namespace unetseg
