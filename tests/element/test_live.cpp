// How frames and masks are paired: live (the model on its own thread, every frame leaves at
// once with the newest mask), offline (each frame waits), interval, skip-threshold, QoS, the
// LATENCY answer, smoothing, and no deadlock when a stream stops while the model thinks.
//
// slow_rg is logit_rg's "foreground where red exceeds green" made slow on purpose (hundreds of
// ms a frame): frames here are pushed far faster than it runs. Frame n is red left of
// split_of(n) and green right of it, so every mask names the frame it came from.
#include <gst/video/gstvideometa.h>

#include <chrono>
#include <set>
#include <thread>

#include "element_util.hpp"

using namespace unetseg_test;

namespace {

constexpr int kW = 320, kH = 240;      // the model sees 64x64: 5 frame columns per model column
constexpr GstClockTime kPeriod = GST_SECOND / 30;
const Rgba kRed{255, 0, 0, 255}, kGreen{0, 255, 0, 255};

int split_of(GstClockTime pts) { return 40 * (1 + static_cast<int>(pts / kPeriod) % 6); }

GstBuffer* frame_at(const GstVideoInfo& info, GstClockTime pts) {
  const int split = split_of(pts);
  return make_frame(info, [split](int x, int) { return x < split ? kRed : kGreen; }, pts);
}

// The mask meta's foreground columns on its middle row (mask pixels > 127), or -1 without meta.
int mask_columns(GstBuffer* buf) {
  GstUnetsegMaskMeta* meta = gst_buffer_get_unetseg_mask_meta(buf);
  if (!meta) return -1;
  GstVideoMeta* vmeta = gst_buffer_get_video_meta(meta->mask);
  GstMapInfo map;
  EXPECT_TRUE(gst_buffer_map(meta->mask, &map, GST_MAP_READ));
  const guint8* row = map.data + vmeta->offset[0] + (vmeta->height / 2) * vmeta->stride[0];
  int columns = 0;
  for (guint x = 0; x < vmeta->width; ++x) columns += row[x] > 127;
  gst_buffer_unmap(meta->mask, &map);
  return columns;
}

GstClockTime source_pts(GstBuffer* buf) {
  GstUnetsegMaskMeta* meta = gst_buffer_get_unetseg_mask_meta(buf);
  return meta ? meta->source_pts : GST_CLOCK_TIME_NONE;
}

void push_segment(GstHarness* h) {
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  EXPECT_TRUE(gst_harness_push_event(h, gst_event_new_segment(&segment)));
}

// Checks one output of a live stream; returns its mask's source PTS (NONE without one).
struct LiveChecker {
  GstClockTime last_source = 0;
  bool seen_mask = false;
  int without_mask = 0, older_mask = 0;
  std::set<GstClockTime> sources;

  GstClockTime check(GstBuffer* out) {
    const GstClockTime pts = GST_BUFFER_PTS(out);
    const GstClockTime source = source_pts(out);
    if (source == GST_CLOCK_TIME_NONE) {
      EXPECT_FALSE(seen_mask) << "once there is a mask, every frame carries one";
      ++without_mask;
      return source;
    }
    seen_mask = true;
    EXPECT_LE(source, pts) << "a mask cannot come from a later frame";
    EXPECT_GE(source, last_source) << "masks go forward in time";
    EXPECT_EQ(source % kPeriod, 0u) << "the source is one of the pushed frames";
    EXPECT_EQ(mask_columns(out), split_of(source) / 5)
        << "the mask tagged " << source << " is that frame's mask";
    older_mask += source < pts;
    last_source = source;
    sources.insert(source);
    return source;
  }
};

}  // namespace

// The heart of live mode: pushes return at once although the model takes hundreds of ms, the
// first frames carry no mask (and show no foreground), and later ones carry the newest mask,
// tagged with the frame it came from.
TEST(Live, FramesLeaveAtOnceCarryingTheNewestMask) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  UnetsegHarness h({{"mode", "mask"}}, info, "slow_rg", /*upstream_live=*/true);
  LiveChecker checker;
  GstClockTime pts = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  // Until three different masks have arrived (or a minute passed: then the checks fail).
  while (checker.sources.size() < 3 && std::chrono::steady_clock::now() < give_up) {
    GstBuffer* out = h.process(frame_at(info, pts));
    if (checker.check(out) == GST_CLOCK_TIME_NONE) {
      FrameReader f(info, out);
      EXPECT_EQ(f.at(5, 5), (Rgba{0, 0, 0, -1})) << "no mask yet: nothing is foreground";
    }
    gst_buffer_unref(out);
    pts += kPeriod;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_GE(checker.sources.size(), 3u);
  EXPECT_GE(checker.without_mask, 1) << "the first frame cannot have waited for its mask";
  EXPECT_GE(checker.older_mask, 1) << "frames went on while the model was busy";
  // Far fewer inferences than frames: the model only ever saw the newest frame.
  EXPECT_LT(checker.sources.size(), pts / kPeriod);
}

// live=off: even behind a live source every frame waits and gets its own mask.
TEST(Live, OffPairsEachFrameWithItsOwnMask) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  UnetsegHarness h({{"mode", "mask"}, {"live", "off"}}, info, "slow_rg", /*upstream_live=*/true);
  for (int n = 0; n < 3; ++n) {
    const GstClockTime pts = n * kPeriod;
    GstBuffer* out = h.process(frame_at(info, pts));
    EXPECT_EQ(source_pts(out), pts);
    EXPECT_EQ(mask_columns(out), split_of(pts) / 5);
    gst_buffer_unref(out);
  }
}

// live=on behind a source that is not live.
TEST(Live, OnWorksBehindAFileToo) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  UnetsegHarness h({{"mode", "mask"}, {"live", "on"}}, info, "slow_rg");
  GstBuffer* out = h.process(frame_at(info, 0));
  EXPECT_EQ(source_pts(out), GST_CLOCK_TIME_NONE);
  gst_buffer_unref(out);
}

// LATENCY: what a frame stays in the element. Offline that includes its inference, so at least
// the inference time the meta reports; live only the preprocess, mask and drawing, so less than
// the model's forward (slow_rg's is hundreds of ms, the rest well under one on 320x240).
TEST(Live, LatencyQueryTellsWhatEachModeAdds) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  GstClockTime offline = 0, forward = 0;
  {
    UnetsegHarness h({{"live", "off"}}, info, "slow_rg", /*upstream_live=*/true);
    GstBuffer* out = h.process(frame_at(info, 0));
    offline = gst_harness_query_latency(h.get());
    forward = gst_buffer_get_unetseg_mask_meta(out)->inference_time;
    // At least what that frame's inference took (the reported latency only grows to cover it).
    EXPECT_GE(offline, forward);
    gst_buffer_unref(out);
  }
  {
    UnetsegHarness h({}, info, "slow_rg", /*upstream_live=*/true);  // auto: live
    gst_buffer_unref(h.process(frame_at(info, 0)));
    const GstClockTime live = gst_harness_query_latency(h.get());
    EXPECT_GT(live, 0u) << "the drawing takes some time too";
    EXPECT_LT(live, forward) << "live, no frame waits for the model";
  }
  {
    UnetsegHarness h({}, info, "slow_rg");  // auto behind a file: offline, the warm-up's time
    EXPECT_GT(gst_harness_query_latency(h.get()), 0u);
  }
}

// A flush, EOS, and stopping the element while the model is in the middle of a forward: nothing
// hangs, and no mask from before the flush comes out after it.
TEST(Live, FlushEosAndStopWhileTheModelThinks) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  UnetsegHarness h({{"mode", "mask"}}, info, "slow_rg", /*upstream_live=*/true);
  gst_buffer_unref(h.process(frame_at(info, 0)));  // its forward is running now
  EXPECT_TRUE(gst_harness_push_event(h.get(), gst_event_new_flush_start()));
  EXPECT_TRUE(gst_harness_push_event(h.get(), gst_event_new_flush_stop(TRUE)));
  push_segment(h.get());

  const GstClockTime after_flush = 100 * kPeriod;
  LiveChecker checker;
  checker.last_source = after_flush;
  GstClockTime pts = after_flush;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!checker.seen_mask && std::chrono::steady_clock::now() < give_up) {
    GstBuffer* out = h.process(frame_at(info, pts));
    checker.check(out);  // a source before after_flush fails "masks go forward in time"
    gst_buffer_unref(out);
    pts += kPeriod;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(checker.seen_mask);

  // EOS goes through at once, with a forward still running.
  gst_buffer_unref(h.process(frame_at(info, pts)));
  EXPECT_TRUE(eos_goes_through(h.get()));

  // Stopped in the middle of a forward: the state change waits for it and returns.
  UnetsegHarness stopped({{"mode", "mask"}}, info, "slow_rg", /*upstream_live=*/true);
  gst_buffer_unref(stopped.process(frame_at(info, 0)));
  EXPECT_EQ(gst_element_set_state(stopped.element(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
}

// interval=3 (offline): the model sees frames 0, 3, 6; the others carry the last mask and say so.
TEST(Offline, IntervalReusesTheLastMaskAndNamesItsFrame) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  UnetsegHarness h({{"mode", "mask"}, {"interval", "3"}}, info);
  for (int n = 0; n < 8; ++n) {
    const GstClockTime pts = n * kPeriod;
    GstBuffer* out = h.process(frame_at(info, pts));
    const GstClockTime inferred = (n / 3) * 3 * kPeriod;
    EXPECT_EQ(source_pts(out), inferred) << "frame " << n;
    EXPECT_EQ(mask_columns(out), split_of(inferred) / 5) << "frame " << n;
    gst_buffer_unref(out);
  }
}

// skip-threshold: a frame that barely changed reuses the mask; a changed one gets a new one.
TEST(Offline, SkipThresholdSkipsFramesThatBarelyChanged) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  UnetsegHarness h({{"mode", "mask"}, {"skip-threshold", "2"}}, info);
  auto split_at = [&](int split, GstClockTime pts) {
    return make_frame(info, [split](int x, int) { return x < split ? kRed : kGreen; }, pts);
  };
  GstBuffer* out = h.process(split_at(160, 0));
  EXPECT_EQ(source_pts(out), 0u);
  gst_buffer_unref(out);
  // The same picture again, twice: skipped.
  for (int n = 1; n <= 2; ++n) {
    out = h.process(split_at(160, n * kPeriod));
    EXPECT_EQ(source_pts(out), 0u) << "frame " << n;
    EXPECT_EQ(mask_columns(out), 32);
    gst_buffer_unref(out);
  }
  // Half the frame changes colour (mean grey change far above 2): inferred.
  out = h.process(split_at(40, 3 * kPeriod));
  EXPECT_EQ(source_pts(out), 3 * kPeriod);
  EXPECT_EQ(mask_columns(out), 8);
  gst_buffer_unref(out);
}

// Downstream says it needs 2.5x less work: the model then sees every 3rd frame.
TEST(Offline, QosProportionThinsOutInference) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  UnetsegHarness h({{"mode", "mask"}}, info);
  const GstClockTime start = GST_SECOND;  // after the QoS event's earliest time: nothing dropped
  gst_buffer_unref(h.process(frame_at(info, start)));
  EXPECT_TRUE(gst_harness_push_upstream_event(
      h.get(), gst_event_new_qos(GST_QOS_TYPE_UNDERFLOW, 2.5, 0, 0)));
  GstClockTime last_inferred = start;
  int inferred = 0;
  for (int n = 1; n <= 9; ++n) {
    const GstClockTime pts = start + n * kPeriod;
    GstBuffer* out = h.process(frame_at(info, pts));
    if (source_pts(out) == pts) ++inferred;
    EXPECT_LT(pts - source_pts(out), 3 * kPeriod) << "frame " << n;
    last_inferred = source_pts(out);
    gst_buffer_unref(out);
  }
  EXPECT_EQ(inferred, 3);
  (void)last_inferred;
  // Keeping up again: every frame.
  EXPECT_TRUE(gst_harness_push_upstream_event(
      h.get(), gst_event_new_qos(GST_QOS_TYPE_UNDERFLOW, 1.0, 0, 0)));
  for (int n = 10; n <= 12; ++n) {
    GstBuffer* out = h.process(frame_at(info, start + n * kPeriod));
    EXPECT_EQ(source_pts(out), start + n * kPeriod);
    gst_buffer_unref(out);
  }
}

// smoothing: without a reset the second mask is averaged with the first; with the default reset
// the pixels whose colour changed take the new mask alone.
TEST(Smoothing, AveragesMasksExceptWhereThePictureChanged) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  auto split_at = [&](int split, GstClockTime pts) {
    return make_frame(info, [split](int x, int) { return x < split ? kRed : kGreen; }, pts);
  };
  for (const char* reset : {"255", "12"}) {
    UnetsegHarness h({{"mode", "mask"}, {"soft-mask", "true"}, {"smoothing", "0.5"},
                      {"smoothing-reset", reset}}, info);
    gst_buffer_unref(h.process(split_at(200, 0)));
    GstBuffer* out = h.process(split_at(100, kPeriod));
    {
      FrameReader f(info, out);
      // Column 150: foreground in the first frame, background in the second.
      const int value = f.at(150, kH / 2).r;
      if (std::string(reset) == "255")
        EXPECT_NEAR(value, 128, 2) << "averaged";
      else
        EXPECT_EQ(value, 0) << "reset where the colour changed";
      EXPECT_EQ(f.at(20, kH / 2).r, 255) << "foreground in both stays foreground";
      EXPECT_EQ(f.at(300, kH / 2).r, 0) << "background in both stays background";
    }
    gst_buffer_unref(out);
  }
}

// A recurrent model (recurrent_rg: red = 0.5 + 0.05 n after n frames of state) through the
// element: its state carries from frame to frame, and a discontinuity, new caps, a flush or a
// scene cut (scene-cut) start it again from zero.
TEST(Recurrent, StateCarriesAndRestartsOnDiscontCapsFlushAndCuts) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  UnetsegHarness h({{"mode", "none"}}, info, "recurrent_rg");
  // The meta's 8-bit mask at a red pixel: round(255 * (0.5 + 0.05 n)).
  auto red_level = [&](GstBuffer* in) {
    GstBuffer* out = h.process(in);
    GstUnetsegMaskMeta* meta = gst_buffer_get_unetseg_mask_meta(out);
    GstMapInfo map;
    int level = -1;
    if (meta && gst_buffer_map(meta->mask, &map, GST_MAP_READ)) {
      GstVideoMeta* vmeta = gst_buffer_get_video_meta(meta->mask);
      level = map.data[vmeta->offset[0] + 32 * vmeta->stride[0] + 2];
      gst_buffer_unmap(meta->mask, &map);
    }
    gst_buffer_unref(out);
    return level;
  };
  auto frame = [&](int split, GstClockTime pts, bool discont = false) {
    GstBuffer* b = make_frame(info, [split](int x, int) { return x < split ? kRed : kGreen; }, pts);
    if (discont) GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DISCONT);
    return b;
  };
  int n = 0;
  auto next = [&](int split = 160, bool discont = false) {
    return red_level(frame(split, (n++) * kPeriod, discont));
  };
  EXPECT_EQ(next(), 128);
  EXPECT_EQ(next(), 140);
  EXPECT_EQ(next(), 153);
  EXPECT_EQ(next(160, /*discont=*/true), 128) << "a discontinuity restarts the state";
  EXPECT_EQ(next(), 140);
  EXPECT_EQ(next(300), 153) << "a change, but not a new scene";
  EXPECT_EQ(next(20), 128) << "most of the picture changed: a scene cut";
  EXPECT_EQ(next(20), 140);
  g_object_set(h.element(), "scene-cut", 0.0, nullptr);
  EXPECT_EQ(next(300), 153) << "scene-cut=0: no cuts";
  gst_harness_set_src_caps_str(h.get(), caps_string(video_info("RGB", kW, kH + 2)).c_str());
  EXPECT_EQ(red_level(make_frame(video_info("RGB", kW, kH + 2),
                                 [](int x, int) { return x < 160 ? kRed : kGreen; }, n++ * kPeriod)),
            128) << "new caps restart the state";
  EXPECT_TRUE(gst_harness_push_event(h.get(), gst_event_new_flush_start()));
  EXPECT_TRUE(gst_harness_push_event(h.get(), gst_event_new_flush_stop(TRUE)));
  push_segment(h.get());
  EXPECT_EQ(red_level(make_frame(video_info("RGB", kW, kH + 2),
                                 [](int x, int) { return x < 160 ? kRed : kGreen; }, n++ * kPeriod)),
            128) << "a flush restarts the state";
}
