// A real pipeline on a real clip with a real model: people-walking.mp4 decoded by GStreamer,
// through unetseg with the SINet portrait model (fetched from the mirror like any user would),
// frames in == frames out and every buffer carries the meta.
#include <cstdio>

#include "element_util.hpp"

using namespace unetseg_test;

namespace {

// Runs scripts/fetch-model.sh NAME and returns the cached model's path.
std::string fetch_model(const std::string& name) {
  const std::string cmd = "'" + source_path("scripts/fetch-model.sh") + "' " + name;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return "";
  char line[4096] = {0};
  std::string path;
  if (fgets(line, sizeof line, pipe)) path = line;
  const int status = pclose(pipe);
  while (!path.empty() && (path.back() == '\n' || path.back() == '\r')) path.pop_back();
  return status == 0 ? path : "";
}

struct Counts {
  int in = 0, out = 0, with_meta = 0, with_foreground = 0;
  GstClockTime last_pts = GST_CLOCK_TIME_NONE;
  bool pts_match = true;
};

GstPadProbeReturn count_in(GstPad*, GstPadProbeInfo*, gpointer data) {
  ++static_cast<Counts*>(data)->in;
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn count_out(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* c = static_cast<Counts*>(data);
  GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
  ++c->out;
  if (GstUnetsegMaskMeta* meta = gst_buffer_get_unetseg_mask_meta(buf)) {
    ++c->with_meta;
    c->pts_match &= meta->source_pts == GST_BUFFER_PTS(buf);
  }
  if (gst_buffer_get_video_region_of_interest_meta_id(buf, 0)) ++c->with_foreground;
  return GST_PAD_PROBE_OK;
}

}  // namespace

TEST(RealPipeline, PeopleWalkingThroughSinet) {
  const std::string clip = shared_path("media/people-walking.mp4");
  ASSERT_TRUE(file_exists(clip)) << clip << " is missing: the real test clips live in ../shared/media";
  const std::string model = fetch_model("sinet");
  ASSERT_FALSE(model.empty()) << "scripts/fetch-model.sh sinet failed";

  Pipeline p("filesrc location=" + clip + " ! qtdemux ! h264parse ! avdec_h264 ! videoconvert ! "
             "unetseg name=seg mode=blur model=" + model + " ! fakesink name=sink sync=false");
  Counts counts;
  GstPad* in = gst_element_get_static_pad(p.by_name("seg"), "sink");
  GstPad* out = gst_element_get_static_pad(p.by_name("sink"), "sink");
  gst_pad_add_probe(in, GST_PAD_PROBE_TYPE_BUFFER, count_in, &counts, nullptr);
  gst_pad_add_probe(out, GST_PAD_PROBE_TYPE_BUFFER, count_out, &counts, nullptr);
  gst_object_unref(in);
  gst_object_unref(out);

  p.run(600 * GST_SECOND);
  EXPECT_EQ(p.error(), "");
  EXPECT_TRUE(p.got_eos());
  EXPECT_EQ(counts.in, 1394) << "the clip has 1394 frames";
  EXPECT_EQ(counts.out, counts.in);
  EXPECT_EQ(counts.with_meta, counts.out);
  EXPECT_TRUE(counts.pts_match) << "file mode: each mask comes from its own frame";
  // People cross the room one at a time: some frames have someone, not all of them.
  EXPECT_GT(counts.with_foreground, 0);
}
