// Several unetseg elements in one process: the same model, backend and model-instance-id share
// one network and one inference thread (batch_rg: frames of different streams in one forward,
// told by each frame's message field "batch"); share-model=false or another id opt out; an
// ended stream does not hold the others back; a bad batch setting is refused by name.
#include <chrono>
#include <map>

#include "element_util.hpp"

using namespace unetseg_test;

namespace {

// Two red 64x64 streams of `frames` (a, b) through unetseg with `props` (and `props_b` on b),
// each frame posting its message; batch-timeout makes each forward wait for the other stream.
std::string two_streams(const std::string& props, const std::string& props_b = "",
                        int frames_a = 6, int frames_b = 6) {
  auto branch = [&](const char* name, int frames, const std::string& extra) {
    return "videotestsrc num-buffers=" + std::to_string(frames) +
           " pattern=red ! video/x-raw,format=RGB,width=64,height=64,framerate=30/1 ! "
           "unetseg name=" + name + " model=" + test_model("batch_rg") +
           " backend=cpu live=off post-messages=true " + props + " " + extra +
           " ! fakesink sync=false ";
  };
  return branch("a", frames_a, "") + branch("b", frames_b, props_b);
}

struct Seen {
  std::map<std::string, std::map<int, int>> batches;  // element -> batch size -> frames
  std::map<std::string, int> foreground;              // element -> frames all foreground
};

Seen messages_of(const Pipeline& p) {
  Seen seen;
  for (GstMessage* m : p.messages()) {
    if (GST_MESSAGE_TYPE(m) != GST_MESSAGE_ELEMENT) continue;
    const GstStructure* s = gst_message_get_structure(m);
    if (!gst_structure_has_name(s, "unetseg")) continue;
    const std::string from = GST_OBJECT_NAME(GST_MESSAGE_SRC(m));
    int batch = 0;
    double fraction = 0;
    EXPECT_TRUE(gst_structure_get_int(s, "batch", &batch));
    EXPECT_TRUE(gst_structure_get_double(s, "foreground-fraction", &fraction));
    seen.batches[from][batch]++;
    seen.foreground[from] += fraction == 1.0;
  }
  return seen;
}

// Runs to EOS, collecting the messages posted up to it (they are posted before EOS leaves).
Seen run(Pipeline& p) {
  p.run(60 * GST_SECOND);
  EXPECT_EQ(p.error(), "");
  EXPECT_TRUE(p.got_eos());
  return messages_of(p);
}

}  // namespace

TEST(Sharing, StreamsOfOneModelShareForwards) {
  Pipeline p(two_streams("batch-timeout=5000"));
  const Seen seen = run(p);
  // Each offline frame waits for the other stream's: every forward takes both.
  EXPECT_EQ(seen.batches.at("a").at(2), 6) << "a: " << seen.batches.at("a").size() << " sizes";
  EXPECT_EQ(seen.batches.at("b").at(2), 6);
  EXPECT_EQ(seen.foreground.at("a"), 6) << "red is foreground: each frame's own mask";
  EXPECT_EQ(seen.foreground.at("b"), 6);
}

TEST(Sharing, ShareModelFalseAndAnotherIdOptOut) {
  for (const std::string& opt_out : {std::string("share-model=false"),
                                     std::string("model-instance-id=elsewhere")}) {
    Pipeline p(two_streams("batch-timeout=200", opt_out));
    const Seen seen = run(p);
    EXPECT_EQ(seen.batches.at("a").size(), 1u) << opt_out;
    EXPECT_EQ(seen.batches.at("a").count(1), 1u) << opt_out << ": a alone in its forwards";
    EXPECT_EQ(seen.batches.at("b").count(1), 1u) << opt_out;
    EXPECT_EQ(seen.foreground.at("a") + seen.foreground.at("b"), 12) << opt_out;
  }
}

TEST(Sharing, BatchSizeOneRunsFramesOneByOne) {
  Pipeline p(two_streams("batch-size=1 batch-timeout=200"));
  const Seen seen = run(p);
  EXPECT_EQ(seen.batches.at("a").count(2), 0u);
  EXPECT_EQ(seen.batches.at("b").count(2), 0u);
}

// a ends after 2 frames; without the pause at its EOS, each of b's last 8 frames would wait
// the whole batch-timeout (2 s) for a frame of a that never comes: 16 s.
TEST(Sharing, AnEndedStreamDoesNotHoldTheOthersBack) {
  Pipeline p(two_streams("batch-timeout=2000", "", 2, 10));
  const auto start = std::chrono::steady_clock::now();
  const Seen seen = run(p);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 8.0);
  EXPECT_EQ(seen.foreground.at("b"), 10);
}

TEST(Sharing, ABadBatchSettingIsRefusedByName) {
  ensure_gst();
  GstElement* e = gst_element_factory_make("unetseg", nullptr);
  ASSERT_NE(e, nullptr);
  GParamSpec* spec = g_object_class_find_property(G_OBJECT_GET_CLASS(e), "batch-size");
  ASSERT_NE(spec, nullptr);
  EXPECT_EQ(G_PARAM_SPEC_INT(spec)->minimum, 1);
  EXPECT_EQ(G_PARAM_SPEC_INT(spec)->default_value, 4);
  gboolean share = FALSE;
  g_object_get(e, "share-model", &share, nullptr);
  EXPECT_TRUE(share) << "sharing is the default";
  gst_object_unref(e);
}
