// Helpers for the element tests: frames with known colours, pixel reads, pipelines with a bus.
#pragma once

#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "gstunetsegmeta.h"
#include "test_paths.hpp"
#include "unetseg/frame.hpp"

namespace unetseg_test {

inline void ensure_gst() {
  static const bool ready = [] {
    gst_init(nullptr, nullptr);
    return true;
  }();
  (void)ready;
}

struct Rgba {
  int r, g, b, a;
  bool operator==(const Rgba& o) const { return r == o.r && g == o.g && b == o.b && a == o.a; }
};
inline std::ostream& operator<<(std::ostream& os, const Rgba& c) {
  return os << "(" << c.r << "," << c.g << "," << c.b << "," << c.a << ")";
}

inline unetseg::ChannelOffsets offsets_of(const GstVideoInfo& info) {
  unetseg::PixelLayout layout;
  EXPECT_TRUE(unetseg::layout_from_name(GST_VIDEO_INFO_NAME(&info), &layout));
  return unetseg::channel_offsets(layout);
}

inline GstVideoInfo video_info(const char* format, int width, int height) {
  GstVideoInfo info;
  gst_video_info_set_format(&info, gst_video_format_from_string(format), width, height);
  GST_VIDEO_INFO_FPS_N(&info) = 30;
  GST_VIDEO_INFO_FPS_D(&info) = 1;
  return info;
}

inline std::string caps_string(const GstVideoInfo& info) {
  GstCaps* caps = gst_video_info_to_caps(&info);
  gchar* s = gst_caps_to_string(caps);
  std::string out(s);
  g_free(s);
  gst_caps_unref(caps);
  return out;
}

// A frame whose pixel (x, y) is colour(x, y); alpha (where the format has it) and padding
// bytes get `alpha`.
inline GstBuffer* make_frame(const GstVideoInfo& info, const std::function<Rgba(int, int)>& colour,
                             GstClockTime pts = 0) {
  GstBuffer* buf = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&info), nullptr);
  GstVideoFrame frame;
  EXPECT_TRUE(gst_video_frame_map(&frame, &info, buf, GST_MAP_WRITE));
  const auto off = offsets_of(info);
  const int stride = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0);
  auto* data = static_cast<uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0));
  for (int y = 0; y < GST_VIDEO_INFO_HEIGHT(&info); ++y) {
    for (int x = 0; x < GST_VIDEO_INFO_WIDTH(&info); ++x) {
      const Rgba c = colour(x, y);
      uint8_t* p = data + y * stride + x * off.bytes_per_pixel;
      for (int i = 0; i < off.bytes_per_pixel; ++i) p[i] = static_cast<uint8_t>(c.a);
      p[off.r] = c.r;
      p[off.g] = c.g;
      p[off.b] = c.b;
    }
  }
  gst_video_frame_unmap(&frame);
  GST_BUFFER_PTS(buf) = pts;
  GST_BUFFER_DURATION(buf) = GST_SECOND / 30;
  return buf;
}

// Reads every pixel of a frame buffer; alpha is -1 for formats without one.
class FrameReader {
 public:
  FrameReader(const GstVideoInfo& info, GstBuffer* buf) : info_(info), off_(offsets_of(info)) {
    mapped_ = gst_video_frame_map(&frame_, &info_, buf, GST_MAP_READ);
    EXPECT_TRUE(mapped_);
  }
  ~FrameReader() {
    if (mapped_) gst_video_frame_unmap(&frame_);
  }
  Rgba at(int x, int y) const {
    const auto* p = static_cast<const uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame_, 0)) +
                    y * GST_VIDEO_FRAME_PLANE_STRIDE(&frame_, 0) + x * off_.bytes_per_pixel;
    return {p[off_.r], p[off_.g], p[off_.b], off_.alpha >= 0 ? p[off_.alpha] : -1};
  }
  int width() const { return GST_VIDEO_INFO_WIDTH(&info_); }
  int height() const { return GST_VIDEO_INFO_HEIGHT(&info_); }

 private:
  GstVideoInfo info_;
  unetseg::ChannelOffsets off_;
  GstVideoFrame frame_;
  bool mapped_ = false;
};

// A pipeline from a launch line, run to EOS or ERROR; keeps every message for inspection.
class Pipeline {
 public:
  explicit Pipeline(const std::string& launch) {
    ensure_gst();
    GError* error = nullptr;
    pipeline_ = gst_parse_launch(launch.c_str(), &error);
    EXPECT_EQ(error, nullptr) << launch << ": " << (error ? error->message : "");
    g_clear_error(&error);
  }
  ~Pipeline() {
    if (pipeline_) {
      gst_element_set_state(pipeline_, GST_STATE_NULL);
      gst_object_unref(pipeline_);
    }
    for (GstMessage* m : messages_) gst_message_unref(m);
  }
  GstElement* get() const { return pipeline_; }
  GstElement* by_name(const char* name) const {
    GstElement* e = gst_bin_get_by_name(GST_BIN(pipeline_), name);
    if (e) gst_object_unref(e);  // the bin keeps it alive
    return e;
  }

  // Sets PLAYING and waits for EOS or an error. Returns the state change result.
  GstStateChangeReturn run(GstClockTime timeout = 120 * GST_SECOND) {
    const GstStateChangeReturn ret = gst_element_set_state(pipeline_, GST_STATE_PLAYING);
    GstBus* bus = gst_element_get_bus(pipeline_);
    while (true) {
      GstMessage* msg = gst_bus_timed_pop(bus, timeout);
      if (!msg) {
        ADD_FAILURE() << "pipeline timed out";
        break;
      }
      messages_.push_back(msg);
      if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS || GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR)
        break;
    }
    gst_object_unref(bus);
    return ret;
  }

  // The first error's text and debug string, "" when there was none.
  std::string error() const {
    for (GstMessage* m : messages_) {
      if (GST_MESSAGE_TYPE(m) != GST_MESSAGE_ERROR) continue;
      GError* err = nullptr;
      gchar* debug = nullptr;
      gst_message_parse_error(m, &err, &debug);
      std::string s = std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(m))) + ": " + err->message +
                      " | " + (debug ? debug : "");
      g_clear_error(&err);
      g_free(debug);
      return s;
    }
    return "";
  }
  bool got_eos() const {
    for (GstMessage* m : messages_)
      if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS) return true;
    return false;
  }
  const std::vector<GstMessage*>& messages() const { return messages_; }

 private:
  GstElement* pipeline_ = nullptr;
  std::vector<GstMessage*> messages_;
};

// Pushes EOS into the harness and tells whether it came out the other side (at once: the events
// already pushed out are read without waiting).
inline bool eos_goes_through(GstHarness* h) {
  EXPECT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  bool saw_eos = false;
  while (GstEvent* ev = gst_harness_try_pull_event(h)) {
    saw_eos |= GST_EVENT_TYPE(ev) == GST_EVENT_EOS;
    gst_event_unref(ev);
  }
  return saw_eos;
}

using Props = std::vector<std::pair<std::string, std::string>>;

// unetseg in a harness, with the given properties, fed frames of `info`.
class UnetsegHarness {
 public:
  UnetsegHarness(const Props& props, const GstVideoInfo& info, const std::string& model = "unet_rg",
                 bool upstream_live = false)
      : info_(info) {
    ensure_gst();
    element_ = gst_element_factory_make("unetseg", nullptr);
    EXPECT_NE(element_, nullptr) << "unetseg not found: is GST_PLUGIN_PATH set?";
    g_object_set(element_, "model", test_model(model).c_str(), nullptr);
    for (const auto& [name, value] : props) gst_util_set_object_arg(G_OBJECT(element_), name.c_str(), value.c_str());
    bus_ = gst_bus_new();
    gst_element_set_bus(element_, bus_);
    h_ = gst_harness_new_with_element(element_, "sink", "src");
    // GstHarness answers LATENCY queries as a live source unless told not to: most tests want
    // the offline pairing (each frame its own mask), so upstream is live only when asked.
    gst_harness_set_live(h_, upstream_live);
    gst_harness_set_src_caps_str(h_, caps_string(info).c_str());
  }
  ~UnetsegHarness() {
    gst_harness_teardown(h_);
    gst_object_unref(element_);
    gst_object_unref(bus_);
  }
  GstHarness* get() { return h_; }
  GstElement* element() { return element_; }
  GstBus* bus() { return bus_; }
  const GstVideoInfo& info() const { return info_; }

  // Pushes a frame and returns what came out (owned by the caller).
  GstBuffer* process(GstBuffer* in) {
    EXPECT_EQ(gst_harness_push(h_, in), GST_FLOW_OK);
    GstBuffer* out = gst_harness_pull(h_);
    EXPECT_NE(out, nullptr);
    return out;
  }
  GstBuffer* process(const std::function<Rgba(int, int)>& colour, GstClockTime pts = 0) {
    return process(make_frame(info_, colour, pts));
  }

 private:
  GstVideoInfo info_;
  GstElement* element_ = nullptr;
  GstBus* bus_ = nullptr;
  GstHarness* h_ = nullptr;
};

}  // namespace unetseg_test
