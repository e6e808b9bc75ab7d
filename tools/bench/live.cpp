// The live section: a live source through the element (live mode) into a synchronised sink:
// frames out per second, frames missing or late at the sink, and how old each frame's mask is.
#include <gst/base/gstbasesink.h>

#include <algorithm>
#include <cstdio>

#include "bench.hpp"
#include "unetseg/error.hpp"

namespace bench {

double LiveResult::fps() const {
  const double s = std::chrono::duration<double>(last_arrival - first_arrival).count();
  return s > 0 ? (out - 1) / s : 0;
}

GstPadProbeReturn SinkProbe::on_sink(GstPad* pad, GstPadProbeInfo* info, gpointer data) {
  auto* self = static_cast<SinkProbe*>(data);
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

void SinkProbe::attach(GstElement* pipeline, const std::string& sink_name, GstClockTime frame_period,
                       LiveResult* result) {
  sink = gst_bin_get_by_name(GST_BIN(pipeline), sink_name.c_str());
  period = frame_period;
  r = result;
  GstPad* pad = gst_element_get_static_pad(sink, "sink");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, &SinkProbe::on_sink, this, nullptr);
  gst_object_unref(pad);
}

void SinkProbe::finish() {
  r->latency_ms = gst_base_sink_get_latency(GST_BASE_SINK(sink)) / 1e6;
  GstStructure* stats = nullptr;
  g_object_get(sink, "stats", &stats, nullptr);
  if (stats) {
    gst_structure_get_uint64(stats, "rendered", &r->rendered);
    gst_structure_get_uint64(stats, "dropped", &r->dropped);
    gst_structure_free(stats);
  }
  gst_object_unref(sink);
  sink = nullptr;
}

bool LiveResult::take_message(const GstStructure* st, GstClockTime period) {
  guint64 pts = 0, source = 0;
  if (!gst_structure_has_name(st, "unetseg") || !gst_structure_get_uint64(st, "timestamp", &pts) ||
      !gst_structure_get_uint64(st, "mask-timestamp", &source))
    return false;
  ++with_mask;
  age_frames.push_back(static_cast<double>(pts - source) / period);
  int batch = 1;
  if (mask_sources.insert(source).second && gst_structure_get_int(st, "batch", &batch))
    batch_sum += batch;
  return true;
}


LiveResult bench_live(const std::string& model_path, const fs::path& photo, const Options& opt) {
  LiveResult r;
  r.expected = opt.live_seconds * opt.live_fps;
  r.pipeline = "filesrc location=" + quoted(photo.string()) +
               " ! decodebin ! videoconvert ! videoscale ! " + caps_for(opt.live_size.size) +
               " ! imagefreeze is-live=true num-buffers=" + std::to_string(r.expected) +
               " ! video/x-raw,framerate=" + std::to_string(opt.live_fps) + "/1 ! " +
               opt.element(model_path) + " post-messages=true" +
               " ! fakesink name=sink sync=true qos=true max-lateness=20000000";
  GstElement* pipeline = parse_pipeline(r.pipeline);
  SinkProbe probe;
  probe.attach(pipeline, "sink", GST_SECOND / opt.live_fps, &r);

  std::fprintf(stderr, "unetseg-bench: live: %d s at %s, %d fps ...\n", opt.live_seconds,
               opt.live_size.name.c_str(), opt.live_fps);
  const auto start = Clock::now();
  // unetseg's message, one per frame that carries a mask: its PTS and the PTS of the frame the
  // mask came from.
  const std::string failure = play_until_done(pipeline, GST_MESSAGE_ELEMENT, [&](GstMessage* msg) {
    r.take_message(gst_message_get_structure(msg), probe.period);
    return true;
  });
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  probe.finish();
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  if (!failure.empty()) throw unetseg::Error("live pipeline failed: " + failure);
  return r;
}

void print_live(const LiveResult& r, const Options& opt) {
  std::printf("\nLive: a photo as a live %s %d fps source -> %s -> fakesink sync=true "
              "(max-lateness 20 ms)\n",
              opt.live_size.name.c_str(), opt.live_fps, opt.element("M").c_str());
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

}  // namespace bench
