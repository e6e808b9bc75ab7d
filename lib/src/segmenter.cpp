#include "unetseg/segmenter.hpp"

#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include <opencv2/core/cuda.hpp>
#include <opencv2/imgproc.hpp>

#include "unetseg/error.hpp"
#include "unetseg/preprocess.hpp"

namespace unetseg {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The names of an ONNX graph's outputs in the graph's own order (what Netron shows), read
// straight from the protobuf wire format: ModelProto.graph (7) -> GraphProto.output (12) ->
// ValueInfoProto.name (1). OpenCV only lists outputs in layer order, which for U2-Net puts the
// fused d0 last; a sidecar's output.index must mean the graph's order. Empty if unreadable.
class ProtoReader {
 public:
  ProtoReader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  bool done() const { return p_ >= end_; }
  bool next(uint32_t* field, uint32_t* wire) {
    uint64_t key;
    if (!varint(&key)) return false;
    *field = static_cast<uint32_t>(key >> 3);
    *wire = static_cast<uint32_t>(key & 7);
    return true;
  }
  bool bytes(ProtoReader* sub) {
    uint64_t n;
    if (!varint(&n) || n > static_cast<uint64_t>(end_ - p_)) return false;
    *sub = ProtoReader(p_, n);
    p_ += n;
    return true;
  }
  bool skip(uint32_t wire) {
    uint64_t v;
    ProtoReader sub(nullptr, 0);
    switch (wire) {
      case 0: return varint(&v);
      case 1: return advance(8);
      case 2: return bytes(&sub);
      case 5: return advance(4);
      default: return false;
    }
  }
  std::string rest() const { return std::string(reinterpret_cast<const char*>(p_), end_ - p_); }

 private:
  bool advance(size_t n) {
    if (n > static_cast<size_t>(end_ - p_)) return false;
    p_ += n;
    return true;
  }
  bool varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && p_ < end_; shift += 7) {
      const uint8_t b = *p_++;
      *v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  const uint8_t* p_;
  const uint8_t* end_;
};

std::vector<std::string> onnx_graph_outputs(const std::vector<uint8_t>& model) {
  std::vector<std::string> names;
  ProtoReader top(model.data(), model.size());
  uint32_t field, wire;
  while (!top.done() && top.next(&field, &wire)) {
    if (field == 7 && wire == 2) {
      ProtoReader graph(nullptr, 0);
      if (!top.bytes(&graph)) return {};
      while (!graph.done() && graph.next(&field, &wire)) {
        if (field == 12 && wire == 2) {
          ProtoReader info(nullptr, 0);
          if (!graph.bytes(&info)) return {};
          while (!info.done() && info.next(&field, &wire)) {
            ProtoReader name(nullptr, 0);
            if (field == 1 && wire == 2) {
              if (!info.bytes(&name)) return {};
              names.push_back(name.rest());
            } else if (!info.skip(wire)) {
              return {};
            }
          }
        } else if (!graph.skip(wire)) {
          return {};
        }
      }
      return names;
    }
    if (!top.skip(wire)) return {};
  }
  return {};
}

// Refuses what cannot be a model file before anything tries to read it (a device such as
// /dev/zero would never end). Returns the file's size.
size_t check_model_file(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    throw Error("model " + path + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error("model " + path + " is a directory, not an ONNX file");
  if (!S_ISREG(st.st_mode))
    throw Error("model " + path + " is not a regular file (a device or pipe?), not an ONNX file");
  if (st.st_size == 0) throw Error("model " + path + " is empty (0 bytes)");
  return static_cast<size_t>(st.st_size);
}

std::vector<uint8_t> read_model_file(const std::string& path) {
  const size_t size = check_model_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("model " + path + " cannot be opened: " + std::strerror(errno));
  std::vector<uint8_t> bytes(size);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
    throw Error("model " + path + " could not be read completely");
  return bytes;
}

std::string shape_string(const cv::Mat& m) {
  std::ostringstream s;
  for (int i = 0; i < m.dims; ++i) s << (i ? "x" : "") << m.size[i];
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
    : model_path_(model_path), spec_(spec), requested_(requested) {
  spec_.validate(ModelSpec::sidecar_path_for(model_path));
  load(requested);
}

// The model file is checked before its sidecar, so a wrong path is reported as such.
Segmenter::Segmenter(const std::string& model_path, Backend requested)
    : Segmenter(model_path,
                (check_model_file(model_path),
                 ModelSpec::load(ModelSpec::sidecar_path_for(model_path))),
                requested) {}

void Segmenter::load(Backend requested) {
  const std::vector<uint8_t> bytes = read_model_file(model_path_);
  try {
    net_ = cv::dnn::readNetFromONNX(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  } catch (const cv::Exception& e) {
    throw Error("model " + model_path_ + " could not be loaded by OpenCV " CV_VERSION
                " (not an ONNX model, truncated, or using an operator OpenCV does not support): " +
                e.err);
  }
  if (net_.empty()) throw Error("model " + model_path_ + " holds no network");

  // Resolve the output we read to a layer name OpenCV can forward to.
  const std::vector<std::string> graph_outputs = onnx_graph_outputs(bytes);
  const std::vector<std::string> opencv_outputs = net_.getUnconnectedOutLayersNames();
  const std::vector<std::string>& outputs = graph_outputs.empty() ? opencv_outputs : graph_outputs;
  auto list = [&] {
    std::string s;
    for (const auto& n : outputs) s += (s.empty() ? "" : ", ") + ("'" + n + "'");
    return s;
  };
  if (!spec_.output_name.empty()) {
    if (net_.getLayerId(spec_.output_name) < 0)
      throw Error("model " + model_path_ + " has no output named '" + spec_.output_name +
                  "' (its outputs: " + list() + ")");
    output_name_ = spec_.output_name;
  } else {
    if (static_cast<size_t>(spec_.output_index) >= outputs.size())
      throw Error("model " + model_path_ + " has " + std::to_string(outputs.size()) +
                  " output(s) (" + list() + "), so output.index " +
                  std::to_string(spec_.output_index) + " does not exist");
    output_name_ = outputs[spec_.output_index];
  }

  select_backend(requested);
}

// Runs the warm-up forward on a zero blob with the current backend, checking the output.
void Segmenter::select_backend(Backend requested) {
  auto warm_up = [&] {
    const int dims[4] = {1, 3, spec_.input_height, spec_.input_width};
    blob_.create(4, dims, CV_32F);
    blob_.setTo(0);
    net_.setInput(blob_);
    const auto t0 = Clock::now();
    net_.forward(outputs_, output_name_);
    times_ = StageTimes();
    times_.forward_ms = ms_since(t0);
    if (outputs_.empty())
      throw Error("model " + model_path_ + ": output '" + output_name_ + "' produced nothing");
    check_output(outputs_[0]);
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

void Segmenter::check_output(const cv::Mat& out) {
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
  if (!frame.data || frame.width <= 0 || frame.height <= 0 ||
      frame.stride < static_cast<std::size_t>(frame.width) * frame.bytes_per_pixel())
    throw Error("frame " + std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                " with stride " + std::to_string(frame.stride) + " has no pixels to segment");
  unetseg::preprocess(frame, spec_, resized_, blob);
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
  net_.setInput(blob);
  net_.forward(outputs_, output_name_);
  times_.forward_ms = ms_since(t0);

  t0 = Clock::now();
  postprocess(outputs_[0]);
  times_.postprocess_ms = ms_since(t0);
  return prediction_;
}

void Segmenter::postprocess(const cv::Mat& out) {
  const int rows = output_size_.height, cols = output_size_.width;
  const size_t plane = static_cast<size_t>(rows) * cols;
  // A channel of the output as a 2-D header over the blob: no copy.
  auto channel = [&](int c) {
    return cv::Mat(rows, cols, CV_32F, const_cast<float*>(out.ptr<float>()) + c * plane);
  };
  cv::Mat& fg = prediction_.foreground;

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
      prediction_.class_probabilities.resize(classes);
      prediction_.class_map.create(rows, cols, CV_8U);
      scratch_.create(rows, cols, CV_32F);
      for (int c = 0; c < classes; ++c) prediction_.class_probabilities[c].create(rows, cols, CV_32F);
      const float* logits = out.ptr<float>();
      float* sum = scratch_.ptr<float>();
      uint8_t* best_class = prediction_.class_map.ptr<uint8_t>();
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
          prediction_.class_probabilities[c].ptr<float>()[i] = e;
          total += e;
        }
        sum[i] = total;
      }
      for (int c = 0; c < classes; ++c)
        cv::divide(prediction_.class_probabilities[c], scratch_, prediction_.class_probabilities[c]);
      cv::subtract(1.0, prediction_.class_probabilities[0], fg);
      break;
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
