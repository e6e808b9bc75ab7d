// unetseg-eval: mask quality of a model on a folder of images with reference masks, through the
// element's own frame path (VideoSegmenter: the model, then the soft bilinear upscale to the
// image size with the refinements asked for), scored with libunetseg's metrics
// (lib/unetseg/metrics.hpp says how each figure is computed).
//
//   unetseg-eval --model NAME|PATH --images DIR --masks DIR [--limit N] [--csv FILE]
//                [--sheet FILE.png] [--threshold 0.5] [--backend cpu] [--min-island F]
//                [--smooth-contour R] [--feather N] [--guided-radius R [--guided-eps E]]
//                [--soft-mask=false]
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "flags.hpp"
#include "unetseg/error.hpp"
#include "unetseg/frame.hpp"
#include "unetseg/metrics.hpp"
#include "unetseg/video_segmenter.hpp"

namespace fs = std::filesystem;

namespace {

using unetseg_tools::UsageError;

std::string usage(const unetseg::VideoSegmenter::Options &defaults) {
  return "usage: unetseg-eval --model NAME|M.onnx --images DIR --masks DIR [--limit N] [--csv FILE]\n"
         "                    [--sheet FILE.png] [--backend B] [--threshold T] [--soft-mask=false]\n"
         "                    [--min-island F] [--smooth-contour R] [--feather N]\n"
         "                    [--guided-radius R [--guided-eps E]]\n"
         "\n"
         "Scores a segmentation model against reference masks, segmenting each image exactly as the\n"
         "unetseg element segments a frame (the same VideoSegmenter path; by default the soft mask,\n"
         "bilinear upscale to the image's size). The mask flags are the element's properties.\n"
         "\n" +
         unetseg_tools::ModelFlags().usage() +
         "  --images DIR       images *.jpg, *.jpeg, *.png\n"
         "  --masks DIR        reference masks, one per image with the same file stem (any\n"
         "                     extension), foreground > 127; another size is resized (nearest)\n"
         "  --limit N          the first N pairs only (in natural order of the stems)\n"
         "  --csv FILE         per-image rows: stem,width,height,mae,iou,boundary_f,inference_ms\n"
         "  --sheet FILE.png   the 3 worst and 3 best images by IoU: input | reference |\n"
         "                     prediction | error (false positives red, false negatives blue)\n"
         "\n"
         "The mask scored (lib/unetseg/mask_filter.hpp, MaskOptions, says what each does):\n" +
         unetseg_tools::frame_flags_usage(unetseg_tools::kMaskFlags, defaults) +
         "  --help             this text\n"
         "\n"
         "--threshold also sets the hard mask of IoU, boundary F and the sheet (p >= T), and where\n"
         "--min-island cuts components. --soft-mask=false scores the element's default hard mask:\n"
         "0/255 at the threshold before --smooth-contour and --feather; MAE and max F of that mask.\n"
         "\n"
         "Figures: MAE of the soft map; max F-beta (beta^2 = 0.3) over 256 thresholds of precision\n"
         "and recall averaged over images; mean IoU; mean boundary F1 (2 px tolerance); mean\n"
         "inference time (preprocess + forward + postprocess). Summary on stdout, progress on\n"
         "stderr.\n";
}

int fail(const std::string &message) {
  std::fprintf(stderr, "unetseg-eval: %s\n", message.c_str());
  return 1;
}

std::string lower(std::string s) {
  for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool all_digits(const std::string &s) {
  return !s.empty() && s.size() < 18 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// Numeric stems by value ("2" before "10"), numbers before other names, others by name.
bool natural_less(const std::string &a, const std::string &b) {
  const bool da = all_digits(a), db = all_digits(b);
  if (da && db) return std::stoll(a) != std::stoll(b) ? std::stoll(a) < std::stoll(b) : a < b;
  if (da != db) return da;
  return a < b;
}

struct Pair {
  std::string stem, image, mask;
};

struct Row {
  std::string stem;
  int width = 0, height = 0;
  double mae = 0, iou = 0, boundary_f = 0, inference_ms = 0;
};

// One contact-sheet row: input | reference | prediction | error, each scaled to `h` pixels high.
struct SheetRow {
  Row row;
  cv::Mat input, reference, soft;  // BGR, 8U 0/255, 8U alpha
};

cv::Mat labelled(const cv::Mat &bgr, int h, const std::string &text) {
  cv::Mat out;
  const int w = std::max(1, bgr.cols * h / std::max(1, bgr.rows));
  cv::resize(bgr, out, cv::Size(w, h), 0, 0, cv::INTER_AREA);
  // One line of label per '\n'-separated part, white on a black outline.
  int y = 16;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    cv::putText(out, line, cv::Point(4, y), cv::FONT_HERSHEY_SIMPLEX, 0.45, cv::Scalar(0, 0, 0),
                3, cv::LINE_AA);
    cv::putText(out, line, cv::Point(4, y), cv::FONT_HERSHEY_SIMPLEX, 0.45,
                cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
    y += 18;
    start = end + 1;
  }
  return out;
}

cv::Mat sheet_row(const SheetRow &r, int level, int h) {
  cv::Mat ref_bgr, soft_bgr, error;
  cv::cvtColor(r.reference, ref_bgr, cv::COLOR_GRAY2BGR);
  cv::cvtColor(r.soft, soft_bgr, cv::COLOR_GRAY2BGR);
  const cv::Mat pred = r.soft >= level, ref = r.reference > 127;
  error = r.input * 0.35;  // correct pixels: the photo, dimmed
  error.setTo(cv::Scalar(0, 0, 255), pred & ~ref);  // false positive: red
  error.setTo(cv::Scalar(255, 0, 0), ~pred & ref);  // false negative: blue
  char text[128];
  std::snprintf(text, sizeof text, "%s\nIoU %.3f\nBF %.3f", r.row.stem.c_str(), r.row.iou,
                r.row.boundary_f);
  std::vector<cv::Mat> panels = {labelled(r.input, h, text), labelled(ref_bgr, h, "reference"),
                                 labelled(soft_bgr, h, "prediction"),
                                 labelled(error, h, "error\nFP red\nFN blue")};
  cv::Mat out;
  cv::hconcat(panels, out);
  return out;
}

bool write_sheet(const std::string &path, const std::vector<SheetRow> &rows, int level) {
  const int h = 180;
  std::vector<cv::Mat> lines;
  int width = 0;
  for (const SheetRow &r : rows) {
    lines.push_back(sheet_row(r, level, h));
    width = std::max(width, lines.back().cols);
  }
  for (cv::Mat &l : lines)
    if (l.cols < width)
      cv::copyMakeBorder(l, l, 0, 0, 0, width - l.cols, cv::BORDER_CONSTANT, cv::Scalar(40, 40, 40));
  cv::Mat sheet;
  cv::vconcat(lines, sheet);
  try {
    return cv::imwrite(path, sheet);
  } catch (const cv::Exception &) {
    return false;
  }
}

}  // namespace

int main(int argc, char **argv) {
  unetseg::VideoSegmenter::Options options;
  options.mask.soft = true;  // this tool's default: the soft map, as the literature scores it
  const unetseg::VideoSegmenter::Options defaults = options;
  unetseg_tools::ModelFlags model;
  std::string images_dir, masks_dir, csv_path, sheet_path;
  long limit = -1;
  try {
    unetseg_tools::Args args(argc, argv);
    while (args.next()) {
      const std::string &a = args.flag();
      if (a == "--help" || a == "-h") {
        std::fputs(usage(defaults).c_str(), stdout);
        return 0;
      } else if (a == "--images") {
        images_dir = args.value();
      } else if (a == "--masks") {
        masks_dir = args.value();
      } else if (a == "--csv") {
        csv_path = args.value();
      } else if (a == "--sheet") {
        sheet_path = args.value();
      } else if (a == "--limit") {
        limit = args.integer(1, 1 << 30);
      } else if (!model.parse(args) &&
                 !unetseg_tools::parse_frame_flag(args, unetseg_tools::kMaskFlags, options)) {
        args.unknown();
      }
    }
    if (model.model.empty()) throw UsageError("--model is required");
    if (images_dir.empty()) throw UsageError("--images is required");
    if (masks_dir.empty()) throw UsageError("--masks is required");
  } catch (const UsageError &e) {
    std::fprintf(stderr, "unetseg-eval: %s\n%s", e.what(), usage(defaults).c_str());
    return 2;
  }
  const double threshold = options.mask.threshold;
  const unetseg::MaskOptions &refine = options.mask;

  std::error_code ec;
  if (!fs::is_directory(images_dir, ec)) return fail(images_dir + ": no such directory (--images)");
  if (!fs::is_directory(masks_dir, ec)) return fail(masks_dir + ": no such directory (--masks)");

  // Pair by stem: images *.jpg/*.jpeg/*.png, masks any extension (one per stem).
  std::map<std::string, std::vector<std::string>> masks;
  for (const auto &e : fs::directory_iterator(masks_dir))
    if (e.is_regular_file()) masks[e.path().stem().string()].push_back(e.path().string());
  std::vector<Pair> pairs;
  std::vector<std::string> unpaired;
  for (const auto &e : fs::directory_iterator(images_dir)) {
    if (!e.is_regular_file()) continue;
    const std::string ext = lower(e.path().extension().string());
    if (ext != ".jpg" && ext != ".jpeg" && ext != ".png") continue;
    const std::string stem = e.path().stem().string();
    auto it = masks.find(stem);
    if (it == masks.end())
      unpaired.push_back(e.path().filename().string());
    else if (it->second.size() > 1)
      return fail(masks_dir + ": more than one mask for '" + stem + "': " + it->second[0] +
                  " and " + it->second[1]);
    else
      pairs.push_back({stem, e.path().string(), it->second[0]});
  }
  std::sort(pairs.begin(), pairs.end(),
            [](const Pair &a, const Pair &b) { return natural_less(a.stem, b.stem); });
  if (pairs.empty())
    return fail("no image in " + images_dir + " (*.jpg, *.jpeg, *.png) has a mask with the same "
                "stem in " + masks_dir);
  if (!unpaired.empty())
    std::fprintf(stderr, "unetseg-eval: %zu image(s) without a mask skipped (e.g. %s)\n",
                 unpaired.size(), unpaired.front().c_str());
  if (limit > 0 && static_cast<size_t>(limit) < pairs.size()) pairs.resize(limit);

  const int level = unetseg::alpha_level(threshold);
  unetseg::Accumulator acc;
  std::vector<Row> rows;
  std::vector<SheetRow> kept;  // inputs for the sheet (only when asked for)
  double sum_ms = 0;
  std::string model_name;
  std::string backend_used;
  try {
    unetseg::VideoSegmenter video(model.load("unetseg-eval"));
    model_name = video.segmenter().spec().name;
    backend_used = unetseg::to_string(video.segmenter().active_backend());
    for (size_t i = 0; i < pairs.size(); ++i) {
      const Pair &p = pairs[i];
      // imread gives packed BGR, one of the library's layouts: no conversion.
      cv::Mat bgr = cv::imread(p.image, cv::IMREAD_COLOR);
      if (bgr.empty())
        return fail(p.image + ": cannot read it as an image (not a format OpenCV decodes?)");
      cv::Mat ref = cv::imread(p.mask, cv::IMREAD_GRAYSCALE);
      if (ref.empty())
        return fail(p.mask + ": cannot read it as a mask image (not a format OpenCV decodes?)");
      if (ref.size() != bgr.size())
        cv::resize(ref, ref, bgr.size(), 0, 0, cv::INTER_NEAREST_EXACT);
      const unetseg::FrameView view{bgr.data, bgr.cols, bgr.rows, bgr.step[0],
                                    unetseg::PixelLayout::BGR};
      // Each photo is a stream of its own (nothing carried over from the last one), through
      // the element's frame path: alpha = round(255 p), bilinear to the frame (or guided by
      // it), then the refinements asked for.
      video.reset();
      const unetseg::FrameResult &r = video.process(view, static_cast<std::int64_t>(i), options);
      const double ms = r.times.total_ms();
      const cv::Mat &soft = r.alpha;
      const unetseg::ImageScores s = unetseg::score_image(soft, ref, level, 2);
      acc.add(s);
      sum_ms += ms;
      Row row{p.stem, bgr.cols, bgr.rows, s.mae, s.iou, s.boundary_f, ms};
      rows.push_back(row);
      if (!sheet_path.empty()) kept.push_back({row, bgr, ref, soft.clone()});
      std::fprintf(stderr,
                   "unetseg-eval: [%zu/%zu] %s %dx%d  MAE %.4f  IoU %.4f  boundary F %.4f  "
                   "%.1f ms\n",
                   i + 1, pairs.size(), p.stem.c_str(), bgr.cols, bgr.rows, s.mae, s.iou,
                   s.boundary_f, ms);
    }
  } catch (const std::exception &e) {
    return fail(e.what());
  }

  if (!csv_path.empty()) {
    std::ofstream csv(csv_path);
    if (!csv) return fail(csv_path + ": cannot write it");
    csv << "stem,width,height,mae,iou,boundary_f,inference_ms\n";
    char line[256];
    for (const Row &r : rows) {
      std::snprintf(line, sizeof line, "%s,%d,%d,%.6f,%.6f,%.6f,%.3f\n", r.stem.c_str(), r.width,
                    r.height, r.mae, r.iou, r.boundary_f, r.inference_ms);
      csv << line;
    }
    if (!csv) return fail(csv_path + ": cannot write it");
  }

  if (!sheet_path.empty()) {
    std::vector<size_t> order(kept.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return kept[a].row.iou < kept[b].row.iou; });
    std::vector<size_t> chosen;
    for (size_t i = 0; i < std::min<size_t>(3, order.size()); ++i) chosen.push_back(order[i]);
    for (size_t i = order.size() >= 3 ? order.size() - 3 : 0; i < order.size(); ++i)
      if (std::find(chosen.begin(), chosen.end(), order[i]) == chosen.end())
        chosen.push_back(order[i]);
    std::vector<SheetRow> sheet_rows;
    for (size_t i : chosen) sheet_rows.push_back(kept[i]);
    if (!write_sheet(sheet_path, sheet_rows, level))
      return fail(sheet_path + ": cannot write it (no such directory, or not a .png?)");
  }

  int best_level = 0;
  const double max_f = acc.max_f_beta(&best_level);
  std::printf("unetseg-eval: %s (%s) on %zu image(s) from %s\n", model_name.c_str(),
              model.model.c_str(), acc.count(), images_dir.c_str());
  if (refine.min_island > 0 || refine.smooth_contour > 0 || refine.feather != 0 ||
      refine.guided_radius > 0)
    std::printf("refinement: min-island %g, guided-radius %d (eps %g), smooth-contour %d, "
                "feather %d\n",
                refine.min_island, refine.guided_radius, refine.guided_eps,
                refine.smooth_contour, refine.feather);
  if (!refine.soft) std::printf("scored: the hard mask at threshold %g\n", threshold);
  std::printf("%-18s %-10s %s\n", "metric", "value", "note");
  std::printf("%-18s %-10zu %s\n", "images", acc.count(), "image/mask pairs scored");
  std::printf("%-18s %-10.6f %s\n", "mae", acc.mean_mae(), "mean absolute error, soft map");
  std::printf("%-18s %-10.6f beta^2 0.3, best threshold %d/255\n", "max_fbeta", max_f,
              best_level);
  std::printf("%-18s %-10.6f at threshold %g (alpha >= %d)\n", "mean_iou", acc.mean_iou(),
              threshold, level);
  std::printf("%-18s %-10.6f boundary F1, 2 px tolerance\n", "mean_boundary_f",
              acc.mean_boundary_f());
  std::printf("%-18s %-10.2f preprocess + forward + postprocess, %s\n", "mean_inference_ms",
              acc.count() ? sum_ms / acc.count() : 0.0, backend_used.c_str());
  return 0;
}
