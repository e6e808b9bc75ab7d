#include "unetseg/bilinear_upscaler.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

namespace unetseg {

namespace {

constexpr int kCoefScale = 2048;  // OpenCV's INTER_RESIZE_COEF_SCALE (11 bits)

// cvFloor of a float, as OpenCV's coefficient loop takes it.
int floor_of(float v) {
  const int i = static_cast<int>(v);
  return i - (static_cast<float>(i) > v);
}

// saturate_cast<short>(float): rounded to nearest, ties to even (cvRound), then clamped.
std::int16_t coefficient(float v) {
  const long r = std::lrint(v);
  return static_cast<std::int16_t>(std::clamp<long>(r, -32768, 32767));
}

// One axis as OpenCV's resize builds it (hal::resize, the INTER_LINEAR branch): the source
// position in float from a double scale, the lower neighbour and the fraction; lo clamped
// like the columns when clamp_fraction (columns: the fraction becomes 0 at the borders),
// left as it is for rows (OpenCV clamps the row indices, not the fraction).
void axis(int in, int out, bool clamp_fraction, std::vector<int>& lo, std::vector<int>& hi,
          std::vector<std::int16_t>& weights) {
  const double scale = 1. / (static_cast<double>(out) / in);
  lo.resize(out);
  hi.resize(out);
  weights.resize(2 * static_cast<std::size_t>(out));
  for (int d = 0; d < out; ++d) {
    float f = static_cast<float>((d + 0.5) * scale - 0.5);
    int s = floor_of(f);
    f -= static_cast<float>(s);
    if (clamp_fraction) {
      if (s < 0) f = 0, s = 0;
      if (s >= in - 1) f = 0, s = in - 1;
    }
    lo[d] = std::clamp(s, 0, in - 1);
    hi[d] = std::clamp(s + 1, 0, in - 1);
    weights[2 * d] = coefficient((1.f - f) * kCoefScale);
    weights[2 * d + 1] = coefficient(f * kCoefScale);
  }
}

}  // namespace

void BilinearUpscaler::prepare(cv::Size from, cv::Size to) {
  if (from == from_ && to == to_) return;
  axis(from.width, to.width, true, x0_, x1_, ax_);
  axis(from.height, to.height, false, y0_, y1_, by_);
  from_ = from;
  to_ = to;
}

// OpenCV's HResizeLinear: integers, exact whatever the order; kept shifted right by 4, as its
// vertical pass takes them (at most 255 * 2048 / 16 = 32640: 16 bits).
void BilinearUpscaler::load(const cv::Mat& src, const std::uint8_t* skip) {
  horizontal_.create(from_.height, to_.width, CV_16SC1);
  const int* x0 = x0_.data();
  const int* x1 = x1_.data();
  const std::int16_t* a = ax_.data();
  for (int y = 0; y < from_.height; ++y) {
    if (skip && skip[y]) continue;
    const std::uint8_t* in = src.ptr<std::uint8_t>(y);
    std::int16_t* out = horizontal_.ptr<std::int16_t>(y);
    for (int x = 0; x < to_.width; ++x)
      out[x] = static_cast<std::int16_t>((in[x0[x]] * a[2 * x] + in[x1[x]] * a[2 * x + 1]) >> 4);
  }
}

// OpenCV's VResizeLinear for 8 bits (its vector and scalar code compute the same): each
// product of an 11-bit weight and a horizontal sum keeps its high 16 bits, then the two are
// added and rounded away the last 2 bits.
void BilinearUpscaler::row(int y, std::uint8_t* __restrict out) const {
  const std::int16_t b0 = by_[2 * y], b1 = by_[2 * y + 1];
  const std::int16_t* __restrict h0 = horizontal_.ptr<std::int16_t>(y0_[y]);
  const std::int16_t* __restrict h1 = horizontal_.ptr<std::int16_t>(y1_[y]);
  // The high halves of 16 x 16-bit products (one SIMD instruction each, as OpenCV's own).
  const auto mix = [&](int x) {
    const int hi0 = static_cast<std::int16_t>((b0 * h0[x]) >> 16);
    const int hi1 = static_cast<std::int16_t>((b1 * h1[x]) >> 16);
    return static_cast<std::uint8_t>((hi0 + hi1 + 2) >> 2);
  };
  // Blocks of a fixed size, so that the compiler vectorises them whatever its cost model.
  int x = 0;
  for (; x + 32 <= to_.width; x += 32)
    for (int j = 0; j < 32; ++j) out[x + j] = mix(x + j);
  for (; x < to_.width; ++x) out[x] = mix(x);
}

void BilinearUpscaler::resize(const cv::Mat& src, cv::Size size, cv::Mat& dst) {
  if (size.width < src.cols || size.height < src.rows) {
    cv::resize(src, dst, size, 0, 0, cv::INTER_LINEAR);
    return;
  }
  prepare(src.size(), size);
  load(src);
  dst.create(size, CV_8UC1);
  for (int y = 0; y < size.height; ++y) row(y, dst.ptr<std::uint8_t>(y));
}

}  // namespace unetseg
