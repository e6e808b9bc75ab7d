// The element in a GstHarness: caps, the meta on every buffer, what each mode does to which
// pixels, property changes while PLAYING, state changes, EOS and flush.
//
// The test model unet_rg computes sigmoid(20 * (R - G)): a frame whose left half is red and
// right half green has its foreground exactly in the left half (see tests/models/README.md).
#include <gst/video/gstvideometa.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <cmath>
#include <utility>
#include <vector>

#include "element_util.hpp"
#include <opencv2/core/utility.hpp>

#include "unetseg/compositor.hpp"
#include "unetseg/segmenter.hpp"

using namespace unetseg_test;

namespace {

constexpr int kW = 320, kH = 240, kSplit = 160;
const Rgba kRed{255, 0, 0, 255}, kGreen{0, 255, 0, 255}, kBlack{0, 0, 0, 255};

Rgba red_green(int x, int) { return x < kSplit ? kRed : kGreen; }

// Left half red; right half a green checkerboard of 8-pixel squares (background, textured).
Rgba red_checker(int x, int y) {
  if (x < kSplit) return kRed;
  return ((x / 8 + y / 8) % 2) ? Rgba{0, 255, 0, 255} : Rgba{0, 96, 0, 255};
}

int blend(int p, int q, double w) { return static_cast<int>(std::lround(p * (1 - w) + q * w)); }

void expect_near(const Rgba& got, const Rgba& want, int tolerance, const std::string& where) {
  EXPECT_NEAR(got.r, want.r, tolerance) << where << " got " << got << " want " << want;
  EXPECT_NEAR(got.g, want.g, tolerance) << where << " got " << got << " want " << want;
  EXPECT_NEAR(got.b, want.b, tolerance) << where << " got " << got << " want " << want;
}

// Every pixel of the frame: left of the split must satisfy `left`, right of it `right`.
void for_each_pixel(const FrameReader& f, const std::function<void(int, int, Rgba)>& check) {
  for (int y = 0; y < f.height(); ++y)
    for (int x = 0; x < f.width(); ++x) check(x, y, f.at(x, y));
}

}  // namespace

// ---- caps ----

class EveryFormat : public ::testing::TestWithParam<const char*> {};

TEST_P(EveryFormat, NegotiatesAndOverlaysOnlyTheForeground) {
  const GstVideoInfo info = video_info(GetParam(), kW, kH);
  UnetsegHarness h({{"mode", "overlay"}, {"overlay-color", "0xff0000ff"}, {"overlay-opacity", "0.5"}}, info);
  GstBuffer* out = h.process(red_green);
  ASSERT_NE(gst_buffer_get_unetseg_mask_meta(out), nullptr);
  {
    FrameReader f(info, out);
    const Rgba tinted{blend(255, 0, 0.5), 0, blend(0, 255, 0.5), 255};
    for_each_pixel(f, [&](int x, int y, Rgba p) {
      if (x < kSplit) {
        expect_near(p, tinted, 1, "fg " + std::to_string(x) + "," + std::to_string(y));
      } else {
        EXPECT_EQ(p, (Rgba{0, 255, 0, p.a})) << x << "," << y;
      }
      if (p.a >= 0) {
        EXPECT_EQ(p.a, 255) << "overlay must not touch alpha";
      }
    });
  }
  gst_buffer_unref(out);
}

INSTANTIATE_TEST_SUITE_P(Caps, EveryFormat,
                         ::testing::Values("RGB", "BGR", "RGBx", "BGRx", "xRGB", "xBGR", "RGBA",
                                           "BGRA", "ARGB", "ABGR"));

TEST(Caps, AlphaModeOffersOnlyFormatsWithAlpha) {
  ensure_gst();
  GstElement* e = gst_element_factory_make("unetseg", nullptr);
  ASSERT_NE(e, nullptr);
  GstPad* sink = gst_element_get_static_pad(e, "sink");
  auto formats = [&] {
    GstCaps* caps = gst_pad_query_caps(sink, nullptr);
    std::vector<std::string> names;
    const GValue* list = gst_structure_get_value(gst_caps_get_structure(caps, 0), "format");
    for (guint i = 0; i < gst_value_list_get_size(list); ++i)
      names.push_back(g_value_get_string(gst_value_list_get_value(list, i)));
    gst_caps_unref(caps);
    return names;
  };
  EXPECT_EQ(formats().size(), 10u);
  gst_util_set_object_arg(G_OBJECT(e), "mode", "alpha");
  const std::vector<std::string> alpha = formats();
  EXPECT_EQ(alpha, (std::vector<std::string>{"RGBA", "BGRA", "ARGB", "ABGR"}));
  gst_object_unref(sink);
  gst_object_unref(e);
}

namespace {
// Offers `caps` to a unetseg with `props`: accept-caps must say no, and data pushed anyway
// must come back not-negotiated, cleanly.
void expect_caps_refused(const Props& props, const std::string& caps_str) {
  ensure_gst();
  GstElement* e = gst_element_factory_make("unetseg", nullptr);
  g_object_set(e, "model", test_model("unet_rg").c_str(), nullptr);
  for (const auto& [name, value] : props) gst_util_set_object_arg(G_OBJECT(e), name.c_str(), value.c_str());
  GstHarness* h = gst_harness_new_with_element(e, "sink", "src");
  GstCaps* caps = gst_caps_from_string(caps_str.c_str());
  GstPad* sink = gst_element_get_static_pad(e, "sink");
  EXPECT_FALSE(gst_pad_query_accept_caps(sink, caps)) << caps_str;
  gst_object_unref(sink);
  EXPECT_TRUE(gst_harness_push_event(h, gst_event_new_stream_start("caps-test")));
  // A sticky event is stored whatever the element thinks of it; the refusal shows on data.
  gst_harness_push_event(h, gst_event_new_caps(gst_caps_ref(caps)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  gst_harness_push_event(h, gst_event_new_segment(&segment));
  EXPECT_EQ(gst_harness_push(h, gst_buffer_new_allocate(nullptr, 64 * 48 * 4, nullptr)),
            GST_FLOW_NOT_NEGOTIATED) << caps_str;
  gst_caps_unref(caps);
  gst_harness_teardown(h);
  gst_object_unref(e);
}
}  // namespace

TEST(Caps, AlphaModeRefusesAFormatWithoutAlpha) {
  for (const char* format : {"RGB", "BGR", "RGBx", "BGRx", "xRGB", "xBGR"})
    expect_caps_refused({{"mode", "alpha"}}, std::string("video/x-raw,format=") + format +
                                                 ",width=64,height=48,framerate=30/1");
}

TEST(Caps, AlphaModeNegotiatesThroughVideoconvert) {
  Pipeline p("videotestsrc num-buffers=3 ! video/x-raw,format=I420,width=64,height=48 ! "
             "videoconvert ! unetseg mode=alpha model=" + test_model("unet_rg") + " ! fakesink");
  p.run();
  EXPECT_EQ(p.error(), "");
  EXPECT_TRUE(p.got_eos());
}

TEST(Caps, NonRgbFormatsFailNegotiationCleanly) {
  for (const char* format : {"I420", "NV12", "GRAY8", "RGB16", "v210"})
    expect_caps_refused({}, std::string("video/x-raw,format=") + format +
                                ",width=64,height=48,framerate=30/1");
  expect_caps_refused({}, "audio/x-raw,format=S16LE,rate=48000,channels=2,layout=interleaved");
}

// ---- the meta ----

TEST(Meta, OnEveryBufferWithTheRightGeometry) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  UnetsegHarness h({{"mode", "none"}}, info);
  for (int i = 0; i < 5; ++i) {
    const GstClockTime pts = i * GST_SECOND / 30;
    GstBuffer* out = h.process(red_green, pts);
    GstUnetsegMaskMeta* meta = gst_buffer_get_unetseg_mask_meta(out);
    ASSERT_NE(meta, nullptr) << "frame " << i;
    EXPECT_EQ(meta->type, GST_UNETSEG_MASK_FOREGROUND);
    EXPECT_EQ(meta->x, 0);
    EXPECT_EQ(meta->y, 0);
    EXPECT_EQ(meta->width, kW);
    EXPECT_EQ(meta->height, kH);
    EXPECT_EQ(meta->source_pts, pts);
    EXPECT_GT(meta->inference_time, 0u);
    EXPECT_LT(meta->inference_time, 10 * GST_SECOND);
    EXPECT_STREQ(gst_unetseg_mask_meta_get_model(meta), "unet_rg");
    ASSERT_EQ(meta->n_regions, 2u);
    EXPECT_EQ(meta->region_ids[0], 0u);
    EXPECT_EQ(meta->region_ids[1], 1u);
    EXPECT_STREQ(gst_unetseg_mask_meta_get_label(meta, 0), "background");
    EXPECT_STREQ(gst_unetseg_mask_meta_get_label(meta, 1), "foreground");

    // The mask: the model's 64x64 soft alpha; the left 32 columns are the red half.
    GstVideoFrame mask;
    ASSERT_TRUE(gst_unetseg_mask_meta_map(meta, &mask));
    EXPECT_EQ(GST_VIDEO_FRAME_FORMAT(&mask), GST_VIDEO_FORMAT_GRAY8);
    EXPECT_EQ(GST_VIDEO_FRAME_WIDTH(&mask), 64);
    EXPECT_EQ(GST_VIDEO_FRAME_HEIGHT(&mask), 64);
    const auto* m = static_cast<const uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&mask, 0));
    const int stride = GST_VIDEO_FRAME_PLANE_STRIDE(&mask, 0);
    for (int y = 0; y < 64; ++y)
      for (int x = 0; x < 64; ++x) ASSERT_EQ(m[y * stride + x], x < 32 ? 255 : 0) << x << "," << y;
    gst_video_frame_unmap(&mask);

    // A generic ROI for tools that know nothing of unetseg.
    GstVideoRegionOfInterestMeta* roi = gst_buffer_get_video_region_of_interest_meta_id(out, 0);
    ASSERT_NE(roi, nullptr);
    EXPECT_STREQ(g_quark_to_string(roi->roi_type), "foreground");
    EXPECT_EQ(roi->x, 0u);
    EXPECT_EQ(roi->y, 0u);
    EXPECT_EQ(roi->w, static_cast<guint>(kSplit));
    EXPECT_EQ(roi->h, static_cast<guint>(kH));
    gst_buffer_unref(out);
  }
}

TEST(Meta, NoForegroundMeansNoRegionOfInterest) {
  const GstVideoInfo info = video_info("RGB", 64, 48);
  UnetsegHarness h({{"mode", "none"}}, info);
  GstBuffer* out = h.process([](int, int) { return kGreen; });
  EXPECT_NE(gst_buffer_get_unetseg_mask_meta(out), nullptr);
  EXPECT_EQ(gst_buffer_get_video_region_of_interest_meta_id(out, 0), nullptr);
  gst_buffer_unref(out);
}

// ---- modes ----

TEST(Mode, NoneLeavesPixelsAndCopiesNothing) {
  const GstVideoInfo info = video_info("BGRx", kW, kH);
  UnetsegHarness h({{"mode", "none"}}, info);
  GstBuffer* in = make_frame(info, red_checker);
  GstMemory* mem = gst_memory_ref(gst_buffer_peek_memory(in, 0));
  GstBuffer* out = h.process(in);
  EXPECT_EQ(gst_buffer_peek_memory(out, 0), mem) << "meta-only must not copy the frame";
  {
    FrameReader f(info, out);
    for_each_pixel(f, [](int x, int y, Rgba p) {
      const Rgba want = red_checker(x, y);
      ASSERT_EQ(p, (Rgba{want.r, want.g, want.b, -1})) << x << "," << y;
    });
  }
  gst_buffer_unref(out);

  // A buffer someone else still holds: its pixels are shared, not copied, and it stays clean.
  GstBuffer* shared = make_frame(info, red_checker);
  gst_buffer_ref(shared);
  GstBuffer* out2 = h.process(shared);
  EXPECT_NE(out2, shared);
  EXPECT_EQ(gst_buffer_peek_memory(out2, 0), gst_buffer_peek_memory(shared, 0));
  EXPECT_NE(gst_buffer_get_unetseg_mask_meta(out2), nullptr);
  EXPECT_EQ(gst_buffer_get_unetseg_mask_meta(shared), nullptr);
  gst_buffer_unref(out2);
  gst_buffer_unref(shared);
  gst_memory_unref(mem);
}

TEST(Mode, AlphaWritesTheMaskIntoAlphaOnly) {
  const GstVideoInfo info = video_info("ARGB", kW, kH);
  UnetsegHarness h({{"mode", "alpha"}}, info);
  GstBuffer* out = h.process([](int x, int y) { Rgba c = red_green(x, y); c.a = 77; return c; });
  {
    FrameReader f(info, out);
    for_each_pixel(f, [](int x, int y, Rgba p) {
      const Rgba colour = red_green(x, y);
      ASSERT_EQ(p, (Rgba{colour.r, colour.g, colour.b, x < kSplit ? 255 : 0})) << x << "," << y;
    });
  }
  gst_buffer_unref(out);
}

TEST(Mode, MaskPaintsWhiteForegroundOnBlack) {
  const GstVideoInfo info = video_info("RGBA", kW, kH);
  UnetsegHarness h({{"mode", "mask"}}, info);
  GstBuffer* out = h.process([](int x, int y) { Rgba c = red_green(x, y); c.a = 9; return c; });
  {
    FrameReader f(info, out);
    for_each_pixel(f, [](int x, int y, Rgba p) {
      const int v = x < kSplit ? 255 : 0;
      ASSERT_EQ(p, (Rgba{v, v, v, 255})) << x << "," << y;
    });
  }
  gst_buffer_unref(out);
}

TEST(Mode, BlurSoftensTheBackgroundOnly) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  UnetsegHarness h({{"mode", "blur"}, {"blur-radius", "15"}}, info);
  GstBuffer* out = h.process(red_checker);
  {
    FrameReader f(info, out);
    double var_before = 0, var_after = 0, mean_before = 0, mean_after = 0;
    int n = 0;
    for_each_pixel(f, [&](int x, int y, Rgba p) {
      if (x < kSplit) {
        ASSERT_EQ(p, (Rgba{255, 0, 0, -1})) << "foreground must stay sharp at " << x << "," << y;
      } else if (x >= kSplit + 40) {  // well inside the background
        mean_before += red_checker(x, y).g;
        mean_after += p.g;
        ++n;
      }
    });
    mean_before /= n;
    mean_after /= n;
    for_each_pixel(f, [&](int x, int y, Rgba p) {
      if (x >= kSplit + 40) {
        var_before += std::pow(red_checker(x, y).g - mean_before, 2);
        var_after += std::pow(p.g - mean_after, 2);
      }
    });
    EXPECT_LT(var_after, var_before * 0.1) << "the checkerboard must be blurred away";
    EXPECT_NEAR(mean_after, mean_before, 3.0) << "blur keeps the average colour";
  }
  gst_buffer_unref(out);
}

TEST(Mode, ReplaceWithAColour) {
  const GstVideoInfo info = video_info("xBGR", kW, kH);
  UnetsegHarness h({{"mode", "replace"}, {"background-color", "0xff102030"}}, info);
  GstBuffer* out = h.process(red_checker);
  {
    FrameReader f(info, out);
    for_each_pixel(f, [](int x, int y, Rgba p) {
      const Rgba want = x < kSplit ? kRed : Rgba{0x10, 0x20, 0x30, -1};
      ASSERT_EQ(p, (Rgba{want.r, want.g, want.b, -1})) << x << "," << y;
    });
  }
  gst_buffer_unref(out);
}

namespace {
// Writes a solid-colour PNG with GStreamer itself.
void write_png(const std::string& path, guint argb, int w = 8, int h = 8) {
  char launch[512];
  std::snprintf(launch, sizeof launch,
                "videotestsrc num-buffers=1 pattern=solid-color foreground-color=0x%08x ! "
                "video/x-raw,width=%d,height=%d,format=RGB ! pngenc ! filesink location=%s",
                argb, w, h, path.c_str());
  Pipeline p(launch);
  p.run();
  ASSERT_EQ(p.error(), "");
}
}  // namespace

TEST(Mode, ReplaceWithAnImageAndChangeItWhilePlaying) {
  TempDir dir;
  write_png(dir.file("a.png"), 0xff0a141e);
  write_png(dir.file("b.png"), 0xffc8641e, 5, 3);
  const GstVideoInfo info = video_info("RGBx", kW, kH);
  UnetsegHarness h({{"mode", "replace"}, {"background-location", dir.file("a.png")}}, info);
  auto check = [&](Rgba bg) {
    GstBuffer* out = h.process(red_checker);
    FrameReader f(info, out);
    for_each_pixel(f, [&](int x, int y, Rgba p) {
      const Rgba want = x < kSplit ? kRed : bg;
      ASSERT_EQ(p, (Rgba{want.r, want.g, want.b, -1})) << x << "," << y;
    });
    gst_buffer_unref(out);
  };
  check({0x0a, 0x14, 0x1e, -1});
  g_object_set(h.element(), "background-location", dir.file("b.png").c_str(), nullptr);
  // Decoded beside the stream: frames keep the old background until the new one is ready.
  const Rgba b{0xc8, 0x64, 0x1e, -1};
  bool swapped = false;
  for (int i = 0; i < 500 && !swapped; ++i) {
    GstBuffer* out = h.process(red_checker);
    FrameReader f(info, out);
    const Rgba bg = f.at(kW - 1, kH - 1);
    EXPECT_TRUE(bg == b || bg == (Rgba{0x0a, 0x14, 0x1e, -1})) << "old or new, nothing else";
    swapped = bg == b;
    gst_buffer_unref(out);
    if (!swapped) g_usleep(10000);
  }
  ASSERT_TRUE(swapped) << "the new background never came";
  check(b);
}

// A new background-location is decoded off the streaming thread: the frame that asks for it
// does not wait (a 3000x2000 PNG takes hundreds of ms), and a bad one is a warning that leaves
// the old background and the stream alone.
TEST(Mode, ChangingTheBackgroundWhilePlayingNeverStallsOrStops) {
  TempDir dir;
  write_png(dir.file("a.png"), 0xff0a141e);
  write_png(dir.file("big.png"), 0xffc8641e, 3000, 2000);
  const GstVideoInfo info = video_info("RGBx", kW, kH);
  UnetsegHarness h({{"mode", "replace"}, {"background-location", dir.file("a.png")}}, info);
  const Rgba old_bg{0x0a, 0x14, 0x1e, -1};
  auto background = [&] {
    GstBuffer* out = h.process(red_checker);
    FrameReader f(info, out);
    const Rgba bg = f.at(kW - 1, kH - 1);
    gst_buffer_unref(out);
    return bg;
  };
  EXPECT_EQ(background(), old_bg);
  g_object_set(h.element(), "background-location", dir.file("big.png").c_str(), nullptr);
  EXPECT_EQ(background(), old_bg) << "the frame that asked did not wait for the decode";

  write_file(dir.file("junk.png"), "definitely not a PNG");
  g_object_set(h.element(), "background-location", dir.file("junk.png").c_str(), nullptr);
  std::string warning;
  for (int i = 0; i < 500 && warning.empty(); ++i) {
    EXPECT_EQ(background(), old_bg) << "a bad image never replaces the background";
    while (GstMessage* m = gst_bus_pop_filtered(h.bus(), GST_MESSAGE_WARNING)) {
      GError* err = nullptr;
      gchar* debug = nullptr;
      gst_message_parse_warning(m, &err, &debug);
      const std::string text = std::string(err->message) + " | " + (debug ? debug : "");
      if (text.find("background-location") != std::string::npos) warning = text;
      g_clear_error(&err);
      g_free(debug);
      gst_message_unref(m);
    }
    if (warning.empty()) g_usleep(10000);
  }
  EXPECT_NE(warning.find(dir.file("junk.png")), std::string::npos) << warning;
  EXPECT_NE(warning.find("stays as it was"), std::string::npos) << warning;
  EXPECT_EQ(gst_bus_pop_filtered(h.bus(), GST_MESSAGE_ERROR), nullptr) << "a warning, not an error";
  EXPECT_EQ(background(), old_bg);
}

TEST(Mode, MultiClassOverlayColoursEachClassAndLeavesBackgroundClear) {
  // classes3: thirds red | green | black -> classes 1 | 2 | 0.
  const GstVideoInfo info = video_info("RGB", 96, 32);
  auto thirds = [](int x, int) { return x < 32 ? kRed : x < 64 ? kGreen : kBlack; };
  UnetsegHarness h({{"mode", "overlay"}, {"overlay-opacity", "1.0"}}, info, "classes3");
  GstBuffer* out = h.process(thirds);

  GstUnetsegMaskMeta* meta = gst_buffer_get_unetseg_mask_meta(out);
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(meta->type, GST_UNETSEG_MASK_SEMANTIC);
  ASSERT_EQ(meta->n_regions, 3u);
  EXPECT_STREQ(gst_unetseg_mask_meta_get_label(meta, 1), "red");
  EXPECT_STREQ(gst_unetseg_mask_meta_get_label(meta, 2), "green");
  GstVideoFrame mask;
  ASSERT_TRUE(gst_unetseg_mask_meta_map(meta, &mask));
  const auto* m = static_cast<const uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&mask, 0));
  EXPECT_EQ(m[10], 1);
  EXPECT_EQ(m[32], 2);
  EXPECT_EQ(m[60], 0);
  gst_video_frame_unmap(&mask);

  {
    FrameReader f(info, out);
    const cv::Vec3b c1 = unetseg::Compositor::palette_color(1), c2 = unetseg::Compositor::palette_color(2);
    EXPECT_NE(c1, c2);
    for (int y = 0; y < 32; ++y) {
      EXPECT_EQ(f.at(10, y), (Rgba{c1[0], c1[1], c1[2], -1}));
      EXPECT_EQ(f.at(48, y), (Rgba{c2[0], c2[1], c2[2], -1}));
      EXPECT_EQ(f.at(85, y), (Rgba{0, 0, 0, -1}));
    }
  }
  gst_buffer_unref(out);
}

// ---- changes while PLAYING ----

TEST(Properties, ModeThresholdAndSoftMaskChangeWhilePlaying) {
  // Left half (160, 128, 0): p = sigmoid(20 * 32 / 255) = 0.925; right half green.
  auto orange_green = [](int x, int) { return x < kSplit ? Rgba{160, 128, 0, 255} : kGreen; };
  const GstVideoInfo info = video_info("RGB", kW, kH);
  UnetsegHarness h({{"mode", "mask"}, {"threshold", "0.9"}}, info);
  auto left_value = [&] {
    GstBuffer* out = h.process(orange_green);
    FrameReader f(info, out);
    const Rgba p = f.at(40, 100);
    gst_buffer_unref(out);
    return p;
  };
  EXPECT_EQ(left_value().r, 255);
  g_object_set(h.element(), "threshold", 0.95, nullptr);
  EXPECT_EQ(left_value().r, 0);
  g_object_set(h.element(), "soft-mask", TRUE, nullptr);
  EXPECT_NEAR(left_value().r, 0.925 * 255, 2);
  g_object_set(h.element(), "soft-mask", FALSE, "mode", 0 /* none */, nullptr);
  EXPECT_EQ(left_value(), (Rgba{160, 128, 0, -1}));
  gst_util_set_object_arg(G_OBJECT(h.element()), "mode", "overlay");
  g_object_set(h.element(), "threshold", 0.5, "overlay-opacity", 1.0, "overlay-color", 0xff0000ffu, nullptr);
  EXPECT_EQ(left_value(), (Rgba{0, 0, 255, -1}));
}

// The refinement properties reach the mask, and change it while PLAYING.
TEST(Properties, RefinementChangesTheMaskWhilePlaying) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  UnetsegHarness h({{"mode", "mask"}}, info);
  auto white_at = [&](int x) {
    GstBuffer* out = h.process(red_green);
    const int v = FrameReader(info, out).at(x, kH / 2).r;
    gst_buffer_unref(out);
    return v;
  };
  EXPECT_EQ(white_at(kSplit + 5), 0) << "plain: background right of the split";
  g_object_set(h.element(), "feather", 20, nullptr);
  const int feathered = white_at(kSplit + 5);
  EXPECT_GT(feathered, 0) << "feather > 0 grows the mask outward";
  EXPECT_LT(feathered, 255) << "with a soft ramp";
  g_object_set(h.element(), "feather", 0, "guided-radius", 8, nullptr);
  EXPECT_EQ(white_at(5), 255);
  EXPECT_EQ(white_at(kW - 5), 0);
  // The red half is half the frame: an island that small is kept at 0.5, dropped above.
  g_object_set(h.element(), "guided-radius", 0, "min-island", 0.5, nullptr);
  EXPECT_EQ(white_at(5), 255);
  g_object_set(h.element(), "min-island", 0.6, nullptr);
  EXPECT_EQ(white_at(5), 0);
}

// smooth-contour rounds a square's corner; guided-eps changes how far the guided upscale
// follows the frame where the model is unsure (an orange-ish half: p about 0.83).
TEST(Properties, SmoothContourAndGuidedEpsReachTheMask) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  auto square = [](int x, int y) { return x < 100 && y < 100 ? kRed : kGreen; };
  UnetsegHarness h({{"mode", "mask"}}, info);
  auto white_at = [&](const std::function<Rgba(int, int)>& colour, int x, int y) {
    GstBuffer* out = h.process(colour);
    const int v = FrameReader(info, out).at(x, y).r;
    gst_buffer_unref(out);
    return v;
  };
  EXPECT_EQ(white_at(square, 97, 97), 255) << "a sharp corner";
  g_object_set(h.element(), "smooth-contour", 8, nullptr);
  EXPECT_EQ(white_at(square, 97, 97), 0) << "rounded off";
  EXPECT_EQ(white_at(square, 50, 50), 255) << "the inside stays";

  const Rgba unsure{140, 120, 0, 255};
  auto half = [&](int x, int) { return x < kSplit ? unsure : kGreen; };
  g_object_set(h.element(), "smooth-contour", 0, "soft-mask", TRUE, "guided-radius", 8,
               "guided-eps", 1e-6, nullptr);
  std::vector<int> tight, loose;
  for (int x = kSplit - 12; x < kSplit + 12; x += 3) tight.push_back(white_at(half, x, kH / 2));
  g_object_set(h.element(), "guided-eps", 1.0, nullptr);
  for (int x = kSplit - 12; x < kSplit + 12; x += 3) loose.push_back(white_at(half, x, kH / 2));
  EXPECT_NE(tight, loose);
}

// threads sets OpenCV's pool (one per process: this test shares it with the element).
TEST(Properties, ThreadsSetsOpenCVsPoolAtStart) {
  const int before = cv::getNumThreads();
  {
    const GstVideoInfo info = video_info("RGB", 64, 48);
    UnetsegHarness h({{"threads", "1"}}, info);
    gst_buffer_unref(h.process(red_green));
    EXPECT_EQ(cv::getNumThreads(), 1);
  }
  cv::setNumThreads(before);
}

TEST(Properties, PostMessagesLikeLevelDoes) {
  const GstVideoInfo info = video_info("RGB", kW, kH);
  UnetsegHarness h({{"mode", "none"}, {"post-messages", "true"}}, info);
  GstBuffer* out = h.process(red_green, 2 * GST_SECOND);
  gst_buffer_unref(out);
  GstMessage* msg = gst_bus_pop_filtered(h.bus(), GST_MESSAGE_ELEMENT);
  ASSERT_NE(msg, nullptr);
  const GstStructure* s = gst_message_get_structure(msg);
  EXPECT_TRUE(gst_structure_has_name(s, "unetseg"));
  double fraction = 0;
  int x = -1, y = -1, w = -1, hgt = -1;
  guint64 ts = 0, inference = 0;
  EXPECT_TRUE(gst_structure_get_double(s, "foreground-fraction", &fraction));
  EXPECT_NEAR(fraction, 0.5, 0.01);
  EXPECT_TRUE(gst_structure_get(s, "bbox-x", G_TYPE_INT, &x, "bbox-y", G_TYPE_INT, &y, "bbox-width",
                                G_TYPE_INT, &w, "bbox-height", G_TYPE_INT, &hgt, "timestamp",
                                G_TYPE_UINT64, &ts, "inference-time", G_TYPE_UINT64, &inference,
                                nullptr));
  EXPECT_EQ(x, 0);
  EXPECT_EQ(y, 0);
  EXPECT_EQ(w, kSplit);
  EXPECT_EQ(hgt, kH);
  EXPECT_EQ(ts, 2 * GST_SECOND);
  EXPECT_GT(inference, 0u);
  EXPECT_STREQ(gst_structure_get_string(s, "model"), "unet_rg");
  guint64 mask_ts = 0;
  gboolean live = TRUE;
  EXPECT_TRUE(gst_structure_get_uint64(s, "mask-timestamp", &mask_ts));
  EXPECT_EQ(mask_ts, 2 * GST_SECOND) << "offline: the frame's own mask";
  EXPECT_TRUE(gst_structure_get_boolean(s, "live", &live));
  EXPECT_FALSE(live);
  gst_message_unref(msg);

  g_object_set(h.element(), "post-messages", FALSE, nullptr);
  gst_buffer_unref(h.process(red_green));
  EXPECT_EQ(gst_bus_pop_filtered(h.bus(), GST_MESSAGE_ELEMENT), nullptr);
}

TEST(Properties, ActiveBackendIsKnownOnlyWhileRunning) {
  ensure_gst();
  GstElement* e = gst_element_factory_make("unetseg", nullptr);
  gchar* active = nullptr;
  g_object_get(e, "active-backend", &active, nullptr);
  EXPECT_EQ(active, nullptr);
  g_object_set(e, "model", test_model("unet_rg").c_str(), nullptr);
  ASSERT_EQ(gst_element_set_state(e, GST_STATE_PAUSED), GST_STATE_CHANGE_SUCCESS);
  g_object_get(e, "active-backend", &active, nullptr);
  EXPECT_STREQ(active, "cpu");  // this OpenCV has no CUDA, or the machine no GPU
  g_free(active);
  ASSERT_EQ(gst_element_set_state(e, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  g_object_get(e, "active-backend", &active, nullptr);
  EXPECT_EQ(active, nullptr);
  gst_object_unref(e);
}

// ---- states, EOS, flush ----

TEST(States, NullToPlayingToNullRepeatedly) {
  Pipeline p("videotestsrc num-buffers=4 ! video/x-raw,width=80,height=60 ! videoconvert ! "
             "unetseg name=seg mode=blur model=" + test_model("u2net_rsu") + " ! fakesink name=sink");
  for (int round = 0; round < 3; ++round) {
    p.run();
    EXPECT_EQ(p.error(), "") << "round " << round;
    EXPECT_TRUE(p.got_eos()) << "round " << round;
    ASSERT_EQ(gst_element_set_state(p.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  }
  // PLAYING -> PAUSED -> PLAYING on a live-ish source keeps working.
  Pipeline live("videotestsrc is-live=true num-buffers=6 ! video/x-raw,width=64,height=48 ! "
                "videoconvert ! unetseg model=" + test_model("unet_rg") + " ! fakesink");
  ASSERT_NE(gst_element_set_state(live.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_NE(gst_element_set_state(live.get(), GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  live.run();
  EXPECT_EQ(live.error(), "");
  EXPECT_TRUE(live.got_eos());
}

TEST(States, FlushThenKeepGoingThenEos) {
  const GstVideoInfo info = video_info("RGB", 64, 48);
  UnetsegHarness h({{"mode", "mask"}}, info);
  gst_buffer_unref(h.process(red_green));
  EXPECT_TRUE(gst_harness_push_event(h.get(), gst_event_new_flush_start()));
  EXPECT_TRUE(gst_harness_push_event(h.get(), gst_event_new_flush_stop(TRUE)));
  // After a flush the stream needs a segment again before data.
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  EXPECT_TRUE(gst_harness_push_event(h.get(), gst_event_new_segment(&segment)));
  GstBuffer* out = h.process([](int x, int) { return x < 32 ? kRed : kGreen; });
  {
    FrameReader f(info, out);
    EXPECT_EQ(f.at(5, 5), (Rgba{255, 255, 255, -1}));
    EXPECT_EQ(f.at(60, 5), (Rgba{0, 0, 0, -1}));
  }
  gst_buffer_unref(out);
  EXPECT_TRUE(eos_goes_through(h.get()));
}

// Switching to alpha mode while PLAYING renegotiates through videoconvert to a format with alpha,
// after which frames carry the mask in their alpha channel.
TEST(Properties, SwitchingToAlphaWhilePlayingRenegotiates) {
  Pipeline p("videotestsrc is-live=true pattern=smpte ! video/x-raw,format=RGB,width=64,height=48,"
             "framerate=100/1 ! videoconvert ! unetseg name=seg mode=overlay model=" +
             test_model("unet_rg") + " ! fakesink name=sink sync=false");
  struct Seen {
    std::atomic<int> rgb{0}, with_alpha{0}, alpha_written{0};
  } seen;
  GstPad* pad = gst_element_get_static_pad(p.by_name("sink"), "sink");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, [](GstPad* pad, GstPadProbeInfo* info, gpointer data) {
    auto* s = static_cast<Seen*>(data);
    GstCaps* caps = gst_pad_get_current_caps(pad);
    GstVideoInfo vinfo;
    gst_video_info_from_caps(&vinfo, caps);
    gst_caps_unref(caps);
    if (!GST_VIDEO_INFO_HAS_ALPHA(&vinfo)) {
      ++s->rgb;
      return GST_PAD_PROBE_OK;
    }
    ++s->with_alpha;
    // smpte bars (grey, yellow, cyan, green, magenta, red, blue): the red bar is foreground,
    // the green one is not; alpha must differ between them. (Not the grey bar: R = G puts it
    // at p = 0.5, on the threshold, where rounding decides.)
    FrameReader f(vinfo, GST_PAD_PROBE_INFO_BUFFER(info));
    const int red_x = f.width() * 5 / 7 + 2, green_x = f.width() * 3 / 7 + 2;
    if (f.at(red_x, 10).a == 255 && f.at(green_x, 10).a == 0) ++s->alpha_written;
    return GST_PAD_PROBE_OK;
  }, &seen, nullptr);
  gst_object_unref(pad);

  ASSERT_NE(gst_element_set_state(p.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  auto wait_for = [](const std::atomic<int>& n, int count) {
    for (int i = 0; i < 500 && n < count; ++i) g_usleep(10000);
    return n >= count;
  };
  ASSERT_TRUE(wait_for(seen.rgb, 5)) << "no RGB frames before the switch";
  gst_util_set_object_arg(G_OBJECT(p.by_name("seg")), "mode", "alpha");
  EXPECT_TRUE(wait_for(seen.alpha_written, 5)) << "after the switch: " << seen.with_alpha << " frames with alpha, "
                                               << seen.alpha_written << " with the mask in it";
  gst_element_send_event(p.get(), gst_event_new_eos());
  p.run(10 * GST_SECOND);
  EXPECT_EQ(p.error(), "");
}

// backend=auto on a machine where CUDA cannot run runs on the CPU: quietly when this OpenCV has
// no CUDA at all (the normal case), with a WARNING saying why when it has CUDA but cannot use it.
TEST(Properties, AutoBackendExplainsItsChoice) {
  Pipeline p("videotestsrc num-buffers=1 ! video/x-raw,width=64,height=48 ! videoconvert ! "
             "unetseg name=seg backend=auto model=" + test_model("unet_rg") + " ! fakesink");
  p.run();
  EXPECT_EQ(p.error(), "");
  std::string warning;
  for (GstMessage* m : p.messages()) {
    if (GST_MESSAGE_TYPE(m) != GST_MESSAGE_WARNING) continue;
    GError* err = nullptr;
    gchar* debug = nullptr;
    gst_message_parse_warning(m, &err, &debug);
    warning = std::string(err->message) + " | " + (debug ? debug : "");
    g_clear_error(&err);
    g_free(debug);
  }
  gchar* active = nullptr;
  g_object_get(p.by_name("seg"), "active-backend", &active, nullptr);
  const std::string reason = unetseg::cuda_unavailable_reason();
  if (active && std::string(active) == "cpu" && !unetseg::opencv_has_cuda()) {
    EXPECT_EQ(warning, "") << "an OpenCV without CUDA is the normal case: no warning";
  } else if (active && std::string(active) == "cpu") {
    EXPECT_NE(warning.find("using the CPU: " + reason), std::string::npos) << warning;
    EXPECT_NE(warning.find("backend=auto runs model"), std::string::npos) << warning;
  } else {
    EXPECT_TRUE(reason.empty()) << reason;
    EXPECT_EQ(warning, "") << "a working CUDA backend needs no explanation";
  }
  g_free(active);
}

// mode toggled between none and overlay from another thread while frames stream: each frame is
// either passed through untouched (sharing the input's pixels) or drawn on a copy; never drawn
// on the shared input buffer itself, never copied and left undrawn.
TEST(Properties, ModeToggledFromAnotherThreadKeepsEachFrameConsistent) {
  const GstVideoInfo info = video_info("RGB", 64, 48);
  UnetsegHarness h({{"mode", "none"}}, info);
  GstBuffer* in = make_frame(info, [](int x, int) { return x < 32 ? kRed : kGreen; });
  GstMapInfo original;
  ASSERT_TRUE(gst_buffer_map(in, &original, GST_MAP_READ));
  const std::vector<guint8> pixels(original.data, original.data + original.size);
  gst_buffer_unmap(in, &original);

  std::atomic<bool> stop{false};
  std::thread toggler([&] {
    for (int i = 0; !stop; ++i) {
      gst_util_set_object_arg(G_OBJECT(h.element()), "mode", i % 2 ? "none" : "overlay");
      std::this_thread::yield();
    }
  });
  int drawn = 0, untouched = 0;
  for (int n = 0; n < 3000; ++n) {
    // The harness keeps no reference of its own: ours makes the input shared (not writable).
    GstBuffer* out = h.process(gst_buffer_ref(in));
    GstMapInfo map;
    ASSERT_TRUE(gst_buffer_map(in, &map, GST_MAP_READ));
    ASSERT_EQ(std::memcmp(map.data, pixels.data(), pixels.size()), 0)
        << "frame " << n << " was drawn on the shared input";
    gst_buffer_unmap(in, &map);
    const bool shares = gst_buffer_peek_memory(out, 0) == gst_buffer_peek_memory(in, 0);
    FrameReader f(info, out);
    const bool tinted = !(f.at(5, 5) == (Rgba{255, 0, 0, -1}));
    EXPECT_NE(shares, tinted) << "frame " << n << (shares ? ": drawn on shared pixels"
                                                            : ": copied but not drawn");
    drawn += tinted;
    untouched += shares;
    gst_buffer_unref(out);
  }
  stop = true;
  toggler.join();
  gst_buffer_unref(in);
  EXPECT_GT(drawn, 0);
  EXPECT_GT(untouched, 0);
}

// OpenCV has one thread pool per process: a second unetseg starting while the first streams
// must not resize it under the first one's running forward. It runs with the pool as it is, and
// says so when it asked for another size; once none runs, the next start sizes it again.
TEST(Properties, ThreadsAreDecidedOncePerProcess) {
  const int before = cv::getNumThreads();
  const GstVideoInfo info = video_info("RGB", 64, 48);
  {
    UnetsegHarness first({{"threads", "2"}, {"live", "on"}}, info, "slow_rg");
    gst_buffer_unref(first.process(red_green));  // its forward runs on the model's thread now
    EXPECT_EQ(cv::getNumThreads(), 2);
    UnetsegHarness second({{"threads", "1"}}, info);
    gst_buffer_unref(second.process(red_green));
    EXPECT_EQ(cv::getNumThreads(), 2) << "not resized while another instance runs";
    std::string warning;
    while (GstMessage* m = gst_bus_pop_filtered(second.bus(), GST_MESSAGE_WARNING)) {
      GError* err = nullptr;
      gst_message_parse_warning(m, &err, nullptr);
      if (std::string(err->message).find("threads=1 is not applied") != std::string::npos)
        warning = err->message;
      g_clear_error(&err);
      gst_message_unref(m);
    }
    EXPECT_NE(warning.find("it has 2 thread(s)"), std::string::npos) << warning;
  }
  {
    UnetsegHarness alone({{"threads", "1"}}, info);
    gst_buffer_unref(alone.process(red_green));
    EXPECT_EQ(cv::getNumThreads(), 1) << "alone again: it sizes the pool";
  }
  cv::setNumThreads(before);
}
