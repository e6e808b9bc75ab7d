#include <gtest/gtest.h>
#include <sys/stat.h>

#include "test_paths.hpp"
#include "unetseg/error.hpp"
#include "unetseg/model_spec.hpp"

using namespace unetseg;
using unetseg_test::TempDir;

namespace {

// Loads a sidecar written from `json` and returns the error message ("" if it loaded).
std::string load_error(const std::string& json, ModelSpec* out = nullptr) {
  TempDir dir;
  const std::string path = dir.file("model.json");
  unetseg_test::write_file(path, json);
  try {
    ModelSpec spec = ModelSpec::load(path);
    if (out) *out = spec;
    return "";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message must name the file: " << msg;
    return msg;
  }
}

const char* kMinimal = R"({"input": {"width": 32, "height": 16}, "output": {"kind": "logit"}})";

}  // namespace

TEST(ModelSpec, ReadsTheShippedSinetSidecar) {
  const ModelSpec spec = ModelSpec::load(unetseg_test::source_path("models/sinet.json"));
  EXPECT_EQ(spec.name, "sinet");
  EXPECT_EQ(spec.input_width, 320);
  EXPECT_EQ(spec.input_height, 320);
  EXPECT_EQ(spec.color_order, ColorOrder::BGR);
  EXPECT_NEAR(spec.scale, 1.0 / 255, 1e-12);
  // ((x - 102.890434) / 62.93292) / 255, written as (x / 255 - 102.890434 / 255) / 62.93292.
  EXPECT_NEAR(spec.mean[0], 102.890434 / 255, 1e-7);
  EXPECT_NEAR(spec.std[2], 66.355705, 1e-9);
  EXPECT_EQ(spec.output_kind, OutputKind::TwoClassLogits);
  EXPECT_EQ(spec.expected_channels(), 2);
  ASSERT_EQ(spec.labels.size(), 2u);
  EXPECT_EQ(spec.labels[1], "person");
}

TEST(ModelSpec, DefaultsForOptionalFields) {
  ModelSpec spec;
  ASSERT_EQ(load_error(kMinimal, &spec), "");
  EXPECT_EQ(spec.name, "model");  // the file's stem
  EXPECT_EQ(spec.input_width, 32);
  EXPECT_EQ(spec.input_height, 16);
  EXPECT_EQ(spec.color_order, ColorOrder::RGB);
  EXPECT_NEAR(spec.scale, 1.0 / 255, 1e-15);
  EXPECT_EQ(spec.mean, cv::Scalar(0, 0, 0));
  EXPECT_EQ(spec.std, cv::Scalar(1, 1, 1));
  EXPECT_FALSE(spec.normalize_by_max);
  EXPECT_EQ(spec.resize, ResizeMethod::Auto);
  EXPECT_EQ(spec.output_index, 0);
  EXPECT_TRUE(spec.output_name.empty());
  EXPECT_FALSE(spec.output_minmax);
  EXPECT_EQ(spec.expected_channels(), 1);
}

TEST(ModelSpec, ReadsEveryField) {
  ModelSpec spec;
  ASSERT_EQ(load_error(R"({"name": "u2netp", "input": {"width": 320, "height": 320,
      "color_order": "RGB", "scale": 1, "mean": [0.485, 0.456, 0.406],
      "std": [0.229, 0.224, 0.225], "normalize_by_max": true, "resize": "antialias"},
      "output": {"name": "d0", "index": 2, "kind": "class_logits", "minmax": true,
                 "labels": ["bg", "cat", "dog"]}})", &spec), "");
  EXPECT_EQ(spec.name, "u2netp");
  EXPECT_TRUE(spec.normalize_by_max);
  EXPECT_EQ(spec.resize, ResizeMethod::Antialias);
  EXPECT_STREQ(to_string(spec.resize), "antialias");
  EXPECT_DOUBLE_EQ(spec.mean[1], 0.456);
  EXPECT_DOUBLE_EQ(spec.std[2], 0.225);
  EXPECT_EQ(spec.output_name, "d0");
  EXPECT_EQ(spec.output_index, 2);
  EXPECT_TRUE(spec.output_minmax);
  EXPECT_TRUE(spec.multi_class());
  EXPECT_EQ(spec.expected_channels(), 3);
}

TEST(ModelSpec, ReadsInputNamesMattesAndStatePairs) {
  ModelSpec spec;
  ASSERT_EQ(load_error(R"({"input": {"name": "src", "width": 320, "height": 320},
      "output": {"name": "pha", "kind": "probability", "matte": true},
      "state": [{"input": "r1i", "output": "r1o"}, {"input": "r2i", "output": "r2o"}]})", &spec),
            "");
  EXPECT_EQ(spec.input_name, "src");
  EXPECT_TRUE(spec.output_matte);
  EXPECT_TRUE(spec.recurrent());
  ASSERT_EQ(spec.state.size(), 2u);
  EXPECT_EQ(spec.state[1].input, "r2i");
  EXPECT_EQ(spec.state[1].output, "r2o");
  ASSERT_EQ(load_error(kMinimal, &spec), "");
  EXPECT_FALSE(spec.recurrent());
  EXPECT_FALSE(spec.output_matte);
  EXPECT_TRUE(spec.input_name.empty());
}

TEST(ModelSpec, EachBadFieldIsNamed) {
  struct Case {
    const char* json;
    const char* field;
    const char* why;
  };
  const Case cases[] = {
      {R"({"output": {"kind": "logit"}})", "'input'", "missing"},
      {R"({"input": {"height": 16}, "output": {"kind": "logit"}})", "'input.width'", "missing"},
      {R"({"input": {"width": "wide", "height": 16}, "output": {"kind": "logit"}})", "'input.width'", "integer"},
      {R"({"input": {"width": 0, "height": 16}, "output": {"kind": "logit"}})", "'input.width'", "1..8192"},
      {R"({"input": {"width": 8, "height": 99999}, "output": {"kind": "logit"}})", "'input.height'", "1..8192"},
      {R"({"input": {"width": 8, "height": 8, "color_order": "RGBA"}, "output": {"kind": "logit"}})", "'input.color_order'", "RGBA"},
      {R"({"input": {"width": 8, "height": 8, "scale": -1}, "output": {"kind": "logit"}})", "'input.scale'", "positive"},
      {R"({"input": {"width": 8, "height": 8, "mean": [1, 2]}, "output": {"kind": "logit"}})", "'input.mean'", "3 numbers"},
      {R"({"input": {"width": 8, "height": 8, "std": [1, 0, 1]}, "output": {"kind": "logit"}})", "'input.std'", "positive"},
      {R"({"input": {"width": 8, "height": 8, "normalize_by_max": 7}, "output": {"kind": "logit"}})", "'input.normalize_by_max'", "true or false"},
      {R"({"input": {"width": 8, "height": 8, "resize": "bicubic"}, "output": {"kind": "logit"}})", "'input.resize'", "\"bicubic\""},
      {R"({"input": {"width": 8, "height": 8, "resize": 1}, "output": {"kind": "logit"}})", "'input.resize'", "string"},
      {R"({"input": {"width": 8, "height": 8}})", "'output'", "missing"},
      {R"({"input": {"width": 8, "height": 8}, "output": {}})", "'output.kind'", "missing"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "softmax"}})", "'output.kind'", "softmax"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "logit", "index": -1}})", "'output.index'", ">= 0"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "logit", "name": 3}})", "'output.name'", "string"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "two_class_logits", "labels": ["a", "b", "c"]}})", "'output.labels'", "exactly 2"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "class_logits", "labels": ["only"]}})", "'output.labels'", "at least 2"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "logit", "labels": [1, 2]}})", "'output.labels[0]'", "string"},
      {R"({"input": {"width": 8, "height": 8, "name": 1}, "output": {"kind": "logit"}})", "'input.name'", "string"},
      // Finite as doubles, not as the floats the blob is made of.
      {R"({"input": {"width": 8, "height": 8, "scale": 1e300}, "output": {"kind": "logit"}})", "'input.scale'", "a float can hold"},
      {R"({"input": {"width": 8, "height": 8, "scale": 1e-300}, "output": {"kind": "logit"}})", "'input.scale'", "a float can hold"},
      {R"({"input": {"width": 8, "height": 8, "std": [1, 1e-300, 1]}, "output": {"kind": "logit"}})", "'input.std'", "a float can hold"},
      {R"({"input": {"width": 8, "height": 8, "mean": [1e39, 0, 0]}, "output": {"kind": "logit"}})", "'input.mean'", "a float can hold"},
      {R"({"input": {"width": 8, "height": 8, "scale": 1e30, "std": [1e-10, 1, 1]}, "output": {"kind": "logit"}})", "'input.scale'", "beyond a float's range"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "logit", "matte": true}})", "'output.matte'", "kind probability"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "probability", "matte": 2}})", "'output.matte'", "true or false"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "logit"}, "state": {"input": "a"}})", "'state'", "list"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "logit"}, "state": [7]})", "'state[0]'", "object"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "logit"}, "state": [{"output": "o"}]})", "'state[0].input'", "missing"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "logit"}, "state": [{"input": "i", "output": 3}]})", "'state[0].output'", "string"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "logit"}, "state": [{"input": "i", "output": ""}]})", "'state[0].output'", "graph output"},
      {R"({"input": {"width": 8, "height": 8, "name": "x"}, "output": {"kind": "logit"}, "state": [{"input": "x", "output": "o"}]})", "'state[0].input'", "frame's input"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "logit", "name": "y"}, "state": [{"input": "i", "output": "y"}]})", "'state[0].output'", "mask's output"},
      {R"({"input": {"width": 8, "height": 8}, "output": {"kind": "logit"}, "state": [{"input": "i", "output": "o"}, {"input": "i", "output": "p"}]})", "'state[1]'", "repeats a name of state[0]"},
  };
  for (const Case& c : cases) {
    const std::string msg = load_error(c.json);
    EXPECT_NE(msg.find(c.field), std::string::npos) << c.json << "\n -> " << msg;
    EXPECT_NE(msg.find(c.why), std::string::npos) << c.json << "\n -> " << msg;
  }
}

TEST(ModelSpec, BrokenOrMissingFilesAreNamed) {
  EXPECT_NE(load_error("{ \"input\": ").find("not valid JSON"), std::string::npos);
  // OpenCV refuses a top-level array itself; either way the file is named and refused.
  EXPECT_NE(load_error("[1, 2]").find("JSON"), std::string::npos);
  EXPECT_NE(load_error("\"just a string\"").find("JSON"), std::string::npos);
  EXPECT_NE(load_error("").find("model.json"), std::string::npos);

  TempDir dir;
  try {
    ModelSpec::load(dir.file("absent.json"));
    FAIL() << "a missing sidecar must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.file("absent.json")), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("not found"), std::string::npos);
  }
  try {
    ModelSpec::load(dir.path());
    FAIL() << "a directory must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos);
  }
}

TEST(ModelSpec, SidecarSitsBesideTheModel) {
  EXPECT_EQ(ModelSpec::sidecar_path_for("/m/sinet.onnx"), "/m/sinet.json");
  EXPECT_EQ(ModelSpec::sidecar_path_for("rel/isnet-320.onnx"), "rel/isnet-320.json");
  EXPECT_EQ(ModelSpec::sidecar_path_for("/a.b/model"), "/a.b/model.json");
  EXPECT_EQ(ModelSpec::sidecar_path_for("model"), "model.json");
}

TEST(ModelSpec, MaskScalingIsBilinearUnlessTheSidecarAsksForPil) {
  ModelSpec spec;
  ASSERT_EQ(load_error(kMinimal, &spec), "");
  EXPECT_EQ(spec.mask_scaling, MaskScaling::Bilinear);
  ASSERT_EQ(load_error(R"({"input": {"width": 8, "height": 8}, "output": {"kind": "logit", "resize": "pil"}})", &spec), "");
  EXPECT_EQ(spec.mask_scaling, MaskScaling::Pil);
  const std::string msg = load_error(R"({"input": {"width": 8, "height": 8}, "output": {"kind": "logit", "resize": "nearest"}})");
  EXPECT_NE(msg.find("'output.resize'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nearest"), std::string::npos) << msg;
}

// What an attacker or a careless script can put where a sidecar should be: each refused at
// once, by size, depth or count, before OpenCV's JSON reader sees it.
TEST(ModelSpec, HostileSidecarsAreRefusedQuickly) {
  // 100,000 levels of nesting overflowed the stack inside OpenCV's recursive JSON reader.
  std::string msg = load_error(std::string(100000, '[') + std::string(100000, ']'));
  EXPECT_NE(msg.find("nests more than 16 levels"), std::string::npos) << msg.substr(0, 200);
  // Brackets inside strings are text, not nesting.
  ModelSpec spec;
  EXPECT_EQ(load_error(R"({"name": "[[[[[[[[[[[[[[[[[[[[\"[[[", "input": {"width": 8, "height": 8}, "output": {"kind": "logit"}})", &spec), "");
  EXPECT_EQ(spec.name, "[[[[[[[[[[[[[[[[[[[[\"[[[");
  // 100,000 labels took about 90 s (the list walked from its start for each label).
  std::string labels;
  for (int i = 0; i < 100000; ++i) labels += (i ? ",\"c" : "\"c") + std::to_string(i) + "\"";
  msg = load_error(R"({"input": {"width": 8, "height": 8}, "output": {"kind": "class_logits", "labels": [)" + labels + "]}}");
  EXPECT_NE(msg.find("'output.labels' names 100000 classes; at most 256"), std::string::npos) << msg.substr(0, 300);
  // A 10 MB "sidecar" is refused by its size, unread.
  msg = load_error(std::string(10 << 20, ' ') + kMinimal);
  EXPECT_NE(msg.find("is 10.0 MiB, more than the 1.0 MiB a model sidecar may have"), std::string::npos) << msg;
}

TEST(ModelSpec, AFifoWhereTheSidecarShouldBeDoesNotBlock) {
  TempDir dir;
  const std::string path = dir.file("m.json");
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  try {
    ModelSpec::load(path);  // no writer: a blocking open would never return
    FAIL() << "a FIFO must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
}
