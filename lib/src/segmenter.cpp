#include "unetseg/segmenter.hpp"


#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <sstream>

#include <opencv2/core/cuda.hpp>
#include <opencv2/imgproc.hpp>

#include "unetseg/error.hpp"
#include "unetseg/model_file.hpp"
#include "unetseg/preprocess.hpp"

namespace unetseg {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string shape_string(const cv::Mat& m) {
  std::ostringstream s;
  for (int i = 0; i < m.dims; ++i) s << (i ? "x" : "") << m.size[i];
  return s.str();
}

std::string dims_string(const std::vector<std::int64_t>& dims) {
  std::ostringstream s;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    s << (i ? "x" : "");
    if (dims[i] < 0) s << "?";
    else s << dims[i];
  }
  return s.str();
}

}  // namespace

const char* to_string(Backend backend) {
  switch (backend) {
    case Backend::Auto: return "auto";
    case Backend::Cpu: return "cpu";
    case Backend::Cuda: return "cuda";
    case Backend::CudaFp16: return "cuda-fp16";
  }
  return "?";
}

bool backend_from_string(const std::string& name, Backend* backend) {
  for (Backend b : {Backend::Auto, Backend::Cpu, Backend::Cuda, Backend::CudaFp16}) {
    if (name == to_string(b)) {
      *backend = b;
      return true;
    }
  }
  return false;
}

bool opencv_has_cuda() {
  return !cv::dnn::getAvailableTargets(cv::dnn::DNN_BACKEND_CUDA).empty();
}

std::string cuda_unavailable_reason() {
  if (!opencv_has_cuda())
    return "this OpenCV (" CV_VERSION ") was built without the CUDA DNN backend";
  int devices = 0;
  try {
    // -1 is OpenCV's cudaErrorInsufficientDriver (no libcuda, or older than the runtime);
    // 0 is cudaErrorNoDevice.
    devices = cv::cuda::getCudaEnabledDeviceCount();
  } catch (const cv::Exception& e) {
    return "this OpenCV (" CV_VERSION ") has CUDA, but the CUDA runtime failed: " + e.err;
  }
  if (devices < 0)
    return "this OpenCV (" CV_VERSION ") has CUDA, but the NVIDIA driver is missing or too old "
           "for its CUDA runtime";
  if (devices == 0) return "this OpenCV (" CV_VERSION ") has CUDA, but no CUDA device is present";
  return "";
}

Segmenter::Segmenter(const std::string& model_path, const ModelSpec& spec, Backend requested)
    : Segmenter(model_path, read_model_file(model_path), spec, requested) {}

// The model file is read (and so checked) before its sidecar, so a wrong path is reported as
// such.
Segmenter::Segmenter(const std::string& model_path, Backend requested) : model_path_(model_path) {
  std::vector<std::uint8_t> bytes = read_model_file(model_path);
  spec_ = ModelSpec::load(ModelSpec::sidecar_path_for(model_path));
  requested_ = requested;
  load(bytes, requested);
}

Segmenter::Segmenter(const std::string& model_path, std::vector<std::uint8_t> bytes,
                     const ModelSpec& spec, Backend requested)
    : model_path_(model_path), spec_(spec), requested_(requested) {
  spec_.validate(ModelSpec::sidecar_path_for(model_path));
  load(bytes, requested);
}

void Segmenter::load(const std::vector<std::uint8_t>& bytes, Backend requested) {
  try {
    net_ = cv::dnn::readNetFromONNX(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  } catch (const cv::Exception& e) {
    throw Error("model " + model_path_ + " could not be loaded by OpenCV " CV_VERSION
                " (not an ONNX model, truncated, or using an operator OpenCV does not support): " +
                e.err);
  }
  if (net_.empty()) throw Error("model " + model_path_ + " holds no network");
  resolve_names(bytes);
  select_backend(requested);
}

// Which graph input the frame goes to, which output is the mask, and the state pairs, each
// checked against what the graph declares.
void Segmenter::resolve_names(const std::vector<std::uint8_t>& bytes) {
  const OnnxGraph graph = read_onnx_graph(bytes);
  const std::string sidecar = ModelSpec::sidecar_path_for(model_path_);
  const std::vector<std::string> opencv_outputs = net_.getUnconnectedOutLayersNames();
  std::vector<std::string> outputs;
  for (const GraphValue& v : graph.outputs) outputs.push_back(v.name);
  if (outputs.empty()) outputs = opencv_outputs;
  auto list = [](const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "" : ", ") + ("'" + n + "'");
    return s;
  };
  std::vector<std::string> inputs;
  for (const GraphValue& v : graph.inputs) inputs.push_back(v.name);

  // The states first: the frame's input is then the first input that is not one.
  for (std::size_t i = 0; i < spec_.state.size(); ++i) {
    const ModelSpec::StatePair& pair = spec_.state[i];
    const std::string field = "sidecar " + sidecar + ": state[" + std::to_string(i) + "]";
    const GraphValue* in = graph.input(pair.input);
    if (!in)
      throw Error("model " + model_path_ + " has no input named '" + pair.input + "' (" + field +
                  ".input; its inputs: " + list(inputs) + ")");
    if (in->dims.empty() ||
        std::any_of(in->dims.begin(), in->dims.end(), [](std::int64_t d) { return d < 1; }))
      throw Error("model " + model_path_ + ": state input '" + pair.input + "' has no fixed shape (" +
                  dims_string(in->dims) + "), so it cannot start as zeros (" + field + ")");
    if (!graph.output(pair.output) && net_.getLayerId(pair.output) < 0)
      throw Error("model " + model_path_ + " has no output named '" + pair.output + "' (" +
                  field + ".output; its outputs: " + list(outputs) + ")");
    std::vector<int> dims(in->dims.begin(), in->dims.end());
    State state{pair.input, pair.output, cv::Mat()};
    state.value.create(static_cast<int>(dims.size()), dims.data(), CV_32F);
    state.value.setTo(0);
    state_.push_back(std::move(state));
  }

  const GraphValue* image = nullptr;
  if (!spec_.input_name.empty()) {
    image = graph.input(spec_.input_name);
    if (!image && !graph.inputs.empty())
      throw Error("model " + model_path_ + " has no input named '" + spec_.input_name +
                  "' (sidecar " + sidecar + ": input.name; its inputs: " + list(inputs) + ")");
    input_name_ = spec_.input_name;
  } else {
    for (const GraphValue& v : graph.inputs)
      if (!image && std::none_of(state_.begin(), state_.end(),
                                 [&](const State& s) { return s.input == v.name; }))
        image = &v;
    if (image && !state_.empty()) input_name_ = image->name;  // else OpenCV's first input
  }
  // How many frames one forward may take: what the graph fixes as its batch (a file prepared
  // with models/prepare.py --batch N takes 1..N in OpenCV), any number where the batch is
  // symbolic; one for a recurrent model, whose states belong to one stream.
  if (!state_.empty() || !image || image->dims.empty())
    max_batch_ = 1;
  else
    max_batch_ = image->dims[0] > 0 ? static_cast<int>(std::min<std::int64_t>(image->dims[0], kAnyBatch))
                                    : kAnyBatch;
  // A graph that fixes its input size must be given frames of that size.
  if (image && image->dims.size() == 4 && image->dims[2] > 0 && image->dims[3] > 0 &&
      (image->dims[2] != spec_.input_height || image->dims[3] != spec_.input_width))
    throw Error("model " + model_path_ + ": its input '" + image->name + "' is " +
                dims_string(image->dims) + ", but its sidecar " + sidecar + " says input.width " +
                std::to_string(spec_.input_width) + ", input.height " +
                std::to_string(spec_.input_height));

  if (!spec_.output_name.empty()) {
    if (net_.getLayerId(spec_.output_name) < 0)
      throw Error("model " + model_path_ + " has no output named '" + spec_.output_name +
                  "' (its outputs: " + list(outputs) + ")");
    output_name_ = spec_.output_name;
  } else {
    if (static_cast<size_t>(spec_.output_index) >= outputs.size())
      throw Error("model " + model_path_ + " has " + std::to_string(outputs.size()) +
                  " output(s) (" + list(outputs) + "), so output.index " +
                  std::to_string(spec_.output_index) + " does not exist");
    output_name_ = outputs[spec_.output_index];
  }
  forward_names_.assign(1, output_name_);
  for (const State& s : state_) forward_names_.push_back(s.output);
}

void Segmenter::reset_state() {
  for (State& s : state_) s.value.setTo(0);
}

void Segmenter::forward(const cv::Mat& blob) {
  net_.setInput(blob, input_name_);
  for (const State& s : state_) net_.setInput(s.value, s.input);
  net_.forward(outputs_, forward_names_);
  // The states' outputs become the next forward's inputs (copies: OpenCV reuses its outputs).
  for (std::size_t i = 0; i < state_.size() && i + 1 < outputs_.size(); ++i)
    if (outputs_[i + 1].size == state_[i].value.size) outputs_[i + 1].copyTo(state_[i].value);
}

// Runs the warm-up forward on a zero blob with the current backend, checking the output.
void Segmenter::select_backend(Backend requested) {
  auto warm_up = [&] {
    const int dims[4] = {1, 3, spec_.input_height, spec_.input_width};
    blob_.create(4, dims, CV_32F);
    blob_.setTo(0);
    const auto t0 = Clock::now();
    forward(blob_);
    times_ = StageTimes();
    times_.forward_ms = ms_since(t0);
    check_outputs();
    reset_state();  // the warm-up's states are no frame's
  };
  auto use_cpu = [&] {
    net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net_.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    active_ = Backend::Cpu;
  };
  auto run_warm_up = [&] {
    try {
      warm_up();
    } catch (const cv::Exception& e) {
      throw Error("model " + model_path_ + " failed its first forward on the " +
                  to_string(active_) + " backend: " + e.err);
    }
  };

  // Why CUDA cannot be used here; empty when it can be tried.
  std::string no_cuda = requested == Backend::Cpu ? "" : cuda_unavailable_reason();

  if (requested == Backend::Cpu) {
    use_cpu();
    run_warm_up();
    return;
  }
  if (requested == Backend::Cuda || requested == Backend::CudaFp16) {
    if (!no_cuda.empty())
      throw Error("backend " + std::string(to_string(requested)) + " for model " + model_path_ +
                  " is unavailable: " + no_cuda);
    net_.setPreferableBackend(cv::dnn::DNN_BACKEND_CUDA);
    net_.setPreferableTarget(requested == Backend::Cuda ? cv::dnn::DNN_TARGET_CUDA
                                                        : cv::dnn::DNN_TARGET_CUDA_FP16);
    active_ = requested;
    run_warm_up();
    return;
  }

  // Auto: CUDA when it is there and really works, otherwise the CPU, saying why.
  if (no_cuda.empty()) {
    net_.setPreferableBackend(cv::dnn::DNN_BACKEND_CUDA);
    net_.setPreferableTarget(cv::dnn::DNN_TARGET_CUDA);
    active_ = Backend::Cuda;
    try {
      warm_up();
      return;
    } catch (const cv::Exception& e) {
      no_cuda = std::string("the first forward on CUDA failed: ") + e.err;
    }
  }
  backend_note_ = "using the CPU: " + no_cuda;
  use_cpu();
  run_warm_up();
}

void Segmenter::check_outputs() {
  if (outputs_.size() != forward_names_.size() || outputs_[0].empty())
    throw Error("model " + model_path_ + ": output '" + output_name_ + "' produced nothing");
  // Each state's output must be what its input takes back.
  for (std::size_t i = 0; i < state_.size(); ++i) {
    const cv::Mat& out = outputs_[i + 1];
    if (out.size != state_[i].value.size || out.type() != CV_32F)
      throw Error("model " + model_path_ + ": state output '" + state_[i].output + "' is " +
                  shape_string(out) + ", but its input '" + state_[i].input + "' takes " +
                  shape_string(state_[i].value) + " (sidecar " +
                  ModelSpec::sidecar_path_for(model_path_) + ": state[" + std::to_string(i) +
                  "])");
  }
  const cv::Mat& out = outputs_[0];
  int channels = 0;
  if (out.dims == 4 && out.size[0] == 1) {
    channels = out.size[1];
    output_size_ = cv::Size(out.size[3], out.size[2]);
  } else if (out.dims == 3 && out.size[0] == 1) {
    channels = 1;
    output_size_ = cv::Size(out.size[2], out.size[1]);
  }
  const std::string where = "model " + model_path_ + ": output '" + output_name_ + "' ";
  if (channels == 0 || output_size_.area() == 0)
    throw Error(where + "has shape " + shape_string(out) + ", expected 1xCxHxW");
  if (out.type() != CV_32F)
    throw Error(where + "is not 32-bit float (OpenCV type " + std::to_string(out.type()) + ")");

  const int expected = spec_.expected_channels();
  const std::string kind = to_string(spec_.output_kind);
  if (spec_.multi_class() && expected == 0) {
    if (channels < 2 || channels > 256)
      throw Error(where + "has " + std::to_string(channels) + " channel(s); its sidecar says " +
                  kind + ", which needs 2..256");
  } else if (channels != expected) {
    throw Error(where + "has shape " + shape_string(out) + " (" + std::to_string(channels) +
                " channel(s)) but its sidecar says " + kind + ", which needs " +
                std::to_string(expected) + (spec_.multi_class() ? " (one per label)" : ""));
  }
  output_channels_ = channels;
}

void Segmenter::preprocess(const FrameView& frame, cv::Mat& blob) {
  preprocess(frame, resized_, blob);
}

void Segmenter::preprocess(const FrameView& frame, cv::Mat& resized, cv::Mat& blob) const {
  if (!frame.data || frame.width <= 0 || frame.height <= 0 ||
      frame.stride < static_cast<std::size_t>(frame.width) * frame.bytes_per_pixel())
    throw Error("frame " + std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                " with stride " + std::to_string(frame.stride) + " has no pixels to segment");
  unetseg::preprocess(frame, spec_, resized, blob);
}

const Prediction& Segmenter::run(const FrameView& frame) {
  const auto t0 = Clock::now();
  preprocess(frame, blob_);
  const double preprocess_ms = ms_since(t0);
  infer(blob_);
  times_.preprocess_ms = preprocess_ms;
  return prediction_;
}

const Prediction& Segmenter::infer(const cv::Mat& blob) {
  times_.preprocess_ms = 0;
  auto t0 = Clock::now();
  forward(blob);
  times_.forward_ms = ms_since(t0);

  t0 = Clock::now();
  postprocess(outputs_[0].ptr<float>(), prediction_);
  times_.postprocess_ms = ms_since(t0);
  return prediction_;
}

void Segmenter::infer_batch(const std::vector<const cv::Mat*>& blobs, std::vector<Prediction>& out) {
  const int n = static_cast<int>(blobs.size());
  if (n == 0) return;
  if (n > max_batch())
    throw Error("model " + model_path_ + " takes at most " + std::to_string(max_batch()) +
                " frame(s) per forward, got " + std::to_string(n));
  // The batch in one reused buffer: grown to the largest batch seen, a header over its start.
  const std::size_t item = blobs[0]->total();
  for (const cv::Mat* b : blobs)
    if (b->total() != item || b->type() != CV_32F || !b->isContinuous())
      throw Error("model " + model_path_ + ": a batch needs blobs made by preprocess()");
  if (batch_storage_.total() < item * n) batch_storage_.create(1, static_cast<int>(item * n), CV_32F);
  for (int i = 0; i < n; ++i)
    std::copy_n(blobs[i]->ptr<float>(), item, batch_storage_.ptr<float>() + item * i);
  const int dims[4] = {n, 3, spec_.input_height, spec_.input_width};
  const cv::Mat batch(4, dims, CV_32F, batch_storage_.ptr<float>());

  times_ = StageTimes();
  auto t0 = Clock::now();
  forward(batch);
  times_.forward_ms = ms_since(t0);
  const cv::Mat& result = outputs_[0];
  if (result.dims < 3 || result.size[0] != n)
    throw Error("model " + model_path_ + " answered a batch of " + std::to_string(n) +
                " frames with output shape " + shape_string(result) +
                ": it cannot batch (prepare it with models/prepare.py --batch N)");
  t0 = Clock::now();
  if (out.size() < blobs.size()) out.resize(blobs.size());
  const std::size_t per_item = result.total() / n;
  for (int i = 0; i < n; ++i) postprocess(result.ptr<float>() + per_item * i, out[i]);
  times_.postprocess_ms = ms_since(t0);
}

void Segmenter::swap_state(std::vector<cv::Mat>& values) {
  if (values.size() != state_.size()) {  // a stream's first forward: from zeros
    values.resize(state_.size());
    for (std::size_t i = 0; i < state_.size(); ++i) {
      values[i].create(state_[i].value.dims, state_[i].value.size.p, CV_32F);
      values[i].setTo(0);
    }
  }
  for (std::size_t i = 0; i < state_.size(); ++i) std::swap(values[i], state_[i].value);
}

// Where any channel of the output is NaN or infinite, into `bad` (CV_8UC1, 255 there); returns
// how many such pixels. One cheap sum when all is well, the per-pixel scan only when not.
static std::size_t non_finite_pixels(const float* out, int channels, cv::Size size,
                                     cv::Mat& bad) {
  // NaN and Inf reach the sum (a vectorised pass); finite values only when huge, and then the
  // scan below finds nothing.
  const cv::Scalar total =
      cv::sum(cv::Mat(1, channels * size.area(), CV_32F, const_cast<float*>(out)));
  if (std::isfinite(total[0])) return 0;
  const std::size_t plane = static_cast<std::size_t>(size.area());
  bad.create(size, CV_8UC1);
  std::uint8_t* b = bad.ptr<std::uint8_t>();
  const float* v = out;
  std::size_t count = 0;
  for (std::size_t i = 0; i < plane; ++i) {
    bool finite = true;
    for (int c = 0; c < channels; ++c) finite = finite && std::isfinite(v[c * plane + i]);
    b[i] = finite ? 0 : 255;
    count += !finite;
  }
  return count;
}

void Segmenter::postprocess(const float* out, Prediction& prediction) {
  const int rows = output_size_.height, cols = output_size_.width;
  const size_t plane = static_cast<size_t>(rows) * cols;
  prediction.non_finite = non_finite_pixels(out, output_channels_, output_size_, non_finite_);
  // A channel of the output as a 2-D header over the blob: no copy.
  auto channel = [&](int c) { return cv::Mat(rows, cols, CV_32F, const_cast<float*>(out) + c * plane); };
  cv::Mat& fg = prediction.foreground;

  switch (spec_.output_kind) {
    case OutputKind::Probability:
      channel(0).copyTo(fg);
      break;
    case OutputKind::Logit:  // sigmoid
      cv::multiply(channel(0), -1.0, scratch_);
      cv::exp(scratch_, scratch_);
      cv::add(scratch_, 1.0, scratch_);
      cv::divide(1.0, scratch_, fg);
      break;
    case OutputKind::TwoClassLogits:  // softmax over 2 = sigmoid(l1 - l0)
      cv::subtract(channel(0), channel(1), scratch_);
      cv::exp(scratch_, scratch_);
      cv::add(scratch_, 1.0, scratch_);
      cv::divide(1.0, scratch_, fg);
      break;
    case OutputKind::ClassLogits: {
      const int classes = output_channels_;
      prediction.class_probabilities.resize(classes);
      prediction.class_map.create(rows, cols, CV_8U);
      scratch_.create(rows, cols, CV_32F);
      for (int c = 0; c < classes; ++c) prediction.class_probabilities[c].create(rows, cols, CV_32F);
      const float* logits = out;
      float* sum = scratch_.ptr<float>();
      uint8_t* best_class = prediction.class_map.ptr<uint8_t>();
      // Softmax per pixel, stable against large logits: subtract the pixel's maximum first.
      for (size_t i = 0; i < plane; ++i) {
        int best = 0;
        for (int c = 1; c < classes; ++c)
          if (logits[c * plane + i] > logits[best * plane + i]) best = c;
        best_class[i] = static_cast<uint8_t>(best);
        const float top = logits[best * plane + i];
        float total = 0;
        for (int c = 0; c < classes; ++c) {
          const float e = std::exp(logits[c * plane + i] - top);
          prediction.class_probabilities[c].ptr<float>()[i] = e;
          total += e;
        }
        sum[i] = total;
      }
      for (int c = 0; c < classes; ++c)
        cv::divide(prediction.class_probabilities[c], scratch_, prediction.class_probabilities[c]);
      cv::subtract(1.0, prediction.class_probabilities[0], fg);
      break;
    }
  }

  // NaN and Inf are background, whatever the kind made of them (cv::min/max would turn NaN into
  // 1: "everything is a person").
  if (prediction.non_finite > 0) {
    fg.setTo(0, non_finite_);
    if (spec_.multi_class()) {
      prediction.class_map.setTo(0, non_finite_);
      for (int c = 0; c < output_channels_; ++c)
        prediction.class_probabilities[c].setTo(c == 0 ? 1.0 : 0.0, non_finite_);
    }
  }

  if (spec_.output_minmax) {
    double lo = 0, hi = 0;
    cv::minMaxLoc(fg, &lo, &hi);
    // A flat map has no contrast to stretch; leave it as the model said.
    if (hi > lo) fg.convertTo(fg, CV_32F, 1.0 / (hi - lo), -lo / (hi - lo));
  }
  // Models and float rounding can stray just outside [0, 1]; the mask must not.
  cv::min(fg, 1.0, fg);
  cv::max(fg, 0.0, fg);
}

}  // namespace unetseg
