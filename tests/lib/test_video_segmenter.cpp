// VideoSegmenter: one stream's frame path without GStreamer. When the model runs (interval,
// skip-threshold, QoS), which mask each frame gets (offline: its own; live: the newest), the
// smoothing and its reset, before the first mask, reset(), the warm-up, and drawing.
//
// Frames are 320x240 RGB, red (foreground for the test models) left of a split column and green
// right of it; the model sees 64x64, 5 frame columns per model column, so every mask says which
// frame it came from.

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "counting_allocator.hpp"
#include "test_paths.hpp"
#include "unetseg/error.hpp"
#include "unetseg/video_segmenter.hpp"

namespace unetseg {
namespace {

using unetseg_test::test_model;
using Options = VideoSegmenter::Options;

constexpr int kW = 320, kH = 240;

struct SplitFrame {
  std::vector<std::uint8_t> data;
  FrameView view;
  explicit SplitFrame(int split) : data(kW * kH * 3) { paint(split); }
  void paint(int split) {
    for (int y = 0; y < kH; ++y)
      for (int x = 0; x < kW; ++x) {
        std::uint8_t* p = &data[(y * kW + x) * 3];
        p[0] = x < split ? 255 : 0;
        p[1] = x < split ? 0 : 255;
        p[2] = 0;
      }
    view = FrameView{data.data(), kW, kH, kW * 3, PixelLayout::RGB};
  }
};

// Frame n splits at column 40 * (1 + n % 6): 40..240.
int split_of(std::int64_t n) { return 40 * (1 + static_cast<int>(n % 6)); }

// Foreground model columns on the middle row of the model-size mask.
int mask_columns(const FrameResult& r) {
  int columns = 0;
  for (int x = 0; x < r.model_mask.cols; ++x)
    columns += r.model_mask.at<float>(r.model_mask.rows / 2, x) > 0.5f;
  return columns;
}

std::shared_ptr<Segmenter> load(const char* model = "unet_rg") {
  return std::make_shared<Segmenter>(test_model(model), Backend::Cpu);
}

Options mask_mode() {
  Options o;
  o.mode = Mode::Mask;
  return o;
}

}  // namespace

TEST(VideoSegmenter, OfflineEveryFrameGetsItsOwnMask) {
  VideoSegmenter video(load());
  EXPECT_FALSE(video.live());
  for (std::int64_t n = 0; n < 6; ++n) {
    SplitFrame frame(split_of(n));
    const FrameResult& r = video.process(frame.view, n, mask_mode());
    EXPECT_TRUE(r.has_mask);
    EXPECT_TRUE(r.submitted);
    EXPECT_TRUE(r.fresh);
    EXPECT_EQ(r.source_tag, n);
    EXPECT_EQ(mask_columns(r), split_of(n) / 5);
    ASSERT_EQ(r.alpha.size(), cv::Size(kW, kH));
    EXPECT_EQ(r.alpha.at<std::uint8_t>(kH / 2, split_of(n) - 3), 255);
    EXPECT_EQ(r.alpha.at<std::uint8_t>(kH / 2, split_of(n) + 3), 0);
    EXPECT_EQ(r.stats.bounding_box, cv::Rect(0, 0, split_of(n), kH));
    EXPECT_GT(r.times.forward_ms, 0);
  }
}

TEST(VideoSegmenter, IntervalCarriesTheLastMaskAndNamesItsFrame) {
  VideoSegmenter video(load());
  Options o = mask_mode();
  o.interval = 3;
  for (std::int64_t n = 0; n < 8; ++n) {
    SplitFrame frame(split_of(n));
    const FrameResult& r = video.process(frame.view, n, o);
    const std::int64_t inferred = n / 3 * 3;
    EXPECT_EQ(r.submitted, n == inferred) << "frame " << n;
    EXPECT_EQ(r.fresh, n == inferred) << "frame " << n;
    EXPECT_EQ(r.source_tag, inferred) << "frame " << n;
    EXPECT_EQ(mask_columns(r), split_of(inferred) / 5) << "frame " << n;
  }
}

TEST(VideoSegmenter, SkipThresholdSkipsFramesThatBarelyChanged) {
  VideoSegmenter video(load());
  Options o = mask_mode();
  o.skip_threshold = 2;
  SplitFrame frame(160);
  EXPECT_EQ(video.process(frame.view, 0, o).source_tag, 0);
  for (int n = 1; n <= 2; ++n) {
    const FrameResult& r = video.process(frame.view, n, o);
    EXPECT_FALSE(r.submitted) << "the same picture again";
    EXPECT_EQ(r.source_tag, 0);
    EXPECT_EQ(mask_columns(r), 32);
  }
  frame.paint(40);  // half the frame changes colour: far more than 2 grey levels on average
  const FrameResult& r = video.process(frame.view, 3, o);
  EXPECT_TRUE(r.submitted);
  EXPECT_EQ(r.source_tag, 3);
  EXPECT_EQ(mask_columns(r), 8);
  // Skipping compares with the last submitted frame, not the previous one: a slow drift adds up.
  o.skip_threshold = 100;
  frame.paint(200);
  EXPECT_FALSE(video.process(frame.view, 4, o).submitted);
}

TEST(VideoSegmenter, QosProportionStretchesTheInterval) {
  VideoSegmenter video(load());
  const Options o = mask_mode();
  SplitFrame frame(100);
  video.process(frame.view, 0, o);
  int submitted = 0;
  for (int n = 1; n <= 9; ++n) {
    const FrameResult& r = video.process(frame.view, n, o, 2.5);  // needs 2.5x less work
    submitted += r.submitted;
    EXPECT_LT(n - r.source_tag, 3) << "frame " << n;
  }
  EXPECT_EQ(submitted, 3) << "every ceil(2.5) = 3rd frame";
  for (int n = 10; n <= 12; ++n)  // keeping up again; below 1 never speeds up past interval
    EXPECT_TRUE(video.process(frame.view, n, o, 0.5).submitted);
}

TEST(VideoSegmenter, LiveFramesNeverWaitAndCarryTheNewestMask) {
  VideoSegmenter video(load("slow_rg"), /*live=*/true);
  EXPECT_TRUE(video.live());
  std::vector<std::unique_ptr<SplitFrame>> frames;
  for (int i = 0; i < 6; ++i) frames.emplace_back(new SplitFrame(split_of(i)));
  const Options o = mask_mode();

  // The first frame did not wait for slow_rg's forward (hundreds of ms): it has no mask.
  const FrameResult& first = video.process(frames[0]->view, 0, o);
  EXPECT_FALSE(first.has_mask);
  EXPECT_TRUE(first.submitted);
  EXPECT_EQ(first.source_tag, -1);
  EXPECT_TRUE(first.alpha.empty());

  std::int64_t last_source = -1;
  int distinct = 0, older = 0, without = 1;
  std::int64_t n = 1;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (distinct < 3 && std::chrono::steady_clock::now() < give_up) {
    const FrameResult& r = video.process(frames[n % 6]->view, n, o);
    if (!r.has_mask) {
      EXPECT_EQ(last_source, -1) << "once there is a mask, every frame carries one";
      ++without;
    } else {
      EXPECT_LE(r.source_tag, n) << "a mask cannot come from a later frame";
      EXPECT_GE(r.source_tag, last_source) << "masks go forward in time";
      EXPECT_EQ(mask_columns(r), split_of(r.source_tag) / 5) << "tagged " << r.source_tag;
      EXPECT_EQ(r.fresh, r.source_tag != last_source);
      distinct += r.source_tag != last_source;
      older += r.source_tag < n;
      last_source = r.source_tag;
    }
    ++n;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(distinct, 3);
  EXPECT_GE(without, 2) << "frames went on before the first mask";
  EXPECT_GE(older, 1) << "frames went on while the model was busy";
  EXPECT_LT(distinct, n / 2) << "the model saw only the newest frames";
}

TEST(VideoSegmenter, BeforeTheFirstMaskNothingIsForeground) {
  VideoSegmenter video(load("slow_rg"), /*live=*/true);
  SplitFrame frame(200);
  for (Mode mode : {Mode::Overlay, Mode::Blur, Mode::Replace, Mode::Mask}) {
    Options o;
    o.mode = mode;
    frame.paint(200);
    ASSERT_FALSE(video.process(frame.view, 0, o).has_mask);
    EXPECT_TRUE(video.draw(frame.view, o));
    // Red is the foreground the model will find: drawn as background, never as foreground.
    const std::uint8_t* p = &frame.data[(kH / 2 * kW + 10) * 3];
    if (mode == Mode::Mask) {
      EXPECT_EQ(p[0], 0) << "mask: black";
    } else if (mode == Mode::Replace) {
      EXPECT_EQ(p[1], 255) << "replace: the green background colour";
    } else if (mode == Mode::Overlay) {
      EXPECT_EQ(p[1], 0) << "overlay: no tint";
    }
    video.reset();
  }
}

TEST(VideoSegmenter, SmoothingAveragesExceptWhereThePictureChanged) {
  for (double reset : {255.0, 12.0}) {
    VideoSegmenter video(load());
    Options o = mask_mode();
    o.mask.soft = true;
    o.smoothing = 0.5;
    o.smoothing_reset = reset;
    SplitFrame frame(200);
    video.process(frame.view, 0, o);
    frame.paint(100);
    const FrameResult& r = video.process(frame.view, 1, o);
    // Column 150: foreground in the first frame, background in the second.
    const int value = r.alpha.at<std::uint8_t>(kH / 2, 150);
    if (reset == 255.0) {
      EXPECT_NEAR(value, 128, 2) << "averaged";
    } else {
      EXPECT_EQ(value, 0) << "restarted where the colour changed";
    }
    EXPECT_EQ(r.alpha.at<std::uint8_t>(kH / 2, 20), 255);
    EXPECT_EQ(r.alpha.at<std::uint8_t>(kH / 2, 300), 0);
  }
}

TEST(VideoSegmenter, ResetForgetsTheStream) {
  VideoSegmenter video(load());
  Options o = mask_mode();
  o.interval = 100;
  o.mask.soft = true;
  o.smoothing = 0.9;
  o.smoothing_reset = 255;
  SplitFrame frame(200);
  video.process(frame.view, 0, o);
  frame.paint(100);
  EXPECT_FALSE(video.process(frame.view, 1, o).submitted) << "interval 100";
  video.reset();
  const FrameResult& r = video.process(frame.view, 2, o);
  EXPECT_TRUE(r.submitted) << "the first frame after a reset is always submitted";
  EXPECT_EQ(r.source_tag, 2);
  EXPECT_EQ(r.alpha.at<std::uint8_t>(kH / 2, 150), 0) << "no smoothing with the old mask";
}

TEST(VideoSegmenter, LiveResetDropsWhatTheModelHad) {
  VideoSegmenter video(load("slow_rg"), /*live=*/true);
  const Options o = mask_mode();
  SplitFrame frame(200);
  video.process(frame.view, 0, o);  // its forward runs now
  video.reset();
  std::int64_t n = 100;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < give_up) {
    const FrameResult& r = video.process(frame.view, n, o);
    if (r.has_mask) {
      EXPECT_GE(r.source_tag, 100) << "nothing from before the reset";
      break;
    }
    ++n;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(video.process(frame.view, n + 1, o).has_mask);
}

TEST(VideoSegmenter, ProcessInferredIsProcessAfterTheModel) {
  auto seg = load();
  VideoSegmenter a(seg), b(seg);
  Options o = mask_mode();
  o.mask.soft = true;
  o.smoothing = 0.5;
  for (std::int64_t n = 0; n < 4; ++n) {
    SplitFrame frame(split_of(n));
    const FrameResult& ra = a.process(frame.view, n, o);
    SegmentResult inferred;
    cv::Mat thumbnail;
    frame_thumbnail(frame.view, seg->output_size(), thumbnail);
    inferred.assign(seg->run(frame.view), thumbnail, n, seg->last_times());
    const FrameResult& rb = b.process_inferred(frame.view, inferred, o);
    EXPECT_TRUE(rb.fresh);
    EXPECT_EQ(rb.source_tag, n);
    EXPECT_EQ(cv::norm(ra.alpha, rb.alpha, cv::NORM_INF), 0) << "frame " << n;
    EXPECT_EQ(cv::norm(ra.model_mask, rb.model_mask, cv::NORM_INF), 0) << "frame " << n;
  }
}

TEST(VideoSegmenter, DrawAsksTheCompositorWhetherTheModeFits) {
  VideoSegmenter video(load());
  Options o;
  o.mode = Mode::Alpha;
  SplitFrame frame(100);
  video.process(frame.view, 0, o);
  const std::vector<std::uint8_t> before = frame.data;
  EXPECT_FALSE(video.draw(frame.view, o)) << "RGB has no alpha";
  EXPECT_EQ(frame.data, before) << "nothing touched";
  EXPECT_FALSE(Compositor::can_draw(Mode::Alpha, PixelLayout::RGBx));
  EXPECT_TRUE(Compositor::can_draw(Mode::Alpha, PixelLayout::ARGB));
  EXPECT_TRUE(Compositor::can_draw(Mode::Blur, PixelLayout::RGB));
  o.mode = Mode::Mask;
  EXPECT_TRUE(video.draw(frame.view, o));
  EXPECT_EQ(frame.data[(kH / 2 * kW + 10) * 3], 255) << "red was foreground: white";
}

TEST(VideoSegmenter, MultiClassOverlayGetsAColourPerClass) {
  VideoSegmenter video(load("classes3"));
  Options o;
  o.draw.overlay_opacity = 1.0;
  SplitFrame frame(100);
  const FrameResult& r = video.process(frame.view, 0, o);
  ASSERT_FALSE(r.class_map.empty());
  EXPECT_EQ(r.class_map.at<std::uint8_t>(32, 5), 1) << "red";
  EXPECT_EQ(r.class_map.at<std::uint8_t>(32, 60), 2) << "green";
  ASSERT_TRUE(video.draw(frame.view, o));
  const cv::Vec3b red = Compositor::palette_color(1), green = Compositor::palette_color(2);
  EXPECT_EQ(std::memcmp(&frame.data[(kH / 2 * kW + 10) * 3], red.val, 3), 0);
  EXPECT_EQ(std::memcmp(&frame.data[(kH / 2 * kW + 300) * 3], green.val, 3), 0);
}

TEST(VideoSegmenter, WarmUpLeavesTheStreamAsItWas) {
  VideoSegmenter video(load());
  Options o;
  o.mode = Mode::Blur;
  EXPECT_GT(video.warm_up(cv::Size(kW, kH), PixelLayout::RGB, o), 0);
  SplitFrame frame(100);
  const FrameResult& r = video.process(frame.view, 7, o);
  EXPECT_TRUE(r.submitted);
  EXPECT_EQ(r.source_tag, 7);
  EXPECT_EQ(mask_columns(r), 20);
  o.mode = Mode::Alpha;  // cannot draw on RGB: the warm-up skips the drawing, no throw
  EXPECT_GT(video.warm_up(cv::Size(kW, kH), PixelLayout::RGB, o), 0);
}

TEST(VideoSegmenter, NoBufferIsAllocatedOnceTheFrameSizeIsStable) {
  VideoSegmenter video(load());
  Options o;
  o.mode = Mode::Blur;
  o.interval = 2;  // inferred and carried frames alike
  o.skip_threshold = 0.5;
  o.smoothing = 0.5;
  o.mask.guided_radius = 4;
  o.mask.feather = 2;
  SplitFrame a(100), b(200);
  // The hand-over to the model's thread rotates three blobs (staging, waiting, in the model) and
  // two results: all exist after three submitted frames (skipping and the interval submit
  // fewer than half of these).
  for (int n = 0; n < 10; ++n) {
    SplitFrame& f = n % 2 ? a : b;
    video.process(f.view, n, o);
    video.draw(f.view, o);
  }
  unetseg_test::CountingAllocator counter;
  for (int n = 10; n < 18; ++n) {
    SplitFrame& f = n % 2 ? a : b;
    video.process(f.view, n, o);
    video.draw(f.view, o);
  }
  // cv::resize and the forward may make small scratch buffers of their own; no frame-size ones.
  EXPECT_EQ(counter.large_allocations, 0);
}

// The mask is upscaled, thresholded and measured in one pass (MaskFilter::apply_rows, its rows
// kept): its bytes and stats are MaskFilter::apply's and OpenCV's, and draw() draws what
// Compositor::draw draws with it, in every mode, hard and soft.
TEST(VideoSegmenter, OnePassMaskIsApplysAndDrawsLikeIt) {
  auto seg = load();
  for (PixelLayout layout : {PixelLayout::RGB, PixelLayout::RGBA})
    for (bool soft : {false, true})
      for (Mode mode : {Mode::Overlay, Mode::Alpha, Mode::Blur, Mode::Replace, Mode::Mask}) {
        if (!Compositor::can_draw(mode, layout)) continue;
        VideoSegmenter video(seg);
        Options o;
        o.mode = mode;
        o.mask.soft = soft;
        const int bpp = channel_offsets(layout).bytes_per_pixel;
        SplitFrame rgb(130);
        std::vector<std::uint8_t> drawn(kW * kH * bpp), expected;
        for (int i = 0; i < kW * kH; ++i) {
          std::memcpy(&drawn[i * bpp], &rgb.data[i * 3], 3);
          if (bpp == 4) drawn[i * bpp + 3] = static_cast<std::uint8_t>(i);
        }
        expected = drawn;
        const FrameView view{drawn.data(), kW, kH, static_cast<std::size_t>(kW) * bpp, layout};
        const FrameResult& r = video.process(view, 0, o);
        MaskFilter filter;
        const cv::Mat& whole = filter.apply(r.model_mask, view, video.mask_options(o));
        ASSERT_EQ(r.alpha.size(), cv::Size(kW, kH));
        EXPECT_EQ(cv::norm(r.alpha, whole, cv::NORM_INF), 0);
        EXPECT_DOUBLE_EQ(r.stats.foreground_fraction, cv::mean(whole)[0] / 255.0);
        EXPECT_EQ(r.stats.bounding_box, cv::boundingRect(whole >= 128));
        if (!soft) {
          EXPECT_EQ(r.alpha.at<std::uint8_t>(kH / 2, 100), 255);
          EXPECT_EQ(r.alpha.at<std::uint8_t>(kH / 2, 160), 0);
        }
        ASSERT_TRUE(video.draw(view, o));
        Compositor compositor;
        const FrameView other{expected.data(), kW, kH, static_cast<std::size_t>(kW) * bpp,
                              layout};
        compositor.draw(other, mode, whole, cv::Mat(), o.draw);
        EXPECT_EQ(drawn, expected) << to_string(mode) << (soft ? " soft " : " hard ")
                                   << layout_name(layout);
      }
}

// A frame that carries the last mask over gets the same mask without a pass: the same bytes in
// the same buffer, the same stats; new options or a new mask make it again, and the guided
// filter (which follows each frame) always does.
TEST(VideoSegmenter, ACarriedMaskIsReusedUntilSomethingChanges) {
  VideoSegmenter video(load());
  Options o = mask_mode();
  o.interval = 1000;  // only the first frame is inferred
  SplitFrame a(100), b(200);
  const FrameResult& first = video.process(a.view, 0, o);
  const cv::Mat alpha = first.alpha.clone();
  const MaskStats stats = first.stats;
  const void* buffer = first.alpha.data;
  const FrameResult& carried = video.process(b.view, 1, o);
  EXPECT_FALSE(carried.fresh);
  EXPECT_EQ(carried.alpha.data, buffer);
  EXPECT_EQ(cv::norm(carried.alpha, alpha, cv::NORM_INF), 0);
  EXPECT_EQ(carried.stats.foreground_fraction, stats.foreground_fraction);
  EXPECT_EQ(carried.stats.bounding_box, stats.bounding_box);
  // Soft now: made again, from the same model mask.
  o.mask.soft = true;
  const FrameResult& soft = video.process(b.view, 2, o);
  MaskFilter filter;
  EXPECT_EQ(cv::norm(soft.alpha, filter.apply(soft.model_mask, b.view, video.mask_options(o)),
                     cv::NORM_INF), 0);
  // Guided by each frame: a different frame, a different mask, from the same model mask.
  o.mask.soft = false;
  o.mask.guided_radius = 8;
  for (int n = 3; n < 5; ++n) {
    SplitFrame& f = n % 2 ? a : b;
    const FrameResult& r = video.process(f.view, n, o);
    EXPECT_EQ(cv::norm(r.alpha, filter.apply(r.model_mask, f.view, video.mask_options(o)),
                       cv::NORM_INF), 0)
        << "frame " << n;
  }
}

// Everything but the forward (preprocess, the mask's upscale, threshold and stats, drawing)
// allocates nothing per frame once the size is stable, in every mode, with one OpenCV thread.
TEST(VideoSegmenter, ThePassesAllocateNothingPerFrame) {
  auto seg = load();
  const int threads = cv::getNumThreads();
  cv::setNumThreads(1);
  SplitFrame frame(100);
  const Prediction& p = seg->run(frame.view);
  SegmentResult inferred;
  inferred.assign(p, cv::Mat(), 0, StageTimes());
  for (Mode mode : {Mode::Overlay, Mode::Blur, Mode::Replace, Mode::Mask})
    for (bool soft : {false, true}) {
      VideoSegmenter video(seg);
      Options o;
      o.mode = mode;
      o.mask.soft = soft;
      cv::Mat blob;
      const auto pass = [&] {
        seg->preprocess(frame.view, blob);
        video.process_inferred(frame.view, inferred, o);
        video.draw(frame.view, o);
      };
      pass();
      unetseg_test::CountingAllocator counter;
      for (int n = 0; n < 3; ++n) pass();
      EXPECT_EQ(counter.allocations, 0) << to_string(mode) << (soft ? " soft" : " hard");
    }
  cv::setNumThreads(threads);
}

TEST(VideoSegmenter, BadOptionsAreClearErrors) {
  VideoSegmenter video(load());
  SplitFrame frame(100);
  Options o;
  o.mask.guided_radius = 5000;
  EXPECT_THROW(video.process(frame.view, 0, o), Error);
  o = Options();
  o.smoothing = 1.5;
  EXPECT_THROW(video.process(frame.view, 1, o), Error);
  EXPECT_THROW(VideoSegmenter(std::shared_ptr<Segmenter>()), Error);
  EXPECT_THROW(VideoSegmenter(std::shared_ptr<ModelWorker>()), Error);
}

}  // namespace unetseg

namespace unetseg {

// recurrent_rg counts the frames it saw since its state was zero: red = 0.5 + 0.05 n.
namespace {
float red_of(const FrameResult& r) { return r.model_mask.at<float>(32, 5); }
}  // namespace

TEST(VideoSegmenter, RecurrentStateCountsTheFramesTheModelSaw) {
  VideoSegmenter video(load("recurrent_rg"));
  Options o = mask_mode();
  o.mask.soft = true;
  o.interval = 2;  // the model sees frames 0, 2, 4: the state follows those only
  SplitFrame frame(160);
  const float expected[] = {0.50f, 0.50f, 0.55f, 0.55f, 0.60f};
  for (int n = 0; n < 5; ++n)
    EXPECT_NEAR(red_of(video.process(frame.view, n, o)), expected[n], 1e-5) << "frame " << n;
  video.restart_recurrence();
  EXPECT_NEAR(red_of(video.process(frame.view, 5, o)), 0.60f, 1e-5) << "not submitted: kept";
  EXPECT_NEAR(red_of(video.process(frame.view, 6, o)), 0.50f, 1e-5) << "restarted";
  video.reset();
  EXPECT_NEAR(red_of(video.process(frame.view, 7, o)), 0.50f, 1e-5) << "reset restarts it";
}

TEST(VideoSegmenter, SceneCutRestartsTheRecurrentState) {
  VideoSegmenter video(load("recurrent_rg"));
  Options o = mask_mode();
  SplitFrame frame(160);
  EXPECT_NEAR(red_of(video.process(frame.view, 0, o)), 0.50f, 1e-5);
  frame.paint(300);  // 140 of 320 columns change colour (32 grey levels): the same scene
  EXPECT_NEAR(red_of(video.process(frame.view, 1, o)), 0.55f, 1e-5);
  frame.paint(20);   // 280 columns change (64 grey levels): a new scene
  const FrameResult& r = video.process(frame.view, 2, o);
  EXPECT_NEAR(r.model_mask.at<float>(32, 2), 0.50f, 1e-5) << "restarted at the cut";
  o.scene_cut = 0;   // never
  frame.paint(300);
  EXPECT_NEAR(red_of(video.process(frame.view, 3, o)), 0.55f, 1e-5);
}

TEST(VideoSegmenter, LiveRecurrentStateFollowsTheFramesTheModelSaw) {
  VideoSegmenter video(load("recurrent_rg"), /*live=*/true);
  Options o = mask_mode();
  SplitFrame frame(160);
  // Each mask's value says how many forwards came before it since the state was zero (red =
  // 0.5 + 0.05 k): k grows with every new mask, and never beyond the frames submitted (a frame
  // replaced while it waited was never inferred, and did not count).
  auto count_of = [](const FrameResult& r) {
    const double k = (red_of(r) - 0.5) / 0.05;
    EXPECT_NEAR(k, std::round(k), 1e-3) << "a whole number of forwards";
    return static_cast<int>(std::lround(k));
  };
  int last = -1, masks = 0, submitted = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (std::int64_t n = 0; masks < 4 && std::chrono::steady_clock::now() < give_up; ++n) {
    const FrameResult& r = video.process(frame.view, n, o);
    submitted += r.submitted;
    if (r.fresh) {
      const int k = count_of(r);
      EXPECT_GT(k, last) << "mask " << masks;
      EXPECT_LT(k, submitted) << "mask " << masks;
      last = k;
      ++masks;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(masks, 4);
  EXPECT_GE(last, 3);
  video.reset();  // flushes, and the model's thread restarts the state
  // Frames far apart: the first mask after the reset counts only frames submitted since (at
  // most two here), not the ones before.
  int since = 0;
  for (std::int64_t n = 100; n < 110; ++n) {
    const FrameResult& r = video.process(frame.view, n, o);
    since += r.submitted;
    if (r.fresh) {
      EXPECT_LT(count_of(r), since) << "counted from zero after the reset, not from " << last;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  EXPECT_LE(since, 2);
}

TEST(VideoSegmenter, AMatteIsCompositedSoftWhateverSoftMaskSays) {
  unetseg_test::TempDir dir;
  const std::string model = unetseg_test::copy_model("unet_rg", dir, "matte", false);
  unetseg_test::write_file(dir.file("matte.json"),
      R"({"input": {"width": 64, "height": 64}, "output": {"kind": "probability", "matte": true}})");
  VideoSegmenter video(std::make_shared<Segmenter>(model, Backend::Cpu));
  Options o;
  o.mask.soft = false;
  for (Mode m : {Mode::Blur, Mode::Replace, Mode::Alpha}) {
    o.mode = m;
    EXPECT_TRUE(video.mask_options(o).soft) << to_string(m);
  }
  for (Mode m : {Mode::None, Mode::Overlay, Mode::Mask}) {
    o.mode = m;
    EXPECT_FALSE(video.mask_options(o).soft) << to_string(m) << ": a hard mask asked for";
  }
  VideoSegmenter plain(load());
  o.mode = Mode::Blur;
  EXPECT_FALSE(plain.mask_options(o).soft) << "a probability model follows soft-mask";
}

}  // namespace unetseg
