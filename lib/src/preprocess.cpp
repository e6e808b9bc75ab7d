#include "unetseg/preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <opencv2/core/utility.hpp>
#include <opencv2/imgproc.hpp>

#include "unetseg/frame_threads.hpp"

namespace unetseg {

namespace {

// One axis of a separable resampling as a sparse matrix: output i = sum_k weights[i * taps + k] *
// input[start[i] + k], k < count[i]. Filled into caller-provided arrays of `out` entries (and
// `out * taps` weights).
struct Axis {
  int* start;
  int* count;
  float* weights;
  int taps;
};

// skimage.transform.resize(mode='constant', order=1, anti_aliasing when shrinking): the bilinear
// matrix (half-pixel centres, samples outside the input are 0: ndimage 'grid-constant') times the
// Gaussian prefilter matrix (scipy's kernel: radius int(4 sigma + 0.5), exp(-x^2 / (2 sigma^2))
// normalised; zeros outside: ndimage 'constant'), computed in double.
int antialias_radius(int in, int out) {
  const double s = static_cast<double>(in) / out;
  const double sigma = std::max(0.0, (s - 1) / 2);
  return sigma > 1e-15 ? static_cast<int>(4 * sigma + 0.5) : 0;
}
int antialias_taps(int in, int out) { return 2 * antialias_radius(in, out) + 2; }

// Doubles of scratch antialias_axis needs: the kernel and one output's taps.
size_t antialias_scratch(int in, int out) { return 4 * antialias_radius(in, out) + 3; }

void antialias_axis(int in, int out, const Axis& axis, double* scratch) {
  const double s = static_cast<double>(in) / out;
  const double sigma = std::max(0.0, (s - 1) / 2);
  const int radius = antialias_radius(in, out);
  double* kernel = scratch;              // 2 radius + 1
  double* w = scratch + 2 * radius + 1;  // 2 radius + 2
  double sum = 0;
  for (int t = -radius; t <= radius; ++t) {
    kernel[t + radius] = radius == 0 ? 1.0 : std::exp(-0.5 * t * t / (sigma * sigma));
    sum += kernel[t + radius];
  }
  for (int t = 0; t <= 2 * radius; ++t) kernel[t] /= sum;
  for (int i = 0; i < out; ++i) {
    const double x = (i + 0.5) * s - 0.5;
    const int x0 = static_cast<int>(std::floor(x));
    const double f = x - x0;
    std::fill(w, w + 2 * radius + 2, 0.0);
    // Bilinear taps x0 (1 - f) and x0 + 1 (f), each blurred; every index outside [0, in) is 0.
    for (int b = 0; b < 2; ++b) {
      const int j = x0 + b;
      if (j < 0 || j >= in) continue;
      const double wb = b == 0 ? 1 - f : f;
      for (int t = -radius; t <= radius; ++t) w[j + t - (x0 - radius)] += wb * kernel[t + radius];
    }
    int lo = x0 - radius, n = 2 * radius + 2, skip = 0;
    if (lo < 0) skip = -lo;
    const int hi = std::min(lo + n, in);
    axis.start[i] = lo + skip;
    axis.count[i] = std::max(0, hi - (lo + skip));
    for (int k = 0; k < axis.count[i]; ++k)
      axis.weights[i * axis.taps + k] = static_cast<float>(w[skip + k]);
  }
}

// Area averaging (OpenCV's INTER_AREA when shrinking): output i is the mean of the input over
// [i * s, (i + 1) * s), s = in / out, partial pixels weighted by their overlap.
int area_taps(int in, int out) { return static_cast<int>(std::ceil(static_cast<double>(in) / out)) + 1; }

void area_axis(int in, int out, const Axis& axis) {
  const double s = static_cast<double>(in) / out;
  for (int i = 0; i < out; ++i) {
    const double lo = i * s, hi = std::min((i + 1) * s, static_cast<double>(in));
    const int first = static_cast<int>(std::floor(lo));
    const int last = std::min(in, static_cast<int>(std::ceil(hi)));  // exclusive
    axis.start[i] = first;
    axis.count[i] = last - first;
    for (int j = first; j < last; ++j) {
      const double overlap = std::min<double>(j + 1, hi) - std::max<double>(j, lo);
      axis.weights[i * axis.taps + (j - first)] = static_cast<float>(overlap / s);
    }
  }
}

template <typename T>
T* carve(uint8_t*& p, size_t n) {
  T* r = reinterpret_cast<T*>(p);
  p += (n * sizeof(T) + 63) / 64 * 64;
  return r;
}

// A lambda as a cv::ParallelLoopBody, by reference: nothing to allocate.
template <typename Body>
class LoopBody : public cv::ParallelLoopBody {
 public:
  explicit LoopBody(const Body& body) : body_(body) {}
  void operator()(const cv::Range& range) const override { body_(range); }

 private:
  const Body& body_;
};

enum class Kernel { Area, Antialias };

// Rows an area output row may sum in 16 bits (255 each).
constexpr int kMaxIntegerRows = 257;

// One output row's vertical area sums: first * w[0] + (the rows between, summed exactly) * w[1]
// + last * w[count - 1]. Float rounding differs from tap-by-tap sums by a few ulp of 255.
template <typename Row>
void vertical_area(const Row& row, int count, const float* w, uint16_t* __restrict mid,
                   float* __restrict acc, size_t n) {
  const uint8_t* __restrict in = row(1);
  for (size_t j = 0; j < n; ++j) mid[j] = in[j];
  for (int k = 2; k < count - 1; ++k) {
    in = row(k);
    for (size_t j = 0; j < n; ++j) mid[j] = static_cast<uint16_t>(mid[j] + in[j]);
  }
  const uint8_t* __restrict first = row(0);
  const uint8_t* __restrict last = row(count - 1);
  const float w0 = w[0], wm = w[1], wl = w[count - 1];
  for (size_t j = 0; j < n; ++j)
    acc[j] = w0 * static_cast<float>(first[j]) + wm * static_cast<float>(mid[j]) +
             wl * static_cast<float>(last[j]);
}

// Horizontal pass of one output row: all `Bpp` bytes of a pixel at once (the compiler turns
// that into one vector operation per tap), then the three colour channels into the planes.
template <int Bpp>
float horizontal(const float* acc, const Axis& x, int width, const int src[3], float vmin,
                 float vmax, float* const dst[3]) {
  float max_value = 0;
  for (int j = 0; j < width; ++j) {
    const float* w = x.weights + j * x.taps;
    const float* q = acc + static_cast<size_t>(x.start[j]) * Bpp;
    float v[Bpp] = {};
    for (int k = 0; k < x.count[j]; ++k, q += Bpp)
      for (int c = 0; c < Bpp; ++c) v[c] += w[k] * q[c];
    for (int c = 0; c < 3; ++c) {
      const float value = std::min(std::max(v[src[c]], vmin), vmax);
      dst[c][j] = value;
      max_value = std::max(max_value, value);
    }
  }
  return max_value;
}

// Resamples the frame straight into the blob's three planes (the model's channel order), in the
// 0..255 range, and returns the maximum over the three channels. Separable: for each output row
// the vertical pass accumulates one frame-wide float row (all bytes of the pixel, contiguous),
// the horizontal pass reads it. Output rows are split over OpenCV's threads, each with its own
// row; `scratch` holds those rows and both axes' tables, so nothing is allocated once the sizes
// are stable. Antialias (skimage) also clips to the input's colour range as skimage does.
float resample(const FrameView& frame, cv::Size model, const int src[3], Kernel kernel,
               cv::Mat& scratch, float* planes) {
  const int bpp = frame.bytes_per_pixel();
  const bool area = kernel == Kernel::Area;
  const int tx = area ? area_taps(frame.width, model.width) : antialias_taps(frame.width, model.width);
  const int ty = area ? area_taps(frame.height, model.height) : antialias_taps(frame.height, model.height);
  // However much it shrinks (a tiny model input against a big frame): the Gaussian's kernel
  // and taps live in the scratch too.
  const size_t aa = area ? 0 : std::max(antialias_scratch(frame.width, model.width),
                                        antialias_scratch(frame.height, model.height));
  const int stripes = std::max(1, std::min(frame_threads(), model.height));
  const size_t row_len = static_cast<size_t>(frame.width) * bpp;
  auto pad = [](size_t bytes) { return (bytes + 63) / 64 * 64; };
  const size_t bytes = stripes * pad(row_len * sizeof(float)) + pad(stripes * sizeof(float)) +
                       stripes * pad(row_len * sizeof(uint16_t)) +
                       2 * pad(model.width * sizeof(int)) + 2 * pad(model.height * sizeof(int)) +
                       pad(static_cast<size_t>(model.width) * tx * sizeof(float)) +
                       pad(static_cast<size_t>(model.height) * ty * sizeof(float)) +
                       pad(aa * sizeof(double)) + 64;
  if (scratch.type() != CV_8UC1 || scratch.total() < bytes)
    scratch.create(1, static_cast<int>(bytes), CV_8UC1);
  uint8_t* p = scratch.data + (64 - reinterpret_cast<uintptr_t>(scratch.data) % 64) % 64;
  float* rows = carve<float>(p, stripes * (pad(row_len * sizeof(float)) / sizeof(float)));
  const size_t row_floats = pad(row_len * sizeof(float)) / sizeof(float);
  float* stripe_max = carve<float>(p, stripes);
  const size_t row_shorts = pad(row_len * sizeof(uint16_t)) / sizeof(uint16_t);
  uint16_t* mids = carve<uint16_t>(p, stripes * row_shorts);
  Axis x{carve<int>(p, model.width), carve<int>(p, model.width), nullptr, tx};
  Axis y{carve<int>(p, model.height), carve<int>(p, model.height), nullptr, ty};
  x.weights = carve<float>(p, static_cast<size_t>(model.width) * tx);
  y.weights = carve<float>(p, static_cast<size_t>(model.height) * ty);
  if (area) {
    area_axis(frame.width, model.width, x);
    area_axis(frame.height, model.height, y);
  } else {
    double* kernel_scratch = carve<double>(p, aa);
    antialias_axis(frame.width, model.width, x, kernel_scratch);
    antialias_axis(frame.height, model.height, y, kernel_scratch);
  }

  // skimage clips the result to the input's range (all three colour channels): with zeros
  // outside, border pixels of a frame with no black in it would otherwise go below its minimum.
  // Area weights are a convex combination, so there is nothing to clip.
  float vmin = 0, vmax = 255;
  if (!area) {
    const ChannelOffsets off = channel_offsets(frame.layout);
    int lo = 255, hi = 0;
    for (int r = 0; r < frame.height; ++r) {
      const uint8_t* q = frame.data + static_cast<size_t>(r) * frame.stride;
      int rl = 255, rh = 0;
      for (int c = 0; c < frame.width; ++c, q += bpp) {
        rl = std::min({rl, int(q[off.r]), int(q[off.g]), int(q[off.b])});
        rh = std::max({rh, int(q[off.r]), int(q[off.g]), int(q[off.b])});
      }
      lo = std::min(lo, rl);
      hi = std::max(hi, rh);
    }
    vmin = static_cast<float>(lo);
    vmax = static_cast<float>(hi);
  }

  const size_t plane = static_cast<size_t>(model.area());
  const auto body = [&](const cv::Range& range) {
    for (int s = range.start; s < range.end; ++s) {
      float* acc = rows + s * row_floats;
      uint16_t* mid = mids + s * row_shorts;
      float max_value = 0;
      for (int i = model.height * s / stripes; i < model.height * (s + 1) / stripes; ++i) {
        const int count = y.count[i];
        const auto row = [&](int k) {
          return frame.data + static_cast<size_t>(y.start[i] + k) * frame.stride;
        };
        if (area && count > 2 && count <= kMaxIntegerRows + 2) {
          // Area: every row but the first and last weighs exactly 1 / s, so those are summed
          // as integers (8 bytes a lane), then one float pass weighs the three.
          vertical_area(row, count, y.weights + i * ty, mid, acc, row_len);
        } else {
          std::fill(acc, acc + row_len, 0.f);
          for (int k = 0; k < count; ++k) {
            const float w = y.weights[i * ty + k];
            const uint8_t* in = row(k);
            for (size_t j = 0; j < row_len; ++j) acc[j] += w * in[j];
          }
        }
        float* const dst[3] = {planes + static_cast<size_t>(i) * model.width,
                               planes + plane + static_cast<size_t>(i) * model.width,
                               planes + 2 * plane + static_cast<size_t>(i) * model.width};
        max_value = std::max(max_value, bpp == 4 ? horizontal<4>(acc, x, model.width, src, vmin, vmax, dst)
                                                 : horizontal<3>(acc, x, model.width, src, vmin, vmax, dst));
      }
      stripe_max[s] = max_value;
    }
  };
  // One stripe runs here: cv::parallel_for_ allocates its bookkeeping even for one. More go
  // through a ParallelLoopBody of our own: the std::function overload allocates the lambda.
  if (stripes == 1)
    body(cv::Range(0, 1));
  else
    cv::parallel_for_(cv::Range(0, stripes), LoopBody<decltype(body)>(body), stripes);
  return *std::max_element(stripe_max, stripe_max + stripes);
}

// (x * scale - mean) / std in place over the blob's planes, one multiply-add per value.
void normalise(float* planes, size_t plane, const ModelSpec& spec, double scale) {
  for (int c = 0; c < 3; ++c) {
    const float gain = static_cast<float>(scale / spec.std[c]);
    const float bias = static_cast<float>(-spec.mean[c] / spec.std[c]);
    float* v = planes + c * plane;
    for (size_t i = 0; i < plane; ++i) v[i] = v[i] * gain + bias;
  }
}

}  // namespace

void preprocess(const FrameView& frame, const ModelSpec& spec, cv::Mat& resized, cv::Mat& blob) {
  const cv::Size model_size(spec.input_width, spec.input_height);
  const ChannelOffsets off = channel_offsets(frame.layout);
  const bool rgb = spec.color_order == ColorOrder::RGB;
  const int src[3] = {rgb ? off.r : off.b, off.g, rgb ? off.b : off.r};
  const int dims[4] = {1, 3, model_size.height, model_size.width};
  blob.create(4, dims, CV_32F);
  float* planes = blob.ptr<float>();
  const size_t plane = static_cast<size_t>(model_size.area());

  // The one pass over the full frame. Area averaging when shrinking a lot keeps thin structures
  // (fingers, hair) from aliasing away; it resamples in float straight into the blob (OpenCV's
  // INTER_AREA, for the same result, takes about 5x as long at 1080p: unetseg-bench shows it).
  const bool shrink_much = frame.width > 2 * model_size.width || frame.height > 2 * model_size.height;
  if (spec.resize == ResizeMethod::Antialias || shrink_much) {
    const Kernel kernel = spec.resize == ResizeMethod::Antialias ? Kernel::Antialias : Kernel::Area;
    const float max_value = resample(frame, model_size, src, kernel, resized, planes);
    double scale = spec.scale;
    if (spec.normalize_by_max) scale = max_value > 0 ? 1.0 / max_value : 0.0;
    normalise(planes, plane, spec, scale);
    return;
  }

  // Little or no shrinking: bilinear in the frame's own layout, then into the planes.
  cv::resize(frame.mat(), resized, model_size, 0, 0, cv::INTER_LINEAR);
  double scale = spec.scale;
  if (spec.normalize_by_max) {
    int max_value = 0;
    for (int y = 0; y < resized.rows; ++y) {
      const uint8_t* p = resized.ptr<uint8_t>(y);
      for (int x = 0; x < resized.cols; ++x, p += off.bytes_per_pixel)
        max_value = std::max({max_value, int(p[off.r]), int(p[off.g]), int(p[off.b])});
    }
    // An all-black frame stays black instead of becoming NaN.
    scale = max_value > 0 ? 1.0 / max_value : 0.0;
  }
  for (int c = 0; c < 3; ++c) {
    float* dst = planes + c * plane;
    for (int y = 0; y < resized.rows; ++y) {
      const uint8_t* p = resized.ptr<uint8_t>(y) + src[c];
      for (int x = 0; x < resized.cols; ++x, p += off.bytes_per_pixel) *dst++ = *p;
    }
  }
  normalise(planes, plane, spec, scale);
}

}  // namespace unetseg
