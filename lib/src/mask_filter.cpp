#include "unetseg/mask_filter.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include <opencv2/imgproc.hpp>

#include "unetseg/error.hpp"

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

}  // namespace

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
  // Quantise at model size (small) and interpolate in 8 bits: a quarter of the memory traffic of
  // upscaling floats, and OpenCV's 8-bit bilinear resize is its fastest path.
  if (foreground.size() == frame_size) {
    to_alpha8(foreground, alpha_);
  } else {
    to_alpha8(foreground, small_alpha_);
    if (options.scaling == MaskScaling::Pil) {
      // PIL's Image.resize BILINEAR, as the official U2-Net code saves its masks: bilinear with
      // half-pixel centres when a side grows (8-bit between the passes), a triangle filter
      // widened by the factor when it shrinks (bilinear alone would skip pixels).
      resample(small_alpha_, frame_size);
    } else {
      cv::resize(small_alpha_, alpha_, frame_size, 0, 0, cv::INTER_LINEAR);
    }
  }
  if (!options.soft) {
    // THRESH_BINARY keeps alpha > thresh, so level - 1 keeps alpha >= level (level 0 -> all).
    cv::threshold(alpha_, alpha_, threshold_level(options.threshold) - 1, 255,
                  cv::THRESH_BINARY);
  }
  return alpha_;
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

MaskStats MaskFilter::stats(const cv::Mat& alpha) {
  MaskStats result;
  if (alpha.empty()) return result;
  if (alpha.type() != CV_8UC1)
    throw Error("MaskFilter::stats: alpha must be CV_8UC1, got " + describe(alpha));
  result.foreground_fraction = cv::mean(alpha)[0] / 255.0;

  // One scan per row from both ends: rows without foreground cost one pass, others stop at the
  // outermost foreground pixels. No temporary mask, unlike threshold + boundingRect.
  const auto is_foreground = [](std::uint8_t a) { return a >= 128; };
  int left = alpha.cols, right = -1, top = -1, bottom = -1;
  for (int y = 0; y < alpha.rows; ++y) {
    const std::uint8_t* row = alpha.ptr<std::uint8_t>(y);
    const std::uint8_t* end = row + alpha.cols;
    const std::uint8_t* first = std::find_if(row, end, is_foreground);
    if (first == end) continue;
    const std::uint8_t* last =
        std::find_if(std::make_reverse_iterator(end), std::make_reverse_iterator(first),
                     is_foreground).base() - 1;
    left = std::min(left, static_cast<int>(first - row));
    right = std::max(right, static_cast<int>(last - row));
    if (top < 0) top = y;
    bottom = y;
  }
  if (top >= 0) result.bounding_box = cv::Rect(left, top, right - left + 1, bottom - top + 1);
  return result;
}

}  // namespace unetseg
