// Runs a Segmenter on a thread of its own (a ModelWorker's, maybe shared with other streams),
// always on the newest frame handed to it, so that the thread handing frames over (a live
// video's streaming thread) never waits for the model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "unetseg/model_worker.hpp"
#include "unetseg/segmenter.hpp"

namespace unetseg {

// One finished inference: what the model said about the frame tagged `tag`.
struct SegmentResult {
  cv::Mat foreground;      // CV_32FC1 at the model's output size (Prediction::foreground)
  cv::Mat class_map;       // CV_8UC1, multi-class models only (Prediction::class_map)
  cv::Mat thumbnail;       // what submit() was given with the frame, carried through unchanged
  std::int64_t tag = -1;   // the submitter's name for the frame (the element: its PTS)
  std::uint64_t sequence = 0;  // 1, 2, ... in the order results were produced; 0: none yet
  StageTimes times;        // preprocess (on the submitting thread), forward, postprocess
  std::size_t non_finite = 0;  // Prediction::non_finite: NaN/Inf pixels made background
  int batch = 1;           // frames in the forward that made it (streams sharing a model)

  // Copies a prediction in, reusing this result's memory when the sizes match.
  void assign(const Prediction& prediction, const cv::Mat& thumbnail, std::int64_t tag,
              const StageTimes& times);
};

// One video stream's way to a ModelWorker: frames are preprocessed on the stream's thread and
// inferred on the worker's, together with other streams' frames where they can share a forward.
class AsyncSegmenter {
 public:
  // Attaches to `worker` (kept alive by this object).
  explicit AsyncSegmenter(std::shared_ptr<ModelWorker> worker);
  // A worker of its own for `segmenter` (ModelWorker's ownership rule applies).
  explicit AsyncSegmenter(std::shared_ptr<Segmenter> segmenter)
      : AsyncSegmenter(std::make_shared<ModelWorker>(std::move(segmenter))) {}
  // Detaches: a forward of this stream's frame in progress finishes first (OpenCV cannot
  // interrupt one), a frame still waiting is dropped.
  ~AsyncSegmenter();
  AsyncSegmenter(const AsyncSegmenter&) = delete;
  AsyncSegmenter& operator=(const AsyncSegmenter&) = delete;

  Segmenter& segmenter() const { return worker_->segmenter(); }
  ModelWorker& worker() const { return *worker_; }

  // Live: preprocesses `frame` here, on the calling thread (so the frame need not outlive the
  // call, and no copy of it is kept), and hands the model's input to the worker, in place of
  // any earlier frame of this stream still waiting there (the one being inferred is never
  // replaced). Returns false when such a waiting frame was replaced unseen. Never waits for a
  // forward. Throws unetseg::Error when an earlier forward of this stream failed (its message).
  // With restart_state, a recurrent model forgets this stream's state before this frame (a
  // scene cut); a restart asked for by a frame that gets replaced unseen passes to the frame
  // replacing it.
  bool submit(const FrameView& frame, std::int64_t tag, const cv::Mat& thumbnail = cv::Mat(),
              bool restart_state = false);

  // Offline: submit() and wait for this frame's own result, into `out` as take_latest() gives
  // it. Returns false only when a flush() from another thread dropped the frame meanwhile.
  // Waits at most for the forwards ahead of it (at most one per attached stream), plus the
  // worker's batch_timeout_ms.
  bool run(const FrameView& frame, std::int64_t tag, SegmentResult& out,
           const cv::Mat& thumbnail = cv::Mat(), bool restart_state = false);

  // Copies the newest result into `out` when it is newer than out.sequence (out's memory is
  // reused; sequences count per stream, so `out` is this stream's own); returns whether it did. Holds the lock only for the copy of a model-size map.
  // Throws unetseg::Error when a forward failed.
  bool take_latest(SegmentResult& out);

  // Forgets the waiting frame and every result so far: take_latest() then gives only results
  // of frames submitted after the flush (a forward in progress finishes unseen), and a
  // recurrent model starts the next frame from a zero state.
  void flush();
  // Blocks until no frame of this stream is waiting or being inferred (draining at end of
  // stream; tests).
  void wait_idle();
  // Whether a frame of this stream is waiting or being inferred.
  bool busy() const;
  // The stream sends no frames for a while (end of stream, a stalled source): the worker stops
  // holding forwards for its frame (ModelWorker::Options::batch_timeout_ms) until its next
  // submit().
  void pause();

 private:
  friend class ModelWorker;
  struct Input {
    cv::Mat blob, thumbnail;
    std::int64_t tag = -1;
    std::uint64_t generation = 0;
    std::uint64_t order = 0;  // the worker's submission count: the oldest frame goes first
    double preprocess_ms = 0;
    bool restart_state = false;
  };
  void throw_if_failed() const;  // with the worker's lock held

  std::shared_ptr<ModelWorker> worker_;
  Input staging_;    // the submitting thread's own: filled without the lock
  cv::Mat resized_;  // the submitting thread's preprocess scratch
  // The fields below are guarded by the worker's mutex, but for state_: the worker's thread
  // alone touches it, while this stream's frame is in the model.
  Input waiting_;
  bool has_waiting_ = false;
  bool running_ = false;
  bool restart_pending_ = false;  // flush(): the next forward starts from a zero state
  bool paused_ = false;           // pause() until the next submit()
  std::uint64_t generation_ = 0;  // bumped by flush(): older results are dropped
  std::uint64_t produced_ = 0;
  SegmentResult latest_;
  std::string failure_;           // what the last failed forward said
  std::vector<cv::Mat> state_;    // a recurrent model's memory of this stream
};

}  // namespace unetseg
