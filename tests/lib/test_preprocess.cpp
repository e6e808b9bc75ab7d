#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "unetseg/preprocess.hpp"

using namespace unetseg;

namespace {

ModelSpec spec_of(int w, int h) {
  ModelSpec spec;
  spec.input_width = w;
  spec.input_height = h;
  return spec;
}

float blob_at(const cv::Mat& blob, int c, int y, int x) {
  const int h = blob.size[2], w = blob.size[3];
  return blob.ptr<float>()[(c * h + y) * w + x];
}

// A frame of `layout` whose pixel (x, y) has R = 10x + y + 1, G = 2 * R, B = 255 - R, alpha or
// padding 77, with `pad` spare bytes at the end of each row.
std::vector<uint8_t> make_frame(PixelLayout layout, int w, int h, int pad, FrameView* view) {
  const ChannelOffsets off = channel_offsets(layout);
  const size_t stride = static_cast<size_t>(w) * off.bytes_per_pixel + pad;
  std::vector<uint8_t> data(stride * h, 0xEE);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &data[y * stride + x * off.bytes_per_pixel];
      for (int i = 0; i < off.bytes_per_pixel; ++i) p[i] = 77;
      const int r = 10 * x + y + 1;
      p[off.r] = r;
      p[off.g] = 2 * r;
      p[off.b] = 255 - r;
    }
  }
  *view = FrameView{data.data(), w, h, stride, layout};
  return data;
}

}  // namespace

TEST(Preprocess, HandComputedBlobForEveryLayout) {
  ModelSpec spec = spec_of(4, 3);  // same size as the frame: no resampling
  spec.scale = 0.5;
  spec.mean = cv::Scalar(1, 2, 3);
  spec.std = cv::Scalar(2, 4, 8);
  for (int i = 0; i <= static_cast<int>(PixelLayout::ABGR); ++i) {
    const auto layout = static_cast<PixelLayout>(i);
    FrameView view;
    auto data = make_frame(layout, 4, 3, 5, &view);
    cv::Mat resized, blob;
    preprocess(view, spec, resized, blob);
    ASSERT_EQ(blob.dims, 4);
    EXPECT_EQ(blob.size[0], 1);
    EXPECT_EQ(blob.size[1], 3);
    EXPECT_EQ(blob.size[2], 3);
    EXPECT_EQ(blob.size[3], 4);
    for (int y = 0; y < 3; ++y) {
      for (int x = 0; x < 4; ++x) {
        const double r = 10 * x + y + 1, g = 2 * r, b = 255 - r;
        EXPECT_NEAR(blob_at(blob, 0, y, x), (r * 0.5 - 1) / 2, 1e-5) << layout_name(layout);
        EXPECT_NEAR(blob_at(blob, 1, y, x), (g * 0.5 - 2) / 4, 1e-5) << layout_name(layout);
        EXPECT_NEAR(blob_at(blob, 2, y, x), (b * 0.5 - 3) / 8, 1e-5) << layout_name(layout);
      }
    }
  }
}

TEST(Preprocess, BgrModelsGetBlueFirst) {
  ModelSpec spec = spec_of(4, 3);
  spec.color_order = ColorOrder::BGR;
  FrameView view;
  auto data = make_frame(PixelLayout::RGBx, 4, 3, 0, &view);
  cv::Mat resized, blob;
  preprocess(view, spec, resized, blob);
  const double r = 10 * 2 + 1 + 1;  // pixel (2, 1)
  EXPECT_NEAR(blob_at(blob, 0, 1, 2), (255 - r) / 255.0, 1e-6);
  EXPECT_NEAR(blob_at(blob, 1, 1, 2), 2 * r / 255.0, 1e-6);
  EXPECT_NEAR(blob_at(blob, 2, 1, 2), r / 255.0, 1e-6);
}

TEST(Preprocess, NormaliseByTheImageMaximumLikeOfficialU2Net) {
  ModelSpec spec = spec_of(4, 3);
  spec.normalize_by_max = true;
  spec.mean = cv::Scalar(0.485, 0.456, 0.406);
  spec.std = cv::Scalar(0.229, 0.224, 0.225);
  FrameView view;
  auto data = make_frame(PixelLayout::ARGB, 4, 3, 0, &view);
  cv::Mat resized, blob;
  preprocess(view, spec, resized, blob);
  // Maximum over all colour channels (alpha's 77 excluded): B = 255 - 1 = 254 at (0, 0).
  const double max_value = 254;
  const double r = 10 * 3 + 2 + 1;  // pixel (3, 2)
  EXPECT_NEAR(blob_at(blob, 0, 2, 3), (r / max_value - 0.485) / 0.229, 1e-5);
  EXPECT_NEAR(blob_at(blob, 1, 2, 3), (2 * r / max_value - 0.456) / 0.224, 1e-5);
  EXPECT_NEAR(blob_at(blob, 2, 2, 3), ((255 - r) / max_value - 0.406) / 0.225, 1e-5);
}

TEST(Preprocess, BlackFrameWithMaxNormalisationStaysFinite) {
  ModelSpec spec = spec_of(2, 2);
  spec.normalize_by_max = true;
  std::vector<uint8_t> black(2 * 2 * 3, 0);
  FrameView view{black.data(), 2, 2, 6, PixelLayout::RGB};
  cv::Mat resized, blob;
  preprocess(view, spec, resized, blob);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(blob.ptr<float>()[i], 0.f);
}

TEST(Preprocess, StretchesToTheModelSize) {
  // A 64x32 frame, left half (R=200) and right half (R=100), to a 4x2 model: bilinear/area
  // sampling of flat halves gives the flat values exactly.
  ModelSpec spec = spec_of(4, 2);
  std::vector<uint8_t> data(64 * 32 * 3);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 64; ++x) {
      uint8_t* p = &data[(y * 64 + x) * 3];
      p[0] = x < 32 ? 200 : 100;
      p[1] = 50;
      p[2] = 0;
    }
  FrameView view{data.data(), 64, 32, 64 * 3, PixelLayout::RGB};
  cv::Mat resized, blob;
  preprocess(view, spec, resized, blob);
  EXPECT_EQ(blob.size[2], 2);
  EXPECT_EQ(blob.size[3], 4);
  for (int y = 0; y < 2; ++y) {
    EXPECT_NEAR(blob_at(blob, 0, y, 0), 200 / 255.0, 1e-6);
    EXPECT_NEAR(blob_at(blob, 0, y, 1), 200 / 255.0, 1e-6);
    EXPECT_NEAR(blob_at(blob, 0, y, 2), 100 / 255.0, 1e-6);
    EXPECT_NEAR(blob_at(blob, 0, y, 3), 100 / 255.0, 1e-6);
    EXPECT_NEAR(blob_at(blob, 1, y, 1), 50 / 255.0, 1e-6);
  }
}

namespace {

// Repeated preprocessing of same-size frames keeps writing into the same two buffers.
void expect_buffers_reused(const ModelSpec& spec, PixelLayout layout, int width) {
  FrameView view;
  auto data = make_frame(layout, width, 10, 3, &view);
  cv::Mat resized, blob;
  preprocess(view, spec, resized, blob);
  const void* blob_data = blob.data;
  const void* resized_data = resized.data;
  for (int i = 0; i < 3; ++i) preprocess(view, spec, resized, blob);
  EXPECT_EQ(blob.data, blob_data);
  EXPECT_EQ(resized.data, resized_data);
}

}  // namespace

TEST(Preprocess, ReusesItsBuffersOnceSizesAreStable) {
  expect_buffers_reused(spec_of(16, 16), PixelLayout::BGRA, 20);
}

namespace {

// skimage.transform.resize(mode='constant') written out plainly in double: per axis, the
// Gaussian prefilter (sigma (in/out - 1) / 2 when shrinking, radius int(4 sigma + 0.5), zeros
// outside), bilinear at x = (i + 0.5) * in/out - 0.5 (zeros outside), clipped to the input range.
std::vector<double> skimage_axis(const std::vector<double>& v, int out) {
  const int in = static_cast<int>(v.size());
  const double s = static_cast<double>(in) / out, sigma = std::max(0.0, (s - 1) / 2);
  std::vector<double> blurred = v;
  if (sigma > 1e-15) {
    const int r = static_cast<int>(4 * sigma + 0.5);
    std::vector<double> k(2 * r + 1);
    double sum = 0;
    for (int t = -r; t <= r; ++t) sum += k[t + r] = std::exp(-0.5 * t * t / (sigma * sigma));
    for (int i = 0; i < in; ++i) {
      double acc = 0;
      for (int t = std::max(-r, -i); t <= r && i + t < in; ++t) acc += k[t + r] / sum * v[i + t];
      blurred[i] = acc;
    }
  }
  auto at = [&](int i) { return i >= 0 && i < in ? blurred[i] : 0.0; };
  std::vector<double> res(out);
  for (int i = 0; i < out; ++i) {
    const double x = (i + 0.5) * s - 0.5;
    const int x0 = static_cast<int>(std::floor(x));
    res[i] = (1 - (x - x0)) * at(x0) + (x - x0) * at(x0 + 1);
  }
  return res;
}

ModelSpec antialias_spec(int w, int h) {
  ModelSpec spec = spec_of(w, h);
  spec.resize = ResizeMethod::Antialias;
  spec.scale = 1.0;  // the blob holds the resized values themselves
  return spec;
}

}  // namespace

TEST(PreprocessAntialias, HandComputedShrinkFourToTwo) {
  // 4x4 -> 2x2: sigma 0.5, radius 2, weights exp(-2 t^2) / S, S = 1 + 2e^-2 + 2e^-8; output 0
  // samples x = 0.5, half of blurred[0] (three taps inside) and half of blurred[1] (four).
  std::vector<uint8_t> data(4 * 4 * 3);
  for (size_t i = 0; i < data.size(); i += 3) data[i] = 200;  // R 200, G = B = 0 (min 0)
  FrameView view{data.data(), 4, 4, 12, PixelLayout::RGB};
  cv::Mat resized, blob;
  preprocess(view, antialias_spec(2, 2), resized, blob);
  const double e2 = std::exp(-2.0), e8 = std::exp(-8.0), S = 1 + 2 * e2 + 2 * e8;
  const double a = (2 + 3 * e2 + 2 * e8) / (2 * S);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 2; ++x) {
      EXPECT_NEAR(blob_at(blob, 0, y, x), 200 * a * a, 1e-4);  // 179.1765 (skimage)
      EXPECT_EQ(blob_at(blob, 1, y, x), 0.f);
    }
}

TEST(PreprocessAntialias, UpscaleBlendsTheBorderWithZeros) {
  // 2x2 -> 4x4, no prefilter: x = -0.25 for the first output, 0.75 of pixel 0 and 0.25 of the
  // zero outside. skimage: corners 112.5, edges 150, inside 200.
  std::vector<uint8_t> data(2 * 2 * 3);
  for (size_t i = 0; i < data.size(); i += 3) data[i] = 200;
  FrameView view{data.data(), 2, 2, 6, PixelLayout::RGB};
  cv::Mat resized, blob;
  preprocess(view, antialias_spec(4, 4), resized, blob);
  const float expected[4][4] = {{112.5f, 150, 150, 112.5f}, {150, 200, 200, 150},
                                {150, 200, 200, 150}, {112.5f, 150, 150, 112.5f}};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) EXPECT_NEAR(blob_at(blob, 0, y, x), expected[y][x], 1e-4);
}

TEST(PreprocessAntialias, ClipsToTheInputRangeLikeSkimage) {
  // No black in the frame: the darkened border is clipped back to the frame's minimum (100).
  std::vector<uint8_t> data(2 * 2 * 3, 100);
  data[0] = 200;  // R of (0, 0)
  FrameView view{data.data(), 2, 2, 6, PixelLayout::RGB};
  cv::Mat resized, blob;
  preprocess(view, antialias_spec(4, 4), resized, blob);
  const float expected[4][4] = {{112.5f, 131.25f, 100, 100}, {131.25f, 156.25f, 118.75f, 100},
                                {100, 118.75f, 106.25f, 100}, {100, 100, 100, 100}};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) EXPECT_NEAR(blob_at(blob, 0, y, x), expected[y][x], 1e-4);
}

TEST(PreprocessAntialias, MatchesThePlainFormulaForEveryLayoutAndNormalises) {
  // A 37x23 frame to 11x29 (shrink 3.4x across, grow down), and 9x5 to 9x5 (identity).
  for (int i = 0; i <= static_cast<int>(PixelLayout::ABGR); ++i) {
    const auto layout = static_cast<PixelLayout>(i);
    for (const cv::Size& sizes : {cv::Size(11, 29), cv::Size(37, 23)}) {
      FrameView view;
      auto data = make_frame(layout, 37, 23, 3, &view);
      ModelSpec spec = antialias_spec(sizes.width, sizes.height);
      spec.normalize_by_max = true;
      spec.mean = cv::Scalar(0.485, 0.456, 0.406);
      spec.std = cv::Scalar(0.229, 0.224, 0.225);
      cv::Mat resized, blob;
      preprocess(view, spec, resized, blob);
      // The reference: separable, rows then columns, per channel; min 1 (R) .. max 254 (B).
      std::vector<std::vector<double>> planes(3);
      double max_value = 0;
      for (int c = 0; c < 3; ++c) {
        std::vector<std::vector<double>> cols(37);
        for (int x = 0; x < 37; ++x) {
          std::vector<double> col(23);
          for (int y = 0; y < 23; ++y) {
            const double r = 10 * x + y + 1;
            col[y] = c == 0 ? r : c == 1 ? 2 * r : 255 - r;
            col[y] = static_cast<uint8_t>(static_cast<int>(col[y]));  // as stored
          }
          cols[x] = skimage_axis(col, sizes.height);
        }
        for (int y = 0; y < sizes.height; ++y) {
          std::vector<double> row(37);
          for (int x = 0; x < 37; ++x) row[x] = cols[x][y];
          for (double v : skimage_axis(row, sizes.width)) {
            v = std::min(std::max(v, 0.0), 255.0);
            planes[c].push_back(v);
            max_value = std::max(max_value, v);
          }
        }
      }
      int lo = 255;
      for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 23; ++y)
          for (int x = 0; x < 37; ++x) {
            const uint8_t* p = &data[y * view.stride + x * view.bytes_per_pixel()];
            const ChannelOffsets off = channel_offsets(layout);
            lo = std::min({lo, int(p[off.r]), int(p[off.g]), int(p[off.b])});
          }
      for (int c = 0; c < 3; ++c)
        for (double& v : planes[c]) v = std::max(v, double(lo));
      max_value = 0;
      for (int c = 0; c < 3; ++c)
        for (double v : planes[c]) max_value = std::max(max_value, v);
      for (int c = 0; c < 3; ++c)
        for (int y = 0; y < sizes.height; ++y)
          for (int x = 0; x < sizes.width; ++x) {
            const double v = planes[c][y * sizes.width + x];
            EXPECT_NEAR(blob_at(blob, c, y, x), (v / max_value - spec.mean[c]) / spec.std[c], 2e-5)
                << layout_name(layout) << " " << sizes << " c" << c << " (" << x << ", " << y << ")";
          }
    }
  }
}

TEST(PreprocessAntialias, ReusesItsBuffersOnceSizesAreStable) {
  expect_buffers_reused(antialias_spec(16, 16), PixelLayout::BGRx, 60);
}

// A tiny model input against a big frame (shrinking 160x, far beyond the old 64x limit that
// failed every frame) gives what skimage gives.
TEST(PreprocessAntialias, ShrinksAnyAmountLikeSkimage) {
  const int w = 640, h = 480;
  std::vector<uint8_t> data(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &data[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(x < w / 3 ? 230 : 20);  // a red left third
      p[1] = static_cast<uint8_t>(y < h / 2 ? 40 : 200);  // green below
      p[2] = static_cast<uint8_t>((x + y) % 256);
    }
  const FrameView view{data.data(), w, h, static_cast<size_t>(w) * 3, PixelLayout::RGB};
  for (const cv::Size& size : {cv::Size(4, 3), cv::Size(1, 1), cv::Size(3, 200)}) {
    cv::Mat resized, blob;
    preprocess(view, antialias_spec(size.width, size.height), resized, blob);
    for (int c = 0; c < 3; ++c) {
      std::vector<std::vector<double>> cols(w);
      for (int x = 0; x < w; ++x) {
        std::vector<double> col(h);
        for (int y = 0; y < h; ++y) col[y] = data[(static_cast<size_t>(y) * w + x) * 3 + c];
        cols[x] = skimage_axis(col, size.height);
      }
      for (int y = 0; y < size.height; ++y) {
        std::vector<double> row(w);
        for (int x = 0; x < w; ++x) row[x] = cols[x][y];
        const std::vector<double> out = skimage_axis(row, size.width);
        for (int x = 0; x < size.width; ++x)  // clipped to the frame's range, 0..255 here
          EXPECT_NEAR(blob_at(blob, c, y, x), std::min(std::max(out[x], 0.0), 255.0), 1e-3)
              << size << " c" << c << " (" << x << ", " << y << ")";
      }
    }
  }
}
