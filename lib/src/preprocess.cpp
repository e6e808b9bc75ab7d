#include "unetseg/preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <opencv2/imgproc.hpp>

namespace unetseg {

namespace {

// One axis of skimage.transform.resize(mode='constant', order=1, anti_aliasing when shrinking)
// as a sparse resampling matrix: output i = sum_k weight[i][k] * input[start[i] + k], k < count[i].
// It is the bilinear matrix (half-pixel centres, samples outside the input are 0: ndimage
// 'grid-constant') times the Gaussian prefilter matrix (scipy's kernel: radius int(4 sigma + 0.5),
// exp(-x^2 / (2 sigma^2)) normalised; zeros outside: ndimage 'constant'), computed in double.
// Returns the taps per output (the row length of `weights`).
int antialias_axis(int in, int out, int* start, int* count, float* weights, int taps) {
  const double s = static_cast<double>(in) / out;
  const double sigma = std::max(0.0, (s - 1) / 2);
  const int radius = sigma > 1e-15 ? static_cast<int>(4 * sigma + 0.5) : 0;
  double kernel[2 * 64 + 1];  // radius <= 64 is checked by the caller through `taps`
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
    double w[2 * 64 + 2] = {};
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
    start[i] = lo + skip;
    count[i] = std::max(0, hi - (lo + skip));
    for (int k = 0; k < count[i]; ++k) weights[i * taps + k] = static_cast<float>(w[skip + k]);
  }
  return taps;
}

int antialias_taps(int in, int out) {
  const double s = static_cast<double>(in) / out;
  const double sigma = std::max(0.0, (s - 1) / 2);
  const int radius = sigma > 1e-15 ? static_cast<int>(4 * sigma + 0.5) : 0;
  return 2 * radius + 2;
}

template <typename T>
T* carve(uint8_t*& p, size_t n) {
  T* r = reinterpret_cast<T*>(p);
  p += (n * sizeof(T) + 63) / 64 * 64;
  return r;
}

// The antialias resize straight into the blob's three planes (the model's channel order), in
// the 0..255 range; returns the maximum over all three channels. One output row at a time: the
// vertical pass accumulates one frame-wide float row (all bytes of the pixel, contiguous), the
// horizontal pass reads it. `scratch` holds that row and both axes' weights.
float antialias_resize(const FrameView& frame, cv::Size model, const int src[3], cv::Mat& scratch,
                       float* planes) {
  const int bpp = frame.bytes_per_pixel();
  const int tx = antialias_taps(frame.width, model.width);
  const int ty = antialias_taps(frame.height, model.height);
  if (tx > 2 * 64 + 2 || ty > 2 * 64 + 2)
    CV_Error(cv::Error::StsOutOfRange, "unetseg: antialias resize shrinks too much (> 64x)");
  const size_t row_len = static_cast<size_t>(frame.width) * bpp;
  auto pad = [](size_t bytes) { return (bytes + 63) / 64 * 64; };
  const size_t bytes = pad(row_len * sizeof(float)) + 2 * pad(model.width * sizeof(int)) +
                       2 * pad(model.height * sizeof(int)) +
                       pad(static_cast<size_t>(model.width) * tx * sizeof(float)) +
                       pad(static_cast<size_t>(model.height) * ty * sizeof(float)) + 64;
  if (scratch.type() != CV_8UC1 || scratch.total() < bytes) scratch.create(1, static_cast<int>(bytes), CV_8UC1);
  uint8_t* p = scratch.data + (64 - reinterpret_cast<uintptr_t>(scratch.data) % 64) % 64;
  float* acc = carve<float>(p, row_len);
  int* xs = carve<int>(p, model.width);
  int* xn = carve<int>(p, model.width);
  int* ys = carve<int>(p, model.height);
  int* yn = carve<int>(p, model.height);
  float* wx = carve<float>(p, static_cast<size_t>(model.width) * tx);
  float* wy = carve<float>(p, static_cast<size_t>(model.height) * ty);
  antialias_axis(frame.width, model.width, xs, xn, wx, tx);
  antialias_axis(frame.height, model.height, ys, yn, wy, ty);

  // skimage clips the result to the input's range (all three colour channels): with zeros
  // outside, border pixels of a frame with no black in it would otherwise go below its minimum.
  const ChannelOffsets off = channel_offsets(frame.layout);
  int lo = 255, hi = 0;
  for (int y = 0; y < frame.height; ++y) {
    const uint8_t* q = frame.data + static_cast<size_t>(y) * frame.stride;
    int rl = 255, rh = 0;
    for (int x = 0; x < frame.width; ++x, q += bpp) {
      rl = std::min({rl, int(q[off.r]), int(q[off.g]), int(q[off.b])});
      rh = std::max({rh, int(q[off.r]), int(q[off.g]), int(q[off.b])});
    }
    lo = std::min(lo, rl);
    hi = std::max(hi, rh);
  }
  const float vmin = static_cast<float>(lo), vmax = static_cast<float>(hi);

  const size_t plane = static_cast<size_t>(model.area());
  float max_value = 0;
  for (int i = 0; i < model.height; ++i) {
    std::fill(acc, acc + row_len, 0.f);
    for (int k = 0; k < yn[i]; ++k) {
      const float w = wy[i * ty + k];
      const uint8_t* in = frame.data + static_cast<size_t>(ys[i] + k) * frame.stride;
      for (size_t j = 0; j < row_len; ++j) acc[j] += w * in[j];
    }
    for (int c = 0; c < 3; ++c) {
      float* dst = planes + c * plane + static_cast<size_t>(i) * model.width;
      const float* a = acc + src[c];
      for (int j = 0; j < model.width; ++j) {
        const float* w = wx + j * tx;
        const float* q = a + static_cast<size_t>(xs[j]) * bpp;
        float v = 0;
        for (int k = 0; k < xn[j]; ++k) v += w[k] * q[k * bpp];
        v = std::min(std::max(v, vmin), vmax);
        dst[j] = v;
        max_value = std::max(max_value, v);
      }
    }
  }
  return max_value;
}

}  // namespace

void preprocess(const FrameView& frame, const ModelSpec& spec, cv::Mat& resized, cv::Mat& blob) {
  const cv::Size model_size(spec.input_width, spec.input_height);
  const ChannelOffsets off = channel_offsets(frame.layout);
  const bool rgb = spec.color_order == ColorOrder::RGB;
  const int src[3] = {rgb ? off.r : off.b, off.g, rgb ? off.b : off.r};
  const int dims[4] = {1, 3, model_size.height, model_size.width};

  if (spec.resize == ResizeMethod::Antialias) {
    // Float all the way: resample into the blob, then normalise it in place.
    blob.create(4, dims, CV_32F);
    float* planes = blob.ptr<float>();
    const float max_value = antialias_resize(frame, model_size, src, resized, planes);
    double scale = spec.scale;
    if (spec.normalize_by_max) scale = max_value > 0 ? 1.0 / max_value : 0.0;
    const size_t plane = static_cast<size_t>(model_size.area());
    for (int c = 0; c < 3; ++c) {
      const float gain = static_cast<float>(scale / spec.std[c]);
      const float bias = static_cast<float>(-spec.mean[c] / spec.std[c]);
      float* v = planes + c * plane;
      for (size_t i = 0; i < plane; ++i) v[i] = v[i] * gain + bias;
    }
    return;
  }

  // The one pass over the full frame: shrink it to the model's size in its own layout. Area
  // averaging when shrinking a lot keeps thin structures (fingers, hair) from aliasing away.
  const bool shrink_much = frame.width > 2 * model_size.width || frame.height > 2 * model_size.height;
  cv::resize(frame.mat(), resized, model_size, 0, 0, shrink_much ? cv::INTER_AREA : cv::INTER_LINEAR);

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

  blob.create(4, dims, CV_32F);
  const size_t plane = static_cast<size_t>(model_size.area());
  for (int c = 0; c < 3; ++c) {
    // (x * scale - mean) / std as one multiply-add per value.
    const float gain = static_cast<float>(scale / spec.std[c]);
    const float bias = static_cast<float>(-spec.mean[c] / spec.std[c]);
    float* dst = blob.ptr<float>() + c * plane;
    for (int y = 0; y < resized.rows; ++y) {
      const uint8_t* p = resized.ptr<uint8_t>(y) + src[c];
      for (int x = 0; x < resized.cols; ++x, p += off.bytes_per_pixel) *dst++ = *p * gain + bias;
    }
  }
}

}  // namespace unetseg
