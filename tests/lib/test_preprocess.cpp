#include <gtest/gtest.h>

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

TEST(Preprocess, ReusesItsBuffersOnceSizesAreStable) {
  ModelSpec spec = spec_of(16, 16);
  FrameView view;
  auto data = make_frame(PixelLayout::BGRA, 20, 10, 3, &view);
  cv::Mat resized, blob;
  preprocess(view, spec, resized, blob);
  const void* blob_data = blob.data;
  const void* resized_data = resized.data;
  for (int i = 0; i < 3; ++i) preprocess(view, spec, resized, blob);
  EXPECT_EQ(blob.data, blob_data);
  EXPECT_EQ(resized.data, resized_data);
}
