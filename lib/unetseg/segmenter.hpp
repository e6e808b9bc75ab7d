// Runs an ONNX segmentation model through OpenCV DNN on a frame view.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include "unetseg/frame.hpp"
#include "unetseg/model_spec.hpp"

namespace unetseg {

enum class Backend { Auto, Cpu, Cuda, CudaFp16 };
const char* to_string(Backend backend);
bool backend_from_string(const std::string& name, Backend* backend);

// Whether this OpenCV build has the DNN CUDA backend compiled in.
bool opencv_has_cuda();
// Why the CUDA backend cannot run in this process (no CUDA in this OpenCV, no usable driver,
// no device), or empty when it can be tried: only a first forward proves that it works.
std::string cuda_unavailable_reason();

// What a model said about one frame, at the model's output resolution. Owned by the Segmenter
// and overwritten by its next run(): copy what must outlive it.
struct Prediction {
  cv::Mat foreground;  // CV_32FC1, foreground probability in [0,1]; multi-class: 1 - P(class 0)
  cv::Mat class_map;   // CV_8UC1 argmax class ids; empty unless multi-class
  std::vector<cv::Mat> class_probabilities;  // CV_32FC1 softmax per class; multi-class only
  // Pixels where the model's output was NaN or infinite (a broken export, an fp16 overflow):
  // they are background (foreground 0, class 0), never foreground.
  std::size_t non_finite = 0;
};

struct StageTimes {
  double preprocess_ms = 0;
  double forward_ms = 0;
  double postprocess_ms = 0;
  double total_ms() const { return preprocess_ms + forward_ms + postprocess_ms; }
};

class Segmenter {
 public:
  // Loads the model and runs one warm-up forward to check that its real output fits the spec.
  // Throws unetseg::Error naming the file and the reason (unreadable, not ONNX, refused by
  // OpenCV, an input, output or state the sidecar names missing or of the wrong shape, an input
  // size that contradicts the graph's, backend unavailable).
  Segmenter(const std::string& model_path, const ModelSpec& spec, Backend requested);
  // Same, with the spec read from the model's sidecar.
  Segmenter(const std::string& model_path, Backend requested);

  Segmenter(const Segmenter&) = delete;
  Segmenter& operator=(const Segmenter&) = delete;

  const ModelSpec& spec() const { return spec_; }
  const std::string& model_path() const { return model_path_; }
  Backend requested_backend() const { return requested_; }
  Backend active_backend() const { return active_; }
  // Why the active backend differs from the requested one (empty when it does not).
  const std::string& backend_note() const { return backend_note_; }
  cv::Size output_size() const { return output_size_; }
  int output_channels() const { return output_channels_; }

  // Fills `blob` (1x3xHxW float, reused) from the frame: stretch + colour order + normalise.
  void preprocess(const FrameView& frame, cv::Mat& blob);
  // The same with the caller's scratch (`resized`, reused): any number of threads may call it
  // at once, also while another infers (it reads only the spec).
  void preprocess(const FrameView& frame, cv::Mat& resized, cv::Mat& blob) const;
  // The whole way from frame to prediction; the result is valid until the next run() or infer().
  const Prediction& run(const FrameView& frame);
  // The model's half of run(): forward and postprocess of a blob made by preprocess(). The two
  // halves share no state, so one thread may preprocess the next frame while another infers
  // (AsyncSegmenter); infer() itself and run() must not overlap.
  const Prediction& infer(const cv::Mat& blob);
  // Recurrent models (ModelSpec::state): run() and infer() feed each state output back as the
  // next forward's input. reset_state() makes the next forward start from zeros (a new scene,
  // a seek); the same threading rule as infer() applies.
  bool recurrent() const { return !state_.empty(); }
  void reset_state();
  // Exchanges the recurrent state with `values` (headers only, no copy), so that one network
  // can carry the memory of several streams, each keeping its own between forwards: swap a
  // stream's values in, infer, swap them back out. Empty `values` (a stream's first forward)
  // are made zeros of the states' shapes first. Nothing for other models.
  void swap_state(std::vector<cv::Mat>& values);

  // The most frames one forward can take: the batch the graph's image input fixes (a model
  // prepared with models/prepare.py --batch N: OpenCV runs any 1..N on it), kAnyBatch where
  // it is symbolic, 1 for recurrent models (their state is one stream's).
  static constexpr int kAnyBatch = 1 << 16;
  int max_batch() const { return max_batch_; }
  // infer() for several blobs of preprocess() at once, in one forward of batch
  // blobs.size() <= max_batch(): out[i] (resized to fit, its Mats reused) is what infer(blobs[i])
  // gives. last_times() then holds the batch's forward and all items' postprocess. A model whose
  // symbolic batch OpenCV cannot run throws unetseg::Error saying so; the threading rule of
  // infer() applies. Not for recurrent models (max_batch() 1: use infer()).
  void infer_batch(const std::vector<const cv::Mat*>& blobs, std::vector<Prediction>& out);
  // Of the last run() or infer(); before the first, the warm-up forward's (usually the slowest
  // a model takes: first-use allocations), an estimate of what a frame will cost.
  const StageTimes& last_times() const { return times_; }

 private:
  Segmenter(const std::string& model_path, std::vector<std::uint8_t> bytes,
            const ModelSpec& spec, Backend requested);
  void load(const std::vector<std::uint8_t>& bytes, Backend requested);
  void resolve_names(const std::vector<std::uint8_t>& bytes);
  void select_backend(Backend requested);
  void forward(const cv::Mat& blob);  // the inputs set, the outputs run; states fed back
  void check_outputs();
  void postprocess(const float* out, Prediction& prediction);  // one item of the output

  struct State {
    std::string input, output;  // graph names
    cv::Mat value;              // what the next forward reads: zeros, then the last output
  };

  std::string model_path_;
  ModelSpec spec_;
  cv::dnn::Net net_;
  std::string input_name_;   // the graph input the frame goes to ("" = the first)
  std::string output_name_;  // resolved layer name of the output we read
  std::vector<cv::String> forward_names_;  // output_name_, then each state's output
  std::vector<State> state_;
  Backend requested_ = Backend::Auto;
  Backend active_ = Backend::Cpu;
  std::string backend_note_;
  cv::Size output_size_;
  int output_channels_ = 0;
  int max_batch_ = 1;

  // Reused across frames so that run() allocates nothing after the first frame.
  cv::Mat resized_;
  cv::Mat blob_;
  cv::Mat batch_storage_;  // infer_batch(): the batch's blobs side by side
  std::vector<cv::Mat> outputs_;
  Prediction prediction_;
  cv::Mat scratch_;
  cv::Mat non_finite_;  // CV_8UC1: where the last output was NaN or infinite
  StageTimes times_;
};

}  // namespace unetseg
