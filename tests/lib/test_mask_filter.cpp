// MaskFilter: known answers on synthetic probability maps.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "counting_allocator.hpp"
#include "unetseg/error.hpp"
#include "unetseg/frame.hpp"
#include "unetseg/mask_filter.hpp"

namespace unetseg {
namespace {

// A 1-row probability map holding `values`.
cv::Mat row_of(std::initializer_list<float> values) {
  return cv::Mat(std::vector<float>(values), true).reshape(1, 1);
}

std::vector<int> bytes_of(const cv::Mat& m) {
  std::vector<int> out;
  for (int y = 0; y < m.rows; ++y)
    for (int x = 0; x < m.cols; ++x) out.push_back(m.at<std::uint8_t>(y, x));
  return out;
}

// Probabilities at the frame's own size, so that only the thresholding acts.
std::vector<int> hard(std::initializer_list<float> values, double threshold) {
  const cv::Mat p = row_of(values);
  MaskFilter filter;
  return bytes_of(filter.apply(p, p.size(), MaskOptions{threshold, false}));
}

TEST(MaskFilter, ThresholdKeepsProbabilitiesAtOrAboveIt) {
  EXPECT_EQ(hard({0.f, 0.25f, 0.49f, 0.4999f, 0.5f, 0.5001f, 0.75f, 1.f}, 0.5),
            (std::vector<int>{0, 0, 0, 0, 255, 255, 255, 255}));
  EXPECT_EQ(hard({0.f, 0.2f, 0.29f, 0.3f, 0.31f, 1.f}, 0.3),
            (std::vector<int>{0, 0, 0, 255, 255, 255}));
}

TEST(MaskFilter, ThresholdZeroMakesEverythingForeground) {
  EXPECT_EQ(hard({0.f, 0.001f, 0.5f, 1.f}, 0.0), (std::vector<int>{255, 255, 255, 255}));
  EXPECT_EQ(hard({0.f, 0.5f}, -3.0), (std::vector<int>{255, 255}));  // clamped to 0
}

TEST(MaskFilter, ThresholdOneKeepsOnlyCertainty) {
  EXPECT_EQ(hard({0.f, 0.5f, 0.99f, 254.f / 255.f, 1.f}, 1.0),
            (std::vector<int>{0, 0, 0, 0, 255}));
  EXPECT_EQ(hard({0.99f, 1.f}, 7.0), (std::vector<int>{0, 255}));  // clamped to 1
}

TEST(MaskFilter, SoftKeepsTheProbabilityInEightBits) {
  const cv::Mat p = row_of({0.f, 0.1f, 0.5f, 0.999f, 1.f, -0.5f, 2.f});
  MaskFilter filter;
  const cv::Mat& alpha = filter.apply(p, p.size(), MaskOptions{0.5, true});
  ASSERT_EQ(alpha.type(), CV_8UC1);
  // round(p * 255), saturated: 25.5 -> 26 (half to even), 127.5 -> 128, 254.7 -> 255.
  EXPECT_EQ(bytes_of(alpha), (std::vector<int>{0, 26, 128, 255, 255, 0, 255}));
}

TEST(MaskFilter, ToAlpha8RoundsAtTheMapsOwnSize) {
  cv::Mat out;
  MaskFilter::to_alpha8(row_of({0.f, 0.2f, 1.f}), out);
  EXPECT_EQ(out.size(), cv::Size(3, 1));
  EXPECT_EQ(bytes_of(out), (std::vector<int>{0, 51, 255}));
}

// A 2x2 map upscaled to 4x4 bilinearly (pixel centres aligned): along each axis the new samples
// sit at -1/4, 1/4, 3/4 and 5/4 of the old spacing, so the weights are (1,0), (3/4,1/4),
// (1/4,3/4), (0,1). The values are multiples of 16 so that every answer is an integer.
TEST(MaskFilter, BilinearUpscaleOfATwoByTwoMap) {
  const cv::Mat p = (cv::Mat_<float>(2, 2) << 0.f, 32.f / 255, 64.f / 255, 160.f / 255);
  MaskFilter filter;
  const cv::Mat& alpha = filter.apply(p, cv::Size(4, 4), MaskOptions{0.5, true});
  ASSERT_EQ(alpha.size(), cv::Size(4, 4));
  const std::vector<int> expected = {
      0,  8,  24,  32,   // row 0: top row of the map, interpolated along x
      16, 28, 52,  64,   // row 1: 3/4 top + 1/4 bottom
      48, 68, 108, 128,  // row 2: 1/4 top + 3/4 bottom
      64, 88, 136, 160,  // row 3: bottom row
  };
  EXPECT_EQ(bytes_of(alpha), expected);
}

TEST(MaskFilter, HardMaskIsThresholdedAfterTheUpscale) {
  // 0 and 1 side by side: the edge falls between them at frame size, not on a block boundary.
  const cv::Mat p = (cv::Mat_<float>(1, 2) << 0.f, 1.f);
  MaskFilter filter;
  const cv::Mat& alpha = filter.apply(p, cv::Size(8, 1), MaskOptions{0.5, false});
  // Soft values would be 0 0 32 96 159 223 255 255: 159 and up pass 128.
  EXPECT_EQ(bytes_of(alpha), (std::vector<int>{0, 0, 0, 0, 255, 255, 255, 255}));
  const cv::Mat& low = filter.apply(p, cv::Size(8, 1), MaskOptions{0.1, false});  // level 26
  EXPECT_EQ(bytes_of(low), (std::vector<int>{0, 0, 255, 255, 255, 255, 255, 255}));
}

TEST(MaskFilter, ApplyReusesItsBufferWhileTheFrameSizeStays) {
  cv::Mat p(32, 32, CV_32FC1);
  cv::randu(p, 0.f, 1.f);
  MaskFilter filter;
  const std::uint8_t* first = filter.apply(p, cv::Size(320, 240), MaskOptions{}).data;
  EXPECT_EQ(filter.apply(p, cv::Size(320, 240), MaskOptions{0.3, false}).data, first);
  EXPECT_EQ(filter.apply(p, cv::Size(320, 240), MaskOptions{0.5, true}).data, first);
  cv::Mat other_model_size(48, 40, CV_32FC1, cv::Scalar(0.7));
  EXPECT_EQ(filter.apply(other_model_size, cv::Size(320, 240), MaskOptions{}).data, first);
  const cv::Mat& same_size = filter.apply(cv::Mat(240, 320, CV_32FC1, cv::Scalar(1)),
                                          cv::Size(320, 240), MaskOptions{});
  EXPECT_EQ(same_size.data, first);
  EXPECT_EQ(cv::countNonZero(same_size), 320 * 240);
}

TEST(MaskFilter, ClassesUpscaleByNearestNeighbour) {
  const cv::Mat classes = (cv::Mat_<std::uint8_t>(2, 3) << 0, 1, 2, 3, 4, 5);
  MaskFilter filter;
  const cv::Mat& up = filter.upscale_classes(classes, cv::Size(6, 4));
  ASSERT_EQ(up.size(), cv::Size(6, 4));
  ASSERT_EQ(up.type(), CV_8UC1);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 6; ++x)
      EXPECT_EQ(up.at<std::uint8_t>(y, x), classes.at<std::uint8_t>(y / 2, x / 2))
          << "at " << x << "," << y;
  // A non-integer factor picks the class under each pixel's centre: 3 -> 5 columns.
  const cv::Mat& odd = filter.upscale_classes(classes, cv::Size(5, 2));
  EXPECT_EQ(bytes_of(odd), (std::vector<int>{0, 0, 1, 2, 2, 3, 3, 4, 5, 5}));
  const std::uint8_t* data = filter.upscale_classes(classes, cv::Size(5, 2)).data;
  EXPECT_EQ(filter.upscale_classes(classes, cv::Size(5, 2)).data, data);
}

TEST(MaskFilter, StatsOfAKnownRectangle) {
  cv::Mat alpha(80, 100, CV_8UC1, cv::Scalar(0));
  alpha(cv::Rect(10, 20, 30, 40)).setTo(255);
  alpha(cv::Rect(60, 5, 4, 5)).setTo(127);  // counted in the fraction, not in the box
  const MaskStats stats = MaskFilter::stats(alpha);
  EXPECT_DOUBLE_EQ(stats.foreground_fraction, (30 * 40 * 255 + 4 * 5 * 127) / 255.0 / 8000);
  EXPECT_EQ(stats.bounding_box, cv::Rect(10, 20, 30, 40));

  alpha.at<std::uint8_t>(79, 99) = 128;  // the threshold itself counts
  EXPECT_EQ(MaskFilter::stats(alpha).bounding_box, cv::Rect(10, 20, 90, 60));
}

TEST(MaskFilter, StatsOfAnEmptyMask) {
  const MaskStats stats = MaskFilter::stats(cv::Mat(10, 12, CV_8UC1, cv::Scalar(127)));
  EXPECT_DOUBLE_EQ(stats.foreground_fraction, 127 / 255.0);
  EXPECT_TRUE(stats.bounding_box.empty());
  const MaskStats none = MaskFilter::stats(cv::Mat());
  EXPECT_EQ(none.foreground_fraction, 0);
  EXPECT_TRUE(none.bounding_box.empty());
}

TEST(MaskFilter, StatsOfASinglePixel) {
  cv::Mat alpha(5, 7, CV_8UC1, cv::Scalar(0));
  alpha.at<std::uint8_t>(3, 6) = 255;
  EXPECT_EQ(MaskFilter::stats(alpha).bounding_box, cv::Rect(6, 3, 1, 1));
}

TEST(MaskFilter, RefusesWhatItCannotRead) {
  MaskFilter filter;
  EXPECT_THROW(filter.apply(cv::Mat(), cv::Size(4, 4), MaskOptions{}), Error);
  EXPECT_THROW(filter.apply(cv::Mat(2, 2, CV_8UC1), cv::Size(4, 4), MaskOptions{}), Error);
  EXPECT_THROW(filter.apply(cv::Mat(2, 2, CV_32FC1), cv::Size(0, 4), MaskOptions{}), Error);
  EXPECT_THROW(filter.upscale_classes(cv::Mat(2, 2, CV_32FC1), cv::Size(4, 4)), Error);
  EXPECT_THROW(MaskFilter::stats(cv::Mat(2, 2, CV_32FC1)), Error);
}

// The default scaling is OpenCV's 8-bit bilinear resize of the quantised map (the fast path);
// PIL's resample is used only when a model's sidecar asks for it, and differs from it.
TEST(MaskFilter, DefaultScalingIsOpenCvBilinearPilOnlyWhenAsked) {
  cv::Mat p(37, 29, CV_32FC1);
  cv::RNG rng(3);
  rng.fill(p, cv::RNG::UNIFORM, 0.0, 1.0);
  cv::Mat small, expected;
  p.convertTo(small, CV_8U, 255.0);
  cv::resize(small, expected, cv::Size(200, 150), 0, 0, cv::INTER_LINEAR);
  MaskFilter filter;
  MaskOptions soft{0.5, true};
  EXPECT_EQ(cv::norm(filter.apply(p, cv::Size(200, 150), soft), expected, cv::NORM_INF), 0.0);
  soft.scaling = MaskScaling::Pil;
  const cv::Mat pil = filter.apply(p, cv::Size(200, 150), soft).clone();
  EXPECT_GT(cv::norm(pil, expected, cv::NORM_INF), 0.0);
  EXPECT_LE(cv::norm(pil, expected, cv::NORM_INF), 3.0) << "both are bilinear; they differ in rounding";
}

// ---- refinement -----------------------------------------------------------------------------

cv::Mat filled_map(cv::Size size, float value) {
  return cv::Mat(size, CV_32FC1, cv::Scalar(value));
}

// The 50% crossing along row y, scanning from the left for the first fall below 127.5: the
// position (in pixel centres, linearly interpolated) where alpha goes from >= 127.5 to < 127.5.
double falling_crossing(const cv::Mat& alpha, int y) {
  const std::uint8_t* row = alpha.ptr<std::uint8_t>(y);
  for (int x = 1; x < alpha.cols; ++x)
    if (row[x - 1] >= 127.5 && row[x] < 127.5)
      return x - 1 + (row[x - 1] - 127.5) / (row[x - 1] - row[x]);
  return -1;
}

TEST(MaskRefinement, DefaultsAndTheFrameOverloadGiveThePlainUpscale) {
  cv::Mat p(37, 29, CV_32FC1);
  cv::randu(p, 0.f, 1.f);
  cv::Mat rgb(150, 200, CV_8UC3, cv::Scalar(1, 2, 3));
  const FrameView frame{rgb.data, rgb.cols, rgb.rows, rgb.step[0], PixelLayout::RGB};
  for (bool soft : {false, true}) {
    MaskFilter a, b;
    const MaskOptions options{0.4, soft};
    EXPECT_EQ(cv::norm(a.apply(p, cv::Size(200, 150), options), b.apply(p, frame, options),
                       cv::NORM_INF),
              0.0);
  }
}

// 100x100 map at frame size (no upscale), min_island 1% = 100 pixels: a 10x10 island stays, a
// 9x11 one (99) goes; a hole of 99 pixels is filled, one of 100 stays; background reaching the
// border is not a hole, however small.
TEST(MaskRefinement, IslandsAndHolesAtTheFractionBoundary) {
  cv::Mat p = filled_map(cv::Size(100, 100), 0.f);
  p(cv::Rect(5, 5, 10, 10)).setTo(0.9f);     // island of 100: stays
  p(cv::Rect(20, 5, 9, 11)).setTo(0.9f);     // island of 99: dropped
  p(cv::Rect(40, 40, 55, 55)).setTo(0.8f);   // the person
  p(cv::Rect(45, 45, 9, 11)).setTo(0.2f);    // hole of 99: filled
  p(cv::Rect(60, 45, 10, 10)).setTo(0.2f);   // hole of 100: stays
  p(cv::Rect(80, 60, 20, 2)).setTo(0.f);     // notch from the person to the border: stays
  MaskOptions options;
  options.min_island = 0.01;
  MaskFilter filter;
  const cv::Mat& alpha = filter.apply(p, p.size(), options);
  EXPECT_EQ(cv::countNonZero(alpha(cv::Rect(5, 5, 10, 10))), 100);
  EXPECT_EQ(cv::countNonZero(alpha(cv::Rect(20, 5, 9, 11))), 0);
  EXPECT_EQ(cv::countNonZero(alpha(cv::Rect(45, 45, 9, 11))), 99);
  EXPECT_EQ(cv::countNonZero(alpha(cv::Rect(60, 45, 10, 10))), 0);
  EXPECT_EQ(cv::countNonZero(alpha(cv::Rect(80, 60, 20, 2))), 0);
  EXPECT_EQ(cv::countNonZero(alpha), 100 + 55 * 55 - 100 - 15 * 2);

  // Soft: dropped islands become 0, filled holes 255, the rest keeps its probability.
  options.soft = true;
  const cv::Mat& soft = filter.apply(p, p.size(), options);
  EXPECT_EQ(soft.at<std::uint8_t>(10, 22), 0);
  EXPECT_EQ(soft.at<std::uint8_t>(50, 50), 255);
  EXPECT_EQ(soft.at<std::uint8_t>(50, 65), 51);   // the hole that stays: round(0.2 * 255)
  EXPECT_EQ(soft.at<std::uint8_t>(41, 41), 204);  // the person: round(0.8 * 255)
}

// Islands are counted at model resolution, before the upscale: the fraction means the same at
// any frame size. Diagonal neighbours connect foreground (8-connected).
TEST(MaskRefinement, IslandsAreCountedOnTheModelsMap) {
  cv::Mat p = filled_map(cv::Size(20, 20), 0.f);
  p(cv::Rect(2, 2, 2, 2)).setTo(1.f);  // 4 of 400 pixels: 1%
  p.at<float>(10, 10) = p.at<float>(11, 11) = 1.f;  // a diagonal pair: one component of 2
  p(cv::Rect(15, 15, 5, 5)).setTo(1.f);
  MaskOptions options;
  options.min_island = 0.01;
  MaskFilter filter;
  const cv::Mat& alpha = filter.apply(p, cv::Size(200, 200), options);
  EXPECT_GT(cv::countNonZero(alpha(cv::Rect(20, 20, 20, 20))), 0);      // 4 pixels: kept
  EXPECT_EQ(cv::countNonZero(alpha(cv::Rect(95, 95, 30, 30))), 0);      // 2 pixels: dropped
  EXPECT_GT(cv::countNonZero(alpha(cv::Rect(160, 160, 30, 30))), 0);
  options.min_island = 0.0025;  // 1 pixel: no component is smaller
  const cv::Mat& kept = filter.apply(p, cv::Size(200, 200), options);
  EXPECT_GT(cv::countNonZero(kept(cv::Rect(95, 95, 30, 30))), 0);
}

TEST(MaskRefinement, ContourSmoothingKeepsStraightEdgesAndRemovesSlivers) {
  cv::Mat p = filled_map(cv::Size(80, 60), 0.f);
  p(cv::Rect(0, 0, 40, 60)).setTo(1.f);       // straight vertical edge between x 39 and 40
  p(cv::Rect(40, 30, 12, 1)).setTo(1.f);      // a 1-pixel sliver sticking out of it
  p(cv::Rect(60, 10, 2, 2)).setTo(1.f);       // a 2x2 speck
  MaskOptions options;
  options.smooth_contour = 3;
  MaskFilter filter;
  const cv::Mat& alpha = filter.apply(p, p.size(), options);
  cv::Mat expected(60, 80, CV_8UC1, cv::Scalar(0));
  expected(cv::Rect(0, 0, 40, 60)).setTo(255);
  // All but the sliver's root: one pixel whose window is mostly the mask beside it.
  EXPECT_EQ(cv::countNonZero(alpha != expected), 1);
  EXPECT_EQ(alpha.at<std::uint8_t>(30, 40), 255);

  // Soft: the alpha is blurred by two box passes, the tent reaching 2 * radius.
  options.soft = true;
  const cv::Mat& soft = filter.apply(p, p.size(), options);
  EXPECT_EQ(soft.at<std::uint8_t>(5, 33), 255);   // 7 pixels in: untouched
  EXPECT_EQ(soft.at<std::uint8_t>(5, 46), 0);     // 7 pixels out
  EXPECT_GT(soft.at<std::uint8_t>(5, 39), 128);   // the edge stays between 39 and 40
  EXPECT_LT(soft.at<std::uint8_t>(5, 40), 128);
  EXPECT_EQ(soft.at<std::uint8_t>(5, 39) + soft.at<std::uint8_t>(5, 40), 255);  // symmetric
}

TEST(MaskRefinement, ContourSmoothingRoundsTheJaggiesOfAnUpscale) {
  // A disc drawn at 16x16 and upscaled 16 times: its threshold contour follows the model's
  // pixels. Smoothing brings it closer to the true circle.
  const cv::Size frame(256, 256);
  cv::Mat truth(frame, CV_8UC1, cv::Scalar(0));
  cv::circle(truth, cv::Point(128, 128), 80, cv::Scalar(255), cv::FILLED);
  cv::Mat small8, p;
  cv::resize(truth, small8, cv::Size(16, 16), 0, 0, cv::INTER_NEAREST);
  small8.convertTo(p, CV_32F, 1.0 / 255);
  MaskFilter filter;
  MaskOptions options;
  options.scaling = MaskScaling::Pil;
  const double plain = cv::norm(filter.apply(p, frame, options), truth, cv::NORM_L1);
  options.smooth_contour = 8;
  const double smooth = cv::norm(filter.apply(p, frame, options), truth, cv::NORM_L1);
  EXPECT_LT(smooth, plain);
}

// A straight edge: feather n ramps linearly over n pixels outside it (> 0) or inside it (< 0);
// the 50% contour moves by n / 2 (plus a quarter pixel of the discrete box) either way.
TEST(MaskRefinement, FeatherMovesTheHalfwayContourByHalfItsWidth) {
  cv::Mat p = filled_map(cv::Size(120, 20), 0.f);
  p(cv::Rect(0, 0, 60, 20)).setTo(1.f);  // edge between x 59 and 60: 50% at 59.5
  MaskFilter filter;
  MaskOptions options;
  EXPECT_NEAR(falling_crossing(filter.apply(p, p.size(), options), 10), 59.5, 1e-9);
  for (int n : {2, 8, 15}) {
    options.feather = n;
    const cv::Mat grown = filter.apply(p, p.size(), options).clone();
    EXPECT_NEAR(falling_crossing(grown, 10), 59.5 + n / 2.0, 0.3) << n;
    EXPECT_EQ(grown.at<std::uint8_t>(10, 59), 255) << n;  // the old mask is whole
    EXPECT_EQ(grown.at<std::uint8_t>(10, 60 + n), 0) << n;
    EXPECT_GT(grown.at<std::uint8_t>(10, 60 + n - 1), 0) << n;  // the ramp reaches n pixels out
    options.feather = -n;
    const cv::Mat shrunk = filter.apply(p, p.size(), options).clone();
    EXPECT_NEAR(falling_crossing(shrunk, 10), 59.5 - n / 2.0, 0.3) << -n;
    EXPECT_EQ(shrunk.at<std::uint8_t>(10, 60), 0) << -n;  // nothing outside the old mask
    EXPECT_EQ(shrunk.at<std::uint8_t>(10, 59 - n), 255) << -n;
    EXPECT_LT(shrunk.at<std::uint8_t>(10, 59 - n + 1), 255) << -n;
    // Linear: equal steps along the ramp.
    const int step = shrunk.at<std::uint8_t>(10, 57) - shrunk.at<std::uint8_t>(10, 58);
    EXPECT_NEAR(shrunk.at<std::uint8_t>(10, 58) - shrunk.at<std::uint8_t>(10, 59), step, 1) << -n;
  }
}

// A disc in the frame, and the model's view of it: the same disc at 40x30 (area averaged), 8
// times coarser, as a model at coarse resolution sees it. Upsampled bilinearly its edge is a
// ramp about 16 frame pixels wide; guided by the frame (radius 16: windows that reach across
// that ramp) it takes the disc's sharp edge.
TEST(MaskRefinement, GuidedUpsamplingFollowsTheEdgeInTheFrame) {
  const cv::Size frame_size(320, 240);
  cv::Mat truth(frame_size, CV_8UC1, cv::Scalar(0));
  cv::circle(truth, cv::Point(150, 115), 70, cv::Scalar(255), cv::FILLED, cv::LINE_8);
  cv::Mat rgb(frame_size, CV_8UC3, cv::Scalar(40, 60, 50));  // dark room, bright person
  rgb.setTo(cv::Scalar(220, 180, 160), truth);
  cv::Mat p;
  cv::resize(truth, p, cv::Size(40, 30), 0, 0, cv::INTER_AREA);
  p.convertTo(p, CV_32F, 1.0 / 255);
  for (PixelLayout layout : {PixelLayout::RGB, PixelLayout::BGRx}) {
    cv::Mat packed;
    if (layout == PixelLayout::RGB) packed = rgb;
    else cv::cvtColor(rgb, packed, cv::COLOR_RGB2BGRA);
    const FrameView frame{packed.data, packed.cols, packed.rows, packed.step[0], layout};
    MaskFilter filter;
    MaskOptions options;
    options.soft = true;
    const double bilinear = cv::norm(filter.apply(p, frame, options), truth, cv::NORM_L1);
    options.guided_radius = 16;
    options.guided_eps = 1e-3;
    const double guided = cv::norm(filter.apply(p, frame, options), truth, cv::NORM_L1);
    EXPECT_LT(guided, 0.5 * bilinear) << layout_name(layout);
    // Hard: the guided edge is where the frame's edge is, give or take a pixel.
    options.soft = false;
    cv::Mat misses, thick;
    cv::absdiff(filter.apply(p, frame, options), truth, misses);
    cv::erode(misses, thick, cv::Mat::ones(3, 3, CV_8U));  // misses more than a pixel deep
    EXPECT_EQ(cv::countNonZero(thick), 0) << layout_name(layout);
    const int guided_misses = cv::countNonZero(misses);
    options.guided_radius = 0;
    cv::absdiff(filter.apply(p, frame, options), truth, misses);
    EXPECT_LT(guided_misses, cv::countNonZero(misses)) << layout_name(layout);
  }
}

TEST(MaskRefinement, EveryStepTogetherReusesTheBuffer) {
  cv::Mat p(40, 30, CV_32FC1);
  cv::randu(p, 0.f, 1.f);
  cv::Mat rgba(120, 160, CV_8UC4);
  cv::randu(rgba, 0, 256);
  const FrameView frame{rgba.data, rgba.cols, rgba.rows, rgba.step[0], PixelLayout::RGBA};
  MaskOptions options;
  options.min_island = 0.01;
  options.smooth_contour = 2;
  options.feather = -3;
  options.guided_radius = 6;
  MaskFilter filter;
  const std::uint8_t* data = filter.apply(p, frame, options).data;
  for (bool soft : {false, true}) {
    options.soft = soft;
    const cv::Mat& alpha = filter.apply(p, frame, options);
    EXPECT_EQ(alpha.data, data);
    EXPECT_EQ(alpha.size(), cv::Size(160, 120));
    EXPECT_EQ(alpha.type(), CV_8UC1);
  }
}

TEST(MaskRefinement, RefusesBadOptions) {
  const cv::Mat p = filled_map(cv::Size(8, 8), 0.5f);
  cv::Mat rgb(16, 16, CV_8UC3, cv::Scalar(0));
  const FrameView frame{rgb.data, rgb.cols, rgb.rows, rgb.step[0], PixelLayout::RGB};
  MaskFilter filter;
  const auto with = [](auto change) {
    MaskOptions o;
    change(o);
    return o;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(filter.apply(p, frame, with([](MaskOptions& o) { o.min_island = -0.1; })), Error);
  EXPECT_THROW(filter.apply(p, frame, with([](MaskOptions& o) { o.min_island = 1.5; })), Error);
  EXPECT_THROW(filter.apply(p, frame, with([&](MaskOptions& o) { o.min_island = nan; })), Error);
  EXPECT_THROW(filter.apply(p, frame, with([](MaskOptions& o) { o.smooth_contour = -1; })), Error);
  EXPECT_THROW(filter.apply(p, frame, with([](MaskOptions& o) { o.smooth_contour = 5000; })),
               Error);
  EXPECT_THROW(filter.apply(p, frame, with([](MaskOptions& o) { o.feather = -5000; })), Error);
  EXPECT_THROW(filter.apply(p, frame, with([](MaskOptions& o) { o.guided_radius = -2; })), Error);
  EXPECT_THROW(filter.apply(p, frame, with([](MaskOptions& o) {
                 o.guided_radius = 4;
                 o.guided_eps = 0;
               })),
               Error);
  EXPECT_THROW(filter.apply(p, frame, with([&](MaskOptions& o) {
                 o.guided_radius = 4;
                 o.guided_eps = nan;
               })),
               Error);
  // Guided needs the frame: the size-only overload refuses rather than silently not guiding.
  EXPECT_THROW(filter.apply(p, cv::Size(16, 16), with([](MaskOptions& o) { o.guided_radius = 4; })),
               Error);
  FrameView no_pixels = frame;
  no_pixels.data = nullptr;
  EXPECT_THROW(filter.apply(p, no_pixels, with([](MaskOptions& o) { o.guided_radius = 4; })),
               Error);
  FrameView short_stride = frame;
  short_stride.stride = 10;
  EXPECT_THROW(filter.apply(p, short_stride, with([](MaskOptions& o) { o.guided_radius = 4; })),
               Error);
  EXPECT_THROW(filter.apply(p, FrameView{}, MaskOptions{}), Error);
  // min_island 1 and 0 are the ends of the range; eps needs no check while guided is off.
  EXPECT_NO_THROW(filter.apply(p, frame, with([](MaskOptions& o) { o.min_island = 1; })));
  EXPECT_NO_THROW(filter.apply(p, frame, with([](MaskOptions& o) { o.guided_eps = 0; })));
}

// A smooth map with a sure inside and outside and a ramp between: what models give.
cv::Mat smooth_map(cv::Size size, int seed) {
  cv::Mat noise(size, CV_32FC1);
  cv::RNG rng(seed);
  rng.fill(noise, cv::RNG::UNIFORM, -0.5, 1.5);
  cv::GaussianBlur(noise, noise, cv::Size(0, 0), 2);
  cv::Mat p = cv::min(cv::max(noise, 0.f), 1.f);
  p(cv::Rect(size.width / 4, size.height / 4, size.width / 2, size.height / 2)) += 0.6f;
  return cv::min(p, 1.f);
}

// apply_rows() leaves the plain upscale in rows; its rows, stats() and alpha() are apply()'s,
// hard and soft, with min_island (done at model size), and where it makes the mask whole.
TEST(MaskFilter, ApplyRowsGivesApplysBytesAndStats) {
  const cv::Size frames[] = {{320, 240}, {64, 48}, {640, 360}, {48, 40}};
  std::vector<std::uint8_t> pixels(640 * 360 * 4, 0);
  int seed = 1;
  for (cv::Size frame_size : frames)
    for (bool soft : {false, true})
      for (double islands : {0.0, 0.02})
        for (int feather : {0, 3}) {
          cv::Mat p = smooth_map({64, 48}, seed++);
          if (seed % 2) {  // rows all 0 and rows all below the threshold, as above a head
            p.rowRange(0, 12).setTo(0.f);
            p.rowRange(12, 20).setTo(0.3f);
            p.rowRange(44, 48).setTo(0.f);
          }
          MaskOptions o;
          o.soft = soft;
          o.min_island = islands;
          o.feather = feather;
          const FrameView frame{pixels.data(), frame_size.width, frame_size.height,
                                static_cast<std::size_t>(frame_size.width) * 4,
                                PixelLayout::RGBx};
          MaskFilter whole, rows;
          const cv::Mat expected = whole.apply(p, frame, o).clone();
          rows.apply_rows(p, frame, o);
          const MaskStats stats = rows.stats();
          const MaskStats expected_stats = MaskFilter::stats(expected);
          // ... and those are OpenCV's own measures of the whole mask.
          EXPECT_DOUBLE_EQ(expected_stats.foreground_fraction, cv::mean(expected)[0] / 255.0);
          EXPECT_EQ(expected_stats.bounding_box, cv::boundingRect(expected >= 128));
          EXPECT_EQ(stats.foreground_fraction, expected_stats.foreground_fraction);
          EXPECT_EQ(stats.bounding_box, expected_stats.bounding_box);
          ASSERT_EQ(rows.size(), frame_size);
          rows.begin(2);
          for (int y = frame_size.height - 1; y >= 0; --y)
            ASSERT_EQ(0, std::memcmp(rows.row(y, y % 2), expected.ptr(y), frame_size.width))
                << frame_size << " soft " << soft << " islands " << islands << " row " << y;
          EXPECT_EQ(cv::norm(rows.alpha(), expected, cv::NORM_INF), 0);
          EXPECT_EQ(rows.stats().bounding_box, expected_stats.bounding_box);  // now whole
        }
}

TEST(MaskFilter, ApplyRowsAllocatesNothingOnceTheSizeIsStable) {
  std::vector<std::uint8_t> pixels(320 * 240 * 4, 0);
  const FrameView frame{pixels.data(), 320, 240, 320 * 4, PixelLayout::RGBx};
  const cv::Mat p = smooth_map({64, 48}, 9);
  MaskFilter filter;
  MaskOptions o;
  o.min_island = 0.01;
  const auto pass = [&] {
    filter.apply_rows(p, frame, o);
    filter.stats();
    filter.begin(4);
    for (int y = 0; y < 240; ++y) filter.row(y, y % 4);
  };
  pass();
  unetseg_test::CountingAllocator counter;
  for (int i = 0; i < 3; ++i) pass();
  EXPECT_EQ(counter.allocations, 0);
}

}  // namespace
}  // namespace unetseg
