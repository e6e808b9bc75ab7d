// ModelWorker: one network and one thread for several streams. Every stream must get its own
// frames' masks, exactly as an unshared, unbatched model gives them, whatever the others do.

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "split_frame.hpp"
#include "test_paths.hpp"
#include "unetseg/async_segmenter.hpp"
#include "unetseg/error.hpp"
#include "unetseg/frame_threads.hpp"
#include "unetseg/model_worker.hpp"
#include "unetseg/video_segmenter.hpp"

using namespace unetseg;
using unetseg_test::matches_its_frame;
using unetseg_test::split_of;
using unetseg_test::SplitFrame;
using unetseg_test::test_model;

namespace {

std::shared_ptr<ModelWorker> worker_of(const std::string& model, int batch_size,
                                       int batch_timeout_ms = 0) {
  ModelWorker::Options o;
  o.batch_size = batch_size;
  o.batch_timeout_ms = batch_timeout_ms;
  return std::make_shared<ModelWorker>(std::make_shared<Segmenter>(test_model(model), Backend::Cpu),
                                       o);
}

}  // namespace

TEST(ModelWorker, BatchLimitIsTheSmallerOfTheOptionAndTheModel) {
  EXPECT_EQ(worker_of("batch_rg", 8)->batch_limit(), 4) << "the file fixes batch 4";
  EXPECT_EQ(worker_of("batch_rg", 2)->batch_limit(), 2);
  EXPECT_EQ(worker_of("logit_rg", 4)->batch_limit(), 1) << "a batch-1 file runs frame by frame";
  EXPECT_EQ(worker_of("recurrent_rg", 4)->batch_limit(), 1) << "states are one stream's";
  ModelWorker::Options bad;
  bad.batch_size = 0;
  EXPECT_THROW(ModelWorker::check(bad), Error);
  bad = ModelWorker::Options();
  bad.batch_timeout_ms = -1;
  EXPECT_THROW(ModelWorker::check(bad), Error);
}

// Three streams' frames waiting together go through one forward, and each stream gets exactly
// the mask the unbatched model (logit_rg, the same weights at batch 1) gives its own frame.
TEST(ModelWorker, WaitingFramesShareOneForwardAndKeepTheirOwnMasks) {
  auto worker = worker_of("batch_rg", 4, 5000);  // waits until all three are there
  std::vector<std::unique_ptr<AsyncSegmenter>> streams;
  for (int i = 0; i < 3; ++i) streams.emplace_back(new AsyncSegmenter(worker));
  std::vector<std::unique_ptr<SplitFrame>> frames;
  for (int i = 0; i < 3; ++i) frames.emplace_back(new SplitFrame(split_of(3 + 4 * i)));
  for (int i = 0; i < 3; ++i) streams[i]->submit(frames[i]->view, 3 + 4 * i);
  for (auto& s : streams) s->wait_idle();

  Segmenter unbatched(test_model("logit_rg"), Backend::Cpu);
  for (int i = 0; i < 3; ++i) {
    SegmentResult r;
    ASSERT_TRUE(streams[i]->take_latest(r));
    EXPECT_EQ(r.tag, 3 + 4 * i);
    EXPECT_EQ(r.batch, 3);
    EXPECT_TRUE(matches_its_frame(r));
    const Prediction& expected = unbatched.run(frames[i]->view);
    EXPECT_EQ(cv::norm(r.foreground, expected.foreground, cv::NORM_INF), 0) << "stream " << i;
  }
  const ModelWorker::Counters c = worker->counters();
  EXPECT_EQ(c.forwards, 1u);
  EXPECT_EQ(c.frames, 3u);
  EXPECT_EQ(c.streams, 3u);
}

// Offline streams on their own threads, each waiting for its own frames: batches form, and
// every result is its own frame's.
TEST(ModelWorker, OfflineStreamsKeepExactPairingWhileBatched) {
  auto worker = worker_of("batch_rg", 4, 50);
  constexpr int kStreams = 3, kFrames = 20;
  std::vector<std::unique_ptr<SplitFrame>> frames;
  for (int i = 0; i < 13; ++i) frames.emplace_back(new SplitFrame(split_of(i)));
  std::atomic<int> wrong{0}, missing{0};
  std::vector<std::thread> threads;
  for (int s = 0; s < kStreams; ++s)
    threads.emplace_back([&, s] {
      AsyncSegmenter stream(worker);
      SegmentResult r;
      for (int n = 0; n < kFrames; ++n) {
        const std::int64_t tag = s * 100 + n * 7 + s;
        if (!stream.run(frames[tag % 13]->view, tag, r)) missing++;
        else if (r.tag != tag || !matches_its_frame(r)) wrong++;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(missing, 0);
  const ModelWorker::Counters c = worker->counters();
  EXPECT_EQ(c.frames, static_cast<std::uint64_t>(kStreams * kFrames));
  EXPECT_LT(c.forwards, c.frames) << "no frames were batched";
}

// A camera that stops sending frames must not hold the others back: with a batch timeout the
// worker waits for it at most that long per forward, and without one not at all.
TEST(ModelWorker, AStreamThatStopsSendingDoesNotStallTheOthers) {
  for (int timeout : {0, 20}) {
    auto worker = worker_of("batch_rg", 4, timeout);
    AsyncSegmenter silent(worker), talking(worker);
    SplitFrame frame(split_of(5));
    silent.submit(frame.view, 5);
    silent.wait_idle();  // then never again
    SegmentResult r;
    for (std::int64_t tag = 0; tag < 10; ++tag) {
      SplitFrame f(split_of(tag));
      ASSERT_TRUE(talking.run(f.view, tag, r));
      EXPECT_EQ(r.tag, tag);
      EXPECT_TRUE(matches_its_frame(r));
    }
  }
}

// A stream flooding the worker with frames does not starve another: the oldest waiting frame
// goes first, so a frame handed over is inferred within a forward or two.
TEST(ModelWorker, AFloodingStreamDoesNotStarveTheOthers) {
  auto worker = worker_of("slow_rg", 1);
  AsyncSegmenter flood(worker), calm(worker);
  SplitFrame a(split_of(1)), b(split_of(2));
  std::atomic<bool> stop{false};
  std::thread flooder([&] {
    for (std::int64_t tag = 1; !stop; tag += 13) flood.submit(a.view, tag);
  });
  SegmentResult r;
  for (std::int64_t tag = 2; tag < 2 + 13 * 3; tag += 13) {
    ASSERT_TRUE(calm.run(b.view, tag, r));
    EXPECT_EQ(r.tag, tag);
    EXPECT_TRUE(matches_its_frame(r));
  }
  stop = true;
  flooder.join();
}

// What one stream does to itself (a flush, a recurrent restart, going away mid-forward) leaves
// the others' results and memories alone.
TEST(ModelWorker, OneStreamsStateChangesLeaveTheOthersAlone) {
  auto worker = worker_of("recurrent_rg", 4);
  auto a = std::make_unique<AsyncSegmenter>(worker);
  AsyncSegmenter b(worker);
  SplitFrame frame(160);
  SegmentResult ra, rb;  // each stream's own: sequences count per stream
  auto red_after = [&](AsyncSegmenter& s, std::int64_t tag, bool restart = false) {
    SegmentResult& r = &s == &b ? rb : ra;
    EXPECT_TRUE(s.run(frame.view, tag, r, cv::Mat(), restart));
    return r.foreground.at<float>(32, 10);
  };
  // recurrent_rg counts each stream's frames in that stream's own state: 0.5 + 0.05 n.
  EXPECT_NEAR(red_after(*a, 1), 0.50, 1e-5);
  EXPECT_NEAR(red_after(*a, 2), 0.55, 1e-5);
  EXPECT_NEAR(red_after(b, 3), 0.50, 1e-5) << "b starts from its own zero state";
  EXPECT_NEAR(red_after(*a, 4), 0.60, 1e-5) << "a's count is untouched by b's frame";
  a->flush();
  EXPECT_NEAR(red_after(b, 5), 0.55, 1e-5) << "a's flush leaves b's memory";
  EXPECT_NEAR(red_after(*a, 6), 0.50, 1e-5) << "a restarted";
  EXPECT_NEAR(red_after(b, 7, true), 0.50, 1e-5) << "b's restart";
  EXPECT_NEAR(red_after(*a, 8), 0.55, 1e-5) << "leaves a's memory";
  a->submit(frame.view, 9);
  a.reset();  // detached while its frame waits or runs
  EXPECT_NEAR(red_after(b, 10), 0.55, 1e-5);
  EXPECT_EQ(worker->counters().streams, 1u);
}

// A model that claims any batch but cannot run one (anybatch_rg: a symbolic batch, then a
// Reshape to batch 1) is not a failure: the worker says why and goes frame by frame.
TEST(ModelWorker, AModelThatCannotBatchAfterAllGoesFrameByFrame) {
  auto worker = worker_of("anybatch_rg", 4, 5000);
  EXPECT_EQ(worker->batch_limit(), 4) << "it claims any batch";
  AsyncSegmenter a(worker), b(worker);
  SplitFrame fa(split_of(2)), fb(split_of(9));
  a.submit(fa.view, 2);
  b.submit(fb.view, 9);
  a.wait_idle();
  b.wait_idle();
  for (AsyncSegmenter* s : {&a, &b}) {
    SegmentResult r;
    ASSERT_TRUE(s->take_latest(r));
    EXPECT_TRUE(matches_its_frame(r)) << r.tag;
    EXPECT_EQ(r.batch, 1);
  }
  EXPECT_EQ(worker->batch_limit(), 1);
  EXPECT_NE(worker->batch_note().find("batching off"), std::string::npos) << worker->batch_note();
}

// infer_batch() refuses more frames than the model's batch, and gives each item its own mask.
TEST(ModelWorker, InferBatchRefusesMoreThanTheModelTakes) {
  Segmenter seg(test_model("batch_rg"), Backend::Cpu);
  SplitFrame f(split_of(3)), g(split_of(8));
  cv::Mat blob_f, blob_g;
  seg.preprocess(f.view, blob_f);
  seg.preprocess(g.view, blob_g);
  std::vector<const cv::Mat*> five(5, &blob_f);
  std::vector<Prediction> out;
  EXPECT_THROW(seg.infer_batch(five, out), Error);
  seg.infer_batch({&blob_f, &blob_g}, out);
  ASSERT_GE(out.size(), 2u);
  SegmentResult r;
  r.foreground = out[0].foreground;
  r.tag = 3;
  EXPECT_TRUE(matches_its_frame(r));
  r.foreground = out[1].foreground;
  r.tag = 8;
  EXPECT_TRUE(matches_its_frame(r));
}

// Streams sharing a model run their frame passes in their own thread (frame_threads.hpp): a
// SerialFrames scope makes frame_threads() 1 on this thread only, and nests.
TEST(FrameThreads, SerialScopesAreThisThreadsAndNest) {
  const int pool = cv::getNumThreads();
  EXPECT_EQ(frame_threads(), pool);
  {
    SerialFrames outer(true);
    EXPECT_EQ(frame_threads(), 1);
    int other = 0;
    std::thread([&] { other = frame_threads(); }).join();
    EXPECT_EQ(other, pool) << "another thread is not affected";
    {
      SerialFrames inner(false);
      EXPECT_EQ(frame_threads(), 1);
    }
    EXPECT_EQ(frame_threads(), 1);
  }
  EXPECT_EQ(frame_threads(), pool);
}

// A stream whose model is shared draws exactly what a stream alone draws: its passes run in
// one thread instead of OpenCV's, over the same rows.
TEST(FrameThreads, SharedStreamsDrawWhatALoneStreamDraws) {
  auto shared = worker_of("unet_rg", 4);
  VideoSegmenter a(shared), b(shared);
  VideoSegmenter alone(std::make_shared<Segmenter>(test_model("unet_rg"), Backend::Cpu));
  VideoSegmenter::Options o;
  o.mode = Mode::Blur;
  o.draw.blur_radius = 9;
  SplitFrame in_shared(split_of(6)), in_alone(split_of(6));
  a.process(in_shared.view, 6, o);
  a.draw(in_shared.view, o);
  alone.process(in_alone.view, 6, o);
  alone.draw(in_alone.view, o);
  EXPECT_EQ(in_shared.data, in_alone.data) << "blurred differently when shared";
  EXPECT_EQ(shared->streams(), 2u);
}
