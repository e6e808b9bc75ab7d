// The streams section: N live cameras in one process, each through its own unetseg into its own
// synchronised sink, with the model shared by all (the default: one network, one inference
// thread, frames batched) against N independent instances (share-model=false), side by side
// for each N: frames per second and mask age per stream, the model's frames per second, the
// mean batch, the process's CPU share and resident memory.
#include <sys/resource.h>
#include <unistd.h>

#include <malloc.h>

#include <algorithm>
#include <cstdio>

#include "bench.hpp"
#include "unetseg/error.hpp"

namespace bench {

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// One camera: a photo made a live source by imagefreeze (a camera pointed at someone holding
// still), like the live section's, then a leaky queue of two frames, as a camera driver's ring
// of buffers: the camera keeps its clock on a thread of its own, and a frame the pipeline is
// not ready for is lost, not the next ones delayed. Without it, each frame's wait at the
// synchronised sink (the pipeline's latency) would hold the source back.
std::string branch(int i, const std::string& model_path, const fs::path& photo, bool shared,
                   const Options& opt) {
  const std::string n = std::to_string(i);
  return "filesrc location=" + quoted(photo.string()) + " ! decodebin ! videoconvert ! videoscale ! " +
         caps_for(opt.streams_size.size) + " ! imagefreeze is-live=true ! video/x-raw,framerate=" +
         std::to_string(opt.live_fps) + "/1 ! queue max-size-buffers=2 leaky=downstream ! " +
         opt.element(model_path, "seg" + n) +
         " live=on post-messages=true share-model=" + (shared ? "true" : "false") +
         " ! fakesink name=sink" + n + " sync=true qos=true max-lateness=20000000 ";
}

}  // namespace

std::vector<BatchTiming> bench_batches(unetseg::Segmenter& seg, const cv::Mat& photo,
                                       const Options& opt) {
  std::vector<int> sizes{1};
  const int limit = std::min(opt.model.batch.batch_size, seg.max_batch());
  for (int b = 2; b <= limit; b *= 2) sizes.push_back(b);
  if (sizes.back() != limit && limit > 1) sizes.push_back(limit);
  cv::Mat blob;
  cv::Mat frame = photo.clone();
  seg.preprocess(view_of(frame), blob);
  std::vector<BatchTiming> out;
  for (int b : sizes) out.push_back({b, {}});
  std::vector<unetseg::Prediction> predictions;
  // The batch sizes take turns, frame after frame, so that the machine's moods fall on all.
  for (int round = -opt.warmup; round < opt.frames; ++round)
    for (BatchTiming& t : out) {
      const std::vector<const cv::Mat*> blobs(t.batch, &blob);
      const auto t0 = Clock::now();
      seg.infer_batch(blobs, predictions);
      if (round >= 0) t.ms_per_frame.push_back(ms_since(t0) / t.batch);
    }
  return out;
}

StreamsResult bench_streams(const std::string& model_path, const fs::path& photo, int n,
                            bool shared, const Options& opt) {
  StreamsResult r;
  r.streams = n;
  r.shared = shared;
  r.per_stream.resize(n);
  std::string description;
  for (int i = 0; i < n; ++i) description += branch(i, model_path, photo, shared, opt);
  malloc_trim(0);  // what the last run freed goes back, so that this one's memory shows
  const double rss_before = resident_mib();
  GstElement* pipeline = parse_pipeline(description);
  std::vector<SinkProbe> probes(n);
  const GstClockTime period = GST_SECOND / opt.live_fps;
  for (int i = 0; i < n; ++i) {
    r.per_stream[i].expected = opt.live_seconds * opt.live_fps;
    probes[i].attach(pipeline, "sink" + std::to_string(i), period, &r.per_stream[i]);
  }
  std::fprintf(stderr, "unetseg-bench: streams: %d x %s %d fps, %s, %d s ...\n", n,
               opt.streams_size.name.c_str(), opt.live_fps, shared ? "shared" : "independent",
               opt.live_seconds);
  const auto start = Clock::now();
  const double cpu_start = cpu_seconds();
  const std::string failure = play_until_done(pipeline, GST_MESSAGE_ELEMENT, [&](GstMessage* msg) {
    const std::string from = GST_OBJECT_NAME(GST_MESSAGE_SRC(msg));
    if (from.rfind("seg", 0) == 0) {
      const int i = std::atoi(from.c_str() + 3);
      if (i >= 0 && i < n) r.per_stream[i].take_message(gst_message_get_structure(msg), period);
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (r.rss_mib == 0 && elapsed > 1.0) r.rss_mib = resident_mib() - rss_before;  // running
    // Cameras do not end: the run does, after --live-seconds of wall time, however many
    // frames the streams managed in it.
    return elapsed < opt.live_seconds;
  });
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.cpu_share = (cpu_seconds() - cpu_start) / r.seconds / sysconf(_SC_NPROCESSORS_ONLN);
  r.rss_mib = std::max(r.rss_mib, resident_mib() - rss_before);
  for (int i = 0; i < n; ++i) {
    probes[i].finish();
    r.per_stream[i].seconds = r.seconds;
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  if (!failure.empty()) throw unetseg::Error("streams pipeline failed: " + failure);
  return r;
}

void print_batches(const std::vector<BatchTiming>& batches, const Options& opt) {
  if (batches.empty()) return;
  std::printf("\nForward by batch (Segmenter::infer_batch, what a shared model runs; batch sizes "
              "in turns, %d rounds): ms per frame, median / p95\n", opt.frames);
  for (const BatchTiming& t : batches)
    std::printf("  batch %-3d %s\n", t.batch, fmt(summarize(t.ms_per_frame)).c_str());
}

void print_streams(const std::vector<StreamsResult>& results, const Options& opt) {
  if (results.empty()) return;
  std::printf("\nStreams: N live %s %d fps sources (a photo, imagefreeze is-live=true, a leaky "
              "queue of 2) -> %s "
              "live=on -> fakesink sync=true each, in one process; shared: one model for all "
              "(share-model=true), independent: one each (share-model=false)\n",
              opt.streams_size.name.c_str(), opt.live_fps, opt.element("M").c_str());
  std::printf("%3s %-12s %18s %8s %16s %14s %6s %6s %8s\n", "N", "model", "fps/stream min-max",
              "PTS gaps", "mask age med/p95", "model fps/str", "batch", "CPU", "RSS MiB");
  for (const StreamsResult& r : results) {
    double lo = 1e9, hi = 0, model_fps = 0, batch = 0;
    int gaps = 0;
    std::vector<double> ages;
    for (const LiveResult& s : r.per_stream) {
      lo = std::min(lo, s.fps());
      hi = std::max(hi, s.fps());
      gaps += s.missing;
      model_fps += s.mask_sources.size() / r.seconds;
      batch += s.mean_batch();
      ages.insert(ages.end(), s.age_frames.begin(), s.age_frames.end());
    }
    const Summary age = summarize(ages);
    std::printf("%3d %-12s %8.1f - %-7.1f %8d %8.1f / %-5.1f %14.1f %6.2f %5.0f%% %8.0f\n",
                r.streams, r.shared ? "shared" : "independent", lo, hi, gaps, age.median,
                age.p95, model_fps / r.streams, batch / r.streams, 100 * r.cpu_share, r.rss_mib);
  }
  std::printf("each run lasts --live-seconds; fps: a stream's frames at its sink, first to last; "
              "PTS gaps: frames the sources skipped, all streams (a live source drops what the "
              "pipeline cannot take); mask age: frames between a frame and the one its mask came "
              "from; batch: mean frames per forward; CPU: the process's share of all %ld cores\n",
              sysconf(_SC_NPROCESSORS_ONLN));
}

}  // namespace bench
