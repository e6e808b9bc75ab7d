// unetseg-bench: how fast unetseg is, and what it costs besides the network itself.
//
// Four sections, each measured in the same run as what it is compared with (these machines are
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
// A readable table goes to stdout, and with --json every figure, with the machine, to a file.
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
#include <exception>
#include <filesystem>
#include <fstream>
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
    "  --sections LIST    any of library, element, peer, memory (default library,element,peer)\n"
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
    "  --json FILE        every figure, per frame where there is one, as JSON\n"
    "  --help             this text\n"
    "\n"
    "Times are wall-clock milliseconds per frame, median / p95 (nearest rank).\n";

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

struct LibraryResult {
  NamedSize size;
  int frames = 0;
  StageSeries preprocess, forward, postprocess, run, mask, bare_forward;
  std::map<Mode, StageSeries> composite;
};

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

// Runs `description` (which names its unetseg element "seg") until the probe has seen enough
// frames, EOS or an error.
void run_pipeline(const std::string& description, PipelineProbe& probe) {
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(description.c_str(), &error);
  if (!pipeline) {
    const std::string message = error ? error->message : "unknown error";
    g_clear_error(&error);
    throw unetseg::Error("cannot build the pipeline '" + description + "': " + message);
  }
  g_clear_error(&error);  // a recoverable warning
  probe.pipeline = pipeline;
  GstElement* seg = gst_bin_get_by_name(GST_BIN(pipeline), "seg");
  GstPad* sink = gst_element_get_static_pad(seg, "sink");
  GstPad* src = gst_element_get_static_pad(seg, "src");
  gst_pad_add_probe(sink, GST_PAD_PROBE_TYPE_BUFFER, &PipelineProbe::on_sink, &probe, nullptr);
  gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, &PipelineProbe::on_src, &probe, nullptr);
  gst_object_unref(sink);
  gst_object_unref(src);
  gst_object_unref(seg);

  std::string failure;
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    failure = "the pipeline would not start";
  GstBus* bus = gst_element_get_bus(pipeline);
  while (failure.empty()) {
    GstMessage* msg = gst_bus_timed_pop_filtered(
        bus, GST_CLOCK_TIME_NONE,
        static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_EOS | GST_MESSAGE_APPLICATION));
    const GstMessageType type = GST_MESSAGE_TYPE(msg);
    if (type == GST_MESSAGE_ERROR) {
      GError* err = nullptr;
      gchar* debug = nullptr;
      gst_message_parse_error(msg, &err, &debug);
      failure = std::string(err->message) + (debug ? std::string(" (") + debug + ")" : "");
      g_clear_error(&err);
      g_free(debug);
    }
    gst_message_unref(msg);
    if (type != GST_MESSAGE_ERROR) break;  // done, or EOS before enough frames
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
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
                const MemoryResult* memory) {
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
        if (s != "library" && s != "element" && s != "peer" && s != "memory")
          return usage_error("unknown section '" + s + "' (library, element, peer, memory)");
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

  if ((opt.wants("element") || opt.wants("memory")) && !find_element())
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
  if (!opt.json.empty()) {
    write_json(opt.json, opt, seg, library, element, opt.wants("peer") ? &peer : nullptr,
               opt.wants("memory") ? &memory : nullptr);
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
