// The library section: the element's own frame path (VideoSegmenter, with the element's settings
// from the command line) timed per stage, frame size and drawing mode, with heap allocations
// per frame, beside a bare net.forward of the same network.
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>

#include "bench.hpp"

namespace bench {

namespace {

using unetseg::VideoSegmenter;

void count(StageSeries& s, Allocations before) {
  const Allocations made = allocations_so_far() - before;
  s.allocations.count += made.count;
  s.allocations.bytes += made.bytes;
}

// Options for a VideoSegmenter that never runs the model after its first frame: what the
// element does on the frames between inferences (interval, skip-threshold, live).
VideoSegmenter::Options carried(VideoSegmenter::Options o) {
  o.interval = INT_MAX;
  o.skip_threshold = 0;
  return o;
}

// The refinements at the values recommended for the element (see MaskOptions), scaled to the
// frame where they are in pixels: the guided radius about 2x the upscale factor, the rest a
// little more than one model pixel; then the thumbnail (skip-threshold's and smoothing's input)
// and the smoothing itself. Each on a carried frame, so each row is the frame path with it.
std::vector<RefineStep> refine_steps(const NamedSize& size, const unetseg::ModelSpec& spec,
                                     const VideoSegmenter::Options& frame) {
  const double factor = std::max(static_cast<double>(size.size.width) / spec.input_width,
                                 static_cast<double>(size.size.height) / spec.input_height);
  const int guided = std::max(2, static_cast<int>(std::lround(2 * factor)));
  const int pixels = std::max(1, static_cast<int>(std::lround(factor / 2)));
  VideoSegmenter::Options base = carried(frame);
  base.mask.soft = false;
  base.mask.min_island = 0;
  base.mask.guided_radius = base.mask.smooth_contour = base.mask.feather = 0;
  base.smoothing = 0;
  std::vector<RefineStep> steps(7);
  for (auto& step : steps) step.options = base;
  char label[64];
  steps[0].name = "islands";
  steps[0].label = "islands 1%";
  steps[0].options.mask.min_island = 0.01;
  steps[1].name = "guided";
  std::snprintf(label, sizeof label, "guided %d", guided);
  steps[1].label = label;
  steps[1].options.mask.guided_radius = guided;
  steps[2].name = "smooth";
  std::snprintf(label, sizeof label, "smooth %d", pixels);
  steps[2].label = label;
  steps[2].options.mask.smooth_contour = pixels;
  steps[3].name = "feather";
  std::snprintf(label, sizeof label, "feather %d", pixels);
  steps[3].label = label;
  steps[3].options.mask.feather = pixels;
  steps[4].name = "all";
  steps[4].label = "all four";
  steps[4].options.mask = steps[0].options.mask;
  steps[4].options.mask.guided_radius = guided;
  steps[4].options.mask.smooth_contour = steps[4].options.mask.feather = pixels;
  steps[5].name = "thumbnail";
  steps[5].label = "thumbnail";
  steps[5].options.skip_threshold = 0.5;  // computed every frame, never reached (interval)
  steps[6].name = "temporal";
  steps[6].label = "smoothing 0.7";
  steps[6].options.smoothing = 0.7;
  return steps;
}

}  // namespace

LibraryResult bench_library(const std::shared_ptr<unetseg::Segmenter>& seg,
                            const NamedSize& size, const std::vector<cv::Mat>& photos,
                            const Options& opt) {
  LibraryResult r;
  r.size = size;
  r.frames = opt.frames;
  std::vector<cv::Mat> sources;
  for (const cv::Mat& photo : photos) {
    cv::Mat scaled;
    cv::resize(photo, scaled, size.size, 0, 0, cv::INTER_AREA);
    sources.push_back(scaled);
  }
  cv::Mat frame = sources[0].clone();
  const unetseg::FrameView view = view_of(frame);

  // Every frame inferred (the stage times), and every frame carried (the rest of the path).
  VideoSegmenter::Options inferred = opt.frame;
  inferred.interval = 1;
  inferred.skip_threshold = 0;
  const VideoSegmenter::Options carry = carried(opt.frame);
  VideoSegmenter inferring(seg), carrying(seg);
  r.refine = seg->spec().multi_class() ? std::vector<RefineStep>()
                                       : refine_steps(size, seg->spec(), opt.frame);
  std::vector<std::unique_ptr<VideoSegmenter>> refiners;
  for (std::size_t i = 0; i < r.refine.size(); ++i)
    refiners.emplace_back(new VideoSegmenter(seg));

  for (int i = 0; i < opt.warmup + opt.frames; ++i) {
    const bool timed = i >= opt.warmup;
    sources[i % sources.size()].copyTo(frame);
    Allocations a = allocations_so_far();
    auto t0 = Clock::now();
    const unetseg::FrameResult& fr = inferring.process(view, i, inferred);
    const double process_ms = ms_since(t0);
    if (timed) {
      count(r.run, a);  // the whole process() of an inferred frame
      r.run.ms.push_back(fr.times.total_ms());
      r.preprocess.ms.push_back(fr.times.preprocess_ms);
      r.forward.ms.push_back(fr.times.forward_ms);
      r.postprocess.ms.push_back(fr.times.postprocess_ms);
      r.mask.ms.push_back(process_ms - fr.times.total_ms());
    }
    a = allocations_so_far();
    t0 = Clock::now();
    carrying.process(view, i, carry);
    if (timed) {
      r.carried.ms.push_back(ms_since(t0));
      count(r.carried, a);
    }
    // Each refinement alone, on a carried frame, with a VideoSegmenter of its own as an element
    // would have; the smoothing row takes the inferred frame's result, as a fresh mask.
    for (std::size_t k = 0; k < r.refine.size(); ++k) {
      RefineStep& step = r.refine[k];
      unetseg::SegmentResult result;
      if (step.name == "temporal") {
        cv::Mat thumbnail;
        unetseg::frame_thumbnail(view, seg->output_size(), thumbnail);
        result.assign({fr.model_mask, fr.class_map, {}}, thumbnail, i, fr.times);
      }
      a = allocations_so_far();
      t0 = Clock::now();
      if (step.name == "temporal")
        refiners[k]->process_inferred(view, result, step.options);
      else
        refiners[k]->process(view, i, step.options);
      if (timed) {
        step.series.ms.push_back(ms_since(t0));
        count(step.series, a);
      }
    }
    for (Mode m : opt.modes) {
      sources[i % sources.size()].copyTo(frame);
      VideoSegmenter::Options drawn = opt.frame;
      drawn.mode = m;
      a = allocations_so_far();
      t0 = Clock::now();
      inferring.draw(view, drawn);
      if (timed) {
        r.composite[m].ms.push_back(ms_since(t0));
        count(r.composite[m], a);
      }
    }
  }
  // The same network without unetseg around it, right after, on the same input.
  cv::Mat blob;
  seg->preprocess(view, blob);
  BareForward bare(*seg, blob);
  r.bare_forward.ms = bare.times(opt.frames, &r.bare_forward.allocations);
  return r;
}

void print_library(const std::vector<LibraryResult>& results, const Options& opt) {
  if (results.empty()) return;
  const std::string properties = unetseg_tools::element_properties(opt.frame);
  std::printf("\nLibrary: per frame, ms median / p95 over %d frames (RGBA) through VideoSegmenter,\n"
              "the element's frame path%s%s; frame path: process() besides the model on an\n"
              "inferred frame; carried: process() on a frame the model does not see\n",
              opt.frames, properties.empty() ? "" : ", with ", properties.c_str());
  std::printf("%-10s %-16s %-16s %-16s %-16s %-16s %-16s\n", "size", "preprocess", "forward",
              "postprocess", "frame path", "carried", "bare forward");
  for (const auto& r : results)
    std::printf("%-10s %-16s %-16s %-16s %-16s %-16s %-16s\n", r.size.name.c_str(),
                fmt(summarize(r.preprocess.ms)).c_str(), fmt(summarize(r.forward.ms)).c_str(),
                fmt(summarize(r.postprocess.ms)).c_str(), fmt(summarize(r.mask.ms)).c_str(),
                fmt(summarize(r.carried.ms)).c_str(), fmt(summarize(r.bare_forward.ms)).c_str());

  std::printf("\nComposite (draw()), ms median / p95; in brackets everything but forward\n"
              "(preprocess + postprocess + frame path + composite, medians) as %% of the forward\n"
              "median\n");
  std::printf("%-10s", "size");
  for (Mode m : opt.modes) std::printf(" %-24s", unetseg::to_string(m));
  std::printf("\n");
  for (const auto& r : results) {
    const double fwd = summarize(r.forward.ms).median;
    const double common = summarize(r.preprocess.ms).median +
                          summarize(r.postprocess.ms).median + summarize(r.mask.ms).median;
    std::printf("%-10s", r.size.name.c_str());
    for (Mode m : opt.modes) {
      const Summary c = summarize(r.composite.at(m).ms);
      char cell[64];
      std::snprintf(cell, sizeof cell, "%s [%.1f%%]", fmt(c).c_str(),
                    100.0 * (common + c.median) / fwd);
      std::printf(" %-24s", cell);
    }
    std::printf("\n");
  }

  std::printf("\nHeap allocations per frame after warm-up (count): process() of an inferred frame\n"
              "(preprocess + forward + postprocess + frame path), beside a bare forward of the same\n"
              "network; process() of a carried frame; draw() per mode\n");
  std::printf("%-10s %-12s %-14s %-8s", "size", "process()", "bare forward", "carried");
  for (Mode m : opt.modes) std::printf(" %-8s", unetseg::to_string(m));
  std::printf("\n");
  for (const auto& r : results) {
    std::printf("%-10s %-12.1f %-14.1f %-8.1f", r.size.name.c_str(),
                per_frame(r.run.allocations, r.frames),
                per_frame(r.bare_forward.allocations, r.frames),
                per_frame(r.carried.allocations, r.frames));
    for (Mode m : opt.modes)
      std::printf(" %-8.1f", per_frame(r.composite.at(m).allocations, r.frames));
    std::printf("\n");
  }

  if (results.front().refine.empty()) return;  // a multi-class model: no refinement
  std::printf("\nRefinement, ms median / p95 per frame (heap allocations per frame): process() of a\n"
              "carried frame with each step alone (hard mask, the frame as guide; compare\n"
              "'carried' above), radii in pixels scaled to the frame (the guided one about 2x\n"
              "frame / model size); thumbnail: skip-threshold's and smoothing's input; smoothing:\n"
              "process_inferred() of a fresh mask with smoothing 0.7\n");
  std::printf("%-10s", "size");
  for (const auto& step : results.front().refine) std::printf(" %-20s", step.name.c_str());
  std::printf("\n");
  for (const auto& r : results) {
    std::printf("%-10s", "");
    for (const auto& step : r.refine) std::printf(" %-20s", step.label.c_str());
    std::printf("\n%-10s", r.size.name.c_str());
    for (const auto& step : r.refine) {
      char cell[64];
      std::snprintf(cell, sizeof cell, "%s (%.1f)", fmt(summarize(step.series.ms)).c_str(),
                    per_frame(step.series.allocations, r.frames));
      std::printf(" %-20s", cell);
    }
    std::printf("\n");
  }
}

}  // namespace bench
