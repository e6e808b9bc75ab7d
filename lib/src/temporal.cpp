#include "unetseg/temporal.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "unetseg/error.hpp"

namespace unetseg {

namespace {

std::string describe(const cv::Mat& m) {
  return std::to_string(m.cols) + "x" + std::to_string(m.rows) + " " +
         cv::typeToString(m.type());
}

// Grows the non-zero pixels of `mask` (0/1) by `radius` pixels (a square) in place, through
// `scratch`: a horizontal then a vertical running maximum, nothing allocated at a stable size.
void grow(cv::Mat& mask, int radius, cv::Mat& scratch) {
  if (radius <= 0) return;
  scratch.create(mask.size(), CV_8UC1);
  const int w = mask.cols, h = mask.rows;
  for (int y = 0; y < h; ++y) {
    const std::uint8_t* in = mask.ptr<std::uint8_t>(y);
    std::uint8_t* out = scratch.ptr<std::uint8_t>(y);
    for (int x = 0; x < w; ++x) {
      std::uint8_t m = 0;
      for (int k = std::max(0, x - radius); k <= std::min(w - 1, x + radius); ++k) m |= in[k];
      out[x] = m;
    }
  }
  for (int y = 0; y < h; ++y) {
    std::uint8_t* out = mask.ptr<std::uint8_t>(y);
    std::fill(out, out + w, 0);
    for (int k = std::max(0, y - radius); k <= std::min(h - 1, y + radius); ++k) {
      const std::uint8_t* in = scratch.ptr<std::uint8_t>(k);
      for (int x = 0; x < w; ++x) out[x] |= in[x];
    }
  }
}

}  // namespace

void frame_thumbnail(const FrameView& frame, cv::Size size, cv::Mat& gray) {
  const int bpp = frame.bytes_per_pixel();
  if (!frame.data || frame.width <= 0 || frame.height <= 0)
    throw Error("frame_thumbnail: the frame is empty");
  if (frame.stride < static_cast<std::size_t>(frame.width) * bpp)
    throw Error("frame_thumbnail: stride " + std::to_string(frame.stride) +
                " is shorter than a row of " + std::to_string(frame.width) + " " +
                layout_name(frame.layout) + " pixels");
  if (size.width <= 0 || size.height <= 0)
    throw Error("frame_thumbnail: thumbnail size " + std::to_string(size.width) + "x" +
                std::to_string(size.height) + " is empty");
  gray.create(size, CV_8UC1);
  const ChannelOffsets off = channel_offsets(frame.layout);
  // Sample k (0 or 1) of cell i along an axis of n frame pixels cut into m cells sits at
  // floor((4i + 1 + 2k) n / 4m): a quarter and three quarters of the way through the cell.
  const auto sample = [](int i, int k, int n, int m) {
    return static_cast<int>((static_cast<std::int64_t>(4 * i + 1 + 2 * k) * n) / (4 * m));
  };
  // Along a row the same positions step by 4n / 4m: kept as quotient and remainder, so that no
  // division is left in the inner loop (it was most of the cost).
  struct Stepper {
    std::int64_t pos, rem, step_q, step_r, den;
    Stepper(int k, int n, int m)
        : pos(0), rem(0), step_q(n / m), step_r(4 * static_cast<std::int64_t>(n % m)),
          den(4 * static_cast<std::int64_t>(m)) {
      const std::int64_t num = static_cast<std::int64_t>(1 + 2 * k) * n;
      pos = num / den;
      rem = num % den;
    }
    void next() {
      pos += step_q;
      rem += step_r;
      if (rem >= den) {
        rem -= den;
        ++pos;
      }
    }
  };
  const std::size_t bpp_bytes = static_cast<std::size_t>(bpp);
  for (int j = 0; j < size.height; ++j) {
    const std::size_t y0 = sample(j, 0, frame.height, size.height);
    const std::size_t y1 = sample(j, 1, frame.height, size.height);
    const std::uint8_t* row0 = frame.data + y0 * frame.stride;
    const std::uint8_t* row1 = frame.data + y1 * frame.stride;
    std::uint8_t* out = gray.ptr<std::uint8_t>(j);
    Stepper s0(0, frame.width, size.width), s1(1, frame.width, size.width);
    for (int i = 0; i < size.width; ++i, s0.next(), s1.next()) {
      const std::size_t x0 = static_cast<std::size_t>(s0.pos) * bpp_bytes;
      const std::size_t x1 = static_cast<std::size_t>(s1.pos) * bpp_bytes;
      const std::uint8_t* p[4] = {row0 + x0, row0 + x1, row1 + x0, row1 + x1};
      int sum = 0;
      for (const std::uint8_t* q : p) sum += grey_level(q[off.r], q[off.g], q[off.b]);
      out[i] = static_cast<std::uint8_t>((sum + 2) >> 2);
    }
  }
}

double mean_abs_difference(const cv::Mat& a, const cv::Mat& b) {
  if (a.empty() || a.type() != CV_8UC1 || b.type() != CV_8UC1 || a.size() != b.size())
    throw Error("mean_abs_difference: needs two non-empty CV_8UC1 images of one size, got " +
                describe(a) + " and " + describe(b));
  std::uint64_t sum = 0;
  for (int y = 0; y < a.rows; ++y) {
    const std::uint8_t* p = a.ptr<std::uint8_t>(y);
    const std::uint8_t* q = b.ptr<std::uint8_t>(y);
    std::uint32_t row = 0;  // at most 255 * cols: no overflow below 16 million columns
    for (int x = 0; x < a.cols; ++x) row += static_cast<std::uint32_t>(std::abs(p[x] - q[x]));
    sum += row;
  }
  return static_cast<double>(sum) / (static_cast<double>(a.rows) * a.cols);
}

const cv::Mat& TemporalSmoother::apply(const cv::Mat& foreground, const cv::Mat& thumbnail,
                                       double factor, double reset_threshold) {
  if (foreground.empty() || foreground.type() != CV_32FC1)
    throw Error("TemporalSmoother: the foreground map must be a non-empty CV_32FC1 Mat, got " +
                describe(foreground));
  if (thumbnail.type() != CV_8UC1 || thumbnail.size() != foreground.size())
    throw Error("TemporalSmoother: the thumbnail must be CV_8UC1 at the map's size " +
                describe(foreground) + ", got " + describe(thumbnail));
  if (!(factor >= 0 && factor < 1))  // NaN fails too
    throw Error("TemporalSmoother: factor must be in [0, 1), got " + std::to_string(factor));
  if (!(reset_threshold >= 0))
    throw Error("TemporalSmoother: reset_threshold must be 0 or more grey levels, got " +
                std::to_string(reset_threshold));

  const bool continues = has_history_ && out_.size() == foreground.size();
  if (!continues || factor == 0) {
    foreground.copyTo(out_);
  } else {
    // Changed where |thumbnail - previous| > threshold; the threshold as a whole number of
    // levels (differences are whole), so that > keeps its meaning for fractional thresholds.
    const int limit = static_cast<int>(std::floor(std::min(reset_threshold, 255.0)));
    changed_.create(foreground.size(), CV_8UC1);
    for (int y = 0; y < foreground.rows; ++y) {
      const std::uint8_t* now = thumbnail.ptr<std::uint8_t>(y);
      const std::uint8_t* before = previous_thumb_.ptr<std::uint8_t>(y);
      std::uint8_t* c = changed_.ptr<std::uint8_t>(y);
      for (int x = 0; x < foreground.cols; ++x) c[x] = std::abs(now[x] - before[x]) > limit;
    }
    grow(changed_, kResetGrowth, scratch_);
    const float keep = static_cast<float>(factor), take = 1.f - keep;
    for (int y = 0; y < foreground.rows; ++y) {
      const float* in = foreground.ptr<float>(y);
      const std::uint8_t* c = changed_.ptr<std::uint8_t>(y);
      float* out = out_.ptr<float>(y);
      for (int x = 0; x < foreground.cols; ++x)
        out[x] = c[x] ? in[x] : keep * out[x] + take * in[x];
    }
  }
  thumbnail.copyTo(previous_thumb_);
  has_history_ = true;
  return out_;
}

void TemporalSmoother::reset() { has_history_ = false; }

}  // namespace unetseg
