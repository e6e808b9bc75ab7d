#include "unetseg/async_segmenter.hpp"

#include <chrono>
#include <utility>

#include "unetseg/error.hpp"

namespace unetseg {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}
}  // namespace

void SegmentResult::assign(const Prediction& prediction, const cv::Mat& thumb,
                           std::int64_t frame_tag, const StageTimes& stage_times) {
  // copyTo of an empty Mat releases the destination: a binary model leaves class_map empty.
  prediction.foreground.copyTo(foreground);
  prediction.class_map.copyTo(class_map);
  thumb.copyTo(thumbnail);
  tag = frame_tag;
  times = stage_times;
  non_finite = prediction.non_finite;
}

AsyncSegmenter::AsyncSegmenter(Segmenter& segmenter)
    : segmenter_(segmenter), thread_([this] { loop(); }) {}

AsyncSegmenter::~AsyncSegmenter() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void AsyncSegmenter::throw_if_failed() const {
  if (!failure_.empty()) throw Error(failure_);
}

bool AsyncSegmenter::submit(const FrameView& frame, std::int64_t tag, const cv::Mat& thumbnail,
                            bool restart_state) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    throw_if_failed();
  }
  // The expensive part, outside the lock: the model thread keeps inferring meanwhile.
  const auto t0 = Clock::now();
  segmenter_.preprocess(frame, staging_.blob);
  thumbnail.copyTo(staging_.thumbnail);
  staging_.tag = tag;
  staging_.preprocess_ms = ms_since(t0);

  bool replaced;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    staging_.generation = generation_;
    staging_.restart_state = restart_state || (has_waiting_ && waiting_.restart_state);
    // A swap, not a copy: the replaced input's memory becomes the next staging area.
    std::swap(staging_, waiting_);
    replaced = has_waiting_;
    has_waiting_ = true;
  }
  wake_.notify_one();
  return !replaced;
}

void AsyncSegmenter::loop() {
  Input current;
  SegmentResult result;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || has_waiting_; });
    if (stop_) break;
    std::swap(current, waiting_);
    has_waiting_ = false;
    running_ = true;
    const bool restart = current.restart_state || restart_pending_;
    restart_pending_ = false;
    lock.unlock();

    // The forward, with no lock held: submit() and take_latest() go on meanwhile. The state of
    // a recurrent model is touched only here, on this thread.
    std::string failure;
    try {
      if (restart) segmenter_.reset_state();
      const Prediction& p = segmenter_.infer(current.blob);
      StageTimes times = segmenter_.last_times();
      times.preprocess_ms = current.preprocess_ms;
      result.assign(p, current.thumbnail, current.tag, times);
    } catch (const std::exception& e) {
      failure = std::string("inference failed: ") + e.what();
    }

    lock.lock();
    running_ = false;
    if (!failure.empty()) {
      failure_ = failure;
    } else if (current.generation == generation_) {
      result.sequence = ++produced_;
      std::swap(result, latest_);
    }
    if (!has_waiting_) idle_.notify_all();
  }
}

bool AsyncSegmenter::take_latest(SegmentResult& out) {
  std::lock_guard<std::mutex> lock(mutex_);
  throw_if_failed();
  // Sequences only grow (a flush empties latest_ but keeps counting), so "newer" is ">".
  if (latest_.sequence == 0 || latest_.sequence <= out.sequence) return false;
  latest_.foreground.copyTo(out.foreground);
  latest_.class_map.copyTo(out.class_map);
  latest_.thumbnail.copyTo(out.thumbnail);
  out.tag = latest_.tag;
  out.sequence = latest_.sequence;
  out.times = latest_.times;
  out.non_finite = latest_.non_finite;
  return true;
}

void AsyncSegmenter::flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++generation_;
  has_waiting_ = false;
  restart_pending_ = true;
  latest_.sequence = 0;
  latest_.tag = -1;
  if (!running_) idle_.notify_all();
}

void AsyncSegmenter::wait_idle() {
  std::unique_lock<std::mutex> lock(mutex_);
  idle_.wait(lock, [this] { return !has_waiting_ && !running_; });
}

bool AsyncSegmenter::busy() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return has_waiting_ || running_;
}

}  // namespace unetseg
