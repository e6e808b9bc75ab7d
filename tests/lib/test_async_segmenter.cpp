// AsyncSegmenter: the model on its own thread, always on the newest frame. Every result must
// belong to the frame it is tagged with, whatever the interleaving.

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "split_frame.hpp"
#include "test_paths.hpp"
#include "unetseg/async_segmenter.hpp"
#include "unetseg/error.hpp"

using namespace unetseg;
using unetseg_test::test_model;
using unetseg_test::matches_its_frame;
using unetseg_test::split_of;
using unetseg_test::SplitFrame;

TEST(AsyncSegmenter, GivesWhatRunGivesForTheSameFrame) {
  Segmenter sync_seg(test_model("unet_rg"), Backend::Cpu);
  auto async_seg = std::make_shared<Segmenter>(test_model("unet_rg"), Backend::Cpu);
  AsyncSegmenter async(async_seg);
  SplitFrame frame(100);
  const cv::Mat thumbnail(4, 4, CV_8UC1, cv::Scalar(42));

  EXPECT_TRUE(async.submit(frame.view, 7, thumbnail));
  async.wait_idle();
  EXPECT_FALSE(async.busy());
  SegmentResult r;
  ASSERT_TRUE(async.take_latest(r));
  EXPECT_EQ(r.tag, 7);
  EXPECT_EQ(r.sequence, 1u);
  EXPECT_EQ(cv::norm(r.thumbnail, thumbnail, cv::NORM_INF), 0);
  EXPECT_TRUE(r.class_map.empty());
  EXPECT_GT(r.times.forward_ms, 0);
  EXPECT_GT(r.times.preprocess_ms, 0);

  const Prediction& expected = sync_seg.run(frame.view);
  EXPECT_EQ(cv::norm(r.foreground, expected.foreground, cv::NORM_INF), 0);
  // Nothing newer: no copy, and the caller keeps what it had.
  EXPECT_FALSE(async.take_latest(r));
  EXPECT_EQ(r.tag, 7);
}

TEST(AsyncSegmenter, NewestFrameWinsAndEveryResultIsItsOwnFramesMask) {
  auto seg = std::make_shared<Segmenter>(test_model("unet_rg"), Backend::Cpu);
  AsyncSegmenter async(seg);
  std::vector<std::unique_ptr<SplitFrame>> frames;
  for (int i = 0; i < 13; ++i) frames.emplace_back(new SplitFrame(split_of(i)));

  SegmentResult r;
  std::int64_t last_tag = -1;
  const int submitted = 200;
  for (std::int64_t tag = 0; tag < submitted; ++tag) {
    async.submit(frames[tag % 13]->view, tag);
    if (async.take_latest(r)) {
      EXPECT_TRUE(matches_its_frame(r)) << "result tagged " << r.tag;
      EXPECT_GT(r.tag, last_tag) << "results go forward in time";
      last_tag = r.tag;
    }
  }
  async.wait_idle();
  ASSERT_TRUE(async.take_latest(r));
  // The last frame handed over is always inferred, however many were replaced before it.
  EXPECT_EQ(r.tag, submitted - 1);
  EXPECT_TRUE(matches_its_frame(r));
  EXPECT_LE(r.sequence, static_cast<std::uint64_t>(submitted));
}

TEST(AsyncSegmenter, TakeLatestReusesTheCallersMemory) {
  auto seg = std::make_shared<Segmenter>(test_model("unet_rg"), Backend::Cpu);
  AsyncSegmenter async(seg);
  SplitFrame a(split_of(1)), b(split_of(2));
  SegmentResult r;
  async.submit(a.view, 1);
  async.wait_idle();
  ASSERT_TRUE(async.take_latest(r));
  const uchar* memory = r.foreground.data;
  async.submit(b.view, 2);
  async.wait_idle();
  ASSERT_TRUE(async.take_latest(r));
  EXPECT_EQ(r.tag, 2);
  EXPECT_TRUE(matches_its_frame(r));
  EXPECT_EQ(r.foreground.data, memory);
}

TEST(AsyncSegmenter, FlushForgetsResultsAndWaitingFrames) {
  auto seg = std::make_shared<Segmenter>(test_model("unet_rg"), Backend::Cpu);
  AsyncSegmenter async(seg);
  SplitFrame frame(100);
  SegmentResult r;
  async.submit(frame.view, 1);
  async.submit(frame.view, 2);
  async.flush();
  async.wait_idle();
  // Whatever was running when flush() came is dropped; nothing from before it is given.
  EXPECT_FALSE(async.take_latest(r));
  EXPECT_EQ(r.tag, -1);

  async.submit(frame.view, 3);
  async.wait_idle();
  ASSERT_TRUE(async.take_latest(r));
  EXPECT_EQ(r.tag, 3);
  EXPECT_GE(r.sequence, 1u);
}

TEST(AsyncSegmenter, StopsWhileAFrameIsWaitingOrRunning) {
  auto seg = std::make_shared<Segmenter>(test_model("u2net_rsu"), Backend::Cpu);
  SplitFrame frame(100);
  for (int i = 0; i < 20; ++i) {
    AsyncSegmenter async(seg);
    async.submit(frame.view, 1);
    async.submit(frame.view, 2);
    // destroyed here, mid-forward or before it started: must neither hang nor crash
  }
  SUCCEED();
}

TEST(AsyncSegmenter, ABadFrameFailsOnTheSubmittingThread) {
  auto seg = std::make_shared<Segmenter>(test_model("unet_rg"), Backend::Cpu);
  AsyncSegmenter async(seg);
  FrameView empty;  // no pixels
  EXPECT_THROW(async.submit(empty, 1), Error);
  EXPECT_FALSE(async.busy());
}

// recurrent_rg counts its frames in its state (red = 0.5 + 0.05 n): the state follows the frames
// the model actually inferred, and flush() or a frame's restart flag start it from zero.
TEST(AsyncSegmenter, RecurrentStateFollowsTheInferredFramesAndRestarts) {
  auto seg = std::make_shared<Segmenter>(test_model("recurrent_rg"), Backend::Cpu);
  AsyncSegmenter async(seg);
  SplitFrame frame(160);
  SegmentResult r;
  auto red_after = [&](bool restart) {
    async.submit(frame.view, 1, cv::Mat(), restart);
    async.wait_idle();
    EXPECT_TRUE(async.take_latest(r));
    return r.foreground.at<float>(32, 10);
  };
  EXPECT_NEAR(red_after(false), 0.50, 1e-5);
  EXPECT_NEAR(red_after(false), 0.55, 1e-5);
  EXPECT_NEAR(red_after(true), 0.50, 1e-5) << "restarted by the frame";
  EXPECT_NEAR(red_after(false), 0.55, 1e-5);
  async.flush();
  EXPECT_NEAR(red_after(false), 0.50, 1e-5) << "restarted by the flush";

  // A restart asked for by a frame that is replaced unseen passes to the frame replacing it
  // (whether 3 is replaced depends on timing; every interleaving must satisfy the check).
  for (int i = 0; i < 3; ++i) red_after(false);
  async.submit(frame.view, 2);          // starts running at once
  async.submit(frame.view, 3, cv::Mat(), true);  // waits, or runs
  async.submit(frame.view, 4);          // replaces 3 if it was still waiting
  async.wait_idle();
  ASSERT_TRUE(async.take_latest(r));
  EXPECT_EQ(r.tag, 4);
  // Either 3 ran (restart) and 4 counts 1, or 4 replaced it and restarted: 0.5 or 0.55.
  EXPECT_LE(r.foreground.at<float>(32, 10), 0.55 + 1e-5);
}
