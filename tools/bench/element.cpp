// The element and memory sections: the unetseg element in real pipelines, timed between its own
// pads (it works in place in the streaming thread, so two pad probes bracket exactly its work).
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdio>

#include "bench.hpp"
#include "unetseg/error.hpp"

namespace bench {

namespace {

// Times each buffer from unetseg's sink pad to its src pad, and stops the pipeline once enough
// frames went through.
struct PipelineProbe {
  GstElement* pipeline = nullptr;
  int warmup = 0, wanted = 0, seen = 0;
  int sample_every = 0;  // memory section: RSS every N frames
  Clock::time_point in, first_in, last_out;  // first_in: the first timed frame's
  Allocations in_allocations;                 // the streaming thread's, at the sink pad
  Allocations allocations;                    // sink pad to src pad, over the timed frames
  std::vector<double> latency_ms;
  std::vector<std::pair<int, double>> rss;  // (frame, MiB)

  static GstPadProbeReturn on_sink(GstPad*, GstPadProbeInfo*, gpointer data) {
    auto* self = static_cast<PipelineProbe*>(data);
    self->in = Clock::now();
    self->in_allocations = unetseg_tools::allocations_on_this_thread();
    return GST_PAD_PROBE_OK;
  }
  // In place, in one streaming thread: what happened between the two probes is unetseg's work
  // on this buffer (the model's forward runs on its own thread and is not in it).
  static GstPadProbeReturn on_src(GstPad*, GstPadProbeInfo*, gpointer data) {
    auto* self = static_cast<PipelineProbe*>(data);
    const auto now = Clock::now();
    const Allocations made = unetseg_tools::allocations_on_this_thread() - self->in_allocations;
    const int n = ++self->seen;
    if (n == self->warmup + 1) self->first_in = self->in;
    if (n > self->warmup && n <= self->warmup + self->wanted) {
      self->latency_ms.push_back(std::chrono::duration<double, std::milli>(now - self->in).count());
      self->last_out = now;
      self->allocations.count += made.count;
      self->allocations.bytes += made.bytes;
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

}  // namespace

ElementResult bench_element(unetseg::Segmenter& seg, const NamedSize& size, const fs::path& clip,
                            const std::vector<cv::Mat>& photos, const Options& opt) {
  ElementResult r;
  r.size = size;
  // Bare forward first, on a real photo's blob, then the pipeline: side by side in time.
  cv::Mat frame;
  cv::resize(photos[0], frame, size.size, 0, 0, cv::INTER_AREA);
  cv::Mat blob;
  seg.preprocess(view_of(frame), blob);
  {
    BareForward bare(seg, blob);
    r.bare_forward_ms = bare.times(opt.frames, nullptr);
  }
  PipelineProbe probe;
  probe.warmup = opt.warmup;
  probe.wanted = opt.frames;
  run_pipeline("filesrc location=" + quoted(clip.string()) +
                   " ! decodebin ! videoconvert ! videoscale ! " + caps_for(size.size) +
                   " ! queue max-size-buffers=3 ! " + opt.element(seg.model_path()) +
                   " ! fakesink sync=false",
               probe);
  r.frames = static_cast<int>(probe.latency_ms.size());
  r.fps = probe.fps();
  r.latency_ms = probe.latency_ms;
  r.allocations = probe.allocations;
  return r;
}

void print_element(const std::vector<ElementResult>& results, const Options& opt) {
  if (results.empty()) return;
  std::printf("\nElement: decode -> videoscale -> %s -> fakesink sync=false\n"
              "(latency: unetseg's sink pad to its src pad; bare forward: net.forward alone,\n"
              "same model and input, just before; allocations: heap allocations per frame on the\n"
              "streaming thread between the two pads, GStreamer's own included)\n",
              opt.element("M").c_str());
  std::printf("%-10s %-8s %-8s %-18s %-18s %-18s %s\n", "size", "frames", "fps", "latency ms",
              "bare forward ms", "latency / forward", "allocations");
  for (const auto& r : results) {
    const Summary lat = summarize(r.latency_ms), fwd = summarize(r.bare_forward_ms);
    std::printf("%-10s %-8d %-8.1f %-18s %-18s %-18.2f %.2f (%.0f B)\n", r.size.name.c_str(),
                r.frames, r.fps, fmt(lat).c_str(), fmt(fwd).c_str(), lat.median / fwd.median,
                per_frame(r.allocations, r.frames),
                r.frames ? static_cast<double>(r.allocations.bytes) / r.frames : 0.0);
  }
}

MemoryResult bench_memory(const std::string& model_path, const Options& opt) {
  PipelineProbe probe;
  probe.warmup = 0;
  probe.wanted = opt.memory_frames;
  probe.sample_every = std::max(1, opt.memory_frames / 20);
  std::fprintf(stderr, "unetseg-bench: memory: %d frames ...\n", opt.memory_frames);
  run_pipeline("videotestsrc pattern=ball num-buffers=" + std::to_string(opt.memory_frames + 1) +
                   " ! " + caps_for(opt.memory_size.size) + " ! " + opt.element(model_path) +
                   " ! fakesink sync=false",
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
              opt.memory_size.name.c_str(), unetseg::to_string(opt.frame.mode), r.frames, r.fps);
  std::printf("resident MiB at frame");
  for (const auto& s : r.rss) std::printf(" %d:%.1f", s.first, s.second);
  std::printf("\nfrom frame %d to %d: %+.1f MiB; peak %.1f MiB\n",
              r.rss.size() > 1 ? r.rss[1].first : r.rss[0].first, r.rss.back().first,
              r.rss.back().second - first, peak);
}

}  // namespace bench
