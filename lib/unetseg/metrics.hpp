// Mask quality against a reference mask: the figures of the salient-object / portrait
// segmentation literature, computed per image and gathered over a data set (unetseg-eval).
//
// Conventions (those of the common SOD evaluation code, e.g. Fan et al.'s toolbox and
// py_sod_metrics):
//  * The prediction is the soft map at the reference's size: CV_8UC1 alpha 0..255 (what
//    MaskFilter draws with soft=true; probability = alpha / 255) or CV_32FC1 in [0,1] (turned
//    into alpha exactly as MaskFilter::to_alpha8 does for the thresholded figures).
//  * The reference is CV_8UC1; foreground where it is > 127.
//  * MAE: mean |p - g| over the pixels, p the soft probability, g 0/1.
//  * Precision/recall at the 256 thresholds t = 0..255: foreground where alpha >= t (t = 0 is
//    everything). Precision = TP / (TP + FP), 0 when nothing is predicted; recall = TP / (TP +
//    FN), 0 when the reference is empty. Over a data set precision and recall are averaged over
//    the images per threshold, F-beta = (1 + b2) P R / (b2 P + R) (0 when P = R = 0) is taken
//    per threshold on those means, and max F-beta is the largest, b2 = beta^2 = 0.3.
//  * IoU at a threshold level L (alpha >= L; 0.5 -> L = 128 as MaskFilter rounds it):
//    |pred & ref| / |pred | ref|, 1 when both are empty. Data set: mean over images.
//  * Boundary F (as DAVIS's F measure): the boundary of a binary mask is its foreground pixels
//    with a background pixel among their 8 neighbours (the image edge is not a boundary).
//    Boundary precision = share of predicted boundary pixels within `tolerance` pixels
//    (Euclidean disk) of a reference boundary pixel, recall the same the other way; F =
//    2PR / (P + R). Both boundaries empty: 1; only one empty: 0. Prediction binarised at the
//    IoU level. Data set: mean over images.
#pragma once

#include <array>
#include <cstddef>
#include <vector>

#include <opencv2/core.hpp>

namespace unetseg {

constexpr int kMetricLevels = 256;
constexpr double kFBetaSquared = 0.3;

struct ImageScores {
  double mae = 0;
  double iou = 0;
  double boundary_f = 0;
  std::array<double, kMetricLevels> precision{};  // at alpha >= t, t = 0..255
  std::array<double, kMetricLevels> recall{};
};

// The 8-bit level a probability threshold becomes, rounded exactly as MaskFilter rounds it
// (0.5 -> 128): the hard mask is alpha >= level.
int alpha_level(double threshold);

// Binary masks' boundary (CV_8UC1 0/255 in, 0/255 out), as used by boundary_f.
cv::Mat mask_boundary(const cv::Mat& binary);
// Boundary F1 of two binary masks (non-zero = foreground) of one size.
double boundary_f(const cv::Mat& pred_binary, const cv::Mat& ref_binary, int tolerance = 2);

// All per-image figures. `prediction` CV_8UC1 alpha or CV_32FC1 probability, `reference`
// CV_8UC1 of the same size. Throws unetseg::Error on wrong types or sizes.
ImageScores score_image(const cv::Mat& prediction, const cv::Mat& reference, int iou_level = 128,
                        int boundary_tolerance = 2);

// F-beta of one precision/recall pair (0 when both are 0).
double f_beta(double precision, double recall, double beta_squared = kFBetaSquared);

class Accumulator {
 public:
  void add(const ImageScores& scores);
  std::size_t count() const { return count_; }
  double mean_mae() const;
  double mean_iou() const;
  double mean_boundary_f() const;
  // Mean precision / recall over the images at threshold t.
  double mean_precision(int t) const;
  double mean_recall(int t) const;
  // max over t of f_beta(mean_precision(t), mean_recall(t)); the first best t into *best_level.
  double max_f_beta(int* best_level = nullptr, double beta_squared = kFBetaSquared) const;

 private:
  std::size_t count_ = 0;
  double sum_mae_ = 0, sum_iou_ = 0, sum_boundary_f_ = 0;
  std::array<double, kMetricLevels> sum_precision_{};
  std::array<double, kMetricLevels> sum_recall_{};
};

}  // namespace unetseg
