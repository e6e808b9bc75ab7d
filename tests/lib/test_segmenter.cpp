#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <cmath>
#include <cstring>
#include <functional>

#include <opencv2/core/cuda.hpp>

#include "test_paths.hpp"
#include "unetseg/error.hpp"
#include "unetseg/segmenter.hpp"

using namespace unetseg;
using unetseg_test::TempDir;
using unetseg_test::test_model;

namespace {

// An RGB frame: columns [0, split) one colour, [split, w) another.
struct TwoColourFrame {
  std::vector<uint8_t> data;
  FrameView view;
  TwoColourFrame(int w, int h, int split, cv::Vec3b left, cv::Vec3b right) : data(w * h * 3) {
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        std::memcpy(&data[(y * w + x) * 3], (x < split ? left : right).val, 3);
    view = FrameView{data.data(), w, h, static_cast<size_t>(w) * 3, PixelLayout::RGB};
  }
};

const cv::Vec3b kRed(255, 0, 0), kGreen(0, 255, 0), kBlack(0, 0, 0), kBlue(0, 0, 255);
const double kSaturated = 1.0 / (1.0 + std::exp(-20.0));  // sigmoid(K * 1), K = 20

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

// The three binary test models compute "foreground where red exceeds green" in three output
// conventions (probability, logit, two-class logits with a BGR input); each must give the same
// answer through the library.
class BinaryOracle : public ::testing::TestWithParam<const char*> {};

TEST_P(BinaryOracle, RedIsForegroundGreenIsNot) {
  Segmenter seg(test_model(GetParam()), Backend::Cpu);
  EXPECT_EQ(seg.output_size(), cv::Size(64, 64));
  EXPECT_EQ(seg.active_backend(), Backend::Cpu);
  // 320x240 -> 64x64: the left half maps to model columns 0..31 exactly.
  TwoColourFrame frame(320, 240, 160, kRed, kGreen);
  const Prediction& p = seg.run(frame.view);
  ASSERT_EQ(p.foreground.type(), CV_32FC1);
  ASSERT_EQ(p.foreground.size(), cv::Size(64, 64));
  EXPECT_TRUE(p.class_map.empty());
  for (int y = 0; y < 64; y += 7) {
    for (int x = 0; x < 64; ++x) {
      const float v = p.foreground.at<float>(y, x);
      if (x < 32)
        EXPECT_NEAR(v, kSaturated, 1e-5) << "x=" << x << " y=" << y;
      else
        EXPECT_NEAR(v, 1 - kSaturated, 1e-5) << "x=" << x << " y=" << y;
    }
  }
  EXPECT_GT(seg.last_times().forward_ms, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Models, BinaryOracle,
                         ::testing::Values("unet_rg", "logit_rg", "twoclass_rg"));

TEST(Segmenter, MultiClassGivesClassMapAndProbabilities) {
  Segmenter seg(test_model("classes3"), Backend::Cpu);
  EXPECT_EQ(seg.output_channels(), 3);
  // Thirds: red | green | black -> classes 1 | 2 | 0 (background).
  std::vector<uint8_t> data(96 * 32 * 3, 0);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 64; ++x) data[(y * 96 + x) * 3 + (x < 32 ? 0 : 1)] = 255;
  FrameView view{data.data(), 96, 32, 96 * 3, PixelLayout::RGB};
  const Prediction& p = seg.run(view);
  ASSERT_EQ(p.class_map.type(), CV_8UC1);
  ASSERT_EQ(p.class_probabilities.size(), 3u);
  const int expected[3] = {1, 2, 0};
  for (int third = 0; third < 3; ++third) {
    const int x = third * 21 + 10;  // well inside each third of the 64 model columns
    EXPECT_EQ(p.class_map.at<uint8_t>(30, x), expected[third]) << "third " << third;
    float sum = 0;
    for (const cv::Mat& prob : p.class_probabilities) sum += prob.at<float>(30, x);
    EXPECT_NEAR(sum, 1.0f, 1e-5);
    EXPECT_NEAR(p.foreground.at<float>(30, x), 1 - p.class_probabilities[0].at<float>(30, x), 1e-6);
  }
  // Black: logits (5, 0, 0) -> P(background) = e^5 / (e^5 + 2).
  EXPECT_NEAR(p.class_probabilities[0].at<float>(5, 60), std::exp(5.0) / (std::exp(5.0) + 2), 1e-5);
}

TEST(Segmenter, U2NetLikeGraphReadsTheFusedOutputByGraphOrder) {
  TempDir dir;
  // The same model read by index 0 (graph order: d0 first), by name d0, and by name d1.
  Segmenter by_index(test_model("u2net_rsu"), Backend::Cpu);
  const std::string d0 = unetseg_test::copy_model("u2net_rsu", dir, "d0", false);
  const std::string d1 = unetseg_test::copy_model("u2net_rsu", dir, "d1", false);
  ModelSpec spec = by_index.spec();
  spec.output_name = "d0";
  Segmenter by_d0(d0, spec, Backend::Cpu);
  spec.output_name = "d1";
  Segmenter by_d1(d1, spec, Backend::Cpu);

  std::vector<uint8_t> data(80 * 60 * 3);
  cv::RNG rng(7);
  for (auto& v : data) v = static_cast<uint8_t>(rng.uniform(0, 256));
  FrameView view{data.data(), 80, 60, 80 * 3, PixelLayout::RGB};
  const cv::Mat a = by_index.run(view).foreground.clone();
  const cv::Mat b = by_d0.run(view).foreground.clone();
  const cv::Mat c = by_d1.run(view).foreground.clone();
  EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0.0);
  EXPECT_GT(cv::norm(a, c, cv::NORM_INF), 1e-3) << "d0 and d1 must differ";
  // minmax: the map spans [0, 1] exactly.
  double lo, hi;
  cv::minMaxLoc(a, &lo, &hi);
  EXPECT_NEAR(lo, 0.0, 1e-6);
  EXPECT_NEAR(hi, 1.0, 1e-6);
}

TEST(Segmenter, NothingIsReallocatedAfterTheFirstFrame) {
  Segmenter seg(test_model("unet_rg"), Backend::Cpu);
  TwoColourFrame frame(128, 96, 64, kRed, kBlue);
  const void* first = seg.run(frame.view).foreground.data;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(seg.run(frame.view).foreground.data, first);
}

// Each branch of the backend choice is reached by one of the OpenCV builds CI tests with: the
// system OpenCV (no CUDA), the OpenCV 4.10 CUDA build on a machine without a driver or GPU, and
// that build on a GPU machine.
TEST(Segmenter, CudaReasonNamesWhatIsMissing) {
  const std::string reason = cuda_unavailable_reason();
  if (!opencv_has_cuda()) {
    EXPECT_TRUE(contains(reason, "built without the CUDA DNN backend")) << reason;
  } else {
    const int devices = cv::cuda::getCudaEnabledDeviceCount();
    if (devices < 0) EXPECT_TRUE(contains(reason, "driver is missing or too old")) << reason;
    else if (devices == 0) EXPECT_TRUE(contains(reason, "no CUDA device is present")) << reason;
    else EXPECT_EQ(reason, "");
  }
  EXPECT_TRUE(contains(reason, CV_VERSION) || reason.empty()) << reason;
}

TEST(Segmenter, BackendChoiceTellsTheTruth) {
  Segmenter cpu(test_model("logit_rg"), Backend::Cpu);
  EXPECT_EQ(cpu.active_backend(), Backend::Cpu);
  EXPECT_TRUE(cpu.backend_note().empty());

  const std::string reason = cuda_unavailable_reason();
  Segmenter automatic(test_model("logit_rg"), Backend::Auto);
  if (!reason.empty()) {
    EXPECT_EQ(automatic.active_backend(), Backend::Cpu);
    EXPECT_EQ(automatic.backend_note(), "using the CPU: " + reason);
  } else if (automatic.active_backend() == Backend::Cpu) {
    EXPECT_TRUE(contains(automatic.backend_note(), "using the CPU: the first forward on CUDA failed"))
        << automatic.backend_note();
  } else {
    EXPECT_EQ(automatic.active_backend(), Backend::Cuda);
    EXPECT_EQ(automatic.backend_note(), "");
  }

  for (Backend cuda : {Backend::Cuda, Backend::CudaFp16}) {
    if (!reason.empty()) {
      const std::string msg = error_of([&] { Segmenter s(test_model("logit_rg"), cuda); });
      EXPECT_TRUE(contains(msg, std::string("backend ") + to_string(cuda))) << msg;
      EXPECT_TRUE(contains(msg, test_model("logit_rg"))) << msg;
      EXPECT_TRUE(contains(msg, reason)) << msg;
    } else {
      // A GPU is here: the backend runs, or its first forward says why not.
      try {
        Segmenter s(test_model("logit_rg"), cuda);
        EXPECT_EQ(s.active_backend(), cuda);
      } catch (const Error& e) {
        EXPECT_TRUE(contains(e.what(), "failed its first forward")) << e.what();
      }
    }
  }
}

TEST(Segmenter, BackendNamesRoundTrip) {
  for (Backend b : {Backend::Auto, Backend::Cpu, Backend::Cuda, Backend::CudaFp16}) {
    Backend parsed;
    ASSERT_TRUE(backend_from_string(to_string(b), &parsed));
    EXPECT_EQ(parsed, b);
  }
  Backend parsed;
  EXPECT_FALSE(backend_from_string("opencl", &parsed));
}

// recurrent_rg counts the frames it saw in its state: red is 0.5 + 0.05 n after n frames.
TEST(Segmenter, RecurrentStateIsFedBackUntilReset) {
  Segmenter seg(test_model("recurrent_rg"), Backend::Cpu);
  EXPECT_TRUE(seg.recurrent());
  TwoColourFrame frame(128, 128, 64, kRed, kGreen);
  for (int n = 0; n < 3; ++n) {
    const Prediction& p = seg.run(frame.view);
    EXPECT_NEAR(p.foreground.at<float>(32, 10), 0.5 + 0.05 * n, 1e-5) << "frame " << n;
    EXPECT_NEAR(p.foreground.at<float>(32, 50), 0.05 * n, 1e-5) << "frame " << n;
  }
  seg.reset_state();
  EXPECT_NEAR(seg.run(frame.view).foreground.at<float>(32, 10), 0.5, 1e-5) << "from zero again";
  // The warm-up forward left no state behind: a new segmenter starts at zero too.
  Segmenter fresh(test_model("recurrent_rg"), Backend::Cpu);
  EXPECT_NEAR(fresh.run(frame.view).foreground.at<float>(32, 10), 0.5, 1e-5);
  EXPECT_FALSE(Segmenter(test_model("unet_rg"), Backend::Cpu).recurrent());
}

// nonfinite_rg emits NaN on green and +Inf on blue (2 on red, 1 on black): a broken export or an
// fp16 overflow must show as background, never as "everything is a person", in every kind.
TEST(Segmenter, NanAndInfAreBackgroundInEveryOutputKind) {
  TempDir dir;
  const std::string model = unetseg_test::copy_model("nonfinite_rg", dir, "broken", false);
  struct Kind {
    const char* output;
    const char* json_kind;
  };
  const Kind kinds[] = {{"one", R"("probability")"}, {"one", R"("logit")"},
                        {"two", R"("two_class_logits")"},
                        {"two", R"("class_logits", "labels": ["background", "thing"])"}};
  std::vector<uint8_t> data(64 * 64 * 3, 0);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 48; ++x) data[(y * 64 + x) * 3 + x / 16] = 255;  // red, green, blue, black
  const FrameView frame{data.data(), 64, 64, 64 * 3, PixelLayout::RGB};
  for (const Kind& k : kinds) {
    unetseg_test::write_file(dir.file("broken.json"),
        std::string(R"({"input": {"width": 64, "height": 64}, "output": {"name": ")") + k.output +
            R"(", "kind": )" + k.json_kind + "}}");
    Segmenter seg(model, Backend::Cpu);
    const Prediction& p = seg.run(frame);
    EXPECT_GT(p.foreground.at<float>(5, 8), 0.5f) << k.json_kind << ": red";
    EXPECT_EQ(p.foreground.at<float>(5, 24), 0.0f) << k.json_kind << ": green (NaN)";
    EXPECT_EQ(p.foreground.at<float>(5, 40), 0.0f) << k.json_kind << ": blue (Inf)";
    EXPECT_GT(p.foreground.at<float>(5, 56), 0.5f) << k.json_kind << ": black";
    EXPECT_EQ(p.non_finite, 2u * 16 * 64) << k.json_kind << ": the green and blue pixels";
    if (!p.class_map.empty()) {
      EXPECT_EQ(p.class_map.at<uint8_t>(5, 24), 0) << "NaN is class 0";
      EXPECT_EQ(p.class_map.at<uint8_t>(5, 40), 0) << "Inf is class 0";
      EXPECT_EQ(p.class_probabilities[0].at<float>(5, 40), 1.0f);
    }
    for (int y = 0; y < 64; ++y)
      for (int x = 0; x < 64; ++x) ASSERT_TRUE(std::isfinite(p.foreground.at<float>(y, x)));
  }
  // A model that behaves counts nothing.
  Segmenter good(test_model("unet_rg"), Backend::Cpu);
  EXPECT_EQ(good.run(frame).non_finite, 0u);
}

// ---- bad models: each refused with a message naming the file and the reason ----

TEST(SegmenterBadInput, StateAndInputNamesTheGraphDoesNotHave) {
  TempDir dir;
  const std::string model = unetseg_test::copy_model("recurrent_rg", dir, "rec", false);
  auto with_sidecar = [&](const std::string& json) {
    unetseg_test::write_file(dir.file("rec.json"), json);
    return error_of([&] { Segmenter s(model, Backend::Cpu); });
  };
  const std::string head = R"({"input": {"width": 64, "height": 64}, "output": {"name": "output", "kind": "probability"}, )";
  std::string msg = with_sidecar(head + R"("state": [{"input": "memory", "output": "state_out"}]})");
  EXPECT_TRUE(contains(msg, "no input named 'memory'")) << msg;
  EXPECT_TRUE(contains(msg, "state[0].input")) << msg;
  EXPECT_TRUE(contains(msg, "'input', 'state'")) << msg;
  msg = with_sidecar(head + R"("state": [{"input": "state", "output": "later"}]})");
  EXPECT_TRUE(contains(msg, "no output named 'later'")) << msg;
  EXPECT_TRUE(contains(msg, "state[0].output")) << msg;
  // The mask's output cannot be a state too.
  msg = with_sidecar(head + R"("state": [{"input": "state", "output": "output"}]})");
  EXPECT_TRUE(contains(msg, "mask's output")) << msg;
  msg = with_sidecar(R"({"input": {"name": "pixels", "width": 64, "height": 64}, "output": {"kind": "probability"}})");
  EXPECT_TRUE(contains(msg, "no input named 'pixels'")) << msg;
  EXPECT_TRUE(contains(msg, "input.name")) << msg;
  EXPECT_EQ(with_sidecar(head + R"("state": [{"input": "state", "output": "state_out"}]})"), "");
}

// Where the model should be: a FIFO (swapped in after a check, it blocked the start forever) and
// a 3 GB sparse file (read whole before OpenCV saw it) are refused at once.
TEST(SegmenterBadInput, FifoAndHugeFilesAreRefusedUnread) {
  TempDir dir;
  const std::string fifo = dir.file("fifo.onnx");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string msg = error_of([&] { Segmenter s(fifo, Backend::Cpu); });
  EXPECT_TRUE(contains(msg, fifo + " is not a regular file")) << msg;
  const std::string huge = dir.file("huge.onnx");
  {
    std::ofstream(huge).put('x');
    ASSERT_EQ(truncate(huge.c_str(), 3LL << 30), 0);  // sparse: no disk used
  }
  msg = error_of([&] { Segmenter s(huge, Backend::Cpu); });
  EXPECT_TRUE(contains(msg, huge + " is 3.0 GiB, more than the 2.0 GiB a model may have")) << msg;
}

// A sidecar's input size that contradicts the graph's static input shape is refused at load,
// not turned into a 4096x4096 blob the graph cannot take.
TEST(SegmenterBadInput, InputSizeThatContradictsTheGraph) {
  TempDir dir;
  const std::string model = unetseg_test::copy_model("unet_rg", dir, "big", false);
  unetseg_test::write_file(dir.file("big.json"),
      R"({"input": {"width": 4096, "height": 4096}, "output": {"kind": "probability"}})");
  const std::string msg = error_of([&] { Segmenter s(model, Backend::Cpu); });
  EXPECT_TRUE(contains(msg, model)) << msg;
  EXPECT_TRUE(contains(msg, "1x3x64x64")) << msg;
  EXPECT_TRUE(contains(msg, "input.width 4096")) << msg;
}


TEST(SegmenterBadInput, MissingFile) {
  TempDir dir;
  const std::string path = dir.file("absent.onnx");
  const std::string msg = error_of([&] { Segmenter s(path, Backend::Cpu); });
  EXPECT_TRUE(contains(msg, path)) << msg;
  EXPECT_TRUE(contains(msg, "No such file")) << msg;
}

TEST(SegmenterBadInput, ModelFilesThatAreNotModels) {
  TempDir dir;
  const std::string spec_json = dir.file("spec.json");
  const auto sidecar = unetseg_test::read_file(unetseg_test::env_or_die("UNETSEG_TEST_MODELS") + "/unet_rg.json");
  const ModelSpec spec = [&] {
    unetseg_test::write_file(spec_json, std::string(sidecar.begin(), sidecar.end()));
    return ModelSpec::load(spec_json);
  }();
  const auto good = unetseg_test::read_file(test_model("unet_rg"));

  struct Case {
    std::string path;
    const char* why;
  };
  std::string random_bytes(4096, '\0');
  cv::RNG rng(1);
  for (auto& c : random_bytes) c = static_cast<char>(rng.uniform(0, 256));
  unetseg_test::write_file(dir.file("empty.onnx"), "");
  unetseg_test::write_file(dir.file("truncated.onnx"), std::string(good.begin(), good.begin() + good.size() / 2));
  unetseg_test::write_file(dir.file("random.onnx"), random_bytes);
  unetseg_test::write_file(dir.file("text.onnx"), "this is not a model\n");
  const Case cases[] = {
      {dir.file("empty.onnx"), "empty"},
      {dir.file("truncated.onnx"), "could not be loaded by OpenCV"},
      {dir.file("random.onnx"), "could not be loaded by OpenCV"},
      {dir.file("text.onnx"), "could not be loaded by OpenCV"},
      {dir.path(), "is a directory"},
      {"/dev/zero", "not a regular file"},
      {dir.file("absent.onnx"), "No such file"},
  };
  for (const Case& c : cases) {
    const std::string msg = error_of([&] { Segmenter s(c.path, spec, Backend::Cpu); });
    EXPECT_TRUE(contains(msg, c.path)) << c.path << " -> " << msg;
    EXPECT_TRUE(contains(msg, c.why)) << c.path << " -> " << msg;
  }
}

TEST(SegmenterBadInput, OutputThatDoesNotFitTheSidecar) {
  TempDir dir;
  // classes3 emits 3 channels; a sidecar that says "probability" (1 channel) must be refused
  // when the model loads, not on the first frame.
  const std::string model = unetseg_test::copy_model("classes3", dir, "wrong", false);
  unetseg_test::write_file(dir.file("wrong.json"),
      R"({"input": {"width": 64, "height": 64}, "output": {"kind": "probability"}})");
  std::string msg = error_of([&] { Segmenter s(model, Backend::Cpu); });
  EXPECT_TRUE(contains(msg, model)) << msg;
  EXPECT_TRUE(contains(msg, "1x3x64x64")) << msg;
  EXPECT_TRUE(contains(msg, "probability")) << msg;

  unetseg_test::write_file(dir.file("wrong.json"),
      R"({"input": {"width": 64, "height": 64}, "output": {"kind": "class_logits", "labels": ["a", "b", "c", "d"]}})");
  msg = error_of([&] { Segmenter s(model, Backend::Cpu); });
  EXPECT_TRUE(contains(msg, "one per label")) << msg;

  unetseg_test::write_file(dir.file("wrong.json"),
      R"({"input": {"width": 64, "height": 64}, "output": {"kind": "probability", "index": 4}})");
  msg = error_of([&] { Segmenter s(model, Backend::Cpu); });
  EXPECT_TRUE(contains(msg, "output.index 4 does not exist")) << msg;

  unetseg_test::write_file(dir.file("wrong.json"),
      R"({"input": {"width": 64, "height": 64}, "output": {"kind": "probability", "name": "nope"}})");
  msg = error_of([&] { Segmenter s(model, Backend::Cpu); });
  EXPECT_TRUE(contains(msg, "no output named 'nope'")) << msg;
}
