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
  batch = 1;
}

AsyncSegmenter::AsyncSegmenter(std::shared_ptr<ModelWorker> worker) : worker_(std::move(worker)) {
  if (!worker_) throw Error("AsyncSegmenter: no model worker");
  worker_->attach(this);
}

AsyncSegmenter::~AsyncSegmenter() { worker_->detach(this); }

void AsyncSegmenter::throw_if_failed() const {
  if (!failure_.empty()) throw Error(failure_);
}

bool AsyncSegmenter::submit(const FrameView& frame, std::int64_t tag, const cv::Mat& thumbnail,
                            bool restart_state) {
  {
    std::lock_guard<std::mutex> lock(worker_->mutex_);
    throw_if_failed();
  }
  // The expensive part, outside the lock: the worker keeps inferring meanwhile.
  const auto t0 = Clock::now();
  worker_->segmenter().preprocess(frame, resized_, staging_.blob);
  thumbnail.copyTo(staging_.thumbnail);
  staging_.tag = tag;
  staging_.preprocess_ms = ms_since(t0);

  bool replaced;
  {
    std::lock_guard<std::mutex> lock(worker_->mutex_);
    staging_.generation = generation_;
    staging_.order = ++worker_->submitted_;
    staging_.restart_state = restart_state || (has_waiting_ && waiting_.restart_state);
    // A swap, not a copy: the replaced input's memory becomes the next staging area.
    std::swap(staging_, waiting_);
    replaced = has_waiting_;
    has_waiting_ = true;
    paused_ = false;
  }
  worker_->wake_.notify_one();
  return !replaced;
}

bool AsyncSegmenter::run(const FrameView& frame, std::int64_t tag, SegmentResult& out,
                         const cv::Mat& thumbnail, bool restart_state) {
  submit(frame, tag, thumbnail, restart_state);
  wait_idle();
  return take_latest(out);
}

bool AsyncSegmenter::take_latest(SegmentResult& out) {
  std::lock_guard<std::mutex> lock(worker_->mutex_);
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
  out.batch = latest_.batch;
  return true;
}

void AsyncSegmenter::flush() {
  {
    std::lock_guard<std::mutex> lock(worker_->mutex_);
    ++generation_;
    has_waiting_ = false;
    restart_pending_ = true;
    latest_.sequence = 0;
    latest_.tag = -1;
  }
  worker_->done_.notify_all();
}

void AsyncSegmenter::wait_idle() {
  std::unique_lock<std::mutex> lock(worker_->mutex_);
  worker_->done_.wait(lock, [this] { return (!has_waiting_ && !running_) || !failure_.empty(); });
}

void AsyncSegmenter::pause() {
  {
    std::lock_guard<std::mutex> lock(worker_->mutex_);
    paused_ = true;
  }
  worker_->wake_.notify_one();  // a forward held for this stream's frame goes now
}

bool AsyncSegmenter::busy() const {
  std::lock_guard<std::mutex> lock(worker_->mutex_);
  return has_waiting_ || running_;
}

}  // namespace unetseg
