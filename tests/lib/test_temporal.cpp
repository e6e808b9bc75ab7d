// Thumbnails and the temporal smoother: known answers on synthetic frames and maps.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "unetseg/error.hpp"
#include "unetseg/frame.hpp"
#include "unetseg/temporal.hpp"

namespace unetseg {
namespace {

constexpr PixelLayout kAllLayouts[] = {
    PixelLayout::RGB,  PixelLayout::BGR,  PixelLayout::RGBx, PixelLayout::BGRx, PixelLayout::xRGB,
    PixelLayout::xBGR, PixelLayout::RGBA, PixelLayout::BGRA, PixelLayout::ARGB, PixelLayout::ABGR};

// `rgb` (CV_8UC3, R G B in memory) packed into `layout` with `padding` extra bytes per row;
// padding, x and alpha bytes hold junk that nothing may read.
struct PackedFrame {
  std::vector<std::uint8_t> bytes;
  FrameView view;
  PackedFrame(const cv::Mat& rgb, PixelLayout layout, int padding) {
    const ChannelOffsets off = channel_offsets(layout);
    const std::size_t stride = static_cast<std::size_t>(rgb.cols) * off.bytes_per_pixel + padding;
    bytes.assign(stride * rgb.rows, 0xA7);
    for (int y = 0; y < rgb.rows; ++y)
      for (int x = 0; x < rgb.cols; ++x) {
        const cv::Vec3b& p = rgb.at<cv::Vec3b>(y, x);
        std::uint8_t* q = bytes.data() + y * stride + x * off.bytes_per_pixel;
        q[off.r] = p[0];
        q[off.g] = p[1];
        q[off.b] = p[2];
      }
    view = FrameView{bytes.data(), rgb.cols, rgb.rows, stride, layout};
  }
};

cv::Mat random_rgb(int w, int h, int seed) {
  cv::Mat rgb(h, w, CV_8UC3);
  cv::RNG rng(seed);
  rng.fill(rgb, cv::RNG::UNIFORM, 0, 256);
  return rgb;
}

int grey_at(const cv::Mat& rgb, int x, int y) {
  const cv::Vec3b& p = rgb.at<cv::Vec3b>(y, x);
  return grey_level(p[0], p[1], p[2]);
}

TEST(Temporal, GreyLevelOfPrimaries) {
  EXPECT_EQ(grey_level(0, 0, 0), 0);
  EXPECT_EQ(grey_level(255, 255, 255), 255);
  EXPECT_EQ(grey_level(255, 0, 0), 77);   // (77 * 255 + 128) >> 8
  EXPECT_EQ(grey_level(0, 255, 0), 149);  // (150 * 255 + 128) >> 8
  EXPECT_EQ(grey_level(0, 0, 255), 29);   // (29 * 255 + 128) >> 8
}

// 8x4 -> 4x2: each cell is 2x2 pixels and the four samples are exactly those pixels.
TEST(Temporal, ThumbnailOfWholeCellsIsTheirMeanGrey) {
  const cv::Mat rgb = random_rgb(8, 4, 1);
  const PackedFrame frame(rgb, PixelLayout::RGB, 0);
  cv::Mat thumb;
  frame_thumbnail(frame.view, cv::Size(4, 2), thumb);
  ASSERT_EQ(thumb.size(), cv::Size(4, 2));
  ASSERT_EQ(thumb.type(), CV_8UC1);
  for (int j = 0; j < 2; ++j)
    for (int i = 0; i < 4; ++i) {
      const int sum = grey_at(rgb, 2 * i, 2 * j) + grey_at(rgb, 2 * i + 1, 2 * j) +
                      grey_at(rgb, 2 * i, 2 * j + 1) + grey_at(rgb, 2 * i + 1, 2 * j + 1);
      EXPECT_EQ(thumb.at<std::uint8_t>(j, i), (sum + 2) / 4) << i << "," << j;
    }
}

// 10x7 -> 3x2: samples at floor((4i + 1) n / 4m) and floor((4i + 3) n / 4m): columns 0,2 | 4,5 |
// 7,9 and rows 0,2 | 4,6.
TEST(Temporal, ThumbnailSamplesAQuarterAndThreeQuartersIntoEachCell) {
  const cv::Mat rgb = random_rgb(10, 7, 2);
  const PackedFrame frame(rgb, PixelLayout::RGB, 0);
  cv::Mat thumb;
  frame_thumbnail(frame.view, cv::Size(3, 2), thumb);
  const int xs[3][2] = {{0, 2}, {4, 5}, {7, 9}};
  const int ys[2][2] = {{0, 2}, {4, 6}};
  for (int j = 0; j < 2; ++j)
    for (int i = 0; i < 3; ++i) {
      int sum = 0;
      for (int a : xs[i])
        for (int b : ys[j]) sum += grey_at(rgb, a, b);
      EXPECT_EQ(thumb.at<std::uint8_t>(j, i), (sum + 2) / 4) << i << "," << j;
    }
}

TEST(Temporal, ThumbnailIsTheSameForEveryLayoutAndStride) {
  const cv::Mat rgb = random_rgb(37, 23, 3);
  cv::Mat expected;
  frame_thumbnail(PackedFrame(rgb, PixelLayout::RGB, 0).view, cv::Size(9, 5), expected);
  for (PixelLayout layout : kAllLayouts)
    for (int padding : {0, 5, 64}) {
      cv::Mat thumb;
      frame_thumbnail(PackedFrame(rgb, layout, padding).view, cv::Size(9, 5), thumb);
      EXPECT_EQ(cv::norm(thumb, expected, cv::NORM_INF), 0.0)
          << layout_name(layout) << " padding " << padding;
    }
}

TEST(Temporal, ThumbnailOfAUniformColourIsItsGrey) {
  const cv::Mat rgb(48, 64, CV_8UC3, cv::Scalar(255, 0, 0));  // red, R first
  for (PixelLayout layout : kAllLayouts) {
    cv::Mat thumb;
    frame_thumbnail(PackedFrame(rgb, layout, 3).view, cv::Size(5, 7), thumb);
    EXPECT_EQ(cv::countNonZero(thumb != 77), 0) << layout_name(layout);
  }
  // Larger than the frame: samples repeat pixels, nothing is read outside it.
  cv::Mat big;
  frame_thumbnail(PackedFrame(rgb, PixelLayout::BGRA, 0).view, cv::Size(200, 100), big);
  EXPECT_EQ(cv::countNonZero(big != 77), 0);
}

TEST(Temporal, ThumbnailReusesItsBuffer) {
  const cv::Mat rgb = random_rgb(64, 48, 4);
  const PackedFrame frame(rgb, PixelLayout::RGBx, 0);
  cv::Mat thumb;
  frame_thumbnail(frame.view, cv::Size(16, 16), thumb);
  const std::uint8_t* data = thumb.data;
  frame_thumbnail(frame.view, cv::Size(16, 16), thumb);
  EXPECT_EQ(thumb.data, data);
}

TEST(Temporal, ThumbnailRefusesBadFramesAndSizes) {
  const cv::Mat rgb = random_rgb(8, 8, 5);
  PackedFrame frame(rgb, PixelLayout::RGBA, 0);
  cv::Mat thumb;
  EXPECT_THROW(frame_thumbnail(frame.view, cv::Size(0, 4), thumb), Error);
  EXPECT_THROW(frame_thumbnail(frame.view, cv::Size(4, -1), thumb), Error);
  FrameView short_stride = frame.view;
  short_stride.stride = 8 * 4 - 1;
  EXPECT_THROW(frame_thumbnail(short_stride, cv::Size(4, 4), thumb), Error);
  FrameView no_data = frame.view;
  no_data.data = nullptr;
  EXPECT_THROW(frame_thumbnail(no_data, cv::Size(4, 4), thumb), Error);
  EXPECT_THROW(frame_thumbnail(FrameView{}, cv::Size(4, 4), thumb), Error);
}

TEST(Temporal, MeanAbsDifference) {
  const cv::Mat a = (cv::Mat_<std::uint8_t>(2, 2) << 0, 10, 255, 7);
  const cv::Mat b = (cv::Mat_<std::uint8_t>(2, 2) << 5, 0, 0, 7);
  EXPECT_DOUBLE_EQ(mean_abs_difference(a, b), (5 + 10 + 255 + 0) / 4.0);
  EXPECT_DOUBLE_EQ(mean_abs_difference(a, a), 0.0);
  EXPECT_THROW(mean_abs_difference(a, cv::Mat(2, 3, CV_8UC1)), Error);
  EXPECT_THROW(mean_abs_difference(a, cv::Mat(2, 2, CV_32FC1)), Error);
  EXPECT_THROW(mean_abs_difference(cv::Mat(), cv::Mat()), Error);
}

cv::Mat filled(int w, int h, float value) { return cv::Mat(h, w, CV_32FC1, cv::Scalar(value)); }

TEST(Temporal, FirstCallAndFactorZeroReturnTheNewMap) {
  TemporalSmoother smoother;
  const cv::Mat thumb(8, 8, CV_8UC1, cv::Scalar(50));
  const cv::Mat first = filled(8, 8, 0.25f);
  EXPECT_EQ(cv::norm(smoother.apply(first, thumb, 0.9, 10), first, cv::NORM_INF), 0.0);
  const cv::Mat second = filled(8, 8, 0.75f);
  EXPECT_EQ(cv::norm(smoother.apply(second, thumb, 0.0, 10), second, cv::NORM_INF), 0.0);
  // Factor 0 still kept the history: the next smoothed call starts from `second`.
  const cv::Mat& third = smoother.apply(filled(8, 8, 0.f), thumb, 0.5, 10);
  EXPECT_FLOAT_EQ(third.at<float>(3, 3), 0.375f);
}

TEST(Temporal, StillSceneIsAnExponentialMovingAverage) {
  TemporalSmoother smoother;
  const cv::Mat thumb(4, 6, CV_8UC1, cv::Scalar(128));
  smoother.apply(filled(6, 4, 1.f), thumb, 0.7, 8);
  const cv::Mat& out = smoother.apply(filled(6, 4, 0.f), thumb, 0.7, 8);
  EXPECT_NEAR(out.at<float>(2, 3), 0.7f, 1e-6);
  const cv::Mat& out2 = smoother.apply(filled(6, 4, 0.f), thumb, 0.7, 8);
  EXPECT_NEAR(out2.at<float>(0, 0), 0.49f, 1e-6);
}

// Noisy maps of a still scene: with x_t independent noise of variance s^2, the moving average
// y_t = f y_{t-1} + (1 - f) x_t has Var(y) = s^2 (1 - f) / (1 + f), and its frame-to-frame change
// y_t - y_{t-1} = (1 - f)(x_t - y_{t-1}) has variance 2 s^2 (1 - f)^2 / (1 + f) against 2 s^2
// for the raw maps: the RMS flicker drops by (1 - f) / sqrt(1 + f).
TEST(Temporal, StillSceneFlickerDropsByTheExpectedFactor) {
  const cv::Size size(64, 64);
  const cv::Mat thumb(size, CV_8UC1, cv::Scalar(90));
  for (double f : {0.5, 0.7, 0.9}) {
    TemporalSmoother smoother;
    cv::RNG rng(11);
    cv::Mat map(size, CV_32FC1), previous_raw, previous_out;
    double raw_sq = 0, out_sq = 0;
    long count = 0;
    for (int t = 0; t < 400; ++t) {
      rng.fill(map, cv::RNG::NORMAL, 0.5, 0.1);
      const cv::Mat& out = smoother.apply(map, thumb, f, 8);
      if (t >= 60) {  // f^(2 t): the start has died away
        raw_sq += cv::norm(map, previous_raw, cv::NORM_L2SQR);
        out_sq += cv::norm(out, previous_out, cv::NORM_L2SQR);
        count += size.area();
      }
      map.copyTo(previous_raw);
      out.copyTo(previous_out);
    }
    const double ratio = std::sqrt(out_sq / raw_sq);
    EXPECT_NEAR(ratio, (1 - f) / std::sqrt(1 + f), 0.03 * (1 - f) / std::sqrt(1 + f))
        << "factor " << f;
  }
}

// A bright square moves 4 pixels right over a dark background: where the thumbnail changed
// (its old and new left and right edges, 4 columns each), grown by one pixel, the output is the
// new map exactly; elsewhere the moving average.
TEST(Temporal, MovingSquareResetsExactlyWhereThePictureChanged) {
  const cv::Size size(40, 30);
  const auto scene = [&](int left, cv::Mat* thumb, cv::Mat* map) {
    *thumb = cv::Mat(size, CV_8UC1, cv::Scalar(20));
    (*thumb)(cv::Rect(left, 8, 12, 12)).setTo(200);
    *map = filled(size.width, size.height, 0.1f);
    (*map)(cv::Rect(left, 8, 12, 12)).setTo(0.9f);
  };
  cv::Mat thumb0, map0, thumb1, map1;
  scene(10, &thumb0, &map0);
  scene(14, &thumb1, &map1);
  const double f = 0.8;
  TemporalSmoother smoother;
  smoother.apply(map0, thumb0, f, 30);
  const cv::Mat out = smoother.apply(map1, thumb1, f, 30).clone();

  cv::Mat changed = cv::abs(thumb1 - thumb0) > 30, reset;
  cv::dilate(changed, reset, cv::Mat::ones(3, 3, CV_8U));
  EXPECT_EQ(cv::countNonZero(changed), 2 * 4 * 12);
  int resets = 0;
  for (int y = 0; y < size.height; ++y)
    for (int x = 0; x < size.width; ++x) {
      const float now = map1.at<float>(y, x), before = map0.at<float>(y, x);
      if (reset.at<std::uint8_t>(y, x)) {
        EXPECT_EQ(out.at<float>(y, x), now) << x << "," << y;
        ++resets;
      } else {
        EXPECT_NEAR(out.at<float>(y, x), f * before + (1 - f) * now, 1e-6) << x << "," << y;
      }
    }
  EXPECT_EQ(resets, 2 * 6 * 14);  // each 4x12 strip grown to 6x14
  // The square's leading edge is fully there, no ghost of the background in it.
  EXPECT_EQ(out.at<float>(14, 23), 0.9f);
  EXPECT_EQ(out.at<float>(14, 13), 0.1f);  // and its trailing edge fully gone
}

TEST(Temporal, ResetNeedsMoreThanTheThreshold) {
  const cv::Mat before(5, 5, CV_8UC1, cv::Scalar(100));
  cv::Mat after = before.clone();
  after.at<std::uint8_t>(2, 2) = 110;  // changed by exactly 10
  for (double threshold : {10.0, 10.5, 9.0, 255.0, 1e9}) {
    TemporalSmoother smoother;
    smoother.apply(filled(5, 5, 0.f), before, 0.5, threshold);
    const cv::Mat& out = smoother.apply(filled(5, 5, 1.f), after, 0.5, threshold);
    const float expected = threshold < 10 ? 1.f : 0.5f;
    EXPECT_EQ(out.at<float>(2, 2), expected) << threshold;
    EXPECT_EQ(out.at<float>(1, 3), expected) << threshold;  // within the growth
    EXPECT_EQ(out.at<float>(0, 0), 0.5f) << threshold;      // outside it
  }
}

TEST(Temporal, SizeChangeAndResetForgetTheHistory) {
  TemporalSmoother smoother;
  smoother.apply(filled(8, 6, 0.f), cv::Mat(6, 8, CV_8UC1, cv::Scalar(0)), 0.9, 10);
  const cv::Mat other = filled(4, 3, 1.f);
  EXPECT_EQ(cv::norm(smoother.apply(other, cv::Mat(3, 4, CV_8UC1, cv::Scalar(0)), 0.9, 10), other,
                     cv::NORM_INF),
            0.0);
  smoother.reset();
  const cv::Mat half = filled(4, 3, 0.5f);
  EXPECT_EQ(cv::norm(smoother.apply(half, cv::Mat(3, 4, CV_8UC1, cv::Scalar(0)), 0.9, 10), half,
                     cv::NORM_INF),
            0.0);
}

TEST(Temporal, SmootherReusesItsBuffer) {
  TemporalSmoother smoother;
  const cv::Mat thumb(16, 16, CV_8UC1, cv::Scalar(3));
  const float* data = smoother.apply(filled(16, 16, 0.f), thumb, 0.5, 4).ptr<float>();
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(smoother.apply(filled(16, 16, 1.f), thumb, 0.5, 4).ptr<float>(), data);
}

TEST(Temporal, SmootherRefusesBadArguments) {
  TemporalSmoother smoother;
  const cv::Mat map = filled(4, 4, 0.5f);
  const cv::Mat thumb(4, 4, CV_8UC1, cv::Scalar(0));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(smoother.apply(map, thumb, 1.0, 10), Error);
  EXPECT_THROW(smoother.apply(map, thumb, -0.1, 10), Error);
  EXPECT_THROW(smoother.apply(map, thumb, nan, 10), Error);
  EXPECT_THROW(smoother.apply(map, thumb, 0.5, -1), Error);
  EXPECT_THROW(smoother.apply(map, thumb, 0.5, nan), Error);
  EXPECT_THROW(smoother.apply(cv::Mat(), thumb, 0.5, 10), Error);
  EXPECT_THROW(smoother.apply(cv::Mat(4, 4, CV_8UC1), thumb, 0.5, 10), Error);
  EXPECT_THROW(smoother.apply(map, cv::Mat(4, 5, CV_8UC1), 0.5, 10), Error);
  EXPECT_THROW(smoother.apply(map, cv::Mat(4, 4, CV_32FC1), 0.5, 10), Error);
  // Still usable, with no history yet.
  EXPECT_EQ(cv::norm(smoother.apply(map, thumb, 0.5, 10), map, cv::NORM_INF), 0.0);
}

}  // namespace
}  // namespace unetseg
