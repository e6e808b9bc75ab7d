#include "unetseg/model_spec.hpp"

#include <unistd.h>

#include <cerrno>
#include <cfloat>
#include <cmath>
#include <sstream>

#include "unetseg/error.hpp"
#include "unetseg/model_file.hpp"

namespace unetseg {

namespace {

// A sidecar is a few hundred bytes, 256 labels a few KiB: anything near these is not one.
constexpr std::uint64_t kMaxSidecarBytes = 1 << 20;
constexpr int kMaxSidecarDepth = 16;
constexpr std::size_t kMaxLabels = 256;

struct KindName {
  OutputKind kind;
  const char* name;
};
constexpr KindName kKinds[] = {
    {OutputKind::Probability, "probability"},
    {OutputKind::Logit, "logit"},
    {OutputKind::TwoClassLogits, "two_class_logits"},
    {OutputKind::ClassLogits, "class_logits"},
};

// Reads one sidecar, turning every problem into an Error that names the file and the field.
class SidecarReader {
 public:
  explicit SidecarReader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& why) const {
    throw Error("model sidecar " + path_ + ": field '" + field + "' " + why);
  }

  cv::FileNode require(const cv::FileNode& parent, const std::string& field,
                       const std::string& key) const {
    cv::FileNode node = parent[key];
    if (node.empty()) fail(field, "is missing");
    return node;
  }

  double number(const cv::FileNode& node, const std::string& field) const {
    if (!node.isInt() && !node.isReal()) fail(field, "must be a number");
    return static_cast<double>(node);
  }

  int integer(const cv::FileNode& node, const std::string& field) const {
    if (!node.isInt()) fail(field, "must be an integer");
    return static_cast<int>(node);
  }

  bool boolean(const cv::FileNode& node, const std::string& field) const {
    // OpenCV's JSON parser reads true/false as the integers 1/0.
    if (!node.isInt() || (static_cast<int>(node) != 0 && static_cast<int>(node) != 1))
      fail(field, "must be true or false");
    return static_cast<int>(node) == 1;
  }

  std::string string(const cv::FileNode& node, const std::string& field) const {
    if (!node.isString()) fail(field, "must be a string");
    return static_cast<std::string>(node);
  }

  cv::Scalar triple(const cv::FileNode& node, const std::string& field) const {
    if (!node.isSeq() || node.size() != 3) fail(field, "must be a list of 3 numbers");
    cv::Scalar value;
    for (int i = 0; i < 3; ++i) value[i] = number(node[i], field + "[" + std::to_string(i) + "]");
    return value;
  }

 private:
  std::string path_;
};

// OpenCV's JSON reader recurses once per level of nesting: a file of 100,000 '[' overflows the
// stack. A sidecar needs 3 levels; anything much deeper is refused before OpenCV sees it.
void check_nesting(const std::vector<std::uint8_t>& text, const std::string& path) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const std::uint8_t c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxSidecarDepth)
        throw Error("model sidecar " + path + " nests more than " +
                    std::to_string(kMaxSidecarDepth) + " levels of [ and {: not a sidecar");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

std::string file_stem(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = base.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

}  // namespace

const char* to_string(ColorOrder order) { return order == ColorOrder::RGB ? "RGB" : "BGR"; }

const char* to_string(MaskScaling scaling) {
  return scaling == MaskScaling::Pil ? "pil" : "bilinear";
}

const char* to_string(ResizeMethod method) {
  return method == ResizeMethod::Antialias ? "antialias" : "auto";
}

const char* to_string(OutputKind kind) {
  for (const auto& k : kKinds)
    if (k.kind == kind) return k.name;
  return "?";
}

int ModelSpec::expected_channels() const {
  switch (output_kind) {
    case OutputKind::Probability:
    case OutputKind::Logit:
      return 1;
    case OutputKind::TwoClassLogits:
      return 2;
    case OutputKind::ClassLogits:
      return static_cast<int>(labels.size());
  }
  return 0;
}

std::string ModelSpec::sidecar_path_for(const std::string& model_path) {
  const size_t slash = model_path.find_last_of('/');
  const size_t dot = model_path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash))
    return model_path + ".json";
  return model_path.substr(0, dot) + ".json";
}

void ModelSpec::validate(const std::string& origin) const {
  auto fail = [&](const std::string& field, const std::string& why) {
    throw Error("model sidecar " + origin + ": field '" + field + "' " + why);
  };
  if (input_width < 1 || input_width > 8192) fail("input.width", "must be 1..8192");
  if (input_height < 1 || input_height > 8192) fail("input.height", "must be 1..8192");
  // The input blob is float: each number, and every value the blob can take, must fit one.
  if (!std::isfinite(scale) || scale <= 0) fail("input.scale", "must be a positive number");
  if (!std::isnormal(static_cast<float>(scale)))
    fail("input.scale", "must be a positive number a float can hold (1.2e-38 to 3.4e38)");
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(mean[c])) fail("input.mean", "must be finite");
    if (!std::isfinite(static_cast<float>(mean[c])))
      fail("input.mean", "must be numbers a float can hold (up to 3.4e38)");
    if (!std::isfinite(std[c]) || std[c] <= 0) fail("input.std", "must be positive numbers");
    if (!std::isnormal(static_cast<float>(std[c])))
      fail("input.std", "must be positive numbers a float can hold (1.2e-38 to 3.4e38)");
    // (x * scale - mean) / std at both ends of x: 0..255, or 0..1 with normalize_by_max.
    const double top = normalize_by_max ? 1.0 : 255.0 * scale;
    for (const double x : {0.0, top})
      if (!(std::fabs((x - mean[c]) / std[c]) <= FLT_MAX))
        fail("input.scale", "with input.mean and input.std makes input values beyond a float's "
                            "range ((x * scale - mean) / std for x up to 255)");
  }
  if (output_index < 0) fail("output.index", "must be >= 0");
  if (output_kind == OutputKind::ClassLogits && !labels.empty() && labels.size() < 2)
    fail("output.labels", "must name at least 2 classes for class_logits");
  if (labels.size() > kMaxLabels)
    fail("output.labels", "may name at most 256 classes (class ids are 8-bit)");
  if (output_kind == OutputKind::TwoClassLogits && !labels.empty() && labels.size() != 2)
    fail("output.labels", "must name exactly 2 classes for two_class_logits");
  if (output_matte && output_kind != OutputKind::Probability)
    fail("output.matte", "needs kind probability (a matte is already in [0, 1])");
  if (state.size() > 64) fail("state", "may hold at most 64 pairs");
  for (std::size_t i = 0; i < state.size(); ++i) {
    const std::string field = "state[" + std::to_string(i) + "]";
    if (state[i].input.empty()) fail(field + ".input", "must name a graph input");
    if (state[i].output.empty()) fail(field + ".output", "must name a graph output");
    if (state[i].input == input_name) fail(field + ".input", "is the frame's input");
    if (!output_name.empty() && state[i].output == output_name)
      fail(field + ".output", "is the mask's output");
    for (std::size_t j = 0; j < i; ++j)
      if (state[j].input == state[i].input || state[j].output == state[i].output)
        fail(field, "repeats a name of state[" + std::to_string(j) + "]");
  }
}

ModelSpec ModelSpec::load(const std::string& path) {
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT)
    throw Error("model sidecar " + path + " not found: every model needs a JSON file beside it "
                "saying what it expects and emits (see docs/MODEL_SPEC.md)");
  const std::vector<std::uint8_t> bytes =
      read_regular_file(path, kMaxSidecarBytes, "model sidecar", "a JSON sidecar");
  check_nesting(bytes, path);

  cv::FileStorage fs;
  try {
    fs.open(std::string(bytes.begin(), bytes.end()),
            cv::FileStorage::READ | cv::FileStorage::MEMORY | cv::FileStorage::FORMAT_JSON);
  } catch (const cv::Exception& e) {
    throw Error("model sidecar " + path + " is not valid JSON: " + e.err);
  }
  if (!fs.isOpened()) throw Error("model sidecar " + path + " could not be read");

  SidecarReader r(path);
  const cv::FileNode root = fs.root();
  if (!root.isMap()) throw Error("model sidecar " + path + " must hold a JSON object");

  ModelSpec spec;
  spec.name = root["name"].empty() ? file_stem(path) : r.string(root["name"], "name");

  const cv::FileNode in = r.require(root, "input", "input");
  if (!in.isMap()) r.fail("input", "must be an object");
  if (!in["name"].empty()) spec.input_name = r.string(in["name"], "input.name");
  spec.input_width = r.integer(r.require(in, "input.width", "width"), "input.width");
  spec.input_height = r.integer(r.require(in, "input.height", "height"), "input.height");
  if (!in["color_order"].empty()) {
    const std::string order = r.string(in["color_order"], "input.color_order");
    if (order == "RGB") spec.color_order = ColorOrder::RGB;
    else if (order == "BGR") spec.color_order = ColorOrder::BGR;
    else r.fail("input.color_order", "must be \"RGB\" or \"BGR\", not \"" + order + "\"");
  }
  if (!in["scale"].empty()) spec.scale = r.number(in["scale"], "input.scale");
  if (!in["mean"].empty()) spec.mean = r.triple(in["mean"], "input.mean");
  if (!in["std"].empty()) spec.std = r.triple(in["std"], "input.std");
  if (!in["normalize_by_max"].empty())
    spec.normalize_by_max = r.boolean(in["normalize_by_max"], "input.normalize_by_max");
  if (!in["resize"].empty()) {
    const std::string method = r.string(in["resize"], "input.resize");
    if (method == "auto") spec.resize = ResizeMethod::Auto;
    else if (method == "antialias") spec.resize = ResizeMethod::Antialias;
    else r.fail("input.resize", "must be \"auto\" or \"antialias\", not \"" + method + "\"");
  }

  const cv::FileNode out = r.require(root, "output", "output");
  if (!out.isMap()) r.fail("output", "must be an object");
  if (!out["name"].empty()) spec.output_name = r.string(out["name"], "output.name");
  if (!out["index"].empty()) spec.output_index = r.integer(out["index"], "output.index");
  const std::string kind = r.string(r.require(out, "output.kind", "kind"), "output.kind");
  bool known = false;
  for (const auto& k : kKinds) {
    if (kind == k.name) {
      spec.output_kind = k.kind;
      known = true;
    }
  }
  if (!known)
    r.fail("output.kind", "must be probability, logit, two_class_logits or class_logits, not \"" +
                              kind + "\"");
  if (!out["minmax"].empty()) spec.output_minmax = r.boolean(out["minmax"], "output.minmax");
  if (!out["resize"].empty()) {
    const std::string scaling = r.string(out["resize"], "output.resize");
    if (scaling == "bilinear") spec.mask_scaling = MaskScaling::Bilinear;
    else if (scaling == "pil") spec.mask_scaling = MaskScaling::Pil;
    else r.fail("output.resize", "must be \"bilinear\" or \"pil\", not \"" + scaling + "\"");
  }
  if (!out["matte"].empty()) spec.output_matte = r.boolean(out["matte"], "output.matte");
  if (!out["labels"].empty()) {
    const cv::FileNode labels = out["labels"];
    if (!labels.isSeq()) r.fail("output.labels", "must be a list of strings");
    if (labels.size() > kMaxLabels)
      r.fail("output.labels", "names " + std::to_string(labels.size()) + " classes; at most " +
                                  std::to_string(kMaxLabels) + " (class ids are 8-bit)");
    // Iterated: FileNode::operator[](int) walks the list from its start every time.
    std::size_t i = 0;
    for (auto it = labels.begin(); it != labels.end(); ++it, ++i)
      spec.labels.push_back(r.string(*it, "output.labels[" + std::to_string(i) + "]"));
  }

  const cv::FileNode state = root["state"];
  if (!state.empty()) {
    if (!state.isSeq()) r.fail("state", "must be a list of {\"input\": ..., \"output\": ...}");
    int i = 0;
    for (auto it = state.begin(); it != state.end(); ++it, ++i) {
      const std::string field = "state[" + std::to_string(i) + "]";
      const cv::FileNode pair = *it;
      if (!pair.isMap()) r.fail(field, "must be an object {\"input\": ..., \"output\": ...}");
      spec.state.push_back({r.string(r.require(pair, field + ".input", "input"), field + ".input"),
                            r.string(r.require(pair, field + ".output", "output"),
                                     field + ".output")});
    }
  }

  spec.validate(path);
  return spec;
}

}  // namespace unetseg
