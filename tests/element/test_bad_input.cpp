// Bad input: every way a user can hand the element a bad model, sidecar, file or frame size.
// Each must fail the state change with an error from unetseg that names the file and the
// reason; nothing crashes, nothing hangs.
#include <sys/stat.h>
#include <unistd.h>

#include <opencv2/core.hpp>

#include "element_util.hpp"
#include "unetseg/segmenter.hpp"

using namespace unetseg_test;

namespace {

struct Outcome {
  GstStateChangeReturn state;
  std::string error;
};

// Starts `videotestsrc ! unetseg <props> ! fakesink` and reports what happened.
Outcome start_with(const std::string& props) {
  Pipeline p("videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48,format=RGB ! "
             "unetseg name=seg " + props + " ! fakesink");
  const GstStateChangeReturn state = p.run(30 * GST_SECOND);
  return {state, p.error()};
}

void expect_refused(const std::string& props, const std::vector<std::string>& words) {
  const Outcome o = start_with(props);
  EXPECT_EQ(o.state, GST_STATE_CHANGE_FAILURE) << props;
  EXPECT_EQ(o.error.rfind("seg: ", 0), 0u) << "the error must come from unetseg: " << o.error;
  for (const auto& w : words) EXPECT_NE(o.error.find(w), std::string::npos) << "missing '" << w << "' in: " << o.error;
}

}  // namespace

TEST(BadModel, NoModelSet) { expect_refused("", {"No model set"}); }

TEST(BadModel, MissingFile) {
  TempDir dir;
  expect_refused("model=" + dir.file("absent.onnx"), {dir.file("absent.onnx"), "No such file"});
}

TEST(BadModel, FilesThatAreNotModels) {
  TempDir dir;
  const auto good = read_file(test_model("unet_rg"));
  const auto sidecar = read_file(unetseg_test::env_or_die("UNETSEG_TEST_MODELS") + "/unet_rg.json");
  std::string noise(8192, '\0');
  cv::RNG rng(42);
  for (auto& c : noise) c = static_cast<char>(rng.uniform(0, 256));
  const std::pair<std::string, std::string> files[] = {
      {"empty", ""},
      {"truncated", std::string(good.begin(), good.begin() + good.size() / 3)},
      {"random", noise},
  };
  const char* reasons[] = {"is empty", "could not be loaded by OpenCV", "could not be loaded by OpenCV"};
  int i = 0;
  for (const auto& [stem, bytes] : files) {
    write_file(dir.file(stem + ".onnx"), bytes);
    write_file(dir.file(stem + ".json"), std::string(sidecar.begin(), sidecar.end()));
    expect_refused("model=" + dir.file(stem + ".onnx"), {dir.file(stem + ".onnx"), reasons[i++]});
  }
}

TEST(BadModel, DirectoryOrDeviceAsTheModel) {
  TempDir dir;
  const auto sidecar = read_file(unetseg_test::env_or_die("UNETSEG_TEST_MODELS") + "/unet_rg.json");
  // A directory named like a model, with a valid sidecar beside it.
  ASSERT_EQ(mkdir(dir.file("folder.onnx").c_str(), 0755), 0);
  write_file(dir.file("folder.json"), std::string(sidecar.begin(), sidecar.end()));
  expect_refused("model=" + dir.file("folder.onnx"), {dir.file("folder.onnx"), "is a directory"});

  // /dev/zero: refused without being read (reading it would never end).
  expect_refused("model=/dev/zero", {"/dev/zero", "not a regular file"});
}

TEST(BadModel, DeviceWithASidecarIsNotRead) {
  // A character device with a sidecar must still be refused without reading it.
  TempDir dir;
  const auto sidecar = read_file(unetseg_test::env_or_die("UNETSEG_TEST_MODELS") + "/unet_rg.json");
  ASSERT_EQ(symlink("/dev/zero", dir.file("zero.onnx").c_str()), 0);
  write_file(dir.file("zero.json"), std::string(sidecar.begin(), sidecar.end()));
  expect_refused("model=" + dir.file("zero.onnx"), {dir.file("zero.onnx"), "not a regular file"});
}

TEST(BadSidecar, MissingOrWrong) {
  TempDir dir;
  const std::string model = copy_model("unet_rg", dir, "m", /*with_sidecar=*/false);
  expect_refused("model=" + model, {dir.file("m.json"), "not found"});

  write_file(dir.file("m.json"), R"({"input": {"width": 64, "height": 64}, "output": {"kind": "sigmoid"}})");
  expect_refused("model=" + model, {dir.file("m.json"), "'output.kind'"});

  write_file(dir.file("m.json"), R"({"input": {"width": 64}, "output": {"kind": "probability"}})");
  expect_refused("model=" + model, {dir.file("m.json"), "'input.height'", "missing"});

  write_file(dir.file("m.json"), "{ not json");
  expect_refused("model=" + model, {dir.file("m.json"), "not valid JSON"});
}

TEST(BadSidecar, OutputShapeThatDoesNotFit) {
  TempDir dir;
  const std::string model = copy_model("classes3", dir, "c", false);
  write_file(dir.file("c.json"), R"({"input": {"width": 64, "height": 64}, "output": {"kind": "two_class_logits"}})");
  expect_refused("model=" + model, {model, "1x3x64x64", "two_class_logits"});
}

TEST(BadBackend, CudaWhereCudaCannotRunIsAClearError) {
  const std::string reason = unetseg::cuda_unavailable_reason();
  if (reason.empty()) {
    // A GPU is here: the element starts, or says why CUDA failed. The library tests cover it.
    const Outcome o = start_with("backend=cuda model=" + test_model("unet_rg"));
    if (o.state == GST_STATE_CHANGE_FAILURE) EXPECT_NE(o.error.find("CUDA"), std::string::npos) << o.error;
    return;
  }
  // This OpenCV has no CUDA, or no driver or device: the reason is in the error, whichever.
  for (const char* b : {"cuda", "cuda-fp16"})
    expect_refused(std::string("backend=") + b + " model=" + test_model("unet_rg"),
                   {std::string("backend ") + b, test_model("unet_rg"), reason});
}

TEST(BadBackground, MissingOrUndecodableImage) {
  TempDir dir;
  expect_refused("mode=replace model=" + test_model("unet_rg") + " background-location=" + dir.file("none.png"),
                 {dir.file("none.png"), "does not exist"});
  write_file(dir.file("junk.png"), "definitely not a PNG");
  expect_refused("mode=replace model=" + test_model("unet_rg") + " background-location=" + dir.file("junk.png"),
                 {dir.file("junk.png"), "could not be decoded"});
}

// Frame sizes far from the model's: tiny, odd, one pixel, strides with padding.
class OddSizes : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(OddSizes, EveryModeWorksAndTheMetaCoversTheFrame) {
  const auto [w, h] = GetParam();
  for (const char* mode : {"none", "overlay", "blur", "replace", "mask", "alpha"}) {
    const char* format = std::string(mode) == "alpha" ? "BGRA" : "RGB";
    Pipeline p("videotestsrc num-buffers=2 pattern=ball ! video/x-raw,format=" + std::string(format) +
               ",width=" + std::to_string(w) + ",height=" + std::to_string(h) +
               " ! unetseg mode=" + mode + " model=" + test_model("u2net_rsu") +
               " ! fakesink name=sink sync=false");
    // Count buffers with a meta covering the whole frame.
    int with_meta = 0;
    GstPad* pad = gst_element_get_static_pad(p.by_name("sink"), "sink");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, [](GstPad*, GstPadProbeInfo* info, gpointer data) {
      GstUnetsegMaskMeta* meta = gst_buffer_get_unetseg_mask_meta(GST_PAD_PROBE_INFO_BUFFER(info));
      if (meta) ++*static_cast<int*>(data);
      return GST_PAD_PROBE_OK;
    }, &with_meta, nullptr);
    gst_object_unref(pad);
    p.run(30 * GST_SECOND);
    EXPECT_EQ(p.error(), "") << mode << " " << w << "x" << h;
    EXPECT_EQ(with_meta, 2) << mode << " " << w << "x" << h;
  }
}

INSTANTIATE_TEST_SUITE_P(Frames, OddSizes,
                         ::testing::Values(std::make_pair(1, 1), std::make_pair(2, 1), std::make_pair(33, 17),
                                           std::make_pair(17, 301), std::make_pair(1921, 3)));

// model=NAME means a model in the cache; a catalog one not fetched says how to fetch it, an
// unknown name lists the catalog.
TEST(CatalogName, CachedModelRunsMissingOneSaysHowToFetchIt) {
  TempDir cache;
  const char* old = std::getenv("XDG_CACHE_HOME");
  const std::string saved = old ? old : "";
  setenv("XDG_CACHE_HOME", cache.path().c_str(), 1);

  expect_refused("model=portrait-unet", {"'portrait-unet' is in the catalog but not fetched yet",
                                         "`unetseg-models fetch portrait-unet`",
                                         cache.file("unetseg/models/portrait-unet.onnx")});
  // A typo lists the catalog's names (the source tree's: the plugin runs from the build tree).
  expect_refused("model=sinnet", {"'sinnet' is not in the catalog (" +
                                      source_path("models/catalog.toml") + "): known models are ",
                                  "portrait-unet", "sinet"});

  ASSERT_EQ(std::system(("mkdir -p '" + cache.file("unetseg/models") + "'").c_str()), 0);
  TempDir models;
  copy_model("unet_rg", models, "unet_rg");
  ASSERT_EQ(std::system(("cp '" + models.file("unet_rg.onnx") + "' '" + models.file("unet_rg.json") +
                         "' '" + cache.file("unetseg/models") + "/'").c_str()), 0);
  const Outcome o = start_with("model=unet_rg");
  EXPECT_EQ(o.error, "");
  EXPECT_EQ(o.state, GST_STATE_CHANGE_ASYNC);

  if (old) setenv("XDG_CACHE_HOME", saved.c_str(), 1); else unsetenv("XDG_CACHE_HOME");
}

// A model that gives NaN (nonfinite_rg on green) shows background there, and says so once: a
// WARNING on the bus, not an error, and not "everything is a person".
TEST(BadOutput, NanFromTheModelIsBackgroundAndWarnedAboutOnce) {
  Pipeline p("videotestsrc num-buffers=5 pattern=solid-color foreground-color=0xff00ff00 ! "
             "video/x-raw,width=64,height=48,format=RGB ! unetseg name=seg mode=mask model=" +
             test_model("nonfinite_rg") + " ! fakesink name=sink");
  int white = 0, frames = 0;
  GstPad* pad = gst_element_get_static_pad(p.by_name("sink"), "sink");
  struct Counts {
    int* white;
    int* frames;
  } counts{&white, &frames};
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, [](GstPad*, GstPadProbeInfo* info, gpointer d) {
    auto* c = static_cast<Counts*>(d);
    GstMapInfo map;
    GstBuffer* buf = GST_PAD_PROBE_INFO_BUFFER(info);
    if (gst_buffer_map(buf, &map, GST_MAP_READ)) {
      for (gsize i = 0; i < map.size; i += 3) *c->white += map.data[i] != 0;
      gst_buffer_unmap(buf, &map);
    }
    ++*c->frames;
    return GST_PAD_PROBE_OK;
  }, &counts, nullptr);
  gst_object_unref(pad);
  p.run();
  EXPECT_EQ(p.error(), "");
  EXPECT_EQ(frames, 5);
  EXPECT_EQ(white, 0) << "green is NaN to this model: background, black in mode=mask";
  int warnings = 0;
  for (GstMessage* m : p.messages()) {
    if (GST_MESSAGE_TYPE(m) != GST_MESSAGE_WARNING) continue;
    GError* err = nullptr;
    gst_message_parse_warning(m, &err, nullptr);
    if (std::string(err->message).find("NaN or infinite values for 4096 of its 4096") !=
        std::string::npos)
      ++warnings;
    g_clear_error(&err);
  }
  EXPECT_EQ(warnings, 1) << "said once, not per frame";
}
