// What a model expects and emits, read from a JSON sidecar next to the .onnx file
// (model.onnx -> model.json). See docs/MODEL_SPEC.md for the format.
#pragma once

#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace unetseg {

enum class ColorOrder { RGB, BGR };

// How the frame is stretched to the model's input size (sidecar "input.resize").
enum class ResizeMethod {
  Auto,       // "auto": 8-bit cv::resize, INTER_AREA when shrinking by more than 2x, else linear
  Antialias,  // "antialias": skimage.transform.resize(mode='constant') as the official U2-Net
              // code calls it: Gaussian prefilter (sigma (in/out - 1) / 2 on shrinking axes,
              // zeros outside), bilinear with half-pixel centres and zeros outside, in float
};

// How the mask is scaled from the model's output to the frame (sidecar "output.resize").
enum class MaskScaling {
  Bilinear,  // "bilinear" (default): OpenCV's 8-bit bilinear resize, the fast path
  Pil,       // "pil": bit-exact PIL Image.resize(BILINEAR), as the official U2-Net code saves
             // its masks (antialiased when shrinking; slower than "bilinear": docs/MODEL_SPEC.md)
};

enum class OutputKind {
  Probability,     // 1 channel, already a probability in [0,1] (sigmoid inside the model)
  Logit,           // 1 channel, a logit: the library applies the sigmoid
  TwoClassLogits,  // 2 channels (background, foreground) logits: softmax
  ClassLogits,     // C >= 2 channels of class logits: softmax + argmax, class 0 is background
};

struct ModelSpec {
  std::string name;  // shown in the meta and messages; defaults to the file's stem

  // Input: the graph input the frame goes to (empty: the graph's first input that is not a
  // state input). The frame is stretched to input_width x input_height, reordered to color_order and
  // normalised per channel as (x * scale - mean[c]) / std[c], mean and std in the model's own
  // channel order. With normalize_by_max (official U2-Net), x * scale is replaced by
  // x / max(resized image), the maximum taken over all three colour channels.
  std::string input_name;
  int input_width = 0;
  int input_height = 0;
  ColorOrder color_order = ColorOrder::RGB;
  double scale = 1.0 / 255.0;
  cv::Scalar mean{0.0, 0.0, 0.0};
  cv::Scalar std{1.0, 1.0, 1.0};
  bool normalize_by_max = false;
  ResizeMethod resize = ResizeMethod::Auto;

  // Output: by name if output_name is set, else the output_index-th output of the graph.
  std::string output_name;
  int output_index = 0;
  OutputKind output_kind = OutputKind::Probability;
  bool output_minmax = false;  // min-max normalise the foreground map per frame (U2-Net, ISNet)
  MaskScaling mask_scaling = MaskScaling::Bilinear;  // how the mask reaches the frame's size
  std::vector<std::string> labels;  // optional; for ClassLogits its size must match the channels
  // The output is an alpha matte (a matting model's), not a probability: the compositing modes
  // (blur, replace, alpha) draw it soft whatever soft-mask says; the threshold only makes the
  // hard masks asked for elsewhere.
  bool output_matte = false;

  // Recurrent models: each pair's output, after a forward, is the paired input of the next
  // forward; zeros (of the input's static shape in the graph) before the first and after a
  // reset. Names are graph input/output names.
  struct StatePair {
    std::string input, output;
  };
  std::vector<StatePair> state;
  bool recurrent() const { return !state.empty(); }

  // Channels the output must have: 1, 2, or labels.size() (0 = any C >= 2) for ClassLogits.
  int expected_channels() const;
  bool multi_class() const { return output_kind == OutputKind::ClassLogits; }

  // Reads and validates a sidecar; throws unetseg::Error naming the file and the field.
  static ModelSpec load(const std::string& sidecar_path);
  // Checks every field; throws unetseg::Error naming `origin` (a file name) and the field.
  void validate(const std::string& origin) const;
  // model.onnx -> model.json (same directory, same stem).
  static std::string sidecar_path_for(const std::string& model_path);
};

const char* to_string(ColorOrder order);
const char* to_string(ResizeMethod method);
const char* to_string(MaskScaling scaling);
const char* to_string(OutputKind kind);

}  // namespace unetseg
