// unetseg-bench: how fast unetseg is, and what it costs besides the network itself.
//
// Six sections, each measured in the same run as what it is compared with (these machines are
// shared and noisy: ratios side by side, never absolute numbers from different runs); bench.hpp
// lists them with their files. A readable table goes to stdout, and with --json every figure,
// with the machine, to a file. The frame path is the element's own (VideoSegmenter) with the
// element's settings, given as flags spelled like its properties.
#include <opencv2/core/utility.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <unistd.h>

#include "bench.hpp"
#include "unetseg/error.hpp"
#include "unetseg/model_cache.hpp"

namespace bench {
namespace {

using unetseg_tools::UsageError;

std::string usage() {
  const Options defaults;
  return "usage: unetseg-bench [--model NAME|M.onnx] [--sizes 720p,1080p,2160p] [--modes LIST]\n"
         "                     [--frames N] [--sections library,element,peer] [--threads N]\n"
         "                     [--json FILE] [element properties] [more options below]\n"
         "\n"
         "Measures unetseg's speed on this machine, each figure beside what it is compared with.\n"
         "\n" +
         defaults.model.usage() +
         "  --sizes LIST       frame sizes: 720p, 1080p, 2160p or WxH (default 720p,1080p,2160p;\n"
         "                     the passes section alone: 1080p)\n"
         "  --modes LIST       drawing modes timed in the library section\n"
         "                     (default overlay,alpha,blur,replace,mask)\n"
         "  --frames N         timed frames per size in library and element sections (default 30)\n"
         "  --warmup N         untimed frames first (default 3)\n"
         "  --sections LIST    any of library, element, peer, memory, flicker, live, streams,\n"
         "                     passes (default library,element,peer)\n"
         "  --threads N        OpenCV (and PyTorch) threads (default: OpenCV's own, one per core)\n"
         "  --images DIR       photos the library frames are made from (default\n"
         "                     ../shared/data/person-dev/images beside the source tree)\n"
         "  --clip FILE        the clip the element section decodes (default\n"
         "                     ../shared/media/people-walking.mp4)\n"
         "  --peer-arch A      u2netp or u2net (default u2netp), at --peer-size (default 320)\n"
         "  --peer-frame WxH   the frame the peer pipelines process (default 1920x1080)\n"
         "  --peer-frames N    timed frames of each peer figure (default 5)\n"
         "  --memory-frames N  frames of the memory section (default 10000), videotestsrc at\n"
         "  --memory-size S    this size (default 720p)\n"
         "  --flicker-clips L  clips (files, or folders of *.mkv *.mp4 *.webm *.avi *.mov) the\n"
         "                     flicker section decodes (default ../shared/media/asl)\n"
         "  --flicker-frames N at most N frames of each clip (default all)\n"
         "  --flicker-size S   decode at WxH or 720p... (default each clip's own size)\n"
         "  --flicker-threshold T  the smoothing's reset threshold, grey levels (default 12)\n"
         "  --live-seconds N   length of the live section's stream (default 10)\n"
         "  --live-size S      its frame size (default 720p), at --live-fps (default 30)\n"
         "  --streams LIST     the streams section's stream counts (default 1,2,4,8), each\n"
         "  --streams-size S   at this size (default 1080p), --live-fps, for --live-seconds\n"
         "  --json FILE        every figure, per frame where there is one, as JSON\n"
         "  --help             this text\n"
         "\n"
         "The element's settings, for the library section and every pipeline (its properties):\n" +
         unetseg_tools::frame_flags_usage(unetseg_tools::kAllFrameFlags, defaults.frame) +
         "\n"
         "Times are wall-clock milliseconds per frame, median / p95 (nearest rank).\n"
         "\n"
         "Flicker (not part of the default run): each frame of each clip through --model once,\n"
         "then one VideoSegmenter per smoothing setting (factors 0 (off), 0.5, 0.7 and 0.9, with\n"
         "the reset at --flicker-threshold and without it) takes that inference, soft mask.\n"
         "Flicker: the mean |alpha_t - alpha_t-1| over consecutive frames, 0..1 (and the share\n"
         "of pixels whose hard mask, alpha >= 128, changes). Lag: mean |alpha_t - raw_t| (raw:\n"
         "factor 0), and the k in 0..15 frames minimising mean |alpha_t - raw_t-k|.\n"
         "\n"
         "Live (not part of the default run): a person photo made a live source by imagefreeze\n"
         "is-live=true (a camera pointed at someone holding still) at --live-size and --live-fps\n"
         "-> unetseg (live=auto: live) -> fakesink sync=true qos=true with a video sink's\n"
         "max-lateness of 20 ms. Missing: frames the source never made (gaps in the PTS at the\n"
         "sink); late: frames reaching the sink after their render time; dropped: the sink's own\n"
         "count. Mask age: (frame PTS - PTS of the frame the mask came from) / frame period.\n"
         "\n"
         "Streams (not part of the default run): N such live sources at --streams-size in one\n"
         "process, each through its own unetseg (live=on) into its own sink, first with one\n"
         "model shared by all (share-model=true: one inference thread, frames batched up to\n"
         "batch-size), then with one model each (share-model=false), for each N of --streams.\n";
}

NamedSize size_value(unetseg_tools::Args& args) {
  const std::string v = args.value();
  NamedSize size;
  if (!parse_size(v, &size)) throw UsageError(args.flag() + ": WxH or 720p, 1080p, 2160p");
  return size;
}

// Throws UsageError; returns false for --help.
bool parse_args(int argc, char** argv, Options* opt) {
  std::vector<std::string> sizes{"720p", "1080p", "2160p"};
  unetseg_tools::Args args(argc, argv);
  while (args.next()) {
    const std::string& a = args.flag();
    if (a == "--help" || a == "-h") return false;
    if (a == "--sizes") {
      sizes = args.list();
      opt->sizes_given = true;
    } else if (a == "--modes") {
      opt->modes.clear();
      for (const auto& name : args.list()) {
        Mode m;
        if (!unetseg::mode_from_string(name, &m))
          throw UsageError("unknown mode '" + name +
                           "' (none, overlay, alpha, blur, replace, mask)");
        opt->modes.push_back(m);
      }
    } else if (a == "--frames") {
      opt->frames = args.integer(1, 1000000);
    } else if (a == "--warmup") {
      opt->warmup = args.integer(0, 1000);
    } else if (a == "--sections") {
      opt->sections = args.list();
      for (const auto& s : opt->sections)
        if (s != "library" && s != "element" && s != "peer" && s != "memory" && s != "flicker" &&
            s != "live" && s != "streams" && s != "passes")
          throw UsageError("unknown section '" + s +
                           "' (library, element, peer, memory, flicker, live, streams, passes)");
    } else if (a == "--threads") {
      opt->threads = args.integer(1, 256);
    } else if (a == "--images") {
      opt->images = args.value();
    } else if (a == "--clip") {
      opt->clip = args.value();
    } else if (a == "--peer-arch") {
      opt->peer_arch = args.value();
      if (opt->peer_arch != "u2netp" && opt->peer_arch != "u2net")
        throw UsageError("--peer-arch: u2netp or u2net");
    } else if (a == "--peer-size") {
      opt->peer_size = args.integer(32, 2048);
      if (opt->peer_size % 32) throw UsageError("--peer-size: a multiple of 32 from 32 to 2048");
    } else if (a == "--peer-frame") {
      opt->peer_frame = size_value(args);
    } else if (a == "--peer-frames") {
      opt->peer_frames = args.integer(1, 100000);
    } else if (a == "--memory-frames") {
      opt->memory_frames = args.integer(1, 10000000);
    } else if (a == "--memory-size") {
      opt->memory_size = size_value(args);
    } else if (a == "--live-seconds") {
      opt->live_seconds = args.integer(1, 86400);
    } else if (a == "--live-size") {
      opt->live_size = size_value(args);
    } else if (a == "--live-fps") {
      opt->live_fps = args.integer(1, 240);
    } else if (a == "--streams") {
      opt->streams.clear();
      for (const auto& n : args.list()) {
        char* end = nullptr;
        const long v = std::strtol(n.c_str(), &end, 10);
        if (n.empty() || *end || v < 1 || v > 64)
          throw UsageError("--streams: counts from 1 to 64, got '" + n + "'");
        opt->streams.push_back(static_cast<int>(v));
      }
      if (opt->streams.empty()) throw UsageError("--streams: give at least one count");
    } else if (a == "--streams-size") {
      opt->streams_size = size_value(args);
    } else if (a == "--flicker-clips") {
      opt->flicker_clips = args.list();
      if (opt->flicker_clips.empty()) throw UsageError("--flicker-clips: give at least one");
    } else if (a == "--flicker-frames") {
      opt->flicker_frames = args.integer(2, 10000000);
    } else if (a == "--flicker-size") {
      opt->flicker_size = size_value(args);
    } else if (a == "--flicker-threshold") {
      opt->flicker_threshold = args.number(0, 255);
    } else if (a == "--json") {
      opt->json = args.value();
    } else if (!opt->model.parse(args) &&
               !unetseg_tools::parse_frame_flag(args, unetseg_tools::kAllFrameFlags,
                                                opt->frame)) {
      args.unknown();
    }
  }
  for (const auto& s : sizes) {
    NamedSize size;
    if (!parse_size(s, &size))
      throw UsageError("--sizes: '" + s + "' is not 720p, 1080p, 2160p or WxH");
    opt->sizes.push_back(size);
  }
  if (opt->sizes.empty()) throw UsageError("--sizes: give at least one size");
  if (opt->modes.empty()) throw UsageError("--modes: give at least one mode");
  if (opt->sections.empty()) throw UsageError("--sections: give at least one section");
  return true;
}

int run(const Options& opt) {
  if (opt.threads > 0) cv::setNumThreads(opt.threads);
  std::fprintf(stderr, "unetseg-bench: loading %s\n",
               unetseg::resolve_model(opt.model.model).c_str());
  const std::shared_ptr<unetseg::Segmenter> seg = opt.model.load("unetseg-bench");
  const std::string& model_path = seg->model_path();
  const fs::path images = opt.images.empty() ? shared_dir() / "data" / "person-dev" / "images"
                                             : fs::path(opt.images);
  const Photos loaded = load_photos(images, 4);
  const std::vector<cv::Mat>& photos = loaded.rgba;

  std::printf("unetseg-bench: %s (%dx%d) on the %s; OpenCV %s, %d threads; %s, %ld cores\n",
              seg->spec().name.c_str(), seg->spec().input_width, seg->spec().input_height,
              unetseg::to_string(seg->active_backend()), CV_VERSION, cv::getNumThreads(),
              cpu_model().c_str(), sysconf(_SC_NPROCESSORS_ONLN));

  std::vector<LibraryResult> library;
  if (opt.wants("library"))
    for (const auto& size : opt.sizes) {
      std::fprintf(stderr, "unetseg-bench: library %s ...\n", size.name.c_str());
      library.push_back(bench_library(seg, size, photos, opt));
    }
  print_library(library, opt);

  std::vector<PassesResult> passes;
  const std::vector<NamedSize> passes_sizes =
      opt.sizes_given ? opt.sizes : std::vector<NamedSize>{{"1080p", {1920, 1080}}};
  if (opt.wants("passes"))
    for (const auto& size : passes_sizes) {
      std::fprintf(stderr, "unetseg-bench: passes %s ...\n", size.name.c_str());
      for (auto& r : bench_passes(seg, size, photos, opt)) passes.push_back(std::move(r));
    }
  print_passes(passes, opt);

  if ((opt.wants("element") || opt.wants("memory") || opt.wants("live") ||
       opt.wants("streams")) &&
      !find_element())
    throw unetseg::Error("the unetseg element is not found: build it (ninja -C build) or set "
                         "GST_PLUGIN_PATH to the folder with libgstunetseg.so");
  std::vector<ElementResult> element;
  if (opt.wants("element")) {
    const fs::path clip =
        opt.clip.empty() ? shared_dir() / "media" / "people-walking.mp4" : fs::path(opt.clip);
    if (!fs::is_regular_file(clip))
      throw unetseg::Error("no clip at " + clip.string() +
                           ": give --clip FILE (or set UNETSEG_SHARED to the directory holding "
                           "media/people-walking.mp4)");
    for (const auto& size : opt.sizes) {
      std::fprintf(stderr, "unetseg-bench: element %s ...\n", size.name.c_str());
      element.push_back(bench_element(*seg, size, clip, photos, opt));
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
    print_flicker(flicker, *seg);
  }
  LiveResult live;
  if (opt.wants("live")) {
    live = bench_live(model_path, loaded.first, opt);
    print_live(live, opt);
  }
  // Side by side for each N: shared, then independent, in the same minute.
  std::vector<StreamsResult> streams;
  std::vector<BatchTiming> batches;
  if (opt.wants("streams")) {
    batches = bench_batches(*seg, photos[0], opt);
    print_batches(batches, opt);
  }
  if (opt.wants("streams"))
    for (int n : opt.streams)
      for (bool shared : {true, false}) {
        if (n == 1 && !shared) continue;  // one stream: the same pipeline either way
        streams.push_back(bench_streams(model_path, loaded.first, n, shared, opt));
      }
  print_streams(streams, opt);
  if (!opt.json.empty()) {
    write_json(opt.json, opt, *seg, library, element, opt.wants("peer") ? &peer : nullptr,
               opt.wants("memory") ? &memory : nullptr,
               opt.wants("flicker") ? &flicker : nullptr, opt.wants("live") ? &live : nullptr,
               streams, batches, passes);
    std::fprintf(stderr, "unetseg-bench: wrote %s\n", opt.json.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  bench::Options opt;
  try {
    if (!bench::parse_args(argc, argv, &opt)) {
      std::fputs(bench::usage().c_str(), stdout);
      return 0;
    }
  } catch (const unetseg_tools::UsageError& e) {
    std::fprintf(stderr, "unetseg-bench: %s\n%s", e.what(), bench::usage().c_str());
    return 2;
  }
  gst_init(nullptr, nullptr);
  try {
    return bench::run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unetseg-bench: %s\n", e.what());
    return 1;
  }
}
