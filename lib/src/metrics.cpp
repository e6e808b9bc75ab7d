#include "unetseg/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include <opencv2/imgproc.hpp>

#include "unetseg/error.hpp"
#include "unetseg/mask_filter.hpp"

namespace unetseg {

namespace {

std::string describe(const cv::Mat& m) {
  return std::to_string(m.cols) + "x" + std::to_string(m.rows) + " " +
         cv::typeToString(m.type());
}

double ratio(double num, double den, double if_zero) { return den > 0 ? num / den : if_zero; }

}  // namespace

int alpha_level(double threshold) {
  float t = threshold > 0 ? static_cast<float>(std::min(threshold, 1.0)) : 0.f;  // NaN -> 0
  cv::Mat level;
  MaskFilter::to_alpha8(cv::Mat(1, 1, CV_32FC1, &t), level);
  return level.at<std::uint8_t>(0, 0);
}

cv::Mat mask_boundary(const cv::Mat& binary) {
  cv::Mat fg = binary != 0, eroded;
  // erode's default border is the maximum: the image edge does not make a boundary.
  cv::erode(fg, eroded, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(3, 3)));
  return fg & ~eroded;
}

double boundary_f(const cv::Mat& pred_binary, const cv::Mat& ref_binary, int tolerance) {
  if (pred_binary.size() != ref_binary.size() || pred_binary.type() != CV_8UC1 ||
      ref_binary.type() != CV_8UC1)
    throw Error("boundary_f: masks must be CV_8UC1 of one size, got " + describe(pred_binary) +
                " and " + describe(ref_binary));
  const cv::Mat pb = mask_boundary(pred_binary), rb = mask_boundary(ref_binary);
  const int np = cv::countNonZero(pb), nr = cv::countNonZero(rb);
  if (np == 0 && nr == 0) return 1.0;
  if (np == 0 || nr == 0) return 0.0;
  cv::Mat pd, rd;  // dilated copies (not headers of pb/rb: dilate would write into them)
  if (tolerance <= 0) {
    pd = pb;
    rd = rb;
  } else {
    // Euclidean disk: offsets with dx^2 + dy^2 <= tolerance^2 (OpenCV's MORPH_ELLIPSE is not
    // quite that: its 5x5 holds (2, 1)).
    cv::Mat disk(2 * tolerance + 1, 2 * tolerance + 1, CV_8UC1);
    for (int y = -tolerance; y <= tolerance; ++y)
      for (int x = -tolerance; x <= tolerance; ++x)
        disk.at<std::uint8_t>(y + tolerance, x + tolerance) =
            x * x + y * y <= tolerance * tolerance ? 1 : 0;
    cv::dilate(pb, pd, disk);
    cv::dilate(rb, rd, disk);
  }
  const double precision = cv::countNonZero(pb & rd) / static_cast<double>(np);
  const double recall = cv::countNonZero(rb & pd) / static_cast<double>(nr);
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

double f_beta(double precision, double recall, double beta_squared) {
  const double den = beta_squared * precision + recall;
  return den > 0 ? (1 + beta_squared) * precision * recall / den : 0.0;
}

ImageScores score_image(const cv::Mat& prediction, const cv::Mat& reference, int iou_level,
                        int boundary_tolerance) {
  if (reference.empty() || reference.type() != CV_8UC1)
    throw Error("score_image: the reference must be a non-empty CV_8UC1 Mat, got " +
                describe(reference));
  if (prediction.size() != reference.size() ||
      (prediction.type() != CV_8UC1 && prediction.type() != CV_32FC1))
    throw Error("score_image: the prediction must be CV_8UC1 or CV_32FC1 at the reference's "
                "size " + describe(reference) + ", got " + describe(prediction));
  if (iou_level < 0 || iou_level > 255)
    throw Error("score_image: the IoU level must be in 0..255, got " + std::to_string(iou_level));
  ImageScores s;
  const cv::Mat ref = reference > 127;  // 0/255
  cv::Mat alpha, prob, ref_f;
  if (prediction.type() == CV_8UC1) {
    alpha = prediction;
    prediction.convertTo(prob, CV_64F, 1.0 / 255);
  } else {
    MaskFilter::to_alpha8(prediction, alpha);
    prediction.convertTo(prob, CV_64F);
  }
  ref.convertTo(ref_f, CV_64F, 1.0 / 255);
  cv::Mat diff;
  cv::absdiff(prob, ref_f, diff);
  s.mae = cv::mean(diff)[0];

  // Histograms of alpha over reference foreground and background; the counts at alpha >= t are
  // suffix sums.
  std::array<double, kMetricLevels> hist_fg{}, hist_bg{};
  for (int y = 0; y < alpha.rows; ++y) {
    const std::uint8_t* a = alpha.ptr<std::uint8_t>(y);
    const std::uint8_t* r = ref.ptr<std::uint8_t>(y);
    for (int x = 0; x < alpha.cols; ++x) (r[x] ? hist_fg : hist_bg)[a[x]] += 1;
  }
  double total_fg = 0;
  for (double v : hist_fg) total_fg += v;
  double tp = 0, fp = 0;
  for (int t = kMetricLevels - 1; t >= 0; --t) {
    tp += hist_fg[t];
    fp += hist_bg[t];
    s.precision[t] = ratio(tp, tp + fp, 0.0);
    s.recall[t] = ratio(tp, total_fg, 0.0);
  }

  const cv::Mat pred = alpha >= iou_level;
  const double inter = cv::countNonZero(pred & ref), uni = cv::countNonZero(pred | ref);
  s.iou = ratio(inter, uni, 1.0);
  s.boundary_f = boundary_f(pred, ref, boundary_tolerance);
  return s;
}

void Accumulator::add(const ImageScores& s) {
  ++count_;
  sum_mae_ += s.mae;
  sum_iou_ += s.iou;
  sum_boundary_f_ += s.boundary_f;
  for (int t = 0; t < kMetricLevels; ++t) {
    sum_precision_[t] += s.precision[t];
    sum_recall_[t] += s.recall[t];
  }
}

double Accumulator::mean_mae() const { return ratio(sum_mae_, count_, 0.0); }
double Accumulator::mean_iou() const { return ratio(sum_iou_, count_, 0.0); }
double Accumulator::mean_boundary_f() const { return ratio(sum_boundary_f_, count_, 0.0); }
double Accumulator::mean_precision(int t) const {
  return ratio(sum_precision_.at(t), count_, 0.0);
}
double Accumulator::mean_recall(int t) const { return ratio(sum_recall_.at(t), count_, 0.0); }

double Accumulator::max_f_beta(int* best_level, double beta_squared) const {
  double best = 0;
  int best_t = 0;
  for (int t = 0; t < kMetricLevels; ++t) {
    const double f = f_beta(mean_precision(t), mean_recall(t), beta_squared);
    if (f > best) {
      best = f;
      best_t = t;
    }
  }
  if (best_level) *best_level = best_t;
  return best;
}

}  // namespace unetseg
