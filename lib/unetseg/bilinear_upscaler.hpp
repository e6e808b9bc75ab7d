// OpenCV's 8-bit bilinear resize (cv::resize, INTER_LINEAR, CV_8UC1), one output row at a time,
// with its coefficient tables built once per pair of sizes.
#pragma once

#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

namespace unetseg {

// Gives exactly cv::resize(src, dst, size, 0, 0, INTER_LINEAR)'s bytes for CV_8UC1 (OpenCV 4.x
// without IPP, as Debian's and scripts/build-opencv.sh's are): the same float source positions,
// the same 11-bit coefficients, the same integer arithmetic, clamped at the borders the same
// way. Where the output is smaller than the source on an axis, OpenCV may take another path
// (exactly half: area averaging), so resize() falls back to cv::resize there (which allocates);
// row() is for output at least the source's size on both axes.
//
// cv::resize allocates its tables on every call; this builds them in prepare() (nothing
// allocated when the sizes are those of the last call). In OpenCV's order, the horizontal pass
// runs first, once per source row (load()), then each output row mixes two of those rows
// (row()), so that the rows can be asked for one at a time, by several threads at once, without
// the output ever being whole. Not thread-safe for prepare(), load() and resize(); row() only
// reads.
class BilinearUpscaler {
 public:
  // Tables for resizing `from` to `to` (both non-empty).
  void prepare(cv::Size from, cv::Size to);
  cv::Size from() const { return from_; }
  cv::Size to() const { return to_; }
  // Whether load() and row() serve these sizes (no axis shrinks).
  bool rows_supported() const { return to_.width >= from_.width && to_.height >= from_.height; }

  // The horizontal pass of every row of src (CV_8UC1 of from()), kept for row(): from().height
  // rows of to().width 16-bit values; with `skip` (one flag per source row), not of the rows
  // flagged, which row() must then not mix. Requires rows_supported(); allocates only when it
  // grows.
  void load(const cv::Mat& src, const std::uint8_t* skip = nullptr);
  // The two source rows output row y mixes (k = 0, 1).
  int source_row(int y, int k) const { return k == 0 ? y0_[y] : y1_[y]; }
  // Output row y (0 <= y < to().height) of the source last loaded, into out (to().width bytes).
  void row(int y, std::uint8_t* out) const;
  // The whole output, into dst (CV_8UC1, created at `size`): prepare(), load(), every row().
  void resize(const cv::Mat& src, cv::Size size, cv::Mat& dst);

 private:
  cv::Size from_, to_;
  std::vector<int> x0_, x1_;        // per output column: the two source columns
  std::vector<std::int16_t> ax_;    // and their weights (2 a column), out of 2048
  std::vector<int> y0_, y1_;        // per output row: the two source rows (clamped)
  std::vector<std::int16_t> by_;    // and their weights (2 a row), out of 2048, not clamped
  cv::Mat horizontal_;              // CV_16SC1, from().height x to().width: load()'s pass
};

}  // namespace unetseg
