// Mask-quality metrics: hand-computed answers on tiny synthetic masks.

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <vector>

#include <opencv2/core.hpp>

#include "unetseg/error.hpp"
#include "unetseg/metrics.hpp"

namespace unetseg {
namespace {

cv::Mat row8(std::initializer_list<int> values) {
  std::vector<std::uint8_t> v;
  for (int x : values) v.push_back(static_cast<std::uint8_t>(x));
  return cv::Mat(v, true).reshape(1, 1);
}

cv::Mat rowf(std::initializer_list<float> values) {
  return cv::Mat(std::vector<float>(values), true).reshape(1, 1);
}

cv::Mat square(int size, int x, int y, int side) {
  cv::Mat m = cv::Mat::zeros(size, size, CV_8UC1);
  m(cv::Rect(x, y, side, side)).setTo(255);
  return m;
}

TEST(Metrics, AllRight) {
  const cv::Mat ref = square(20, 5, 5, 8);
  const ImageScores s = score_image(ref, ref);
  EXPECT_DOUBLE_EQ(s.mae, 0.0);
  EXPECT_DOUBLE_EQ(s.iou, 1.0);
  EXPECT_DOUBLE_EQ(s.boundary_f, 1.0);
  Accumulator acc;
  acc.add(s);
  int best = -1;
  EXPECT_DOUBLE_EQ(acc.max_f_beta(&best), 1.0);
  EXPECT_EQ(best, 1);  // t = 0 counts everything in; from t = 1 the prediction is exact
}

TEST(Metrics, AllWrong) {
  const cv::Mat ref = square(20, 5, 5, 8);
  const cv::Mat pred = 255 - ref;
  const ImageScores s = score_image(pred, ref);
  EXPECT_DOUBLE_EQ(s.mae, 1.0);
  EXPECT_DOUBLE_EQ(s.iou, 0.0);
  // t >= 1: TP = 0, so precision and recall are 0 there.
  for (int t = 1; t < kMetricLevels; ++t) {
    EXPECT_DOUBLE_EQ(s.precision[t], 0.0);
    EXPECT_DOUBLE_EQ(s.recall[t], 0.0);
  }
  // t = 0: everything predicted: precision = 64/400, recall 1.
  EXPECT_DOUBLE_EQ(s.precision[0], 64.0 / 400);
  EXPECT_DOUBLE_EQ(s.recall[0], 1.0);
}

TEST(Metrics, HalfRight) {
  // ref 1 1 0 0, pred 1 0 1 0: TP 1, FP 1, FN 1, TN 1.
  const ImageScores s = score_image(row8({255, 0, 255, 0}), row8({255, 255, 0, 0}));
  EXPECT_DOUBLE_EQ(s.mae, 0.5);
  EXPECT_DOUBLE_EQ(s.iou, 1.0 / 3);  // 1 / |{0,1,2}|
  EXPECT_DOUBLE_EQ(s.precision[128], 0.5);
  EXPECT_DOUBLE_EQ(s.recall[128], 0.5);
  EXPECT_DOUBLE_EQ(f_beta(0.5, 0.5), 0.5);
}

TEST(Metrics, SoftMapMae) {
  // |0.25 - 1| + |0.5 - 1| + |0.25 - 0| + |1 - 0| = 0.75 + 0.5 + 0.25 + 1 = 2.5, / 4 = 0.625.
  const ImageScores s = score_image(rowf({0.25f, 0.5f, 0.25f, 1.f}), row8({255, 200, 10, 127}));
  EXPECT_NEAR(s.mae, 0.625, 1e-7);
  // At 0.5 (alpha >= 128): pred 0 1 0 1 vs ref 1 1 0 0: IoU 1/3.
  EXPECT_DOUBLE_EQ(s.iou, 1.0 / 3);
  // The same map as 8-bit alpha (64, 128, 64, 255) gives MAE from alpha / 255.
  const ImageScores a = score_image(row8({64, 128, 64, 255}), row8({255, 200, 10, 127}));
  EXPECT_NEAR(a.mae, ((255 - 64) + (255 - 128) + 64 + 255) / 255.0 / 4, 1e-7);
}

TEST(Metrics, ThresholdLevelRoundsLikeMaskFilter) {
  EXPECT_EQ(alpha_level(0.5), 128);
  EXPECT_EQ(alpha_level(0.0), 0);
  EXPECT_EQ(alpha_level(1.0), 255);
  // IoU at level 129 drops the 128 pixel.
  const ImageScores s = score_image(row8({128, 255, 0}), row8({255, 255, 0}), 129);
  EXPECT_DOUBLE_EQ(s.iou, 0.5);
}

TEST(Metrics, EmptyReferenceAndEmptyPrediction) {
  const cv::Mat zero = cv::Mat::zeros(4, 4, CV_8UC1);
  const ImageScores s = score_image(zero, zero);
  EXPECT_DOUBLE_EQ(s.iou, 1.0);
  EXPECT_DOUBLE_EQ(s.boundary_f, 1.0);
  EXPECT_DOUBLE_EQ(s.precision[1], 0.0);  // nothing predicted: precision 0 (SOD convention)
  EXPECT_DOUBLE_EQ(s.recall[1], 0.0);     // empty reference: recall 0
}

// Two images, F-beta (beta^2 = 0.3) on the per-threshold means of precision and recall.
//  A: pred alpha 255 255 0 0, ref 1 0 1 0.
//     t = 0: all 4 predicted, TP 2: P = 0.5, R = 1.
//     t = 1..255: first two predicted, TP 1: P = 0.5, R = 0.5.
//  B: pred alpha 200 100, ref 1 0.
//     t = 0..100: both predicted, TP 1: P = 0.5, R = 1.
//     t = 101..200: first predicted: P = 1, R = 1.
//     t = 201..255: nothing predicted: P = 0 (convention), R = 0.
//  Means and F = 1.3 P R / (0.3 P + R):
//     t = 0:        P 0.5,  R 1     -> 0.65 / 1.15   = 0.565217...
//     t = 1..100:   P 0.5,  R 0.75  -> 0.4875 / 0.9  = 0.541666...
//     t = 101..200: P 0.75, R 0.75  -> 0.73125 / 0.975 = 0.75
//     t = 201..255: P 0.25, R 0.25  -> 0.08125 / 0.325 = 0.25
//  max F-beta = 0.75, first reached at t = 101.
TEST(Metrics, MaxFBetaTwoImages) {
  Accumulator acc;
  acc.add(score_image(row8({255, 255, 0, 0}), row8({255, 0, 255, 0})));
  acc.add(score_image(row8({200, 100}), row8({255, 0})));
  EXPECT_EQ(acc.count(), 2u);
  EXPECT_DOUBLE_EQ(acc.mean_precision(0), 0.5);
  EXPECT_DOUBLE_EQ(acc.mean_recall(0), 1.0);
  EXPECT_DOUBLE_EQ(acc.mean_precision(50), 0.5);
  EXPECT_DOUBLE_EQ(acc.mean_recall(50), 0.75);
  EXPECT_DOUBLE_EQ(acc.mean_precision(101), 0.75);
  EXPECT_DOUBLE_EQ(acc.mean_precision(201), 0.25);
  EXPECT_DOUBLE_EQ(acc.mean_recall(201), 0.25);
  EXPECT_NEAR(f_beta(0.5, 1.0), 0.65 / 1.15, 1e-12);
  EXPECT_NEAR(f_beta(0.5, 0.75), 0.4875 / 0.9, 1e-12);
  int best = -1;
  EXPECT_NEAR(acc.max_f_beta(&best), 0.75, 1e-12);
  EXPECT_EQ(best, 101);
  // MAE and IoU are plain means: A MAE 0.5, IoU 1/3; B MAE (55 + 100) / 255 / 2, IoU 1.
  EXPECT_NEAR(acc.mean_mae(), (0.5 + 155.0 / 510) / 2, 1e-12);
  EXPECT_NEAR(acc.mean_iou(), (1.0 / 3 + 1.0) / 2, 1e-12);
}

// A 10x10 square at (10,10) in a 40x40 frame; its boundary is the 36-pixel ring of its outer
// rows and columns.
TEST(Metrics, BoundaryOfASquareIsItsRing) {
  EXPECT_EQ(cv::countNonZero(mask_boundary(square(40, 10, 10, 10))), 36);
  // The frame edge is no boundary: a full frame has none.
  EXPECT_EQ(cv::countNonZero(mask_boundary(cv::Mat(8, 8, CV_8UC1, cv::Scalar(255)))), 0);
}

TEST(Metrics, BoundaryFOnShiftedSquare) {
  const cv::Mat ref = square(40, 10, 10, 10);
  // Shifted right by 2: every boundary pixel is within 2 px of the other ring -> F = 1 at
  // tolerance 2.
  EXPECT_DOUBLE_EQ(boundary_f(square(40, 12, 10, 10), ref, 2), 1.0);
  // Shifted right by 3 at tolerance 2 (matched = within Euclidean distance 2).
  //  Reference ring: columns x=10 and x=19 (y 10..19), rows y=10 and y=19 (x 10..19).
  //  Predicted ring (36 px): rows y=10 and y=19 for x 13..22 (10 px each), columns x=13 and
  //  x=22 for y 11..18 (8 px each).
  //   rows: x 13..19 lie on the reference rows, x=20 and 21 are 1 and 2 from (19, y); x=22 is
  //         3 away from everything -> 1 unmatched per row, 2 in all.
  //   column x=13: 3 from column x=10; it crosses the reference rows, so y=11,12 (1, 2 from
  //         y=10) and y=17,18 (2, 1 from y=19) match; y=13..16 do not -> 4 unmatched.
  //   column x=22: 3 from column x=19, and sqrt(9 + 1) > 2 from the row ends -> 8 unmatched.
  //  Precision (36 - 14) / 36 = 22/36; the reference against the prediction is the mirror
  //  image (shift -3), so recall is 22/36 too, and F = 22/36.
  EXPECT_NEAR(boundary_f(square(40, 13, 10, 10), ref, 2), 22.0 / 36, 1e-12);
  // Far away: 0.
  EXPECT_DOUBLE_EQ(boundary_f(square(40, 28, 28, 10), ref, 2), 0.0);
}

TEST(Metrics, RefusesMismatchedInputs) {
  EXPECT_THROW(score_image(cv::Mat::zeros(4, 4, CV_8UC1), cv::Mat::zeros(4, 5, CV_8UC1)), Error);
  EXPECT_THROW(score_image(cv::Mat::zeros(4, 4, CV_16UC1), cv::Mat::zeros(4, 4, CV_8UC1)), Error);
  EXPECT_THROW(score_image(cv::Mat::zeros(4, 4, CV_8UC1), cv::Mat()), Error);
}

}  // namespace
}  // namespace unetseg
