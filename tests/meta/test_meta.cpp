// The mask meta library: fields, setters, mapping, and what happens to the meta when buffers are
// copied, scaled by videoscale or rotated by videoflip.

#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "gstunetsegmeta.h"

namespace {

// GLib criticals and warnings fail the test that caused them, unless a CriticalCatcher expects
// them. They may come from streaming threads, hence the mutex.
std::mutex log_mutex;
std::vector<std::string>* caught = nullptr;

void log_handler(const gchar* domain, GLogLevelFlags level, const gchar* message, gpointer) {
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) {
    std::lock_guard<std::mutex> lock(log_mutex);
    if (caught && (level & G_LOG_LEVEL_CRITICAL)) {
      caught->push_back(message);
      return;
    }
    ADD_FAILURE() << "unexpected GLib message [" << (domain ? domain : "") << "]: " << message;
  }
  g_log_default_handler(domain, level, message, nullptr);
}

class GstEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    g_log_set_default_handler(log_handler, nullptr);
    gst_init(nullptr, nullptr);
  }
  // Lets GST_TRACERS=leaks report the buffers (masks included) still alive at the end.
  void TearDown() override { gst_deinit(); }
};
::testing::Environment* const gst_env = ::testing::AddGlobalTestEnvironment(new GstEnvironment);

// Collects the criticals logged while it lives.
class CriticalCatcher {
 public:
  CriticalCatcher() {
    std::lock_guard<std::mutex> lock(log_mutex);
    caught = &messages_;
  }
  ~CriticalCatcher() {
    std::lock_guard<std::mutex> lock(log_mutex);
    caught = nullptr;
  }
  // The number of criticals caught since the last call.
  size_t take() {
    std::lock_guard<std::mutex> lock(log_mutex);
    size_t n = messages_.size();
    messages_.clear();
    return n;
  }

 private:
  std::vector<std::string> messages_;
};

constexpr gint kMaskWidth = 10, kMaskHeight = 6, kMaskStride = 12;

guint8 mask_pixel(gint i, gint j) { return static_cast<guint8>(j * 16 + i); }

// A GRAY8 mask with padded rows, so that a mapping that ignores the stride reads wrong pixels.
GstBuffer* make_mask() {
  GstBuffer* mask = gst_buffer_new_allocate(nullptr, kMaskStride * kMaskHeight, nullptr);
  GstMapInfo map;
  gst_buffer_map(mask, &map, GST_MAP_WRITE);
  memset(map.data, 0xee, map.size);
  for (gint j = 0; j < kMaskHeight; j++)
    for (gint i = 0; i < kMaskWidth; i++) map.data[j * kMaskStride + i] = mask_pixel(i, j);
  gst_buffer_unmap(mask, &map);
  gsize offset[GST_VIDEO_MAX_PLANES] = {0};
  gint stride[GST_VIDEO_MAX_PLANES] = {kMaskStride};
  gst_buffer_add_video_meta_full(mask, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_FORMAT_GRAY8,
                                 kMaskWidth, kMaskHeight, 1, offset, stride);
  return mask;
}

GstBuffer* make_frame(gint width = 320, gint height = 240) {
  GstVideoInfo info;
  gst_video_info_set_format(&info, GST_VIDEO_FORMAT_RGB, width, height);
  GstBuffer* frame = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&info), nullptr);
  gst_buffer_memset(frame, 0, 0x80, GST_VIDEO_INFO_SIZE(&info));
  return frame;
}

// A frame carrying a fully described meta.
GstBuffer* make_frame_with_meta(gint x, gint y, gint width, gint height, gint frame_width = 320,
                                gint frame_height = 240) {
  GstBuffer* frame = make_frame(frame_width, frame_height);
  GstUnetsegMaskMeta* meta = gst_buffer_add_unetseg_mask_meta(
      frame, make_mask(), GST_UNETSEG_MASK_SEMANTIC, x, y, width, height);
  const guint ids[] = {0, 1, 2};
  const gchar* const labels[] = {"background", "person", nullptr};
  gst_unetseg_mask_meta_set_regions(meta, 3, ids, labels);
  gst_unetseg_mask_meta_set_model(meta, "u2net");
  meta->source_pts = 5 * GST_SECOND;
  meta->inference_time = 12 * GST_MSECOND;
  return frame;
}

guint count_mask_metas(GstBuffer* buffer) {
  gpointer state = nullptr;
  guint n = 0;
  while (gst_buffer_iterate_meta_filtered(buffer, &state, GST_UNETSEG_MASK_META_API_TYPE)) n++;
  return n;
}

// Everything but the rectangle, which scaling changes.
void expect_same_content(const GstUnetsegMaskMeta* a, const GstUnetsegMaskMeta* b) {
  EXPECT_EQ(a->mask, b->mask);
  EXPECT_EQ(a->type, b->type);
  ASSERT_EQ(a->n_regions, b->n_regions);
  for (guint i = 0; i < a->n_regions; i++) {
    EXPECT_EQ(a->region_ids[i], b->region_ids[i]);
    EXPECT_EQ(a->labels[i], b->labels[i]);
  }
  EXPECT_EQ(a->source_pts, b->source_pts);
  EXPECT_EQ(a->model, b->model);
  EXPECT_EQ(a->inference_time, b->inference_time);
}

void set_freed(gpointer data, GstMiniObject*) { *static_cast<bool*>(data) = true; }

TEST(MaskMeta, AddAndGetWithAllFields) {
  GstBuffer* frame = make_frame();
  EXPECT_EQ(gst_buffer_get_unetseg_mask_meta(frame), nullptr);

  GstBuffer* mask = make_mask();
  GstUnetsegMaskMeta* meta =
      gst_buffer_add_unetseg_mask_meta(frame, mask, GST_UNETSEG_MASK_SEMANTIC, 4, 5, 100, 50);
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(gst_buffer_get_unetseg_mask_meta(frame), meta);
  EXPECT_EQ(meta->meta.info, GST_UNETSEG_MASK_META_INFO);
  EXPECT_EQ(meta->mask, mask);
  EXPECT_EQ(meta->type, GST_UNETSEG_MASK_SEMANTIC);
  EXPECT_EQ(meta->x, 4);
  EXPECT_EQ(meta->y, 5);
  EXPECT_EQ(meta->width, 100);
  EXPECT_EQ(meta->height, 50);
  EXPECT_EQ(meta->n_regions, 0u);
  EXPECT_EQ(meta->region_ids, nullptr);
  EXPECT_EQ(meta->labels, nullptr);
  EXPECT_EQ(meta->source_pts, GST_CLOCK_TIME_NONE);
  EXPECT_EQ(meta->model, 0u);
  EXPECT_EQ(gst_unetseg_mask_meta_get_model(meta), nullptr);
  EXPECT_EQ(meta->inference_time, GST_CLOCK_TIME_NONE);

  // The meta took the caller's reference: freeing the frame frees the mask.
  bool mask_freed = false;
  gst_mini_object_weak_ref(GST_MINI_OBJECT(mask), set_freed, &mask_freed);
  EXPECT_EQ(GST_MINI_OBJECT_REFCOUNT_VALUE(mask), 1);
  gst_buffer_unref(frame);
  EXPECT_TRUE(mask_freed);
}

TEST(MaskMeta, Tags) {
  // Size: videoscale must transform it; orientation: videoflip must drop it (see below).
  GType api = GST_UNETSEG_MASK_META_API_TYPE;
  EXPECT_TRUE(gst_meta_api_type_has_tag(api, g_quark_from_string(GST_META_TAG_VIDEO_STR)));
  EXPECT_TRUE(gst_meta_api_type_has_tag(api, g_quark_from_string(GST_META_TAG_VIDEO_SIZE_STR)));
  EXPECT_TRUE(
      gst_meta_api_type_has_tag(api, g_quark_from_string(GST_META_TAG_VIDEO_ORIENTATION_STR)));
  EXPECT_FALSE(
      gst_meta_api_type_has_tag(api, g_quark_from_string(GST_META_TAG_VIDEO_COLORSPACE_STR)));
}

TEST(MaskMeta, RegionsAndModelRoundTrip) {
  GstBuffer* frame = make_frame();
  GstUnetsegMaskMeta* meta =
      gst_buffer_add_unetseg_mask_meta(frame, make_mask(), GST_UNETSEG_MASK_SEMANTIC, 0, 0, 320, 240);

  guint ids[] = {0, 1, 7};
  gchar person[] = "person";
  const gchar* labels[] = {"background", nullptr, person};
  gst_unetseg_mask_meta_set_regions(meta, 3, ids, labels);
  // The meta keeps copies, not the caller's arrays.
  ids[2] = 9;
  person[0] = 'P';
  ASSERT_EQ(meta->n_regions, 3u);
  EXPECT_EQ(meta->region_ids[0], 0u);
  EXPECT_EQ(meta->region_ids[1], 1u);
  EXPECT_EQ(meta->region_ids[2], 7u);
  EXPECT_STREQ(gst_unetseg_mask_meta_get_label(meta, 0), "background");
  EXPECT_EQ(gst_unetseg_mask_meta_get_label(meta, 1), nullptr);  // unnamed
  EXPECT_STREQ(gst_unetseg_mask_meta_get_label(meta, 7), "person");
  EXPECT_EQ(gst_unetseg_mask_meta_get_label(meta, 2), nullptr);  // not a region
  EXPECT_EQ(gst_unetseg_mask_meta_get_label(meta, 9), nullptr);
  EXPECT_EQ(meta->labels[0], g_quark_from_string("background"));
  EXPECT_EQ(meta->labels[1], 0u);

  // Replacing: no labels at all.
  const guint two[] = {0, 1};
  gst_unetseg_mask_meta_set_regions(meta, 2, two, nullptr);
  ASSERT_EQ(meta->n_regions, 2u);
  EXPECT_EQ(meta->region_ids[1], 1u);
  EXPECT_EQ(meta->labels[0], 0u);
  EXPECT_EQ(meta->labels[1], 0u);
  EXPECT_EQ(gst_unetseg_mask_meta_get_label(meta, 0), nullptr);

  // Clearing.
  gst_unetseg_mask_meta_set_regions(meta, 0, nullptr, nullptr);
  EXPECT_EQ(meta->n_regions, 0u);
  EXPECT_EQ(meta->region_ids, nullptr);
  EXPECT_EQ(meta->labels, nullptr);
  EXPECT_EQ(gst_unetseg_mask_meta_get_label(meta, 0), nullptr);

  gchar model[] = "u2net_human_seg";
  gst_unetseg_mask_meta_set_model(meta, model);
  model[0] = 'X';
  EXPECT_STREQ(gst_unetseg_mask_meta_get_model(meta), "u2net_human_seg");
  EXPECT_EQ(meta->model, g_quark_from_string("u2net_human_seg"));
  gst_unetseg_mask_meta_set_model(meta, nullptr);
  EXPECT_EQ(gst_unetseg_mask_meta_get_model(meta), nullptr);
  EXPECT_EQ(meta->model, 0u);

  gst_buffer_unref(frame);
}

// Many classes (more than the meta holds inline), then few, then many again, copied each way:
// the arrays always hold what was set, and a copy owns its own (ASan and the leak check in the
// hardening run see any double free or leak).
TEST(MaskMeta, ManyRegionsAndFewSurviveCopiesAndReplacement) {
  GstBuffer* frame = make_frame();
  GstUnetsegMaskMeta* meta =
      gst_buffer_add_unetseg_mask_meta(frame, make_mask(), GST_UNETSEG_MASK_SEMANTIC, 0, 0, 320, 240);
  for (guint n : {20u, 2u, 9u, 8u, 0u, 33u}) {
    std::vector<guint> ids(n);
    std::vector<std::string> names(n);
    std::vector<const gchar*> labels(n);
    for (guint i = 0; i < n; i++) {
      ids[i] = 100 + i;
      names[i] = "class" + std::to_string(i);
      labels[i] = names[i].c_str();
    }
    gst_unetseg_mask_meta_set_regions(meta, n, ids.data(), labels.data());
    GstBuffer* copy = gst_buffer_copy(frame);
    GstUnetsegMaskMeta* copied = gst_buffer_get_unetseg_mask_meta(copy);
    ASSERT_NE(copied, nullptr);
    expect_same_content(meta, copied);
    if (n) EXPECT_NE(copied->region_ids, meta->region_ids) << "a copy owns its arrays";
    for (guint i = 0; i < n; i++)
      EXPECT_STREQ(gst_unetseg_mask_meta_get_label(copied, 100 + i), names[i].c_str());
    gst_buffer_unref(copy);
  }
  gst_buffer_unref(frame);
}

TEST(MaskMeta, MapGivesPixelsAndStride) {
  GstBuffer* frame = make_frame_with_meta(0, 0, 320, 240);
  GstUnetsegMaskMeta* meta = gst_buffer_get_unetseg_mask_meta(frame);

  GstVideoFrame mask;
  ASSERT_TRUE(gst_unetseg_mask_meta_map(meta, &mask));
  EXPECT_EQ(GST_VIDEO_FRAME_FORMAT(&mask), GST_VIDEO_FORMAT_GRAY8);
  EXPECT_EQ(GST_VIDEO_FRAME_WIDTH(&mask), kMaskWidth);
  EXPECT_EQ(GST_VIDEO_FRAME_HEIGHT(&mask), kMaskHeight);
  EXPECT_EQ(GST_VIDEO_FRAME_PLANE_STRIDE(&mask, 0), kMaskStride);
  EXPECT_EQ(mask.buffer, meta->mask);
  const guint8* data = static_cast<const guint8*>(GST_VIDEO_FRAME_PLANE_DATA(&mask, 0));
  for (gint j = 0; j < kMaskHeight; j++)
    for (gint i = 0; i < kMaskWidth; i++)
      ASSERT_EQ(data[j * kMaskStride + i], mask_pixel(i, j)) << "pixel " << i << "," << j;
  gst_video_frame_unmap(&mask);

  // Mapping reads a shared mask: it must not need the mask to be writable.
  gst_buffer_ref(meta->mask);
  ASSERT_TRUE(gst_unetseg_mask_meta_map(meta, &mask));
  gst_video_frame_unmap(&mask);
  gst_buffer_unref(meta->mask);

  gst_buffer_unref(frame);
}

TEST(MaskMeta, CopyKeepsMetaAndSharesMask) {
  GstBuffer* frame = make_frame_with_meta(40, 20, 160, 120);
  GstUnetsegMaskMeta* meta = gst_buffer_get_unetseg_mask_meta(frame);

  GstBuffer* copy = gst_buffer_copy(frame);
  ASSERT_EQ(count_mask_metas(copy), 1u);
  GstUnetsegMaskMeta* cmeta = gst_buffer_get_unetseg_mask_meta(copy);
  ASSERT_NE(cmeta, nullptr);
  EXPECT_NE(cmeta, meta);
  EXPECT_EQ(cmeta->x, 40);
  EXPECT_EQ(cmeta->y, 20);
  EXPECT_EQ(cmeta->width, 160);
  EXPECT_EQ(cmeta->height, 120);
  expect_same_content(cmeta, meta);
  EXPECT_STREQ(gst_unetseg_mask_meta_get_label(cmeta, 1), "person");
  EXPECT_STREQ(gst_unetseg_mask_meta_get_model(cmeta), "u2net");
  // Shared mask, own arrays: freeing one meta must leave the other intact.
  EXPECT_EQ(GST_MINI_OBJECT_REFCOUNT_VALUE(meta->mask), 2);
  EXPECT_NE(cmeta->region_ids, meta->region_ids);
  EXPECT_NE(cmeta->labels, meta->labels);

  gst_buffer_unref(frame);
  EXPECT_EQ(GST_MINI_OBJECT_REFCOUNT_VALUE(cmeta->mask), 1);
  EXPECT_EQ(cmeta->region_ids[2], 2u);
  EXPECT_STREQ(gst_unetseg_mask_meta_get_label(cmeta, 0), "background");

  // A deep copy copies the frame's pixels, not the (read-only) mask's.
  GstBuffer* deep = gst_buffer_copy_deep(copy);
  GstUnetsegMaskMeta* dmeta = gst_buffer_get_unetseg_mask_meta(deep);
  ASSERT_NE(dmeta, nullptr);
  EXPECT_EQ(dmeta->mask, cmeta->mask);
  gst_buffer_unref(deep);
  gst_buffer_unref(copy);
}

TEST(MaskMeta, PartialCopyDropsMeta) {
  GstBuffer* frame = make_frame_with_meta(40, 20, 160, 120);

  // Part of the bytes is no longer the frame the rectangle refers to.
  GstBuffer* part = gst_buffer_copy_region(frame, GST_BUFFER_COPY_ALL, 0, 1000);
  EXPECT_EQ(count_mask_metas(part), 0u);
  gst_buffer_unref(part);

  GstBuffer* whole =
      gst_buffer_copy_region(frame, GST_BUFFER_COPY_ALL, 0, gst_buffer_get_size(frame));
  EXPECT_EQ(count_mask_metas(whole), 1u);
  gst_buffer_unref(whole);

  gst_buffer_unref(frame);
}

TEST(MaskMeta, UnknownTransformDropsMeta) {
  // What a future element that rotates, crops or warps would ask: the meta must refuse, and
  // must not look at the transform's data, which it does not know.
  GstBuffer* frame = make_frame_with_meta(40, 20, 160, 120);
  GstUnetsegMaskMeta* meta = gst_buffer_get_unetseg_mask_meta(frame);
  GstBuffer* dest = make_frame();
  const GstMetaInfo* info = meta->meta.info;
  EXPECT_FALSE(info->transform_func(dest, &meta->meta, frame,
                                    g_quark_from_static_string("unetseg-test-rotate"), nullptr));
  EXPECT_EQ(count_mask_metas(dest), 0u);

  // The same call with a copy is accepted, as a sanity check of the call itself.
  GstMetaTransformCopy copy = {FALSE, 0, static_cast<gsize>(-1)};
  EXPECT_TRUE(info->transform_func(dest, &meta->meta, frame, g_quark_from_static_string("gst-copy"),
                                   &copy));
  EXPECT_EQ(count_mask_metas(dest), 1u);
  gst_buffer_unref(dest);
  gst_buffer_unref(frame);
}

struct Rect {
  gint x, y, width, height;
};

gchar* rgb_caps(gint width, gint height, const gchar* format = "RGB") {
  return g_strdup_printf("video/x-raw,format=%s,width=%d,height=%d,framerate=30/1", format, width,
                         height);
}

// Pushes @frame through the element of @launch, negotiated from @in_caps to @out_caps, and
// returns the result (NULL if the push failed), keeping the caller's reference to @frame.
GstBuffer* run_element(const gchar* launch, gchar* in_caps, gchar* out_caps, GstBuffer* frame) {
  GstHarness* h = gst_harness_new_parse(launch);
  gst_harness_set_caps_str(h, in_caps, out_caps);
  g_free(in_caps);
  g_free(out_caps);
  GstFlowReturn ret = gst_harness_push(h, gst_buffer_ref(frame));
  EXPECT_EQ(ret, GST_FLOW_OK) << launch;
  GstBuffer* out = ret == GST_FLOW_OK ? gst_harness_pull(h) : nullptr;
  gst_harness_teardown(h);
  return out;
}

// Scales a frame carrying a meta with @in through `videoscale` and returns the rectangle of the
// meta on the scaled frame, checking that everything else came through unchanged.
Rect scale_through_videoscale(gint in_w, gint in_h, gint out_w, gint out_h, Rect in) {
  GstBuffer* frame = make_frame_with_meta(in.x, in.y, in.width, in.height, in_w, in_h);
  GstUnetsegMaskMeta* meta = gst_buffer_get_unetseg_mask_meta(frame);
  GstBuffer* out =
      run_element("videoscale", rgb_caps(in_w, in_h), rgb_caps(out_w, out_h), frame);

  Rect r = {-1, -1, -1, -1};
  if (out) {
    GstVideoInfo out_info;
    gst_video_info_set_format(&out_info, GST_VIDEO_FORMAT_RGB, out_w, out_h);
    EXPECT_NE(out, frame);  // really scaled, not passed through
    EXPECT_EQ(gst_buffer_get_size(out), GST_VIDEO_INFO_SIZE(&out_info));
    EXPECT_EQ(count_mask_metas(out), 1u);
    GstUnetsegMaskMeta* ometa = gst_buffer_get_unetseg_mask_meta(out);
    EXPECT_NE(ometa, nullptr);
    if (ometa) {
      expect_same_content(ometa, meta);
      r = {ometa->x, ometa->y, ometa->width, ometa->height};
    }
    gst_buffer_unref(out);
  }
  gst_buffer_unref(frame);
  return r;
}

void expect_rect(const Rect& r, gint x, gint y, gint width, gint height) {
  EXPECT_EQ(r.x, x);
  EXPECT_EQ(r.y, y);
  EXPECT_EQ(r.width, width);
  EXPECT_EQ(r.height, height);
}

TEST(MaskMeta, VideoscaleScalesRectangle) {
  expect_rect(scale_through_videoscale(320, 240, 640, 480, {40, 20, 160, 120}), 80, 40, 320, 240);
  // 5/8: edges at 25, 12.5 -> 13, 125, 87.5 -> 88.
  expect_rect(scale_through_videoscale(320, 240, 200, 150, {40, 20, 160, 120}), 25, 13, 100, 75);
  // Edges are scaled, not the size: 26.625 -> 27, 9.75 -> 10, 133.125 -> 133, 68.25 -> 68,
  // where scaling the size would give 107x59 (106.5, 58.5).
  expect_rect(scale_through_videoscale(320, 240, 213, 117, {40, 20, 160, 120}), 27, 10, 106, 58);
  // The usual case, the whole frame, stays the whole frame whatever the ratio.
  expect_rect(scale_through_videoscale(320, 240, 213, 117, {0, 0, 320, 240}), 0, 0, 213, 117);
  // A rectangle sticking out of the frame (letterboxed model input).
  expect_rect(scale_through_videoscale(320, 240, 640, 480, {-10, -20, 340, 280}), -20, -40, 680,
              560);
}

// The number of mask metas on a 320x240 frame with one, after the element of @launch made it
// @out_caps.
guint mask_metas_after(const gchar* launch, gchar* out_caps) {
  GstBuffer* frame = make_frame_with_meta(40, 20, 160, 120);
  GstBuffer* out = run_element(launch, rgb_caps(320, 240), out_caps, frame);
  guint n = G_MAXUINT;
  if (out) {
    EXPECT_NE(out, frame) << launch << " passed the frame through";
    n = count_mask_metas(out);
    gst_buffer_unref(out);
  }
  gst_buffer_unref(frame);
  return n;
}

TEST(MaskMeta, ElementsThatMovePixelsDropMeta) {
  // The rectangle and the mask would cover pixels that moved. GstVideoFilter elements such as
  // videoflip only copy metas tagged nothing but "video"; ours is also tagged size and
  // orientation, so they drop it rather than keep a wrong one.
  EXPECT_EQ(mask_metas_after("videoflip video-direction=90r", rgb_caps(240, 320)), 0u);
  EXPECT_EQ(mask_metas_after("videoflip video-direction=horiz", rgb_caps(320, 240)), 0u);
  EXPECT_EQ(mask_metas_after("videocrop left=10", rgb_caps(310, 240)), 0u);
}

TEST(MaskMeta, ElementsThatKeepPixelsKeepMeta) {
  // Control for the test above, through the same harness: videoconvert changes the format
  // only, and keeps metas tagged video, size and orientation (transformed at scale 1).
  EXPECT_EQ(mask_metas_after("videoconvert", rgb_caps(320, 240, "BGRx")), 1u);

  GstBuffer* frame = make_frame_with_meta(40, 20, 160, 120);
  GstBuffer* out = run_element("videoconvert", rgb_caps(320, 240), rgb_caps(320, 240, "BGRx"), frame);
  ASSERT_NE(out, nullptr);
  GstUnetsegMaskMeta* ometa = gst_buffer_get_unetseg_mask_meta(out);
  ASSERT_NE(ometa, nullptr);
  expect_rect({ometa->x, ometa->y, ometa->width, ometa->height}, 40, 20, 160, 120);
  expect_same_content(ometa, gst_buffer_get_unetseg_mask_meta(frame));
  gst_buffer_unref(out);
  gst_buffer_unref(frame);
}

TEST(MaskMeta, InvalidArgumentsAreCriticals) {
  CriticalCatcher criticals;
  GstBuffer* frame = make_frame();
  GstBuffer* mask = make_mask();

  // Each failed add leaves the mask to the caller, so the one mask serves all of them.
  EXPECT_EQ(gst_buffer_add_unetseg_mask_meta(nullptr, mask, GST_UNETSEG_MASK_FOREGROUND, 0, 0, 1, 1),
            nullptr);
  EXPECT_EQ(criticals.take(), 1u);
  EXPECT_EQ(
      gst_buffer_add_unetseg_mask_meta(frame, nullptr, GST_UNETSEG_MASK_FOREGROUND, 0, 0, 1, 1),
      nullptr);
  EXPECT_EQ(criticals.take(), 1u);
  EXPECT_EQ(gst_buffer_add_unetseg_mask_meta(frame, mask, GST_UNETSEG_MASK_FOREGROUND, 0, 0, 0, 1),
            nullptr);
  EXPECT_EQ(criticals.take(), 1u);
  EXPECT_EQ(gst_buffer_add_unetseg_mask_meta(frame, mask, GST_UNETSEG_MASK_FOREGROUND, 0, 0, 1, -1),
            nullptr);
  EXPECT_EQ(criticals.take(), 1u);
  EXPECT_EQ(gst_buffer_add_unetseg_mask_meta(frame, mask, static_cast<GstUnetsegMaskType>(7), 0, 0,
                                             1, 1),
            nullptr);
  EXPECT_EQ(criticals.take(), 1u);
  EXPECT_EQ(gst_buffer_add_unetseg_mask_meta(frame, frame, GST_UNETSEG_MASK_FOREGROUND, 0, 0, 1, 1),
            nullptr);
  EXPECT_EQ(criticals.take(), 1u);

  // A mask without a GstVideoMeta, or not GRAY8.
  GstBuffer* bare = gst_buffer_new_allocate(nullptr, 64, nullptr);
  EXPECT_EQ(gst_buffer_add_unetseg_mask_meta(frame, bare, GST_UNETSEG_MASK_FOREGROUND, 0, 0, 1, 1),
            nullptr);
  EXPECT_EQ(criticals.take(), 1u);
  gst_buffer_add_video_meta(bare, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_FORMAT_RGBA, 4, 4);
  EXPECT_EQ(gst_buffer_add_unetseg_mask_meta(frame, bare, GST_UNETSEG_MASK_FOREGROUND, 0, 0, 1, 1),
            nullptr);
  EXPECT_EQ(criticals.take(), 1u);
  gst_buffer_unref(bare);

  // A frame someone else also holds.
  gst_buffer_ref(frame);
  EXPECT_EQ(gst_buffer_add_unetseg_mask_meta(frame, mask, GST_UNETSEG_MASK_FOREGROUND, 0, 0, 1, 1),
            nullptr);
  EXPECT_EQ(criticals.take(), 1u);
  gst_buffer_unref(frame);
  EXPECT_EQ(count_mask_metas(frame), 0u);

  GstUnetsegMaskMeta* meta =
      gst_buffer_add_unetseg_mask_meta(frame, mask, GST_UNETSEG_MASK_FOREGROUND, 0, 0, 320, 240);
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(criticals.take(), 0u);

  EXPECT_EQ(gst_buffer_get_unetseg_mask_meta(nullptr), nullptr);
  EXPECT_EQ(criticals.take(), 1u);

  const guint ids[] = {0, 1};
  gst_unetseg_mask_meta_set_regions(meta, 2, ids, nullptr);
  gst_unetseg_mask_meta_set_regions(nullptr, 2, ids, nullptr);
  EXPECT_EQ(criticals.take(), 1u);
  gst_unetseg_mask_meta_set_regions(meta, 3, nullptr, nullptr);
  EXPECT_EQ(criticals.take(), 1u);
  EXPECT_EQ(meta->n_regions, 2u);  // untouched

  gst_unetseg_mask_meta_set_model(nullptr, "m");
  EXPECT_EQ(criticals.take(), 1u);
  EXPECT_EQ(gst_unetseg_mask_meta_get_model(nullptr), nullptr);
  EXPECT_EQ(criticals.take(), 1u);
  EXPECT_EQ(gst_unetseg_mask_meta_get_label(nullptr, 0), nullptr);
  EXPECT_EQ(criticals.take(), 1u);

  GstVideoFrame vframe;
  EXPECT_FALSE(gst_unetseg_mask_meta_map(nullptr, &vframe));
  EXPECT_EQ(criticals.take(), 1u);
  EXPECT_FALSE(gst_unetseg_mask_meta_map(meta, nullptr));
  EXPECT_EQ(criticals.take(), 1u);

  gst_buffer_unref(frame);
}

}  // namespace
