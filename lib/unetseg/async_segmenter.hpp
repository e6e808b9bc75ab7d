// Runs a Segmenter on a thread of its own, always on the newest frame handed to it, so that the
// thread handing frames over (a live video's streaming thread) never waits for the model.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include <opencv2/core.hpp>

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

  // Copies a prediction in, reusing this result's memory when the sizes match.
  void assign(const Prediction& prediction, const cv::Mat& thumbnail, std::int64_t tag,
              const StageTimes& times);
};

class AsyncSegmenter {
 public:
  // Starts the model thread. `segmenter` must outlive this object, and nothing else may call
  // its preprocess(), run() or infer() meanwhile.
  explicit AsyncSegmenter(Segmenter& segmenter);
  // Stops the thread: a forward in progress finishes first (OpenCV cannot interrupt one), a
  // frame still waiting is dropped.
  ~AsyncSegmenter();
  AsyncSegmenter(const AsyncSegmenter&) = delete;
  AsyncSegmenter& operator=(const AsyncSegmenter&) = delete;

  // Preprocesses `frame` here, on the calling thread (so the frame need not outlive the call,
  // and no copy of it is kept), and hands the model's input to the model thread, in place of
  // any earlier frame still waiting there (the one being inferred is never replaced). Returns
  // false when such a waiting frame was replaced unseen. Never waits for a forward.
  // Throws unetseg::Error when an earlier forward failed (its message). With restart_state, a
  // recurrent model forgets its state before this frame (a scene cut); a restart asked for by
  // a frame that gets replaced unseen passes to the frame replacing it.
  bool submit(const FrameView& frame, std::int64_t tag, const cv::Mat& thumbnail = cv::Mat(),
              bool restart_state = false);

  // Copies the newest result into `out` when it is newer than out.sequence (out's memory is
  // reused); returns whether it did. Holds the lock only for the copy of a model-size map.
  // Throws unetseg::Error when a forward failed.
  bool take_latest(SegmentResult& out);

  // Forgets the waiting frame and every result so far: take_latest() then gives only results
  // of frames submitted after the flush (a forward in progress finishes unseen), and a
  // recurrent model starts the next frame from a zero state.
  void flush();
  // Blocks until no frame is waiting or being inferred (draining at end of stream; tests).
  void wait_idle();
  // Whether a frame is waiting or being inferred.
  bool busy() const;

 private:
  struct Input {
    cv::Mat blob, thumbnail;
    std::int64_t tag = -1;
    std::uint64_t generation = 0;
    double preprocess_ms = 0;
    bool restart_state = false;
  };
  void loop();
  void throw_if_failed() const;  // with the lock held

  Segmenter& segmenter_;
  Input staging_;  // the submitting thread's own: filled without the lock
  mutable std::mutex mutex_;
  std::condition_variable wake_;  // the model thread: a frame is waiting, or stop
  std::condition_variable idle_;  // wait_idle(): nothing waiting or running
  Input waiting_;
  bool has_waiting_ = false;
  bool running_ = false;
  bool stop_ = false;
  bool restart_pending_ = false;  // flush(): the next forward starts from a zero state
  std::uint64_t generation_ = 0;  // bumped by flush(): older results are dropped
  std::uint64_t produced_ = 0;
  SegmentResult latest_;
  std::string failure_;  // what the last failed forward said
  std::thread thread_;   // last: starts once everything above exists
};

}  // namespace unetseg
