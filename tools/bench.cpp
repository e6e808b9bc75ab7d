// unetseg-bench: how fast unetseg is, and what it costs besides the network itself.
//
// Five sections, each measured in the same run as what it is compared with (these machines are
// shared and noisy: ratios side by side, never absolute numbers from different runs):
//   library  per-stage times through the element's own library path (Segmenter, MaskFilter,
//            Compositor) at each frame size and mode, median and p95, the non-forward overhead as
//            a share of forward, and heap allocations per frame (alloc_counter.hpp says how they
//            are counted)
//   element  a real pipeline (a clip decoded and scaled -> unetseg -> fakesink sync=false):
//            frames per second and the element's per-frame latency, against a bare net.forward
//            loop on the same model right before it
//   peer     the same U2-Net-family network in PyTorch on the CPU (tools/bench_peer.py), forward
//            and the official U2-Net frame pipeline, against unetseg on the same exported ONNX
//   memory   resident memory sampled while a pipeline runs N frames (is it flat?)
//   flicker  not speed but stability: real clips decoded frame by frame through the model, the
//            mask's change from frame to frame with TemporalSmoother at several factors, with
//            and without its reset, and the lag that smoothing costs
//   live     a live 30 fps source through unetseg (live mode) into a synchronised sink: frames
//            out per second, frames missing or late at the sink, and how old each frame's mask
//            is, in frames
// A readable table goes to stdout, and with --json every figure, with the machine, to a file.
#include <gst/base/gstbasesink.h>
#include <gst/gst.h>
#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/dnn.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "alloc_counter.hpp"
#include "unetseg/compositor.hpp"
#include "unetseg/error.hpp"
#include "unetseg/frame.hpp"
#include "unetseg/mask_filter.hpp"
#include "unetseg/model_cache.hpp"
#include "unetseg/segmenter.hpp"
#include "unetseg/temporal.hpp"

namespace fs = std::filesystem;
using unetseg::Mode;
using unetseg_tools::Allocations;
using unetseg_tools::allocations_so_far;

namespace {

const char* kUsage =
    "usage: unetseg-bench [--model NAME|M.onnx] [--sizes 720p,1080p,2160p] [--modes LIST]\n"
    "                     [--frames N] [--sections library,element,peer] [--threads N]\n"
    "                     [--json FILE] [more options below]\n"
    "\n"
    "Measures unetseg's speed on this machine, each figure beside what it is compared with.\n"
    "\n"
    "  --model M          catalog name or .onnx with its sidecar (default portrait-unet)\n"
    "  --sizes LIST       frame sizes: 720p, 1080p, 2160p or WxH (default 720p,1080p,2160p)\n"
    "  --modes LIST       composite modes timed in the library section\n"
    "                     (default overlay,alpha,blur,replace,mask)\n"
    "  --frames N         timed frames per size in library and element sections (default 30)\n"
    "  --warmup N         untimed frames first (default 3)\n"
    "  --sections LIST    any of library, element, peer, memory, flicker, live (default\n"
    "                     library,element,peer)\n"
    "  --threads N        OpenCV (and PyTorch) threads (default: OpenCV's own, one per core)\n"
    "  --images DIR       photos the library frames are made from (default\n"
    "                     ../shared/data/person-dev/images beside the source tree)\n"
    "  --clip FILE        the clip the element section decodes (default\n"
    "                     ../shared/media/people-walking.mp4)\n"
    "  --element-mode M   the element's mode in the element and memory sections (default blur)\n"
    "  --peer-arch A      u2netp or u2net (default u2netp), at --peer-size (default 320)\n"
    "  --peer-frame WxH   the frame the peer pipelines process (default 1920x1080)\n"
    "  --peer-frames N    timed frames of each peer figure (default 5)\n"
    "  --memory-frames N  frames of the memory section (default 10000), videotestsrc at\n"
    "  --memory-size S    this size (default 720p)\n"
    "  --flicker-clips L  clips (files, or folders of *.mkv *.mp4 *.webm *.avi *.mov) the\n"
    "                     flicker section decodes (default ../shared/media/asl)\n"
    "  --flicker-frames N at most N frames of each clip (default all)\n"
    "  --flicker-size S   decode at WxH or 720p... (default each clip's own size)\n"
    "  --flicker-threshold T  TemporalSmoother's reset threshold, grey levels (default 12)\n"
    "  --live-seconds N   length of the live section's stream (default 10)\n"
    "  --live-size S      its frame size (default 720p), at --live-fps (default 30)\n"
    "  --live-props P     more unetseg properties for it, e.g. \"smoothing=0.7 interval=2\"\n"
    "  --json FILE        every figure, per frame where there is one, as JSON\n"
    "  --help             this text\n"
    "\n"
    "Times are wall-clock milliseconds per frame, median / p95 (nearest rank).\n"
    "\n"
    "Flicker (not part of the default run): each frame of each clip through --model, the\n"
    "probability map smoothed by TemporalSmoother at factors 0 (off), 0.5, 0.7 and 0.9, with\n"
    "the reset at --flicker-threshold and without it, then upscaled (soft, bilinear) to the\n"
    "frame. Flicker: the mean |alpha_t - alpha_t-1| over consecutive frames, 0..1 (and the\n"
    "share of pixels whose hard mask, alpha >= 128, changes). Lag: mean |alpha_t - raw_t|\n"
    "(raw: factor 0), and the k in 0..15 frames minimising mean |alpha_t - raw_t-k|.\n"
    "\n"
    "Live (not part of the default run): a person photo made a live source by imagefreeze\n"
    "is-live=true (a camera pointed at someone holding still) at --live-size and --live-fps ->\n"
    "unetseg (live=auto: live) mode=--element-mode -> fakesink sync=true qos=true with a video\n"
    "sink's max-lateness of 20 ms. Missing: frames the source never made (gaps in the PTS at the\n"
    "sink); late: frames reaching the sink after their render time; dropped: the sink's own\n"
    "count. Mask age: (frame PTS - PTS of the frame the mask came from) / frame period.\n";

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Summary {
  double median = 0, p95 = 0;
};

Summary summarize(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) {
    const auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::max<std::size_t>(i, 1) - 1];
  };
  return {rank(0.5), rank(0.95)};
}

std::string fmt(const Summary& s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f / %.2f", s.median, s.p95);
  return buf;
}

struct NamedSize {
  std::string name;
  cv::Size size;
};

bool parse_size(const std::string& text, NamedSize* out) {
  if (text == "720p") *out = {text, {1280, 720}};
  else if (text == "1080p") *out = {text, {1920, 1080}};
  else if (text == "2160p") *out = {text, {3840, 2160}};
  else {
    int w = 0, h = 0;
    char x = 0, extra = 0;
    std::istringstream in(text);
    if (!(in >> w >> x >> h) || (x != 'x' && x != 'X') || in >> extra || w < 1 || h < 1 ||
        w > 16384 || h > 16384)
      return false;
    *out = {text, {w, h}};
  }
  return true;
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

bool mode_from_name(const std::string& name, Mode* mode) {
  for (Mode m : {Mode::None, Mode::Overlay, Mode::Alpha, Mode::Blur, Mode::Replace, Mode::Mask})
    if (name == unetseg::to_string(m)) {
      *mode = m;
      return true;
    }
  return false;
}

struct Options {
  std::string model = "portrait-unet";
  std::vector<NamedSize> sizes;
  std::vector<Mode> modes{Mode::Overlay, Mode::Alpha, Mode::Blur, Mode::Replace, Mode::Mask};
  int frames = 30;
  int warmup = 3;
  std::vector<std::string> sections{"library", "element", "peer"};
  int threads = 0;
  std::string images, clip;
  std::string element_mode = "blur";
  std::string peer_arch = "u2netp";
  int peer_size = 320;
  NamedSize peer_frame{"1080p", {1920, 1080}};
  int peer_frames = 5;
  int memory_frames = 10000;
  NamedSize memory_size{"720p", {1280, 720}};
  std::vector<std::string> flicker_clips;
  int flicker_frames = 0;  // 0: all
  NamedSize flicker_size{"", {0, 0}};  // empty: each clip's own
  double flicker_threshold = 12;
  int live_seconds = 10;
  NamedSize live_size{"720p", {1280, 720}};
  int live_fps = 30;
  std::string live_props;
  std::string json;

  bool wants(const std::string& section) const {
    return std::find(sections.begin(), sections.end(), section) != sections.end();
  }
};

// The source tree (tools/bench_peer.py, ../shared): $UNETSEG_SOURCE_ROOT, else where it was
// built from.
fs::path source_root() {
  const char* env = std::getenv("UNETSEG_SOURCE_ROOT");
  return env && *env ? fs::path(env) : fs::path(UNETSEG_SOURCE_DIR);
}

fs::path shared_dir() {
  const char* env = std::getenv("UNETSEG_SHARED");
  return env && *env ? fs::path(env) : source_root() / ".." / "shared";
}

// ---- machine ----------------------------------------------------------------------------

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  return "unknown";
}

double resident_mib() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

// ---- frames -----------------------------------------------------------------------------

// A few real photos (the person-dev set, in name order) as RGBA. Real content matters for what
// the mask looks like, and so for how the composite behaves.
struct Photos {
  std::vector<cv::Mat> rgba;
  fs::path first;  // the file of rgba[0]
};

Photos load_photos(const fs::path& dir, int count) {
  std::vector<fs::path> files;
  if (fs::is_directory(dir))
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string ext = entry.path().extension().string();
      if (ext == ".jpg" || ext == ".jpeg" || ext == ".png") files.push_back(entry.path());
    }
  std::sort(files.begin(), files.end());
  Photos photos;
  for (const auto& file : files) {
    if (static_cast<int>(photos.rgba.size()) == count) break;
    cv::Mat bgr = cv::imread(file.string(), cv::IMREAD_COLOR);
    if (bgr.empty()) continue;
    cv::Mat rgba;
    cv::cvtColor(bgr, rgba, cv::COLOR_BGR2RGBA);
    if (photos.rgba.empty()) photos.first = file;
    photos.rgba.push_back(rgba);
  }
  if (photos.rgba.empty())
    throw unetseg::Error("no readable photos (*.jpg, *.png) in " + dir.string() +
                         ": give --images DIR");
  return photos;
}

unetseg::FrameView view_of(cv::Mat& rgba) {
  return {rgba.data, rgba.cols, rgba.rows, rgba.step[0], unetseg::PixelLayout::RGBA};
}

// What the element does with every frame besides the composite: the mask at frame size, its
// statistics and the meta's 8-bit copy at model resolution.
struct MaskStage {
  unetseg::MaskFilter filter;
  cv::Mat meta_mask;
  const cv::Mat& run(const unetseg::Prediction& p, cv::Size size,
                     const unetseg::MaskOptions& options, bool multi_class) {
    const cv::Mat& alpha = filter.apply(p.foreground, size, options);
    (void)unetseg::MaskFilter::stats(alpha);
    if (multi_class) p.class_map.copyTo(meta_mask);
    else p.foreground.convertTo(meta_mask, CV_8U, 255.0);
    return alpha;
  }
};

// A bare net.forward loop on the model, as a user of OpenCV DNN would write it.
struct BareForward {
  cv::dnn::Net net;
  cv::Mat blob;
  std::vector<cv::Mat> outputs;

  BareForward(const std::string& model_path, const cv::Mat& input_blob) {
    net = cv::dnn::readNetFromONNX(model_path);
    net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    input_blob.copyTo(blob);
    once();
  }
  void once() {
    net.setInput(blob);
    net.forward(outputs);
  }
  std::vector<double> times(int frames, Allocations* allocations) {
    std::vector<double> out;
    const Allocations a0 = allocations_so_far();
    for (int i = 0; i < frames; ++i) {
      const auto t0 = Clock::now();
      once();
      out.push_back(ms_since(t0));
    }
    if (allocations) *allocations = allocations_so_far() - a0;
    return out;
  }
};

// ---- library section ----------------------------------------------------------------------

struct StageSeries {
  std::vector<double> ms;
  Allocations allocations;  // over all timed frames
};

// One refinement timed alone: MaskFilter::apply with only it on (so its time includes the plain
// upscale, which the "mask" stage times alone), or the temporal smoothing's two steps.
struct RefineStep {
  std::string name;  // also the JSON key
  std::string label;
  unetseg::MaskOptions options;
  unetseg::MaskFilter filter;  // each its own, as an element would have
  StageSeries series;
};

struct LibraryResult {
  NamedSize size;
  int frames = 0;
  StageSeries preprocess, forward, postprocess, run, mask, bare_forward;
  std::map<Mode, StageSeries> composite;
  std::vector<RefineStep> refine;  // then "thumbnail" and "temporal" (options unused)
};

// The refinements at the values recommended for the element (see MaskOptions), scaled to the
// frame where they are in pixels: the guided radius about 2x the upscale factor, the rest a
// little more than one model pixel.
std::vector<RefineStep> refine_steps(const NamedSize& size, const unetseg::ModelSpec& spec,
                                     const unetseg::MaskOptions& base) {
  const double factor = std::max(static_cast<double>(size.size.width) / spec.input_width,
                                 static_cast<double>(size.size.height) / spec.input_height);
  const int guided = std::max(2, static_cast<int>(std::lround(2 * factor)));
  const int pixels = std::max(1, static_cast<int>(std::lround(factor / 2)));
  std::vector<RefineStep> steps(7);
  steps[0].name = "islands";
  steps[0].options.min_island = 0.01;
  steps[1].name = "guided";
  steps[1].options.guided_radius = guided;
  steps[2].name = "smooth";
  steps[2].options.smooth_contour = pixels;
  steps[3].name = "feather";
  steps[3].options.feather = pixels;
  steps[4].name = "all";
  steps[4].options.min_island = 0.01;
  steps[4].options.guided_radius = guided;
  steps[4].options.smooth_contour = pixels;
  steps[4].options.feather = pixels;
  steps[5].name = "thumbnail";
  steps[6].name = "temporal";
  char label[64];
  for (auto& step : steps) {
    const unetseg::MaskOptions& o = step.options;
    step.options.scaling = base.scaling;
    if (step.name == "islands") std::snprintf(label, sizeof label, "islands 1%%");
    else if (step.name == "guided")
      std::snprintf(label, sizeof label, "guided %d", o.guided_radius);
    else if (step.name == "smooth")
      std::snprintf(label, sizeof label, "smooth %d", o.smooth_contour);
    else if (step.name == "feather") std::snprintf(label, sizeof label, "feather %d", o.feather);
    else if (step.name == "all") std::snprintf(label, sizeof label, "all four");
    else if (step.name == "thumbnail") std::snprintf(label, sizeof label, "thumbnail");
    else std::snprintf(label, sizeof label, "temporal 0.7, 12");
    step.label = label;
  }
  return steps;
}

LibraryResult bench_library(unetseg::Segmenter& seg, const std::string& model_path,
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
  MaskStage mask;
  unetseg::Compositor compositor;
  const unetseg::CompositorOptions draw;
  unetseg::MaskOptions mask_options;
  mask_options.scaling = seg.spec().mask_scaling;
  const bool multi = seg.spec().multi_class();

  auto count = [](StageSeries& s, Allocations before) {
    const Allocations made = allocations_so_far() - before;
    s.allocations.count += made.count;
    s.allocations.bytes += made.bytes;
  };
  r.refine = multi ? std::vector<RefineStep>() : refine_steps(size, seg.spec(), mask_options);
  cv::Mat thumbnail;
  unetseg::TemporalSmoother smoother;
  for (int i = 0; i < opt.warmup + opt.frames; ++i) {
    const bool timed = i >= opt.warmup;
    sources[i % sources.size()].copyTo(frame);
    Allocations a = allocations_so_far();
    const auto t0 = Clock::now();
    const unetseg::Prediction& p = seg.run(view);
    const double run_ms = ms_since(t0);
    if (timed) {
      count(r.run, a);
      r.run.ms.push_back(run_ms);
      r.preprocess.ms.push_back(seg.last_times().preprocess_ms);
      r.forward.ms.push_back(seg.last_times().forward_ms);
      r.postprocess.ms.push_back(seg.last_times().postprocess_ms);
    }
    a = allocations_so_far();
    auto t1 = Clock::now();
    const cv::Mat& alpha = mask.run(p, size.size, mask_options, multi);
    if (timed) {
      r.mask.ms.push_back(ms_since(t1));
      count(r.mask, a);
    }
    // Each refinement alone on the same prediction and frame (the element would run one
    // configuration; these rows say what each step adds to the plain mask).
    for (RefineStep& step : r.refine) {
      a = allocations_so_far();
      t1 = Clock::now();
      if (step.name == "thumbnail")
        unetseg::frame_thumbnail(view, p.foreground.size(), thumbnail);
      else if (step.name == "temporal")
        smoother.apply(p.foreground, thumbnail, 0.7, 12);
      else
        step.filter.apply(p.foreground, view, step.options);
      if (timed) {
        step.series.ms.push_back(ms_since(t1));
        count(step.series, a);
      }
    }
    for (Mode m : opt.modes) {
      sources[i % sources.size()].copyTo(frame);
      const cv::Mat& classes = multi && m == Mode::Overlay
                                   ? mask.filter.upscale_classes(p.class_map, size.size)
                                   : cv::Mat();
      a = allocations_so_far();
      t1 = Clock::now();
      compositor.draw(view, m, alpha, classes, draw);
      if (timed) {
        r.composite[m].ms.push_back(ms_since(t1));
        count(r.composite[m], a);
      }
    }
  }
  // The same network without unetseg around it, right after, on the same input.
  cv::Mat blob;
  seg.preprocess(view, blob);
  BareForward bare(model_path, blob);
  r.bare_forward.ms = bare.times(opt.frames, &r.bare_forward.allocations);
  return r;
}

double per_frame(const Allocations& a, int frames) {
  return frames > 0 ? static_cast<double>(a.count) / frames : 0;
}

void print_library(const std::vector<LibraryResult>& results, const Options& opt) {
  if (results.empty()) return;
  std::printf("\nLibrary: per frame, ms median / p95 over %d frames (RGBA, the element's code path)\n",
              opt.frames);
  std::printf("%-10s %-16s %-16s %-16s %-16s %-16s\n", "size", "preprocess", "forward",
              "postprocess", "mask", "bare forward");
  for (const auto& r : results)
    std::printf("%-10s %-16s %-16s %-16s %-16s %-16s\n", r.size.name.c_str(),
                fmt(summarize(r.preprocess.ms)).c_str(), fmt(summarize(r.forward.ms)).c_str(),
                fmt(summarize(r.postprocess.ms)).c_str(), fmt(summarize(r.mask.ms)).c_str(),
                fmt(summarize(r.bare_forward.ms)).c_str());

  std::printf("\nComposite, ms median / p95; in brackets everything but forward (preprocess +\n"
              "postprocess + mask + composite, medians) as %% of the forward median\n");
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

  std::printf("\nHeap allocations per frame after warm-up (count): run() = preprocess + forward +\n"
              "postprocess, beside a bare forward of the same network\n");
  std::printf("%-10s %-10s %-14s %-8s", "size", "run()", "bare forward", "mask");
  for (Mode m : opt.modes) std::printf(" %-8s", unetseg::to_string(m));
  std::printf("\n");
  for (const auto& r : results) {
    std::printf("%-10s %-10.1f %-14.1f %-8.1f", r.size.name.c_str(),
                per_frame(r.run.allocations, r.frames),
                per_frame(r.bare_forward.allocations, r.frames),
                per_frame(r.mask.allocations, r.frames));
    for (Mode m : opt.modes)
      std::printf(" %-8.1f", per_frame(r.composite.at(m).allocations, r.frames));
    std::printf("\n");
  }

  if (results.front().refine.empty()) return;  // a multi-class model: no refinement
  std::printf("\nRefinement, ms median / p95 per frame (heap allocations per frame): each step\n"
              "alone through MaskFilter::apply (hard mask, the frame as guide; it includes the\n"
              "plain upscale, 'mask' above), radii in pixels scaled to the frame (the guided one\n"
              "about 2x frame / model size); thumbnail and temporal: TemporalSmoother's input and\n"
              "apply() at the model's size\n");
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

// ---- pipelines ----------------------------------------------------------------------------

// Times each buffer from unetseg's sink pad to its src pad (the element works in place in the
// streaming thread, so the two probes bracket exactly its work), and stops the pipeline once
// enough frames went through.
struct PipelineProbe {
  GstElement* pipeline = nullptr;
  int warmup = 0, wanted = 0, seen = 0;
  int sample_every = 0;  // memory section: RSS every N frames
  Clock::time_point in, first_in, last_out;  // first_in: the first timed frame's
  std::vector<double> latency_ms;
  std::vector<std::pair<int, double>> rss;  // (frame, MiB)

  static GstPadProbeReturn on_sink(GstPad*, GstPadProbeInfo*, gpointer data) {
    static_cast<PipelineProbe*>(data)->in = Clock::now();
    return GST_PAD_PROBE_OK;
  }
  static GstPadProbeReturn on_src(GstPad*, GstPadProbeInfo*, gpointer data) {
    auto* self = static_cast<PipelineProbe*>(data);
    const auto now = Clock::now();
    const int n = ++self->seen;
    if (n == self->warmup + 1) self->first_in = self->in;
    if (n > self->warmup && n <= self->warmup + self->wanted) {
      self->latency_ms.push_back(std::chrono::duration<double, std::milli>(now - self->in).count());
      self->last_out = now;
    }
    if (self->sample_every > 0 && n % self->sample_every == 0)
      self->rss.emplace_back(n, resident_mib());
    if (n == self->warmup + self->wanted)
      gst_element_post_message(self->pipeline,
                               gst_message_new_application(GST_OBJECT(self->pipeline),
                                                           gst_structure_new_empty("done")));
    return GST_PAD_PROBE_OK;
  }
  double fps() const {
    const double s = std::chrono::duration<double>(last_out - first_in).count();
    return s > 0 ? static_cast<double>(latency_ms.size()) / s : 0;
  }
};

GstElement* parse_pipeline(const std::string& description) {
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(description.c_str(), &error);
  if (!pipeline) {
    const std::string message = error ? error->message : "unknown error";
    g_clear_error(&error);
    throw unetseg::Error("cannot build the pipeline '" + description + "': " + message);
  }
  g_clear_error(&error);  // a recoverable warning
  return pipeline;
}

// An ERROR message's text and debug string.
std::string error_text(GstMessage* msg) {
  GError* err = nullptr;
  gchar* debug = nullptr;
  gst_message_parse_error(msg, &err, &debug);
  std::string text = std::string(err->message) + (debug ? std::string(" (") + debug + ")" : "");
  g_clear_error(&err);
  g_free(debug);
  return text;
}

// Sets the pipeline PLAYING and reads its bus until EOS, an error, or `on_message` (given the
// messages of type `also`) returns false. Returns the error's text, "" when there was none; the
// pipeline is left PLAYING for the caller to read from and stop.
std::string play_until_done(GstElement* pipeline, GstMessageType also,
                            const std::function<bool(GstMessage*)>& on_message) {
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    return "the pipeline would not start";
  GstBus* bus = gst_element_get_bus(pipeline);
  std::string failure;
  for (bool go_on = true; go_on;) {
    GstMessage* msg = gst_bus_timed_pop_filtered(
        bus, GST_CLOCK_TIME_NONE,
        static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_EOS | also));
    switch (GST_MESSAGE_TYPE(msg)) {
      case GST_MESSAGE_ERROR:
        failure = error_text(msg);
        go_on = false;
        break;
      case GST_MESSAGE_EOS:
        go_on = false;
        break;
      default:
        go_on = on_message(msg);
    }
    gst_message_unref(msg);
  }
  gst_object_unref(bus);
  return failure;
}

// Runs `description` (which names its unetseg element "seg") until the probe has seen enough
// frames, EOS or an error.
void run_pipeline(const std::string& description, PipelineProbe& probe) {
  GstElement* pipeline = parse_pipeline(description);
  probe.pipeline = pipeline;
  GstElement* seg = gst_bin_get_by_name(GST_BIN(pipeline), "seg");
  GstPad* sink = gst_element_get_static_pad(seg, "sink");
  GstPad* src = gst_element_get_static_pad(seg, "src");
  gst_pad_add_probe(sink, GST_PAD_PROBE_TYPE_BUFFER, &PipelineProbe::on_sink, &probe, nullptr);
  gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, &PipelineProbe::on_src, &probe, nullptr);
  gst_object_unref(sink);
  gst_object_unref(src);
  gst_object_unref(seg);

  // The probe's application message: enough frames.
  const std::string failure =
      play_until_done(pipeline, GST_MESSAGE_APPLICATION, [](GstMessage*) { return false; });
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  probe.pipeline = nullptr;
  if (!failure.empty()) throw unetseg::Error("pipeline failed: " + failure);
}

std::string caps_for(const cv::Size& s) {
  return "video/x-raw,format=RGBA,pixel-aspect-ratio=1/1,width=" + std::to_string(s.width) +
         ",height=" + std::to_string(s.height);
}

std::string quoted(const std::string& path) {
  gchar* q = g_strescape(path.c_str(), nullptr);
  std::string out = std::string("\"") + q + "\"";
  g_free(q);
  return out;
}

struct ElementResult {
  NamedSize size;
  int frames = 0;
  double fps = 0;
  std::vector<double> latency_ms, bare_forward_ms;
};

ElementResult bench_element(unetseg::Segmenter& seg, const std::string& model_path,
                            const NamedSize& size, const fs::path& clip,
                            const std::vector<cv::Mat>& photos, const Options& opt) {
  ElementResult r;
  r.size = size;
  // Bare forward first, on a real photo's blob, then the pipeline: side by side in time.
  cv::Mat frame;
  cv::resize(photos[0], frame, size.size, 0, 0, cv::INTER_AREA);
  cv::Mat blob;
  seg.preprocess(view_of(frame), blob);
  {
    BareForward bare(model_path, blob);
    r.bare_forward_ms = bare.times(opt.frames, nullptr);
  }
  PipelineProbe probe;
  probe.warmup = opt.warmup;
  probe.wanted = opt.frames;
  run_pipeline("filesrc location=" + quoted(clip.string()) +
                   " ! decodebin ! videoconvert ! videoscale ! " + caps_for(size.size) +
                   " ! queue max-size-buffers=3 ! unetseg name=seg backend=cpu model=" +
                   quoted(model_path) + " mode=" + opt.element_mode +
                   " ! fakesink sync=false",
               probe);
  r.frames = static_cast<int>(probe.latency_ms.size());
  r.fps = probe.fps();
  r.latency_ms = probe.latency_ms;
  return r;
}

void print_element(const std::vector<ElementResult>& results, const Options& opt) {
  if (results.empty()) return;
  std::printf("\nElement: decode -> videoscale -> unetseg mode=%s -> fakesink sync=false\n"
              "(latency: unetseg's sink pad to its src pad; bare forward: net.forward alone,\n"
              "same model and input, just before)\n",
              opt.element_mode.c_str());
  std::printf("%-10s %-8s %-8s %-18s %-18s %-10s\n", "size", "frames", "fps", "latency ms",
              "bare forward ms", "latency / forward");
  for (const auto& r : results) {
    const Summary lat = summarize(r.latency_ms), fwd = summarize(r.bare_forward_ms);
    std::printf("%-10s %-8d %-8.1f %-18s %-18s %.2fx\n", r.size.name.c_str(), r.frames, r.fps,
                fmt(lat).c_str(), fmt(fwd).c_str(), lat.median / fwd.median);
  }
}

// ---- peer ---------------------------------------------------------------------------------

struct PeerResult {
  std::string torch_version, arch;
  int threads = 0;
  std::vector<double> torch_forward_ms, torch_pipeline_ms;
  std::vector<double> opencv_forward_ms, unetseg_pipeline_ms;
};

std::vector<double> read_numbers(const cv::FileNode& node) {
  std::vector<double> out;
  for (const auto& item : node) out.push_back(static_cast<double>(item));
  return out;
}

PeerResult bench_peer(const std::vector<cv::Mat>& photos, const fs::path& photo_file,
                      const Options& opt) {
  PeerResult r;
  const fs::path dir = fs::temp_directory_path() /
                       ("unetseg-bench-" + std::to_string(static_cast<long>(getpid())));
  fs::create_directories(dir);
  const std::string onnx = (dir / (opt.peer_arch + ".onnx")).string();
  const int threads = opt.threads > 0 ? opt.threads : cv::getNumThreads();
  const std::string frame_arg =
      std::to_string(opt.peer_frame.size.width) + "x" + std::to_string(opt.peer_frame.size.height);
  const std::string script = (source_root() / "tools" / "bench_peer.py").string();
  std::vector<std::string> args{"/usr/bin/python3", script,
                                "--arch",           opt.peer_arch,
                                "--onnx",           onnx,
                                "--image",          photo_file.string(),
                                "--frame",          frame_arg,
                                "--size",           std::to_string(opt.peer_size),
                                "--frames",         std::to_string(opt.peer_frames),
                                "--threads",        std::to_string(threads)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  gchar* out = nullptr;
  gint status = 0;
  GError* error = nullptr;
  std::fprintf(stderr, "unetseg-bench: peer: %s (PyTorch) ...\n", opt.peer_arch.c_str());
  const bool spawned = g_spawn_sync(nullptr, argv.data(), nullptr, G_SPAWN_DEFAULT, nullptr,
                                    nullptr, &out, nullptr, &status, &error);
  const std::string json = out ? out : "";
  g_free(out);
  if (!spawned || !g_spawn_check_wait_status(status, &error)) {
    const std::string why = error ? error->message : "failed";
    g_clear_error(&error);
    fs::remove_all(dir);
    throw unetseg::Error(script + ": " + why);
  }
  cv::FileStorage fs_json(json, cv::FileStorage::READ | cv::FileStorage::MEMORY |
                                     cv::FileStorage::FORMAT_JSON);
  r.torch_version = static_cast<std::string>(fs_json["torch_version"]);
  r.arch = opt.peer_arch;
  r.threads = static_cast<int>(fs_json["threads"]);
  r.torch_forward_ms = read_numbers(fs_json["forward_ms"]["all"]);
  r.torch_pipeline_ms = read_numbers(fs_json["pipeline_ms"]["all"]);

  // The same network through unetseg, with the sidecar the exporter wrote (the official U2-Net
  // pre- and postprocessing, soft mask), on the same photo at the same frame size.
  std::fprintf(stderr, "unetseg-bench: peer: %s (unetseg) ...\n", opt.peer_arch.c_str());
  unetseg::Segmenter seg(onnx, unetseg::Backend::Cpu);
  cv::Mat frame;
  cv::resize(photos[0], frame, opt.peer_frame.size, 0, 0, cv::INTER_AREA);
  const unetseg::FrameView view = view_of(frame);
  MaskStage mask;
  unetseg::MaskOptions mask_options;
  mask_options.soft = true;
  mask_options.scaling = seg.spec().mask_scaling;
  for (int i = 0; i < opt.warmup + opt.peer_frames; ++i) {
    const auto t0 = Clock::now();
    mask.run(seg.run(view), opt.peer_frame.size, mask_options, false);
    if (i >= opt.warmup) {
      r.unetseg_pipeline_ms.push_back(ms_since(t0));
      r.opencv_forward_ms.push_back(seg.last_times().forward_ms);
    }
  }
  fs::remove_all(dir);
  return r;
}

void print_peer(const PeerResult& r, const Options& opt) {
  const Summary tf = summarize(r.torch_forward_ms), of = summarize(r.opencv_forward_ms);
  const Summary tp = summarize(r.torch_pipeline_ms), up = summarize(r.unetseg_pipeline_ms);
  std::printf("\nPeer: %s at %dx%d (random weights), PyTorch %s on the CPU, %d threads\n",
              r.arch.c_str(), opt.peer_size, opt.peer_size, r.torch_version.c_str(), r.threads);
  std::printf("%-34s %-18s %-18s %s\n", "", "PyTorch ms", "unetseg ms", "PyTorch / unetseg");
  std::printf("%-34s %-18s %-18s %.2fx\n", "forward (OpenCV DNN for unetseg)", fmt(tf).c_str(),
              fmt(of).c_str(), tf.median / of.median);
  char label[64];
  std::snprintf(label, sizeof label, "frame %dx%d, official pre/post", opt.peer_frame.size.width,
                opt.peer_frame.size.height);
  std::printf("%-34s %-18s %-18s %.2fx\n", label, fmt(tp).c_str(), fmt(up).c_str(),
              tp.median / up.median);
}

// ---- memory -------------------------------------------------------------------------------

struct MemoryResult {
  int frames = 0;
  double fps = 0;
  std::vector<std::pair<int, double>> rss;
};

MemoryResult bench_memory(const std::string& model_path, const Options& opt) {
  PipelineProbe probe;
  probe.warmup = 0;
  probe.wanted = opt.memory_frames;
  probe.sample_every = std::max(1, opt.memory_frames / 20);
  std::fprintf(stderr, "unetseg-bench: memory: %d frames ...\n", opt.memory_frames);
  run_pipeline("videotestsrc pattern=ball num-buffers=" + std::to_string(opt.memory_frames + 1) +
                   " ! " + caps_for(opt.memory_size.size) +
                   " ! unetseg name=seg backend=cpu model=" + quoted(model_path) +
                   " mode=" + opt.element_mode + " ! fakesink sync=false",
               probe);
  return {static_cast<int>(probe.latency_ms.size()), probe.fps(), probe.rss};
}

void print_memory(const MemoryResult& r, const Options& opt) {
  if (r.rss.empty()) return;
  double peak = 0;
  for (const auto& s : r.rss) peak = std::max(peak, s.second);
  // From the second sample on: the first includes the pools and caches the first frames fill.
  const double first = r.rss.size() > 1 ? r.rss[1].second : r.rss[0].second;
  std::printf("\nMemory: videotestsrc %s -> unetseg mode=%s -> fakesink, %d frames (%.1f fps)\n",
              opt.memory_size.name.c_str(), opt.element_mode.c_str(), r.frames, r.fps);
  std::printf("resident MiB at frame");
  for (const auto& s : r.rss) std::printf(" %d:%.1f", s.first, s.second);
  std::printf("\nfrom frame %d to %d: %+.1f MiB; peak %.1f MiB\n",
              r.rss.size() > 1 ? r.rss[1].first : r.rss[0].first, r.rss.back().first,
              r.rss.back().second - first, peak);
}

// ---- live ---------------------------------------------------------------------------------

struct LiveResult {
  int expected = 0;                 // frames the source was asked for
  int out = 0;                      // frames that reached the sink
  int missing = 0;                  // gaps in the PTS at the sink: frames never made
  int late = 0;                     // frames reaching the sink after their render time
  guint64 rendered = 0, dropped = 0;  // the sink's own stats
  int with_mask = 0;
  std::vector<double> lateness_ms;  // per frame: arrival at the sink - its render time
  std::vector<double> age_frames;   // per frame with a mask
  std::set<guint64> mask_sources;   // distinct frames the model saw
  double seconds = 0;
  double latency_ms = 0;            // the sink's, at the end (what the pipeline configured)
  Clock::time_point first_arrival, last_arrival;
  double fps() const {
    const double s = std::chrono::duration<double>(last_arrival - first_arrival).count();
    return s > 0 ? (out - 1) / s : 0;
  }
  std::string pipeline;
};

struct LiveProbe {
  GstElement* pipeline = nullptr;
  GstElement* sink = nullptr;
  GstClockTime period = 0, last_pts = GST_CLOCK_TIME_NONE;
  LiveResult* r = nullptr;

  static GstPadProbeReturn on_sink(GstPad* pad, GstPadProbeInfo* info, gpointer data) {
    auto* self = static_cast<LiveProbe*>(data);
    GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
    const GstClockTime pts = GST_BUFFER_PTS(buf);
    LiveResult& r = *self->r;
    r.last_arrival = Clock::now();
    if (r.out++ == 0) r.first_arrival = r.last_arrival;
    if (GST_CLOCK_TIME_IS_VALID(self->last_pts) && pts > self->last_pts)
      r.missing += static_cast<int>((pts - self->last_pts + self->period / 2) / self->period) - 1;
    self->last_pts = pts;
    // When the sink will render it: base time + running time + the pipeline's latency.
    GstClock* clock = gst_element_get_clock(self->sink);
    GstEvent* segment_event = gst_pad_get_sticky_event(pad, GST_EVENT_SEGMENT, 0);
    if (clock && segment_event) {
      const GstSegment* segment;
      gst_event_parse_segment(segment_event, &segment);
      const GstClockTime render_at = gst_element_get_base_time(self->sink) +
                                     gst_segment_to_running_time(segment, GST_FORMAT_TIME, pts) +
                                     gst_base_sink_get_latency(GST_BASE_SINK(self->sink));
      const double lateness =
          (static_cast<double>(gst_clock_get_time(clock)) - static_cast<double>(render_at)) / 1e6;
      r.lateness_ms.push_back(lateness);
      r.late += lateness > 0;
    }
    if (segment_event) gst_event_unref(segment_event);
    if (clock) gst_object_unref(clock);
    return GST_PAD_PROBE_OK;
  }
};

LiveResult bench_live(const std::string& model_path, const fs::path& photo, const Options& opt) {
  LiveResult r;
  r.expected = opt.live_seconds * opt.live_fps;
  r.pipeline = "filesrc location=" + quoted(photo.string()) +
               " ! decodebin ! videoconvert ! videoscale ! " + caps_for(opt.live_size.size) +
               " ! imagefreeze is-live=true num-buffers=" + std::to_string(r.expected) +
               " ! video/x-raw,framerate=" + std::to_string(opt.live_fps) +
               "/1 ! unetseg name=seg backend=cpu post-messages=true model=" + quoted(model_path) +
               " mode=" + opt.element_mode + (opt.live_props.empty() ? "" : " " + opt.live_props) +
               " ! fakesink name=sink sync=true qos=true max-lateness=20000000";
  GstElement* pipeline = parse_pipeline(r.pipeline);
  LiveProbe probe;
  probe.pipeline = pipeline;
  probe.sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  probe.period = GST_SECOND / opt.live_fps;
  probe.r = &r;
  GstPad* pad = gst_element_get_static_pad(probe.sink, "sink");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, &LiveProbe::on_sink, &probe, nullptr);
  gst_object_unref(pad);

  std::fprintf(stderr, "unetseg-bench: live: %d s at %s, %d fps ...\n", opt.live_seconds,
               opt.live_size.name.c_str(), opt.live_fps);
  const auto start = Clock::now();
  // unetseg's message, one per frame that carries a mask: its PTS and the PTS of the frame the
  // mask came from.
  const std::string failure = play_until_done(pipeline, GST_MESSAGE_ELEMENT, [&](GstMessage* msg) {
    const GstStructure* st = gst_message_get_structure(msg);
    guint64 pts = 0, source = 0;
    if (gst_structure_has_name(st, "unetseg") && gst_structure_get_uint64(st, "timestamp", &pts) &&
        gst_structure_get_uint64(st, "mask-timestamp", &source)) {
      ++r.with_mask;
      r.age_frames.push_back(static_cast<double>(pts - source) / probe.period);
      r.mask_sources.insert(source);
    }
    return true;
  });
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.latency_ms = gst_base_sink_get_latency(GST_BASE_SINK(probe.sink)) / 1e6;
  GstStructure* stats = nullptr;
  g_object_get(probe.sink, "stats", &stats, nullptr);
  if (stats) {
    gst_structure_get_uint64(stats, "rendered", &r.rendered);
    gst_structure_get_uint64(stats, "dropped", &r.dropped);
    gst_structure_free(stats);
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(probe.sink);
  gst_object_unref(pipeline);
  if (!failure.empty()) throw unetseg::Error("live pipeline failed: " + failure);
  return r;
}

void print_live(const LiveResult& r, const Options& opt) {
  std::printf("\nLive: a photo as a live %s %d fps source -> unetseg mode=%s%s%s -> fakesink "
              "sync=true (max-lateness 20 ms)\n",
              opt.live_size.name.c_str(), opt.live_fps, opt.element_mode.c_str(),
              opt.live_props.empty() ? "" : " ", opt.live_props.c_str());
  const Summary late = summarize(r.lateness_ms), age = summarize(r.age_frames);
  const double max_age =
      r.age_frames.empty() ? 0 : *std::max_element(r.age_frames.begin(), r.age_frames.end());
  std::printf("frames: %d asked, %d at the sink, %.1f fps from the first to the last; missing "
              "%d, late %d, sink rendered %lu, dropped %lu\n",
              r.expected, r.out, r.fps(), r.missing, r.late,
              static_cast<unsigned long>(r.rendered), static_cast<unsigned long>(r.dropped));
  std::printf("lateness at the sink, ms (negative: early): %s; the pipeline's latency %.1f ms\n",
              fmt(late).c_str(), r.latency_ms);
  std::printf("mask age, frames: median %.1f, p95 %.1f, max %.1f; %d frames before the first "
              "mask; the model saw %zu frames (%.1f a second)\n",
              age.median, age.p95, max_age, r.out - r.with_mask, r.mask_sources.size(),
              r.mask_sources.size() / r.seconds);
}

// ---- flicker ------------------------------------------------------------------------------

constexpr double kFlickerFactors[] = {0.5, 0.7, 0.9};  // and 0, the raw masks
constexpr int kMaxLag = 15;

// One smoothing configuration: its figures, and its state while the clips run.
struct FlickerRow {
  double factor = 0;
  bool reset = false;
  double change_sum = 0, hard_change_sum = 0;  // over consecutive pairs
  long pairs = 0;
  double deviation_sum = 0;  // |alpha_t - raw_t|, over frames
  long frames = 0;
  std::vector<double> lag_sum = std::vector<double>(kMaxLag + 1, 0.0);  // |alpha_t - raw_t-k|
  std::vector<long> lag_count = std::vector<long>(kMaxLag + 1, 0);

  unetseg::TemporalSmoother smoother;
  unetseg::MaskFilter filter;
  cv::Mat previous;

  double flicker() const { return pairs ? change_sum / pairs : 0; }
  double hard_flicker() const { return pairs ? hard_change_sum / pairs : 0; }
  double deviation() const { return frames ? deviation_sum / frames : 0; }
  double lag_error(int k) const { return lag_count[k] ? lag_sum[k] / lag_count[k] : 0; }
  int lag() const {
    int best = 0;
    for (int k = 1; k <= kMaxLag; ++k)
      if (lag_count[k] && lag_error(k) < lag_error(best)) best = k;
    return best;
  }
};

struct FlickerResult {
  std::vector<std::string> clips;
  std::vector<int> clip_frames;
  int frames = 0;
  cv::Size size;  // of the first clip's frames
  double threshold = 0;
  std::vector<FlickerRow> rows;  // rows[0]: factor 0, the raw masks
  std::vector<double> ms;  // per frame: the model's run() and every row's smoothing + mask
};

// Share of pixels whose hard mask (alpha >= 128) differs between two alphas of one size.
double hard_change(const cv::Mat& a, const cv::Mat& b) {
  long changed = 0;
  for (int y = 0; y < a.rows; ++y) {
    const std::uint8_t* p = a.ptr<std::uint8_t>(y);
    const std::uint8_t* q = b.ptr<std::uint8_t>(y);
    for (int x = 0; x < a.cols; ++x) changed += (p[x] >= 128) != (q[x] >= 128);
  }
  return static_cast<double>(changed) / static_cast<double>(a.total());
}

std::vector<fs::path> flicker_clips(const Options& opt) {
  std::vector<std::string> items = opt.flicker_clips;
  if (items.empty()) items.push_back((shared_dir() / "media" / "asl").string());
  std::vector<fs::path> clips;
  for (const auto& item : items) {
    const fs::path path(item);
    if (fs::is_directory(path)) {
      std::vector<fs::path> found;
      for (const auto& entry : fs::directory_iterator(path)) {
        const std::string ext = entry.path().extension().string();
        if (ext == ".mkv" || ext == ".mp4" || ext == ".webm" || ext == ".avi" || ext == ".mov")
          found.push_back(entry.path());
      }
      if (found.empty()) throw unetseg::Error("no clips (*.mkv, *.mp4, ...) in " + item);
      std::sort(found.begin(), found.end());
      clips.insert(clips.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(path)) {
      clips.push_back(path);
    } else {
      throw unetseg::Error("no clip at " + item + ": give --flicker-clips FILE|DIR,...");
    }
  }
  return clips;
}

// Decodes `clip` to RGBA (at `size` unless it is empty) through an appsink, calling on_frame for
// each frame until the end of the clip or max_frames (0: all). Returns the number of frames.
int decode_clip(const fs::path& clip, cv::Size size, int max_frames,
                const std::function<void(const unetseg::FrameView&)>& on_frame) {
  std::string caps = "video/x-raw,format=RGBA";
  if (size.width > 0)
    caps += ",pixel-aspect-ratio=1/1,width=" + std::to_string(size.width) +
            ",height=" + std::to_string(size.height);
  const std::string description = "filesrc location=" + quoted(clip.string()) +
                                   " ! decodebin ! videoconvert ! videoscale ! " + caps +
                                   " ! appsink name=sink sync=false max-buffers=2";
  GstElement* pipeline = parse_pipeline(description);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  std::string failure;
  int frames = 0;
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    failure = "the pipeline would not start";
  GstBus* bus = gst_element_get_bus(pipeline);
  try {
    while (failure.empty() && (max_frames <= 0 || frames < max_frames)) {
      // appsink's action signal (no link to libgstapp needed), with a timeout: an error
      // upstream (not a video, say) ends nothing at the sink, so the bus is checked meanwhile.
      GstSample* sample = nullptr;
      g_signal_emit_by_name(sink, "try-pull-sample", static_cast<guint64>(100 * GST_MSECOND),
                            &sample);
      if (!sample) {
        if (GstMessage* msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
          failure = error_text(msg);
          gst_message_unref(msg);
        }
        gboolean eos = FALSE;
        g_object_get(sink, "eos", &eos, nullptr);
        if (eos) break;
        continue;
      }
      int width = 0, height = 0;
      const GstStructure* st = gst_caps_get_structure(gst_sample_get_caps(sample), 0);
      gst_structure_get_int(st, "width", &width);
      gst_structure_get_int(st, "height", &height);
      GstBuffer* buffer = gst_sample_get_buffer(sample);
      GstMapInfo map;
      if (buffer && gst_buffer_map(buffer, &map, GST_MAP_READ)) {
        // RGBA rows are width * 4 bytes, already 4-aligned: GStreamer's default stride.
        const std::size_t stride = static_cast<std::size_t>(width) * 4;
        if (width > 0 && height > 0 && map.size >= stride * height) {
          try {
            on_frame({map.data, width, height, stride, unetseg::PixelLayout::RGBA});
          } catch (...) {
            gst_buffer_unmap(buffer, &map);
            gst_sample_unref(sample);
            throw;
          }
          ++frames;
        }
        gst_buffer_unmap(buffer, &map);
      }
      gst_sample_unref(sample);
    }
  } catch (...) {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(bus);
    gst_object_unref(sink);
    gst_object_unref(pipeline);
    throw;
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
  if (!failure.empty()) throw unetseg::Error(clip.string() + ": " + failure);
  if (frames == 0) throw unetseg::Error(clip.string() + ": no frame decoded");
  return frames;
}

FlickerResult bench_flicker(unetseg::Segmenter& seg, const Options& opt) {
  if (seg.spec().multi_class())
    throw unetseg::Error("the flicker section needs a foreground model, not a multi-class one");
  FlickerResult r;
  r.threshold = opt.flicker_threshold;
  // rows[0] the raw masks; then each factor with the reset, then each without (a threshold no
  // change can exceed).
  r.rows.resize(1 + 2 * std::size(kFlickerFactors));
  for (std::size_t i = 0; i < std::size(kFlickerFactors); ++i) {
    r.rows[1 + i].factor = r.rows[1 + std::size(kFlickerFactors) + i].factor = kFlickerFactors[i];
    r.rows[1 + i].reset = true;
  }
  unetseg::MaskOptions soft;
  soft.soft = true;
  soft.scaling = seg.spec().mask_scaling;
  cv::Mat thumbnail;
  std::vector<cv::Mat> raw_history(kMaxLag + 1);  // raw alpha of frame t at t % (kMaxLag + 1)
  for (const fs::path& clip : flicker_clips(opt)) {
    std::fprintf(stderr, "unetseg-bench: flicker: %s ...\n", clip.filename().string().c_str());
    for (FlickerRow& row : r.rows) {
      row.smoother.reset();
      row.previous.release();
    }
    int t = 0;
    const int frames = decode_clip(clip, opt.flicker_size.size, opt.flicker_frames,
                                   [&](const unetseg::FrameView& view) {
      const auto t0 = Clock::now();
      const cv::Mat& map = seg.run(view).foreground;
      unetseg::frame_thumbnail(view, map.size(), thumbnail);
      const cv::Size frame_size(view.width, view.height);
      if (r.size.empty()) r.size = frame_size;
      std::vector<const cv::Mat*> alpha(r.rows.size());
      for (std::size_t i = 0; i < r.rows.size(); ++i) {
        FlickerRow& row = r.rows[i];
        const cv::Mat& smoothed = row.smoother.apply(map, thumbnail, row.factor,
                                                     row.reset ? r.threshold : 256.0);
        alpha[i] = &row.filter.apply(smoothed, frame_size, soft);
      }
      r.ms.push_back(ms_since(t0));
      alpha[0]->copyTo(raw_history[t % (kMaxLag + 1)]);
      for (std::size_t i = 0; i < r.rows.size(); ++i) {
        FlickerRow& row = r.rows[i];
        if (!row.previous.empty()) {
          row.change_sum += unetseg::mean_abs_difference(*alpha[i], row.previous) / 255.0;
          row.hard_change_sum += hard_change(*alpha[i], row.previous);
          ++row.pairs;
        }
        alpha[i]->copyTo(row.previous);
        ++row.frames;
        if (i == 0) continue;  // the raw masks against themselves: 0 at lag 0
        row.deviation_sum += unetseg::mean_abs_difference(*alpha[i], *alpha[0]) / 255.0;
        for (int k = 0; k <= std::min(t, kMaxLag); ++k) {
          row.lag_sum[k] += unetseg::mean_abs_difference(
                                *alpha[i], raw_history[(t - k) % (kMaxLag + 1)]) / 255.0;
          ++row.lag_count[k];
        }
      }
      ++t;
    });
    r.clips.push_back(clip.filename().string());
    r.clip_frames.push_back(frames);
    r.frames += frames;
  }
  r.rows[0].frames = r.frames;  // (its deviation and lags are 0 by definition)
  return r;
}

void print_flicker(const FlickerResult& r, const unetseg::Segmenter& seg) {
  std::printf("\nFlicker: %s, %d frames at %dx%d from %zu clip(s):", seg.spec().name.c_str(),
              r.frames, r.size.width, r.size.height, r.clips.size());
  for (std::size_t i = 0; i < r.clips.size(); ++i)
    std::printf("%s%s %d", i ? ", " : " ", r.clips[i].c_str(), r.clip_frames[i]);
  std::printf("\nsoft mask; the reset where the thumbnail changed by more than %g grey levels.\n"
              "Flicker: mean |alpha_t - alpha_t-1|, 0..1 and %%; hard: share of pixels whose\n"
              "alpha >= 128 flips; lag: mean |alpha_t - raw_t| and the k minimising\n"
              "mean |alpha_t - raw_t-k| (raw: factor 0)\n",
              r.threshold);
  std::printf("%-7s %-6s %-18s %-10s %-10s %-14s %-10s\n", "factor", "reset", "flicker", "vs raw",
              "hard %", "|s - raw| %", "lag frames");
  const double raw = r.rows[0].flicker();
  for (const FlickerRow& row : r.rows) {
    char flicker[32];
    std::snprintf(flicker, sizeof flicker, "%.5f (%.3f%%)", row.flicker(), 100 * row.flicker());
    std::printf("%-7.2g %-6s %-18s %-10.3f %-10.3f %-14.3f %-10d\n", row.factor,
                row.factor == 0 ? "-" : row.reset ? "yes" : "no", flicker,
                raw > 0 ? row.flicker() / raw : 0.0, 100 * row.hard_flicker(),
                100 * row.deviation(), row.lag());
  }
  const Summary ms = summarize(r.ms);
  std::printf("per frame: run() + thumbnail + %zu smoothings and soft masks, ms median / p95: %s\n",
              r.rows.size(), fmt(ms).c_str());
}

// ---- JSON ---------------------------------------------------------------------------------

void write_series(cv::FileStorage& fs, const std::string& key, const std::vector<double>& ms) {
  const Summary s = summarize(ms);
  fs << key << "{" << "median" << s.median << "p95" << s.p95 << "all" << ms << "}";
}

void write_series(cv::FileStorage& fs, const std::string& key, const StageSeries& s,
                  int frames) {
  const Summary sum = summarize(s.ms);
  fs << key << "{" << "median" << sum.median << "p95" << sum.p95
     << "allocations_per_frame" << per_frame(s.allocations, frames)
     << "allocated_bytes_per_frame"
     << (frames > 0 ? static_cast<double>(s.allocations.bytes) / frames : 0.0) << "all" << s.ms
     << "}";
}

void write_json(const std::string& path, const Options& opt, const unetseg::Segmenter& seg,
                const std::vector<LibraryResult>& library,
                const std::vector<ElementResult>& element, const PeerResult* peer,
                const MemoryResult* memory, const FlickerResult* flicker,
                const LiveResult* live) {
  cv::FileStorage fs(path, cv::FileStorage::WRITE | cv::FileStorage::FORMAT_JSON);
  if (!fs.isOpened()) throw unetseg::Error("cannot write " + path);
  const std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  fs << "date" << when;
  fs << "machine" << "{" << "cpu" << cpu_model()
     << "cores" << static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))
     << "opencv" << CV_VERSION << "opencv_threads" << cv::getNumThreads()
     << "gstreamer" << gst_version_string() << "}";
  fs << "model" << "{" << "path" << seg.model_path() << "name" << seg.spec().name
     << "input" << std::vector<int>{seg.spec().input_width, seg.spec().input_height}
     << "backend" << unetseg::to_string(seg.active_backend()) << "}";
  fs << "frames" << opt.frames << "warmup" << opt.warmup;
  fs << "library" << "[";
  for (const auto& r : library) {
    fs << "{" << "size" << r.size.name << "width" << r.size.size.width << "height"
       << r.size.size.height;
    write_series(fs, "preprocess", r.preprocess, r.frames);
    write_series(fs, "forward", r.forward, r.frames);
    write_series(fs, "postprocess", r.postprocess, r.frames);
    write_series(fs, "run", r.run, r.frames);
    write_series(fs, "mask", r.mask, r.frames);
    write_series(fs, "bare_forward", r.bare_forward, r.frames);
    fs << "composite" << "{";
    for (const auto& [mode, series] : r.composite)
      write_series(fs, unetseg::to_string(mode), series, r.frames);
    fs << "}";
    fs << "refinement" << "{";
    for (const auto& step : r.refine) {
      const Summary sum = summarize(step.series.ms);
      fs << step.name << "{" << "label" << step.label << "min_island" << step.options.min_island
         << "guided_radius" << step.options.guided_radius << "guided_eps"
         << step.options.guided_eps << "smooth_contour" << step.options.smooth_contour
         << "feather" << step.options.feather << "median" << sum.median << "p95" << sum.p95
         << "allocations_per_frame" << per_frame(step.series.allocations, r.frames)
         << "allocated_bytes_per_frame"
         << (r.frames > 0 ? static_cast<double>(step.series.allocations.bytes) / r.frames : 0.0)
         << "all" << step.series.ms << "}";
    }
    fs << "}" << "}";
  }
  fs << "]";
  fs << "element" << "[";
  for (const auto& r : element) {
    fs << "{" << "size" << r.size.name << "mode" << opt.element_mode << "frames" << r.frames
       << "fps" << r.fps;
    write_series(fs, "latency", r.latency_ms);
    write_series(fs, "bare_forward", r.bare_forward_ms);
    fs << "}";
  }
  fs << "]";
  if (peer) {
    fs << "peer" << "{" << "arch" << peer->arch << "size" << opt.peer_size << "torch"
       << peer->torch_version << "threads" << peer->threads << "frame"
       << std::vector<int>{opt.peer_frame.size.width, opt.peer_frame.size.height};
    write_series(fs, "torch_forward", peer->torch_forward_ms);
    write_series(fs, "opencv_forward", peer->opencv_forward_ms);
    write_series(fs, "torch_pipeline", peer->torch_pipeline_ms);
    write_series(fs, "unetseg_pipeline", peer->unetseg_pipeline_ms);
    fs << "}";
  }
  if (memory) {
    fs << "memory" << "{" << "size" << opt.memory_size.name << "frames" << memory->frames
       << "fps" << memory->fps << "rss_mib" << "[";
    for (const auto& [frame, mib] : memory->rss)
      fs << "{" << "frame" << frame << "mib" << mib << "}";
    fs << "]" << "}";
  }
  if (flicker) {
    fs << "flicker" << "{" << "clips" << "[";
    for (std::size_t i = 0; i < flicker->clips.size(); ++i)
      fs << "{" << "name" << flicker->clips[i] << "frames" << flicker->clip_frames[i] << "}";
    fs << "]" << "frames" << flicker->frames << "width" << flicker->size.width << "height"
       << flicker->size.height << "reset_threshold" << flicker->threshold << "max_lag" << kMaxLag;
    write_series(fs, "frame_ms", flicker->ms);
    fs << "rows" << "[";
    for (const FlickerRow& row : flicker->rows) {
      std::vector<double> lag_error;
      for (int k = 0; k <= kMaxLag; ++k) lag_error.push_back(row.lag_error(k));
      fs << "{" << "factor" << row.factor << "reset" << (row.factor > 0 && row.reset)
         << "flicker" << row.flicker() << "hard_flicker" << row.hard_flicker()
         << "deviation" << row.deviation() << "lag" << row.lag() << "lag_error" << lag_error
         << "pairs" << static_cast<int>(row.pairs) << "}";
    }
    fs << "]" << "}";
  }
  if (live) {
    fs << "live" << "{" << "pipeline" << live->pipeline << "expected" << live->expected
       << "frames" << live->out << "seconds" << live->seconds << "fps" << live->fps()
       << "missing" << live->missing
       << "late" << live->late << "rendered" << static_cast<double>(live->rendered)
       << "dropped" << static_cast<double>(live->dropped) << "with_mask" << live->with_mask
       << "model_frames" << static_cast<int>(live->mask_sources.size())
       << "latency_ms" << live->latency_ms;
    write_series(fs, "lateness_ms", live->lateness_ms);
    fs << "age_frames" << live->age_frames << "}";
  }
}

// ---- main ---------------------------------------------------------------------------------

int usage_error(const std::string& message) {
  std::fprintf(stderr, "unetseg-bench: %s\n%s", message.c_str(), kUsage);
  return 2;
}

bool parse_int(const std::string& text, int low, int high, int* out) {
  try {
    std::size_t used = 0;
    const int v = std::stoi(text, &used);
    if (used != text.size() || v < low || v > high) return false;
    *out = v;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// Returns 0 when parsed, else the exit status (2: bad usage; -1: --help).
int parse_args(int argc, char** argv, Options* opt) {
  std::vector<std::string> sizes{"720p", "1080p", "2160p"};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") return -1;
    if (i + 1 >= argc) return usage_error("unknown option or missing value: " + arg);
    const std::string value = argv[++i];
    if (arg == "--model") opt->model = value;
    else if (arg == "--sizes") sizes = split(value);
    else if (arg == "--modes") {
      opt->modes.clear();
      for (const auto& name : split(value)) {
        Mode m;
        if (!mode_from_name(name, &m))
          return usage_error("unknown mode '" + name + "' (none, overlay, alpha, blur, replace, mask)");
        opt->modes.push_back(m);
      }
    } else if (arg == "--frames") {
      if (!parse_int(value, 1, 1000000, &opt->frames)) return usage_error("--frames: 1 or more");
    } else if (arg == "--warmup") {
      if (!parse_int(value, 0, 1000, &opt->warmup)) return usage_error("--warmup: 0 to 1000");
    } else if (arg == "--sections") {
      opt->sections = split(value);
      for (const auto& s : opt->sections)
        if (s != "library" && s != "element" && s != "peer" && s != "memory" && s != "flicker" &&
            s != "live")
          return usage_error("unknown section '" + s +
                             "' (library, element, peer, memory, flicker, live)");
    } else if (arg == "--threads") {
      if (!parse_int(value, 1, 256, &opt->threads)) return usage_error("--threads: 1 to 256");
    } else if (arg == "--images") opt->images = value;
    else if (arg == "--clip") opt->clip = value;
    else if (arg == "--element-mode") {
      Mode m;
      if (!mode_from_name(value, &m)) return usage_error("unknown --element-mode '" + value + "'");
      opt->element_mode = value;
    } else if (arg == "--peer-arch") {
      if (value != "u2netp" && value != "u2net") return usage_error("--peer-arch: u2netp or u2net");
      opt->peer_arch = value;
    } else if (arg == "--peer-size") {
      if (!parse_int(value, 32, 2048, &opt->peer_size) || opt->peer_size % 32)
        return usage_error("--peer-size: a multiple of 32 from 32 to 2048");
    } else if (arg == "--peer-frame") {
      if (!parse_size(value, &opt->peer_frame)) return usage_error("--peer-frame: WxH");
    } else if (arg == "--peer-frames") {
      if (!parse_int(value, 1, 100000, &opt->peer_frames)) return usage_error("--peer-frames: 1 or more");
    } else if (arg == "--memory-frames") {
      if (!parse_int(value, 1, 10000000, &opt->memory_frames))
        return usage_error("--memory-frames: 1 or more");
    } else if (arg == "--memory-size") {
      if (!parse_size(value, &opt->memory_size)) return usage_error("--memory-size: WxH or 720p");
    } else if (arg == "--live-seconds") {
      if (!parse_int(value, 1, 86400, &opt->live_seconds))
        return usage_error("--live-seconds: a whole number of seconds, 1 or more");
    } else if (arg == "--live-size") {
      if (!parse_size(value, &opt->live_size)) return usage_error("--live-size: WxH or 720p");
    } else if (arg == "--live-fps") {
      if (!parse_int(value, 1, 240, &opt->live_fps)) return usage_error("--live-fps: 1 to 240");
    } else if (arg == "--live-props") {
      opt->live_props = value;
    } else if (arg == "--flicker-clips") {
      opt->flicker_clips = split(value);
      if (opt->flicker_clips.empty()) return usage_error("--flicker-clips: give at least one");
    } else if (arg == "--flicker-frames") {
      if (!parse_int(value, 2, 10000000, &opt->flicker_frames))
        return usage_error("--flicker-frames: 2 or more");
    } else if (arg == "--flicker-size") {
      if (!parse_size(value, &opt->flicker_size)) return usage_error("--flicker-size: WxH or 720p");
    } else if (arg == "--flicker-threshold") {
      char* end = nullptr;
      opt->flicker_threshold = std::strtod(value.c_str(), &end);
      const double t = opt->flicker_threshold;
      if (end == value.c_str() || *end || !(t >= 0 && t <= 255))
        return usage_error("--flicker-threshold: grey levels, 0 to 255");
    } else if (arg == "--json") opt->json = value;
    else return usage_error("unknown option: " + arg);
  }
  for (const auto& s : sizes) {
    NamedSize size;
    if (!parse_size(s, &size)) return usage_error("--sizes: '" + s + "' is not 720p, 1080p, 2160p or WxH");
    opt->sizes.push_back(size);
  }
  if (opt->sizes.empty()) return usage_error("--sizes: give at least one size");
  if (opt->modes.empty()) return usage_error("--modes: give at least one mode");
  if (opt->sections.empty()) return usage_error("--sections: give at least one section");
  return 0;
}

// The element from the build tree when no installed or GST_PLUGIN_PATH one is found.
bool find_element() {
  if (GstElementFactory* f = gst_element_factory_find("unetseg")) {
    gst_object_unref(f);
    return true;
  }
  gst_registry_scan_path(gst_registry_get(), UNETSEG_PLUGIN_BUILD_DIR);
  GstElementFactory* f = gst_element_factory_find("unetseg");
  if (f) gst_object_unref(f);
  return f != nullptr;
}

int run(const Options& opt) {
  if (opt.threads > 0) cv::setNumThreads(opt.threads);
  const std::string model_path = unetseg::resolve_model(opt.model);
  std::fprintf(stderr, "unetseg-bench: loading %s\n", model_path.c_str());
  unetseg::Segmenter seg(model_path, unetseg::Backend::Cpu);
  const fs::path images = opt.images.empty() ? shared_dir() / "data" / "person-dev" / "images"
                                             : fs::path(opt.images);
  const Photos loaded = load_photos(images, 4);
  const std::vector<cv::Mat>& photos = loaded.rgba;

  std::printf("unetseg-bench: %s (%dx%d) on the CPU; OpenCV %s, %d threads; %s, %ld cores\n",
              seg.spec().name.c_str(), seg.spec().input_width, seg.spec().input_height,
              CV_VERSION, cv::getNumThreads(), cpu_model().c_str(),
              sysconf(_SC_NPROCESSORS_ONLN));

  std::vector<LibraryResult> library;
  if (opt.wants("library"))
    for (const auto& size : opt.sizes) {
      std::fprintf(stderr, "unetseg-bench: library %s ...\n", size.name.c_str());
      library.push_back(bench_library(seg, model_path, size, photos, opt));
    }
  print_library(library, opt);

  if ((opt.wants("element") || opt.wants("memory") || opt.wants("live")) && !find_element())
    throw unetseg::Error("the unetseg element is not found: build it (ninja -C build) or set "
                         "GST_PLUGIN_PATH to the folder with libgstunetseg.so");
  std::vector<ElementResult> element;
  if (opt.wants("element")) {
    const fs::path clip =
        opt.clip.empty() ? shared_dir() / "media" / "people-walking.mp4" : fs::path(opt.clip);
    if (!fs::is_regular_file(clip))
      throw unetseg::Error("no clip at " + clip.string() + ": give --clip FILE");
    for (const auto& size : opt.sizes) {
      std::fprintf(stderr, "unetseg-bench: element %s ...\n", size.name.c_str());
      element.push_back(bench_element(seg, model_path, size, clip, photos, opt));
    }
  }
  print_element(element, opt);

  PeerResult peer;
  if (opt.wants("peer")) {
    peer = bench_peer(photos, loaded.first, opt);
    print_peer(peer, opt);
  }
  MemoryResult memory;
  if (opt.wants("memory")) {
    memory = bench_memory(model_path, opt);
    print_memory(memory, opt);
  }
  FlickerResult flicker;
  if (opt.wants("flicker")) {
    flicker = bench_flicker(seg, opt);
    print_flicker(flicker, seg);
  }
  LiveResult live;
  if (opt.wants("live")) {
    live = bench_live(model_path, loaded.first, opt);
    print_live(live, opt);
  }
  if (!opt.json.empty()) {
    write_json(opt.json, opt, seg, library, element, opt.wants("peer") ? &peer : nullptr,
               opt.wants("memory") ? &memory : nullptr,
               opt.wants("flicker") ? &flicker : nullptr, opt.wants("live") ? &live : nullptr);
    std::fprintf(stderr, "unetseg-bench: wrote %s\n", opt.json.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  const int parsed = parse_args(argc, argv, &opt);
  if (parsed == -1) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (parsed != 0) return parsed;
  gst_init(nullptr, nullptr);
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unetseg-bench: %s\n", e.what());
    return 1;
  }
}
