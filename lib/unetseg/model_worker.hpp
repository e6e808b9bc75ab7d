// One loaded model and the one thread that runs it, serving any number of video streams. Each
// stream hands its frames over through an AsyncSegmenter made from the worker; frames of several
// streams waiting at the same time go through the network together, as one batch, where the
// model allows it (Segmenter::max_batch). Several cameras then share one network in memory and
// one forward at a time, instead of each loading its own and all fighting over the cores.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "unetseg/segmenter.hpp"

namespace unetseg {

class AsyncSegmenter;

class ModelWorker {
 public:
  struct Options {
    // The most frames one forward takes (>= 1); the model may allow fewer (max_batch()).
    int batch_size = 4;
    // 0: a forward takes the frames that are waiting and never waits for more. > 0: when fewer
    // streams have a frame waiting than could share the forward, wait up to this long
    // (milliseconds) for the others' frames first. Bounds how much later a frame may be
    // inferred than it could be; larger batches cost less per frame on a CPU.
    int batch_timeout_ms = 0;
  };
  // Throws unetseg::Error naming the field when an option is out of range.
  static void check(const Options& options);

  // Starts the thread. The worker owns the segmenter from here on: nothing else may call its
  // run(), infer(), infer_batch(), preprocess(frame, blob) or state functions meanwhile (the
  // const preprocess and the accessors are free to use).
  explicit ModelWorker(std::shared_ptr<Segmenter> segmenter, const Options& options);
  explicit ModelWorker(std::shared_ptr<Segmenter> segmenter)
      : ModelWorker(std::move(segmenter), Options()) {}
  // Joins the thread; every AsyncSegmenter made from it is gone by then (each holds a reference).
  ~ModelWorker();
  ModelWorker(const ModelWorker&) = delete;
  ModelWorker& operator=(const ModelWorker&) = delete;

  Segmenter& segmenter() const { return *segmenter_; }
  // The segmenter's last_times() when the worker started (its warm-up forward's): what a frame
  // is likely to cost, readable from any thread (last_times() is the worker thread's).
  const StageTimes& first_times() const { return first_times_; }
  const Options& options() const { return options_; }
  // What one forward really takes: min(options().batch_size, the model's max_batch()), and 1
  // once the model failed a batched forward (its symbolic batch was not runnable after all:
  // frames then go one by one; batch_note() says why).
  int batch_limit() const;
  std::string batch_note() const;

  struct Counters {
    std::uint64_t forwards = 0;  // forwards run
    std::uint64_t frames = 0;    // frames inferred: frames / forwards is the mean batch
    std::size_t streams = 0;     // streams attached now
  };
  Counters counters() const;
  // Streams attached now, without the lock (a frame asks it: do others share the cores?).
  std::size_t streams() const { return stream_count_.load(std::memory_order_relaxed); }

 private:
  friend class AsyncSegmenter;
  struct Job;
  void attach(AsyncSegmenter* stream);
  void detach(AsyncSegmenter* stream);  // waits while the stream's frame is in the model
  std::size_t waiting() const;          // streams with a frame waiting; lock held
  std::size_t expected() const;         // frames a forward may wait for (not paused); lock held
  void loop();
  void run(std::vector<Job>& jobs, std::size_t n);  // no lock held

  std::shared_ptr<Segmenter> segmenter_;
  const Options options_;
  StageTimes first_times_;
  mutable std::mutex mutex_;          // guards this and every attached stream's hand-over fields
  std::condition_variable wake_;      // the thread: a frame is waiting, or stop
  std::condition_variable done_;      // streams: a forward ended, or a stream was flushed
  std::vector<AsyncSegmenter*> streams_;
  std::uint64_t submitted_ = 0;       // orders waiting frames: the oldest goes first
  std::vector<const cv::Mat*> blobs_;    // run()'s, reused
  std::vector<Prediction> predictions_;  // run()'s, reused
  int batch_limit_ = 1;
  std::string batch_note_;
  Counters counters_;
  std::atomic<std::size_t> stream_count_{0};
  bool stop_ = false;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace unetseg
