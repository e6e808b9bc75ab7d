#include "unetseg/preprocess.hpp"

#include <algorithm>

#include <opencv2/imgproc.hpp>

namespace unetseg {

void preprocess(const FrameView& frame, const ModelSpec& spec, cv::Mat& resized, cv::Mat& blob) {
  const cv::Size model_size(spec.input_width, spec.input_height);
  const ChannelOffsets off = channel_offsets(frame.layout);

  // The one pass over the full frame: shrink it to the model's size in its own layout. Area
  // averaging when shrinking a lot keeps thin structures (fingers, hair) from aliasing away.
  const bool shrink_much = frame.width > 2 * model_size.width || frame.height > 2 * model_size.height;
  cv::resize(frame.mat(), resized, model_size, 0, 0, shrink_much ? cv::INTER_AREA : cv::INTER_LINEAR);

  // Source byte offset of each of the model's three input channels.
  const bool rgb = spec.color_order == ColorOrder::RGB;
  const int src[3] = {rgb ? off.r : off.b, off.g, rgb ? off.b : off.r};

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

  const int dims[4] = {1, 3, model_size.height, model_size.width};
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
