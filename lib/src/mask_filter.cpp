#include "unetseg/mask_filter.hpp"

#include <algorithm>
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
    cv::resize(small_alpha_, alpha_, frame_size, 0, 0, cv::INTER_LINEAR);
  }
  if (!options.soft) {
    // THRESH_BINARY keeps alpha > thresh, so level - 1 keeps alpha >= level (level 0 -> all).
    cv::threshold(alpha_, alpha_, threshold_level(options.threshold) - 1, 255,
                  cv::THRESH_BINARY);
  }
  return alpha_;
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
