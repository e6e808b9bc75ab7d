// MaskFilter: known answers on synthetic probability maps.

#include <gtest/gtest.h>

#include <initializer_list>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "unetseg/error.hpp"
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

}  // namespace
}  // namespace unetseg
