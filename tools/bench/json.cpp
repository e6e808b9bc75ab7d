// unetseg-bench's JSON report: every figure, per frame where there is one, with the machine.
#include <opencv2/core/utility.hpp>

#include <ctime>
#include <unistd.h>

#include "bench.hpp"
#include "unetseg/error.hpp"

namespace bench {

namespace {

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

void write_library(cv::FileStorage& fs, const std::vector<LibraryResult>& library) {
  fs << "library" << "[";
  for (const auto& r : library) {
    fs << "{" << "size" << r.size.name << "width" << r.size.size.width << "height"
       << r.size.size.height;
    write_series(fs, "preprocess", r.preprocess.ms);
    write_series(fs, "forward", r.forward.ms);
    write_series(fs, "postprocess", r.postprocess.ms);
    // run: the model's time; its allocations are the whole process() of the inferred frame.
    write_series(fs, "run", r.run, r.frames);
    write_series(fs, "mask", r.mask.ms);
    write_series(fs, "carried", r.carried, r.frames);
    write_series(fs, "bare_forward", r.bare_forward, r.frames);
    fs << "composite" << "{";
    for (const auto& [mode, series] : r.composite)
      write_series(fs, unetseg::to_string(mode), series, r.frames);
    fs << "}";
    fs << "refinement" << "{";
    for (const auto& step : r.refine) {
      const unetseg::MaskOptions& o = step.options.mask;
      fs << step.name << "{" << "label" << step.label << "min_island" << o.min_island
         << "guided_radius" << o.guided_radius << "guided_eps" << o.guided_eps
         << "smooth_contour" << o.smooth_contour << "feather" << o.feather << "smoothing"
         << step.options.smoothing;
      const Summary sum = summarize(step.series.ms);
      fs << "median" << sum.median << "p95" << sum.p95 << "allocations_per_frame"
         << per_frame(step.series.allocations, r.frames) << "allocated_bytes_per_frame"
         << (r.frames > 0 ? static_cast<double>(step.series.allocations.bytes) / r.frames : 0.0)
         << "all" << step.series.ms << "}";
    }
    fs << "}" << "}";
  }
  fs << "]";
}

void write_flicker(cv::FileStorage& fs, const FlickerResult& flicker) {
  fs << "flicker" << "{" << "clips" << "[";
  for (std::size_t i = 0; i < flicker.clips.size(); ++i)
    fs << "{" << "name" << flicker.clips[i] << "frames" << flicker.clip_frames[i] << "}";
  fs << "]" << "frames" << flicker.frames << "width" << flicker.size.width << "height"
     << flicker.size.height << "reset_threshold" << flicker.threshold << "max_lag" << kMaxLag;
  write_series(fs, "frame_ms", flicker.ms);
  fs << "rows" << "[";
  for (const FlickerRow& row : flicker.rows) {
    std::vector<double> lag_error;
    for (int k = 0; k <= kMaxLag; ++k) lag_error.push_back(row.lag_error(k));
    fs << "{" << "factor" << row.factor << "reset" << (row.factor > 0 && row.reset)
       << "zero_state" << row.zero_state
       << "flicker" << row.flicker() << "hard_flicker" << row.hard_flicker()
       << "deviation" << row.deviation() << "lag" << row.lag() << "lag_error" << lag_error
       << "pairs" << static_cast<int>(row.pairs) << "}";
  }
  fs << "]" << "}";
}

}  // namespace

void write_json(const std::string& path, const Options& opt, const unetseg::Segmenter& seg,
                const std::vector<LibraryResult>& library,
                const std::vector<ElementResult>& element, const PeerResult* peer,
                const MemoryResult* memory, const FlickerResult* flicker,
                const LiveResult* live, const std::vector<StreamsResult>& streams,
                const std::vector<BatchTiming>& batches,
                const std::vector<PassesResult>& passes) {
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
  fs << "properties" << unetseg_tools::element_properties(opt.frame);
  fs << "frames" << opt.frames << "warmup" << opt.warmup;
  write_library(fs, library);
  write_passes(fs, passes);
  fs << "element" << "[";
  for (const auto& r : element) {
    fs << "{" << "size" << r.size.name << "mode" << unetseg::to_string(opt.frame.mode)
       << "frames" << r.frames << "fps" << r.fps << "allocations_per_frame"
       << per_frame(r.allocations, r.frames);
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
  if (flicker) write_flicker(fs, *flicker);
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
  fs << "batches" << "[";
  for (const BatchTiming& t : batches) {
    fs << "{" << "batch" << t.batch;
    write_series(fs, "ms_per_frame", t.ms_per_frame);
    fs << "}";
  }
  fs << "]";
  fs << "streams" << "[";
  for (const StreamsResult& r : streams) {
    fs << "{" << "streams" << r.streams << "shared" << r.shared << "size"
       << opt.streams_size.name << "fps" << opt.live_fps << "seconds" << r.seconds
       << "cpu_share" << r.cpu_share << "rss_mib" << r.rss_mib << "per_stream" << "[";
    for (const LiveResult& s : r.per_stream) {
      fs << "{" << "expected" << s.expected << "frames" << s.out << "fps" << s.fps()
         << "missing" << s.missing << "model_frames" << static_cast<int>(s.mask_sources.size())
         << "mean_batch" << s.mean_batch();
      write_series(fs, "age_frames", s.age_frames);
      fs << "}";
    }
    fs << "]" << "}";
  }
  fs << "]";
}

}  // namespace bench
