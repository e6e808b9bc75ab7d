// unetseg-bench's pieces: the options, what the sections share, and one function pair (measure,
// print) per section, each in its own file as OpenCV's perf/ splits its benchmarks:
//   library.cpp  the element's frame path (VideoSegmenter) timed per stage, size and mode
//   element.cpp  a real pipeline, and memory over many frames
//   peer.cpp     the same network in PyTorch
//   live.cpp     a live source through the element into a synchronised sink
//   flicker.cpp  mask stability on real clips, per smoothing setting
//   passes.cpp   the frame path besides the forward, per mode, in frame copies (memcpy)
//   json.cpp     every figure as JSON
#pragma once

#include <gst/gst.h>
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "../alloc_counter.hpp"
#include "../flags.hpp"
#include "unetseg/compositor.hpp"
#include "unetseg/mask_filter.hpp"
#include "unetseg/segmenter.hpp"
#include "unetseg/video_segmenter.hpp"

namespace bench {

namespace fs = std::filesystem;
using unetseg::Mode;
using unetseg_tools::Allocations;
using unetseg_tools::allocations_so_far;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0);

struct Summary {
  double median = 0, p95 = 0;
};
Summary summarize(std::vector<double> v);  // nearest rank
std::string fmt(const Summary& s);         // "median / p95"

struct NamedSize {
  std::string name;
  cv::Size size;
};
bool parse_size(const std::string& text, NamedSize* out);  // 720p, 1080p, 2160p or WxH

struct Options {
  unetseg_tools::ModelFlags model{"portrait-unet", unetseg::Backend::Cpu};
  // The element's settings, for the library section and every pipeline: --mode and the other
  // frame-path flags, spelled like the element's properties (blur by default here).
  unetseg::VideoSegmenter::Options frame = [] {
    unetseg::VideoSegmenter::Options o;
    o.mode = Mode::Blur;
    return o;
  }();
  std::vector<NamedSize> sizes;
  bool sizes_given = false;  // --sizes was given (else the passes section runs at 1080p only)
  std::vector<Mode> modes{Mode::Overlay, Mode::Alpha, Mode::Blur, Mode::Replace, Mode::Mask};
  int frames = 30;
  int warmup = 3;
  std::vector<std::string> sections{"library", "element", "peer"};
  int threads = 0;
  std::string images, clip;
  std::string peer_arch = "u2netp";
  int peer_size = 320;
  NamedSize peer_frame{"1080p", {1920, 1080}};
  int peer_frames = 5;
  int memory_frames = 10000;
  NamedSize memory_size{"720p", {1280, 720}};
  std::vector<std::string> flicker_clips;
  int flicker_frames = 0;              // 0: all
  NamedSize flicker_size{"", {0, 0}};  // empty: each clip's own
  double flicker_threshold = 12;
  int live_seconds = 10;
  NamedSize live_size{"720p", {1280, 720}};
  int live_fps = 30;
  std::vector<int> streams{1, 2, 4, 8};       // the streams section's stream counts
  NamedSize streams_size{"1080p", {1920, 1080}};
  std::string json;

  bool wants(const std::string& section) const;
  // The unetseg element as a gst-launch fragment, named `name`, with these settings.
  std::string element(const std::string& model_path, const std::string& name = "seg") const;
};

// ---- what the sections share (common.cpp) -------------------------------------------------

fs::path source_root();  // $UNETSEG_SOURCE_ROOT, else the tree it was built from
fs::path shared_dir();   // $UNETSEG_SHARED, else ../shared beside the source tree
// The peer's script and the PYTHONPATH holding the unetseg_models package it imports: from
// $UNETSEG_SOURCE_ROOT or, run from the build tree, the source tree (tools/bench_peer.py,
// models/); installed, PREFIX/share/unetseg (bench_peer.py, and the package beside it).
struct PeerFiles {
  fs::path script, python_path;
};
PeerFiles peer_files();
std::string cpu_model();
double resident_mib();

// A few real photos (person-dev, in name order) as RGBA: real content makes real masks.
struct Photos {
  std::vector<cv::Mat> rgba;
  fs::path first;  // the file of rgba[0]
};
Photos load_photos(const fs::path& dir, int count);
unetseg::FrameView view_of(cv::Mat& rgba);

// A bare net.forward loop on the model, as a user of OpenCV DNN would write it: the blob into the
// segmenter's image input and, for a recurrent model, zeros into each state input (a user's loop
// would feed the states back; the forward costs the same either way), all outputs computed.
struct BareForward {
  cv::dnn::Net net;
  cv::Mat blob;
  std::string input;                                  // "" = OpenCV's first input
  std::vector<std::pair<std::string, cv::Mat>> state;  // recurrent models: input name, zeros
  std::vector<std::string> output_names;              // empty: the last layer's outputs
  std::vector<cv::Mat> outputs;
  BareForward(const unetseg::Segmenter& seg, const cv::Mat& input_blob);
  void once();
  std::vector<double> times(int frames, Allocations* allocations);
};

GstElement* parse_pipeline(const std::string& description);
std::string error_text(GstMessage* msg);
// Sets the pipeline PLAYING and reads its bus until EOS, an error, or `on_message` (given the
// messages of type `also`) returns false. Returns the error's text, "" when there was none; the
// pipeline is left PLAYING for the caller to read from and stop.
std::string play_until_done(GstElement* pipeline, GstMessageType also,
                            const std::function<bool(GstMessage*)>& on_message);
std::string caps_for(const cv::Size& s);
std::string quoted(const std::string& path);
bool find_element();  // the element from the build tree when no other is found

// ---- sections -----------------------------------------------------------------------------

struct StageSeries {
  std::vector<double> ms;
  Allocations allocations;  // over all timed frames
};
double per_frame(const Allocations& a, int frames);

// One refinement (or the smoothing) timed alone, as its own VideoSegmenter would run it.
struct RefineStep {
  std::string name;  // also the JSON key
  std::string label;
  unetseg::VideoSegmenter::Options options;
  StageSeries series;
};

struct LibraryResult {
  NamedSize size;
  int frames = 0;
  // run: the model's part of an inferred frame (preprocess + forward + postprocess); mask:
  // the rest of process() on that frame; carried: process() on a frame the model does not see.
  StageSeries preprocess, forward, postprocess, run, mask, carried, bare_forward;
  std::map<Mode, StageSeries> composite;
  std::vector<RefineStep> refine;
};
LibraryResult bench_library(const std::shared_ptr<unetseg::Segmenter>& seg,
                            const NamedSize& size, const std::vector<cv::Mat>& photos,
                            const Options& opt);
void print_library(const std::vector<LibraryResult>& results, const Options& opt);

// One size and layout of the passes section: per mode, the frame path besides the forward.
struct PassesResult {
  NamedSize size;
  unetseg::PixelLayout layout = unetseg::PixelLayout::RGBx;
  int frames = 0;
  StageSeries memcpy_;  // one full-frame read + write
  struct Row {
    StageSeries total;                    // preprocess + mask + stats + draw
    std::vector<double> preprocess, mask;  // its parts (mask: with thumbnail and statistics)
    StageSeries reference;                // the old path from public pieces
    StageSeries fused, kept;              // the mask's rows recomputed in draw / kept
    std::vector<double> reference_mask;   // its mask + statistics
    cv::Mat blob, thumbnail;
  };
  std::map<Mode, Row> modes;
};
std::vector<PassesResult> bench_passes(const std::shared_ptr<unetseg::Segmenter>& seg,
                                       const NamedSize& size, const std::vector<cv::Mat>& photos,
                                       const Options& opt);
void print_passes(const std::vector<PassesResult>& results, const Options& opt);
// "passes": [...] into a JSON report (json.cpp's write_json calls it).
void write_passes(cv::FileStorage& fs, const std::vector<PassesResult>& results);

struct ElementResult {
  NamedSize size;
  int frames = 0;
  double fps = 0;
  std::vector<double> latency_ms, bare_forward_ms;
  Allocations allocations;  // on the streaming thread, unetseg's sink pad to its src pad
};
ElementResult bench_element(unetseg::Segmenter& seg, const NamedSize& size, const fs::path& clip,
                            const std::vector<cv::Mat>& photos, const Options& opt);
void print_element(const std::vector<ElementResult>& results, const Options& opt);

struct MemoryResult {
  int frames = 0;
  double fps = 0;
  std::vector<std::pair<int, double>> rss;  // (frame, MiB)
};
MemoryResult bench_memory(const std::string& model_path, const Options& opt);
void print_memory(const MemoryResult& r, const Options& opt);

struct PeerResult {
  std::string torch_version, arch;
  int threads = 0;
  std::vector<double> torch_forward_ms, torch_pipeline_ms;
  std::vector<double> opencv_forward_ms, unetseg_pipeline_ms;
};
PeerResult bench_peer(const std::vector<cv::Mat>& photos, const fs::path& photo_file,
                      const Options& opt);
void print_peer(const PeerResult& r, const Options& opt);

struct LiveResult {
  int expected = 0;                   // frames the source was asked for
  int out = 0;                        // frames that reached the sink
  int missing = 0;                    // gaps in the PTS at the sink: frames never made
  int late = 0;                       // frames reaching the sink after their render time
  guint64 rendered = 0, dropped = 0;  // the sink's own stats
  int with_mask = 0;
  std::vector<double> lateness_ms;  // per frame: arrival at the sink - its render time
  std::vector<double> age_frames;   // per frame with a mask
  std::set<guint64> mask_sources;   // distinct frames the model saw
  double seconds = 0;
  double latency_ms = 0;  // the sink's, at the end (what the pipeline configured)
  Clock::time_point first_arrival, last_arrival;
  long batch_sum = 0;  // over the distinct masks: the frames in each one's forward
  double fps() const;
  double mean_batch() const { return mask_sources.empty() ? 0 : double(batch_sum) / mask_sources.size(); }
  std::string pipeline;
  // Counts unetseg's per-frame message (its PTS, the PTS its mask came from, the forward's
  // batch); returns false for any other structure.
  bool take_message(const GstStructure* st, GstClockTime period);
};

// Watches a sink's pad for a LiveResult: arrivals, gaps in the PTS, lateness.
struct SinkProbe {
  GstElement* sink = nullptr;
  GstClockTime period = 0, last_pts = GST_CLOCK_TIME_NONE;
  LiveResult* r = nullptr;
  void attach(GstElement* pipeline, const std::string& sink_name, GstClockTime frame_period,
              LiveResult* result);
  void finish();  // the sink's latency and stats into the result; lets the sink go
  static GstPadProbeReturn on_sink(GstPad* pad, GstPadProbeInfo* info, gpointer data);
};
LiveResult bench_live(const std::string& model_path, const fs::path& photo, const Options& opt);
void print_live(const LiveResult& r, const Options& opt);

struct StreamsResult {
  int streams = 0;
  bool shared = false;  // one model for all (share-model=true), else one each
  std::vector<LiveResult> per_stream;
  double seconds = 0;
  double cpu_share = 0;  // the process's CPU time / wall time / cores
  double rss_mib = 0;    // resident memory added by the pipeline, while it ran
};
StreamsResult bench_streams(const std::string& model_path, const fs::path& photo, int n,
                            bool shared, const Options& opt);
void print_streams(const std::vector<StreamsResult>& results, const Options& opt);
// The model's forward per frame at each batch size up to --batch-size (and the model's limit).
struct BatchTiming {
  int batch = 1;
  std::vector<double> ms_per_frame;
};
std::vector<BatchTiming> bench_batches(unetseg::Segmenter& seg, const cv::Mat& photo,
                                       const Options& opt);
void print_batches(const std::vector<BatchTiming>& batches, const Options& opt);

constexpr int kMaxLag = 15;
// One smoothing configuration of the flicker section: its VideoSegmenter and its figures.
struct FlickerRow {
  double factor = 0;
  bool reset = false;
  bool zero_state = false;  // a recurrent model run from zero state on every frame (as on stills)
  double change_sum = 0, hard_change_sum = 0;  // over consecutive pairs
  long pairs = 0;
  double deviation_sum = 0;  // |alpha_t - raw_t|, over frames
  long frames = 0;
  std::vector<double> lag_sum = std::vector<double>(kMaxLag + 1, 0.0);  // |alpha_t - raw_t-k|
  std::vector<long> lag_count = std::vector<long>(kMaxLag + 1, 0);
  std::shared_ptr<unetseg::VideoSegmenter> video;
  cv::Mat previous;

  double flicker() const { return pairs ? change_sum / pairs : 0; }
  double hard_flicker() const { return pairs ? hard_change_sum / pairs : 0; }
  double deviation() const { return frames ? deviation_sum / frames : 0; }
  double lag_error(int k) const { return lag_count[k] ? lag_sum[k] / lag_count[k] : 0; }
  int lag() const;
};
struct FlickerResult {
  std::vector<std::string> clips;
  std::vector<int> clip_frames;
  int frames = 0;
  cv::Size size;  // of the first clip's frames
  double threshold = 0;
  std::vector<FlickerRow> rows;  // rows[0]: factor 0, the raw masks
  std::vector<double> ms;        // per frame: the model and every row's frame path
};
FlickerResult bench_flicker(const std::shared_ptr<unetseg::Segmenter>& seg, const Options& opt);
void print_flicker(const FlickerResult& r, const unetseg::Segmenter& seg);

void write_json(const std::string& path, const Options& opt, const unetseg::Segmenter& seg,
                const std::vector<LibraryResult>& library,
                const std::vector<ElementResult>& element, const PeerResult* peer,
                const MemoryResult* memory, const FlickerResult* flicker,
                const LiveResult* live, const std::vector<StreamsResult>& streams,
                const std::vector<BatchTiming>& batches,
                const std::vector<PassesResult>& passes);

}  // namespace bench
