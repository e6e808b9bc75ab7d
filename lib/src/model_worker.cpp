#include "unetseg/model_worker.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "unetseg/async_segmenter.hpp"
#include "unetseg/error.hpp"

namespace unetseg {

// One frame in the model: taken from its stream under the lock, inferred without it.
struct ModelWorker::Job {
  AsyncSegmenter* stream = nullptr;
  AsyncSegmenter::Input input;
  bool restart = false;
  SegmentResult result;
  std::string failure;
};

void ModelWorker::check(const Options& o) {
  if (o.batch_size < 1 || o.batch_size > 256)
    throw Error("ModelWorker: batch_size must be 1 to 256, got " + std::to_string(o.batch_size));
  if (o.batch_timeout_ms < 0 || o.batch_timeout_ms > 10000)
    throw Error("ModelWorker: batch_timeout_ms must be 0 to 10000, got " +
                std::to_string(o.batch_timeout_ms));
}

ModelWorker::ModelWorker(std::shared_ptr<Segmenter> segmenter, const Options& options)
    : segmenter_(std::move(segmenter)), options_(options) {
  if (!segmenter_) throw Error("ModelWorker: no segmenter");
  check(options_);
  batch_limit_ = std::max(1, std::min(options_.batch_size, segmenter_->max_batch()));
  first_times_ = segmenter_->last_times();
  thread_ = std::thread([this] { loop(); });
}

ModelWorker::~ModelWorker() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

int ModelWorker::batch_limit() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return batch_limit_;
}

std::string ModelWorker::batch_note() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return batch_note_;
}

ModelWorker::Counters ModelWorker::counters() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Counters c = counters_;
  c.streams = streams_.size();
  return c;
}

void ModelWorker::attach(AsyncSegmenter* stream) {
  std::lock_guard<std::mutex> lock(mutex_);
  streams_.push_back(stream);
  stream_count_ = streams_.size();
}

void ModelWorker::detach(AsyncSegmenter* stream) {
  std::unique_lock<std::mutex> lock(mutex_);
  streams_.erase(std::remove(streams_.begin(), streams_.end(), stream), streams_.end());
  stream_count_ = streams_.size();
  done_.wait(lock, [stream] { return !stream->running_; });
}

std::size_t ModelWorker::waiting() const {
  return static_cast<std::size_t>(std::count_if(streams_.begin(), streams_.end(),
                                                [](const AsyncSegmenter* s) { return s->has_waiting_; }));
}

std::size_t ModelWorker::expected() const {
  const auto sending = std::count_if(streams_.begin(), streams_.end(), [](const AsyncSegmenter* s) {
    return s->has_waiting_ || !s->paused_;
  });
  return std::min<std::size_t>(batch_limit_, static_cast<std::size_t>(sending));
}

void ModelWorker::loop() {
  std::vector<Job> jobs;
  std::vector<AsyncSegmenter*> ready;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || waiting() > 0; });
    if (stop_) break;
    // Room for more in this forward, and a bound on how long a frame may wait for them.
    if (options_.batch_timeout_ms > 0 && waiting() < expected()) {
      wake_.wait_for(lock, std::chrono::milliseconds(options_.batch_timeout_ms),
                     [&] { return stop_ || waiting() >= expected(); });
      if (stop_) break;
      if (waiting() == 0) continue;  // flushed meanwhile
    }

    // The oldest frames first, so that no stream waits behind the others' newer ones.
    ready.clear();
    for (AsyncSegmenter* s : streams_)
      if (s->has_waiting_) ready.push_back(s);
    const std::size_t n = std::min<std::size_t>(ready.size(), batch_limit_);
    std::partial_sort(ready.begin(), ready.begin() + n, ready.end(),
                      [](const AsyncSegmenter* a, const AsyncSegmenter* b) {
                        return a->waiting_.order < b->waiting_.order;
                      });
    if (jobs.size() < n) jobs.resize(n);
    for (std::size_t k = 0; k < n; ++k) {
      AsyncSegmenter* s = ready[k];
      Job& job = jobs[k];
      job.stream = s;
      std::swap(job.input, s->waiting_);  // a swap: the job's old memory becomes the stream's
      job.restart = job.input.restart_state || s->restart_pending_;
      job.failure.clear();
      s->restart_pending_ = false;
      s->has_waiting_ = false;
      s->running_ = true;
    }
    lock.unlock();

    // The forward, with no lock held: streams submit and take results meanwhile.
    run(jobs, n);

    lock.lock();
    counters_.forwards += (n > 1 && batch_limit_ > 1) ? 1 : n;
    counters_.frames += n;
    for (std::size_t k = 0; k < n; ++k) {
      Job& job = jobs[k];
      AsyncSegmenter* s = job.stream;
      s->running_ = false;
      if (!job.failure.empty()) {
        s->failure_ = job.failure;
      } else if (job.input.generation == s->generation_) {
        job.result.sequence = ++s->produced_;
        std::swap(job.result, s->latest_);
      }
      job.stream = nullptr;
    }
    done_.notify_all();
  }
}

// Infers jobs[0..n): one forward for all where the model can batch, else one by one (a
// recurrent model with each stream's own state swapped in).
void ModelWorker::run(std::vector<Job>& jobs, std::size_t n) {
  Segmenter& seg = *segmenter_;
  auto finish = [&](Job& job, const Prediction& p, int batch) {
    StageTimes times = seg.last_times();
    times.preprocess_ms = job.input.preprocess_ms;
    times.postprocess_ms /= batch;
    job.result.assign(p, job.input.thumbnail, job.input.tag, times);
    job.result.batch = batch;
  };
  auto one = [&](Job& job) {
    try {
      if (seg.recurrent()) seg.swap_state(job.stream->state_);
      if (job.restart) seg.reset_state();
      const Prediction& p = seg.infer(job.input.blob);
      if (seg.recurrent()) seg.swap_state(job.stream->state_);
      finish(job, p, 1);
    } catch (const std::exception& e) {
      if (seg.recurrent()) seg.swap_state(job.stream->state_);
      job.failure = std::string("inference failed: ") + e.what();
    }
  };

  if (n > 1) {
    blobs_.clear();
    for (std::size_t k = 0; k < n; ++k) blobs_.push_back(&jobs[k].input.blob);
    try {
      seg.infer_batch(blobs_, predictions_);
      for (std::size_t k = 0; k < n; ++k) finish(jobs[k], predictions_[k], static_cast<int>(n));
      return;
    } catch (const std::exception& e) {
      // A symbolic batch OpenCV could not run: from now on one by one, which always works.
      std::lock_guard<std::mutex> lock(mutex_);
      batch_limit_ = 1;
      batch_note_ = std::string("batching off: ") + e.what();
    }
  }
  for (std::size_t k = 0; k < n; ++k) one(jobs[k]);
}

}  // namespace unetseg
