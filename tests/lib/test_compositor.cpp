// Compositor: every mode on synthetic frames with known answers, for all ten layouts, with tight
// and padded strides (bytes past each row hold a sentinel that must survive).

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "counting_allocator.hpp"
#include "unetseg/compositor.hpp"
#include "unetseg/error.hpp"
#include "unetseg/mask_filter.hpp"

namespace unetseg {
namespace {

using unetseg_test::CountingAllocator;

using u8 = std::uint8_t;
using Pixel = std::array<int, 4>;

const PixelLayout kAllLayouts[] = {
    PixelLayout::RGB,  PixelLayout::BGR,  PixelLayout::RGBx, PixelLayout::BGRx, PixelLayout::xRGB,
    PixelLayout::xBGR, PixelLayout::RGBA, PixelLayout::BGRA, PixelLayout::ARGB, PixelLayout::ABGR,
};

// The contract's blend, written independently of the library: (p * (255 - w) + q * w) / 255 to
// the nearest integer (there are no ties: 255 is odd).
int blend(int p, int q, int w) {
  return static_cast<int>(std::lround((p * (255.0 - w) + q * w) / 255.0));
}

// A frame in memory owned by the test, filled with pseudo-random bytes (colour and alpha or
// padding alike) and a sentinel after each row.
class TestFrame {
 public:
  static constexpr u8 kSentinel = 0xA5;

  TestFrame(PixelLayout layout, int width, int height, int row_padding, unsigned seed = 7) {
    const int bpp = channel_offsets(layout).bytes_per_pixel;
    const std::size_t stride = static_cast<std::size_t>(width * bpp + row_padding);
    bytes_.assign(stride * height, kSentinel);
    view_ = FrameView{bytes_.data(), width, height, stride, layout};
    cv::RNG rng(seed);
    for (int y = 0; y < height; ++y)
      for (int i = 0; i < width * bpp; ++i) row(y)[i] = static_cast<u8>(rng.uniform(0, 256));
  }
  TestFrame(const TestFrame& other) : bytes_(other.bytes_), view_(other.view_) {
    view_.data = bytes_.data();
  }
  TestFrame& operator=(const TestFrame&) = delete;

  const FrameView& view() const { return view_; }
  int width() const { return view_.width; }
  int height() const { return view_.height; }
  int bpp() const { return view_.bytes_per_pixel(); }
  ChannelOffsets offsets() const { return channel_offsets(view_.layout); }
  u8* row(int y) { return bytes_.data() + y * view_.stride; }
  const u8* px(int x, int y) const { return bytes_.data() + y * view_.stride + x * bpp(); }
  u8* px(int x, int y) { return row(y) + x * bpp(); }

  // Sets R, G, B of every pixel (the alpha or padding byte keeps its random value).
  void paint(const std::function<cv::Vec3b(int x, int y)>& rgb) {
    const ChannelOffsets o = offsets();
    for (int y = 0; y < height(); ++y)
      for (int x = 0; x < width(); ++x) {
        const cv::Vec3b c = rgb(x, y);
        px(x, y)[o.r] = c[0];
        px(x, y)[o.g] = c[1];
        px(x, y)[o.b] = c[2];
      }
  }

  bool padding_intact() const {
    const std::size_t row_bytes = static_cast<std::size_t>(width()) * bpp();
    for (int y = 0; y < height(); ++y)
      for (std::size_t i = row_bytes; i < view_.stride; ++i)
        if (bytes_[y * view_.stride + i] != kSentinel) return false;
    return true;
  }
  bool same_bytes(const TestFrame& other) const { return bytes_ == other.bytes_; }

 private:
  std::vector<u8> bytes_;
  FrameView view_;
};

// The bytes a pixel should hold: `before`, each colour byte c (0 = R, 1 = G, 2 = B) replaced by
// colour(c, its old value); the alpha or padding byte replaced by `other` unless it is < 0.
Pixel expected_pixel(const u8* before, PixelLayout layout,
                     const std::function<int(int c, int old)>& colour, int other = -1) {
  const ChannelOffsets o = channel_offsets(layout);
  Pixel px{};
  for (int i = 0; i < o.bytes_per_pixel; ++i) px[i] = before[i];
  const int offset[3] = {o.r, o.g, o.b};
  for (int c = 0; c < 3; ++c) px[offset[c]] = colour(c, before[offset[c]]);
  if (other >= 0)
    for (int i = 0; i < o.bytes_per_pixel; ++i)
      if (i != o.r && i != o.g && i != o.b) px[i] = other;
  return px;
}

// Compares every pixel of `after` with expected(x, y, before pixel); reports the first few.
void expect_pixels(const TestFrame& before, const TestFrame& after,
                   const std::function<Pixel(int x, int y, const u8* before)>& expected) {
  int mismatches = 0;
  for (int y = 0; y < before.height(); ++y)
    for (int x = 0; x < before.width(); ++x) {
      const Pixel want = expected(x, y, before.px(x, y));
      for (int i = 0; i < before.bpp(); ++i) {
        if (after.px(x, y)[i] == want[i]) continue;
        if (++mismatches <= 5)
          ADD_FAILURE() << "pixel " << x << "," << y << " byte " << i << ": got "
                        << int(after.px(x, y)[i]) << ", want " << want[i] << " (was "
                        << int(before.px(x, y)[i]) << ")";
      }
    }
  EXPECT_EQ(mismatches, 0);
  EXPECT_TRUE(after.padding_intact()) << "bytes past the end of a row were written";
}

// Every value 0..255, several times over, plus runs of pure 0 and 255.
cv::Mat ramp_alpha(int width, int height) {
  cv::Mat alpha(height, width, CV_8UC1);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) alpha.at<u8>(y, x) = static_cast<u8>((y * width + x) % 256);
  alpha.row(1).setTo(0);
  alpha.row(2).setTo(255);
  return alpha;
}

int rgb_component(const cv::Scalar& rgb, int c) { return static_cast<int>(rgb[c]); }

// --- Parameterised over layout x row padding.

class CompositorLayouts : public ::testing::TestWithParam<std::tuple<PixelLayout, int>> {
 protected:
  static constexpr int kWidth = 40, kHeight = 26;
  PixelLayout layout() const { return std::get<0>(GetParam()); }
  TestFrame frame(int width = kWidth, int height = kHeight, unsigned seed = 7) const {
    return TestFrame(layout(), width, height, std::get<1>(GetParam()), seed);
  }
  Compositor compositor;
  CompositorOptions options;
};

TEST_P(CompositorLayouts, OverlayTintsByAlphaTimesOpacity) {
  options.overlay_color = cv::Scalar(250, 20, 130);
  options.overlay_opacity = 0.6;
  const int opacity = 153;  // round(0.6 * 255)
  const cv::Mat alpha = ramp_alpha(kWidth, kHeight);
  const TestFrame before = frame();
  TestFrame after = before;
  compositor.draw(after.view(), Mode::Overlay, alpha, cv::Mat(), options);
  expect_pixels(before, after, [&](int x, int y, const u8* was) {
    const int w = static_cast<int>(std::lround(alpha.at<u8>(y, x) * opacity / 255.0));
    return expected_pixel(was, layout(), [&](int c, int old) {
      return blend(old, rgb_component(options.overlay_color, c), w);
    });
  });
  // Only the foreground changes.
  for (int y = 0; y < kHeight; ++y)
    for (int x = 0; x < kWidth; ++x)
      if (alpha.at<u8>(y, x) == 0) {
        ASSERT_EQ(0, std::memcmp(before.px(x, y), after.px(x, y), before.bpp())) << x << "," << y;
      }
}

// Wide rows of sure chunks (all 0, all 255: left unread and unwritten) beside mixed ones, a
// lone unsure pixel in a sure chunk and a tail shorter than a chunk: still the contract's blend.
cv::Mat chunky_alpha(int width, int height) {
  cv::Mat alpha(height, width, CV_8UC1);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      int v = (x / 64) % 2 ? 255 : 0;
      if (x >= 128 && x < 192) v = (x * 7 + y * 3) % 256;
      if (x == 200 + y) v = 1 + y;
      if ((y + x / 64) % 5 == 0) v = 255 - v;
      alpha.at<u8>(y, x) = static_cast<u8>(v);
    }
  return alpha;
}

TEST_P(CompositorLayouts, SureChunksAndMixedRunsFollowTheContract) {
  const int width = 300, height = 12;
  const cv::Mat alpha = chunky_alpha(width, height);
  options.overlay_color = cv::Scalar(250, 20, 130);
  options.overlay_opacity = 0.6;
  options.background_color = cv::Scalar(10, 200, 90);
  const TestFrame before = frame(width, height);
  TestFrame overlaid = before, replaced = before;
  compositor.draw(overlaid.view(), Mode::Overlay, alpha, cv::Mat(), options);
  expect_pixels(before, overlaid, [&](int x, int y, const u8* was) {
    const int w = static_cast<int>(std::lround(alpha.at<u8>(y, x) * 153 / 255.0));
    return expected_pixel(was, layout(), [&](int c, int old) {
      return blend(old, rgb_component(options.overlay_color, c), w);
    });
  });
  compositor.draw(replaced.view(), Mode::Replace, alpha, cv::Mat(), options);
  expect_pixels(before, replaced, [&](int x, int y, const u8* was) {
    return expected_pixel(was, layout(), [&](int c, int old) {
      return blend(old, rgb_component(options.background_color, c), 255 - alpha.at<u8>(y, x));
    });
  });
}

// The mask in rows (MaskFilter::apply_rows: the plain upscale never made whole) draws exactly
// what the same mask made whole draws, in every mode, hard and soft.
TEST_P(CompositorLayouts, DrawFromRowsIsDrawFromTheWholeMask) {
  const int width = 301, height = 77;
  cv::Mat p(17, 23, CV_32FC1);
  cv::RNG rng(3);
  rng.fill(p, cv::RNG::UNIFORM, -0.5, 1.5);
  p = cv::min(cv::max(p, 0.f), 1.f);
  for (bool soft : {false, true})
    for (Mode mode : {Mode::Overlay, Mode::Alpha, Mode::Blur, Mode::Replace, Mode::Mask}) {
      if (!Compositor::can_draw(mode, layout())) continue;
      for (int radius : {1, 3, 21}) {
        if (radius != 21 && mode != Mode::Blur) continue;
        options.blur_radius = radius;
        const TestFrame before = frame(width, height);
        TestFrame from_rows = before, from_whole = before;
        MaskFilter filter;
        MaskOptions o;
        o.soft = soft;
        filter.apply_rows(p, from_rows.view(), o);
        compositor.draw(from_rows.view(), mode, filter, options);
        Compositor other;
        other.draw(from_whole.view(), mode, filter.alpha(), cv::Mat(), options);
        EXPECT_TRUE(from_rows.same_bytes(from_whole))
            << to_string(mode) << (soft ? " soft" : " hard") << " radius " << radius;
      }
    }
}

TEST_P(CompositorLayouts, OverlayAtFullOpacityPaintsTheColourWhereAlphaIsFull) {
  options.overlay_color = cv::Scalar(1, 2, 3);
  options.overlay_opacity = 1.0;
  const cv::Mat alpha = ramp_alpha(kWidth, kHeight);
  const TestFrame before = frame();
  TestFrame after = before;
  compositor.draw(after.view(), Mode::Overlay, alpha, cv::Mat(), options);
  const ChannelOffsets o = after.offsets();
  for (int x = 0; x < kWidth; ++x) {  // row 2 is all 255
    EXPECT_EQ(after.px(x, 2)[o.r], 1);
    EXPECT_EQ(after.px(x, 2)[o.g], 2);
    EXPECT_EQ(after.px(x, 2)[o.b], 3);
  }
}

TEST_P(CompositorLayouts, OverlayByClassUsesThePaletteAndLeavesClassZeroClear) {
  options.overlay_opacity = 0.5;
  const int opacity = 128;  // round(127.5)
  cv::Mat classes(kHeight, kWidth, CV_8UC1);
  for (int y = 0; y < kHeight; ++y)
    for (int x = 0; x < kWidth; ++x) classes.at<u8>(y, x) = static_cast<u8>((x / 3 + y) % 5 * 7);
  const TestFrame before = frame();

  TestFrame by_class = before;  // no alpha: opacity alone
  compositor.draw(by_class.view(), Mode::Overlay, cv::Mat(), classes, options);
  expect_pixels(before, by_class, [&](int x, int y, const u8* was) {
    const int id = classes.at<u8>(y, x);
    const cv::Vec3b colour = Compositor::palette_color(id);
    return expected_pixel(was, layout(), [&](int c, int old) {
      return id == 0 ? old : blend(old, colour[c], opacity);
    });
  });

  const cv::Mat alpha = ramp_alpha(kWidth, kHeight);  // with alpha: opacity * alpha / 255
  TestFrame weighted = before;
  compositor.draw(weighted.view(), Mode::Overlay, alpha, classes, options);
  expect_pixels(before, weighted, [&](int x, int y, const u8* was) {
    const int id = classes.at<u8>(y, x);
    const int w = id == 0 ? 0 : static_cast<int>(std::lround(opacity * alpha.at<u8>(y, x) / 255.0));
    const cv::Vec3b colour = Compositor::palette_color(id);
    return expected_pixel(was, layout(), [&](int c, int old) { return blend(old, colour[c], w); });
  });
}

TEST_P(CompositorLayouts, AlphaWritesTheMaskIntoTheAlphaByte) {
  const cv::Mat alpha = ramp_alpha(kWidth, kHeight);
  const TestFrame before = frame();
  TestFrame after = before;
  if (!has_alpha(layout())) {
    EXPECT_THROW(compositor.draw(after.view(), Mode::Alpha, alpha, cv::Mat(), options), Error);
    EXPECT_TRUE(after.same_bytes(before));
    return;
  }
  compositor.draw(after.view(), Mode::Alpha, alpha, cv::Mat(), options);
  expect_pixels(before, after, [&](int x, int y, const u8* was) {
    return expected_pixel(was, layout(), [](int, int old) { return old; }, alpha.at<u8>(y, x));
  });
}

// `random` with the colour `background` where alpha < 255; where alpha is 255 its random bytes
// stay (a textured person), and so does every non-colour byte.
TestFrame person_on_flat_background(const TestFrame& random, const cv::Mat& alpha,
                                    const cv::Vec3b& background) {
  TestFrame frame = random;
  const ChannelOffsets o = frame.offsets();
  for (int y = 0; y < frame.height(); ++y)
    for (int x = 0; x < frame.width(); ++x)
      if (alpha.at<u8>(y, x) < 255) {
        frame.px(x, y)[o.r] = background[0];
        frame.px(x, y)[o.g] = background[1];
        frame.px(x, y)[o.b] = background[2];
      }
  return frame;
}

// The halo: blurring the whole frame spreads the person's colours into the background around
// it (Blur did, and failed this at every radius).
TEST_P(CompositorLayouts, BlurTakesTheBackgroundFromBackgroundPixelsOnly) {
  cv::Mat alpha(kHeight, kWidth, CV_8UC1, cv::Scalar(0));
  alpha(cv::Rect(14, 8, 12, 10)).setTo(255);
  const cv::Vec3b dark(20, 40, 60);
  const TestFrame before = person_on_flat_background(frame(), alpha, dark);
  for (int radius : {1, 5, 21, 80}) {
    SCOPED_TRACE("radius " + std::to_string(radius));
    options.blur_radius = radius;
    TestFrame after = before;
    compositor.draw(after.view(), Mode::Blur, alpha, cv::Mat(), options);
    expect_pixels(before, after, [&](int x, int y, const u8* was) {
      // The person exactly as it was; the background exactly its colour, even beside it.
      const bool person = alpha.at<u8>(y, x) == 255;
      return expected_pixel(was, layout(), [&](int c, int old) { return person ? old : dark[c]; });
    });
  }
}

// A soft edge: out = blend(frame, q, 255 - alpha) by the contract, q the blurred background. The
// soft pixels are few and spread out on a large flat background, so q at each is the background
// colour: together they move q by about 0.15 of a level, which rounds away (colour differences
// 3 times these would start to show).
TEST_P(CompositorLayouts, BlurBlendsASoftEdgeByTheContract) {
  const int width = 96, height = 64;
  const cv::Rect person(32, 20, 32, 24);
  cv::Mat alpha(height, width, CV_8UC1, cv::Scalar(0));
  alpha(person).setTo(255);
  const int soft_alphas[] = {1, 37, 64, 100, 127, 128, 129, 160, 200, 230, 254, 250};
  const cv::Point soft_pixels[] = {{33, 19}, {45, 19}, {57, 19}, {31, 22}, {31, 34}, {64, 26},
                                   {64, 38}, {38, 44}, {50, 44}, {62, 44}, {31, 43}, {64, 20}};
  for (int i = 0; i < 12; ++i) alpha.at<u8>(soft_pixels[i]) = static_cast<u8>(soft_alphas[i]);
  const cv::Vec3b background(60, 120, 180), edge(100, 80, 210);  // edge: the person's hair
  TestFrame before = person_on_flat_background(frame(width, height), alpha, background);
  const ChannelOffsets o = before.offsets();
  for (const cv::Point& p : soft_pixels) {
    before.px(p.x, p.y)[o.r] = edge[0];
    before.px(p.x, p.y)[o.g] = edge[1];
    before.px(p.x, p.y)[o.b] = edge[2];
  }
  for (int radius : {21, 80}) {
    SCOPED_TRACE("radius " + std::to_string(radius));
    options.blur_radius = radius;
    TestFrame after = before;
    compositor.draw(after.view(), Mode::Blur, alpha, cv::Mat(), options);
    expect_pixels(before, after, [&](int x, int y, const u8* was) {
      const int a = alpha.at<u8>(y, x);
      return expected_pixel(was, layout(), [&](int c, int old) {
        return a == 255 ? old : blend(old, background[c], 255 - a);
      });
    });
    for (int i : {0, 4, 10}) {  // spelled out: p * a + q * (1 - a), rounded
      const cv::Point p = soft_pixels[i];
      const int a = soft_alphas[i];
      EXPECT_EQ(after.px(p.x, p.y)[o.r], (edge[0] * a + background[0] * (255 - a) + 127) / 255);
      EXPECT_EQ(after.px(p.x, p.y)[o.b], (edge[2] * a + background[2] * (255 - a) + 127) / 255);
    }
  }
}

TEST_P(CompositorLayouts, BlurLeavesAnAllForegroundFrameAlone) {
  // No background anywhere: the blurred background is 0 and weighs 0 (the division by a zero
  // weight must not leak into the frame).
  const cv::Mat opaque(kHeight, kWidth, CV_8UC1, cv::Scalar(255));
  for (int radius : {1, 5, 21, 80}) {
    options.blur_radius = radius;
    const TestFrame before = frame();
    TestFrame after = before;
    compositor.draw(after.view(), Mode::Blur, opaque, cv::Mat(), options);
    EXPECT_TRUE(after.same_bytes(before)) << "radius " << radius;
  }
}

// Colour variance of R, G and B over the pixels of `region`.
double colour_variance(const TestFrame& f, cv::Rect region) {
  const ChannelOffsets o = f.offsets();
  double sum = 0, sum2 = 0;
  int n = 0;
  for (int y = region.y; y < region.br().y; ++y)
    for (int x = region.x; x < region.br().x; ++x)
      for (int offset : {o.r, o.g, o.b}) {
        const double v = f.px(x, y)[offset];
        sum += v;
        sum2 += v * v;
        ++n;
      }
  return sum2 / n - (sum / n) * (sum / n);
}

TEST_P(CompositorLayouts, BlurSmoothsATexturedBackgroundAndKeepsTheForeground) {
  const int width = 96, height = 64;
  TestFrame before = frame(width, height);
  before.paint([](int x, int y) {  // 4-pixel checkerboard, black and white
    const u8 v = ((x / 4 + y / 4) % 2) ? 255 : 0;
    return cv::Vec3b(v, v, v);
  });
  const cv::Rect person(40, 16, 32, 40);
  cv::Mat alpha(height, width, CV_8UC1, cv::Scalar(0));
  alpha(person).setTo(255);
  options.blur_radius = 9;
  TestFrame after = before;
  compositor.draw(after.view(), Mode::Blur, alpha, cv::Mat(), options);

  const ChannelOffsets o = after.offsets();
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const bool in_person = person.contains({x, y});
      for (int i = 0; i < after.bpp(); ++i) {
        const bool colour = i == o.r || i == o.g || i == o.b;
        if (in_person || !colour) {
          ASSERT_EQ(after.px(x, y)[i], before.px(x, y)[i]) << x << "," << y << " byte " << i;
        }
      }
    }
  EXPECT_TRUE(after.padding_intact());
  const cv::Rect background(0, 0, 24, height);  // well away from the person
  const double variance_before = colour_variance(before, background);
  const double variance_after = colour_variance(after, background);
  EXPECT_NEAR(variance_before, 127.5 * 127.5, 50);
  EXPECT_LT(variance_after, 0.05 * variance_before);
}

TEST_P(CompositorLayouts, BlurOfATexturedBackgroundTakesNothingFromAWhitePerson) {
  const int width = 96, height = 64;
  const cv::Rect person(40, 16, 32, 40);
  TestFrame before = frame(width, height);
  before.paint([&](int x, int y) {  // white person; background a 4-pixel checkerboard, 0 and 100
    const u8 v = person.contains({x, y}) ? 255 : ((x / 4 + y / 4) % 2) ? 100 : 0;
    return cv::Vec3b(v, v, v);
  });
  cv::Mat alpha(height, width, CV_8UC1, cv::Scalar(0));
  alpha(person).setTo(255);
  const ChannelOffsets o = before.offsets();
  for (int radius : {9, 21}) {
    SCOPED_TRACE("radius " + std::to_string(radius));
    options.blur_radius = radius;
    TestFrame after = before;
    compositor.draw(after.view(), Mode::Blur, alpha, cv::Mat(), options);
    // The blurred background is an average of background pixels: within 0..100 everywhere, and
    // about 50 right beside the person, where blurring the whole frame gave well over 100.
    double beside = 0;
    for (int y = person.y; y < person.br().y; ++y) {
      beside += after.px(person.x - 1, y)[o.g] + after.px(person.br().x, y)[o.g];
      for (int x = 0; x < width; ++x) {
        if (person.contains({x, y})) continue;
        for (int offset : {o.r, o.g, o.b}) ASSERT_LE(after.px(x, y)[offset], 100) << x << "," << y;
      }
    }
    EXPECT_NEAR(beside / (2 * person.height), 50, 15);
    EXPECT_LT(colour_variance(after, cv::Rect(0, 0, 24, height)),
              0.05 * colour_variance(before, cv::Rect(0, 0, 24, height)));
    EXPECT_TRUE(after.padding_intact());
  }
}

TEST_P(CompositorLayouts, BlurKeepsAFlatBackgroundFlat) {
  TestFrame before = frame();
  before.paint([](int, int) { return cv::Vec3b(200, 100, 50); });
  TestFrame after = before;
  options.blur_radius = 21;
  compositor.draw(after.view(), Mode::Blur, cv::Mat::zeros(kHeight, kWidth, CV_8UC1), cv::Mat(),
                  options);
  const ChannelOffsets o = after.offsets();
  for (int y = 0; y < kHeight; ++y)
    for (int x = 0; x < kWidth; ++x) {
      EXPECT_NEAR(after.px(x, y)[o.r], 200, 1);
      EXPECT_NEAR(after.px(x, y)[o.g], 100, 1);
      EXPECT_NEAR(after.px(x, y)[o.b], 50, 1);
    }
}

TEST_P(CompositorLayouts, ReplaceWithAColour) {
  options.background_color = cv::Scalar(10, 200, 30);
  const cv::Mat alpha = ramp_alpha(kWidth, kHeight);
  const TestFrame before = frame();
  TestFrame after = before;
  compositor.draw(after.view(), Mode::Replace, alpha, cv::Mat(), options);
  expect_pixels(before, after, [&](int x, int y, const u8* was) {
    return expected_pixel(was, layout(), [&](int c, int old) {
      return blend(rgb_component(options.background_color, c), old, alpha.at<u8>(y, x));
    });
  });
  // The three cases the contract names, spelled out.
  const ChannelOffsets o = after.offsets();
  for (int x = 0; x < kWidth; ++x) {
    EXPECT_EQ(after.px(x, 1)[o.g], 200);                // alpha 0: the colour itself
    EXPECT_EQ(after.px(x, 2)[o.g], before.px(x, 2)[o.g]);  // alpha 255: untouched
  }
  const int x128 = 128 % kWidth, y128 = 128 / kWidth;  // alpha 128 there
  ASSERT_EQ(alpha.at<u8>(y128, x128), 128);
  EXPECT_EQ(after.px(x128, y128)[o.r], (before.px(x128, y128)[o.r] * 128 + 10 * 127 + 127) / 255);
}

TEST_P(CompositorLayouts, ReplaceWithAnImageShrunkToTheFrame) {
  // Each 2x2 block of the image is one colour, so averaging it down gives exact answers.
  const auto colour_at = [](int x, int y) {
    return cv::Vec3b(static_cast<u8>(x * 6), static_cast<u8>(y * 9), static_cast<u8>(255 - x - y));
  };
  cv::Mat image(2 * kHeight, 2 * kWidth, CV_8UC3);
  for (int y = 0; y < image.rows; ++y)
    for (int x = 0; x < image.cols; ++x) image.at<cv::Vec3b>(y, x) = colour_at(x / 2, y / 2);
  compositor.set_background_image(image);
  ASSERT_TRUE(compositor.has_background_image());
  const cv::Mat alpha = ramp_alpha(kWidth, kHeight);
  const TestFrame before = frame();
  for (int round = 0; round < 2; ++round) {  // the second draw comes from the cache
    TestFrame after = before;
    compositor.draw(after.view(), Mode::Replace, alpha, cv::Mat(), options);
    expect_pixels(before, after, [&](int x, int y, const u8* was) {
      return expected_pixel(was, layout(), [&](int c, int old) {
        return blend(colour_at(x, y)[c], old, alpha.at<u8>(y, x));
      });
    });
  }
}

TEST_P(CompositorLayouts, ReplaceWithAGradientStretchedToTheFrame) {
  // 4x3 gradient: R rises along x, G along y, B constant.
  cv::Mat image(3, 4, CV_8UC3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 4; ++x) image.at<cv::Vec3b>(y, x) = cv::Vec3b(x * 80, y * 120, 77);
  compositor.set_background_image(image);
  TestFrame after = frame();
  compositor.draw(after.view(), Mode::Replace, cv::Mat::zeros(kHeight, kWidth, CV_8UC1),
                  cv::Mat(), options);
  const ChannelOffsets o = after.offsets();
  EXPECT_EQ(after.px(0, 0)[o.r], 0);
  EXPECT_EQ(after.px(0, 0)[o.g], 0);
  EXPECT_EQ(after.px(kWidth - 1, kHeight - 1)[o.r], 240);
  EXPECT_EQ(after.px(kWidth - 1, kHeight - 1)[o.g], 240);
  for (int y = 0; y < kHeight; ++y)
    for (int x = 0; x < kWidth; ++x) {
      EXPECT_EQ(after.px(x, y)[o.b], 77);
      if (x > 0) {
        EXPECT_GE(after.px(x, y)[o.r], after.px(x - 1, y)[o.r]);
      }
      if (y > 0) {
        EXPECT_GE(after.px(x, y)[o.g], after.px(x, y - 1)[o.g]);
      }
    }
  EXPECT_GT(after.px(kWidth / 2, 0)[o.r], 60);  // stretched, not cropped or tiled
  EXPECT_LT(after.px(kWidth / 2, 0)[o.r], 180);
  EXPECT_TRUE(after.padding_intact());

  compositor.set_background_image(cv::Mat());  // back to the colour
  EXPECT_FALSE(compositor.has_background_image());
  options.background_color = cv::Scalar(9, 8, 7);
  compositor.draw(after.view(), Mode::Replace, cv::Mat::zeros(kHeight, kWidth, CV_8UC1),
                  cv::Mat(), options);
  EXPECT_EQ(after.px(5, 5)[o.r], 9);
  EXPECT_EQ(after.px(5, 5)[o.b], 7);
}

TEST_P(CompositorLayouts, MaskPaintsAlphaAsGreyWithOpaqueAlpha) {
  const cv::Mat alpha = ramp_alpha(kWidth, kHeight);
  const TestFrame before = frame();
  TestFrame after = before;
  compositor.draw(after.view(), Mode::Mask, alpha, cv::Mat(), options);
  expect_pixels(before, after, [&](int x, int y, const u8* was) {
    const int a = alpha.at<u8>(y, x);
    return expected_pixel(was, layout(), [a](int, int) { return a; },
                          has_alpha(layout()) ? 255 : -1);  // padding stays as it was
  });
}

TEST_P(CompositorLayouts, NoneTouchesNothing) {
  const TestFrame before = frame();
  TestFrame after = before;
  compositor.draw(after.view(), Mode::None, cv::Mat(), cv::Mat(), options);
  EXPECT_TRUE(after.same_bytes(before));
}

TEST_P(CompositorLayouts, TinyFramesInEveryMode) {
  for (cv::Size size : {cv::Size(1, 1), cv::Size(2, 1), cv::Size(1, 3), cv::Size(3, 2)}) {
    SCOPED_TRACE(std::to_string(size.width) + "x" + std::to_string(size.height));
    const cv::Mat opaque(size, CV_8UC1, cv::Scalar(255));
    for (Mode mode : {Mode::Overlay, Mode::Blur, Mode::Replace, Mode::Mask}) {
      const TestFrame before = frame(size.width, size.height);
      TestFrame after = before;
      compositor.draw(after.view(), mode, opaque, cv::Mat(), options);
      EXPECT_TRUE(after.padding_intact()) << to_string(mode);
      if (mode == Mode::Blur || mode == Mode::Replace) {
        EXPECT_TRUE(after.same_bytes(before)) << to_string(mode) << ": foreground changed";
      }
    }
  }
}

TEST_P(CompositorLayouts, RefusesMismatchedSizesAndLeavesTheFrameAlone) {
  const TestFrame before = frame();
  TestFrame after = before;
  const cv::Mat narrow(kHeight, kWidth - 1, CV_8UC1, cv::Scalar(255));
  const cv::Mat short_one(kHeight - 1, kWidth, CV_8UC1, cv::Scalar(255));
  for (Mode mode : {Mode::Overlay, Mode::Alpha, Mode::Blur, Mode::Replace, Mode::Mask}) {
    EXPECT_THROW(compositor.draw(after.view(), mode, narrow, cv::Mat(), options), Error);
    EXPECT_THROW(compositor.draw(after.view(), mode, short_one, cv::Mat(), options), Error);
    EXPECT_THROW(compositor.draw(after.view(), mode, cv::Mat(), cv::Mat(), options), Error);
  }
  const cv::Mat alpha(kHeight, kWidth, CV_8UC1, cv::Scalar(0));
  EXPECT_THROW(compositor.draw(after.view(), Mode::Overlay, alpha, narrow, options), Error);
  EXPECT_THROW(compositor.draw(after.view(), Mode::Overlay, cv::Mat(), narrow, options), Error);
  EXPECT_THROW(compositor.draw(after.view(), Mode::Mask, cv::Mat(kHeight, kWidth, CV_32FC1),
                               cv::Mat(), options),
               Error);
  EXPECT_TRUE(after.same_bytes(before));
}

std::string layout_case_name(const ::testing::TestParamInfo<std::tuple<PixelLayout, int>>& info) {
  return std::string(layout_name(std::get<0>(info.param))) +
         (std::get<1>(info.param) ? "_padded" : "_tight");
}

INSTANTIATE_TEST_SUITE_P(AllLayouts, CompositorLayouts,
                         ::testing::Combine(::testing::ValuesIn(kAllLayouts),
                                            ::testing::Values(0, 13)),
                         layout_case_name);

// --- The rest.

TEST(Compositor, AlphaModeOnRGBxIsAnErrorThatNamesTheLayout) {
  TestFrame frame(PixelLayout::RGBx, 4, 4, 0);
  Compositor compositor;
  try {
    compositor.draw(frame.view(), Mode::Alpha, cv::Mat(4, 4, CV_8UC1, cv::Scalar(9)), cv::Mat(),
                    CompositorOptions{});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("RGBx"), std::string::npos) << e.what();
  }
}

TEST(Compositor, SizeMismatchMessageGivesBothSizes) {
  TestFrame frame(PixelLayout::BGRA, 8, 6, 0);
  Compositor compositor;
  try {
    compositor.draw(frame.view(), Mode::Mask, cv::Mat(5, 7, CV_8UC1), cv::Mat(),
                    CompositorOptions{});
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("7x5"), std::string::npos) << message;
    EXPECT_NE(message.find("8x6"), std::string::npos) << message;
  }
}

TEST(Compositor, RefusesBadFramesAndOptions) {
  Compositor compositor;
  const cv::Mat alpha(6, 8, CV_8UC1, cv::Scalar(0));
  TestFrame frame(PixelLayout::RGB, 8, 6, 0);
  FrameView short_stride = frame.view();
  short_stride.stride = 8 * 3 - 1;
  EXPECT_THROW(compositor.draw(short_stride, Mode::Mask, alpha, cv::Mat(), CompositorOptions{}),
               Error);
  FrameView no_data = frame.view();
  no_data.data = nullptr;
  EXPECT_THROW(compositor.draw(no_data, Mode::Mask, alpha, cv::Mat(), CompositorOptions{}), Error);
  CompositorOptions no_radius;
  no_radius.blur_radius = 0;
  EXPECT_THROW(compositor.draw(frame.view(), Mode::Blur, alpha, cv::Mat(), no_radius), Error);
  EXPECT_THROW(compositor.set_background_image(cv::Mat(4, 4, CV_8UC4)), Error);
  EXPECT_THROW(compositor.set_background_image(cv::Mat(4, 4, CV_8UC1)), Error);
}

TEST(Compositor, BackgroundFollowsTheLayoutAndSizeOfEachFrame) {
  cv::Mat image(10, 10, CV_8UC3, cv::Scalar(11, 22, 33));  // R, G, B
  Compositor compositor;
  compositor.set_background_image(image);
  for (cv::Size size : {cv::Size(5, 4), cv::Size(12, 3)}) {
    for (PixelLayout layout : {PixelLayout::RGB, PixelLayout::BGR, PixelLayout::BGRx,
                               PixelLayout::ARGB, PixelLayout::RGB}) {
      SCOPED_TRACE(std::string(layout_name(layout)) + " " + std::to_string(size.width));
      TestFrame frame(layout, size.width, size.height, 3);
      compositor.draw(frame.view(), Mode::Replace, cv::Mat::zeros(size, CV_8UC1), cv::Mat(),
                      CompositorOptions{});
      const ChannelOffsets o = frame.offsets();
      for (int y = 0; y < size.height; ++y)
        for (int x = 0; x < size.width; ++x) {
          EXPECT_EQ(frame.px(x, y)[o.r], 11);
          EXPECT_EQ(frame.px(x, y)[o.g], 22);
          EXPECT_EQ(frame.px(x, y)[o.b], 33);
        }
    }
  }
  // A new image replaces the cached one at once, even at the same frame size and layout.
  compositor.set_background_image(cv::Mat(10, 10, CV_8UC3, cv::Scalar(44, 55, 66)));
  TestFrame frame(PixelLayout::RGB, 12, 3, 3);
  compositor.draw(frame.view(), Mode::Replace, cv::Mat::zeros(3, 12, CV_8UC1), cv::Mat(),
                  CompositorOptions{});
  EXPECT_EQ(frame.px(4, 1)[0], 44);
  EXPECT_EQ(frame.px(4, 1)[2], 66);
}

TEST(Compositor, PaletteIsTheVocColourMap) {
  EXPECT_EQ(Compositor::palette_color(0), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(Compositor::palette_color(1), cv::Vec3b(128, 0, 0));
  EXPECT_EQ(Compositor::palette_color(2), cv::Vec3b(0, 128, 0));
  EXPECT_EQ(Compositor::palette_color(3), cv::Vec3b(128, 128, 0));
  EXPECT_EQ(Compositor::palette_color(15), cv::Vec3b(192, 128, 128));  // VOC "person"
  EXPECT_EQ(Compositor::palette_color(-4), cv::Vec3b(0, 0, 0));
  std::set<std::tuple<int, int, int>> seen;
  for (int id = 1; id < 256; ++id) {
    const cv::Vec3b c = Compositor::palette_color(id);
    EXPECT_NE(c, cv::Vec3b(0, 0, 0)) << id;
    seen.insert({c[0], c[1], c[2]});
  }
  EXPECT_EQ(seen.size(), 255u);
}

TEST(Compositor, ModeNames) {
  EXPECT_STREQ(to_string(Mode::None), "none");
  EXPECT_STREQ(to_string(Mode::Overlay), "overlay");
  EXPECT_STREQ(to_string(Mode::Alpha), "alpha");
  EXPECT_STREQ(to_string(Mode::Blur), "blur");
  EXPECT_STREQ(to_string(Mode::Replace), "replace");
  EXPECT_STREQ(to_string(Mode::Mask), "mask");
}

TEST(Compositor, NoBufferIsAllocatedOnceTheFrameSizeIsStable) {
  const int width = 160, height = 120;
  const cv::Mat alpha = ramp_alpha(width, height), wider_alpha = ramp_alpha(2 * width, height);
  const cv::Mat classes(height, width, CV_8UC1, cv::Scalar(3)), no_classes;
  Compositor compositor;
  compositor.set_background_image(cv::Mat(50, 70, CV_8UC3, cv::Scalar(1, 2, 3)));
  const CompositorOptions options;
  TestFrame frame(PixelLayout::BGRA, width, height, 8);
  TestFrame wider(PixelLayout::BGRA, 2 * width, height, 8);
  const std::pair<Mode, const cv::Mat*> cases[] = {
      {Mode::Overlay, &no_classes}, {Mode::Overlay, &classes}, {Mode::Alpha, &no_classes},
      {Mode::Blur, &no_classes},    {Mode::Replace, &no_classes}, {Mode::Mask, &no_classes}};
  for (const auto& [mode, class_map] : cases)
    compositor.draw(frame.view(), mode, alpha, *class_map, options);

  CountingAllocator counter;
  for (int repeat = 0; repeat < 2; ++repeat)
    for (const auto& [mode, class_map] : cases) {
      compositor.draw(frame.view(), mode, alpha, *class_map, options);
      EXPECT_EQ(counter.large_allocations, 0) << to_string(mode);
    }
  // The counter does count: a wider frame makes the blur buffers grow.
  compositor.draw(wider.view(), Mode::Blur, wider_alpha, no_classes, options);
  EXPECT_GT(counter.large_allocations, 0);
}

// Blur keeps every buffer it needs, for each path (full size below radius 4, blocks of 2 and
// of 7 pixels) and pixel size. (cv::Mat buffers only; unetseg-bench counts every malloc.)
TEST(Compositor, BlurAllocatesNothingOnceTheFrameSizeIsStable) {
  const int width = 160, height = 120;
  const cv::Mat alpha = ramp_alpha(width, height);
  for (PixelLayout layout : {PixelLayout::RGB, PixelLayout::xBGR}) {
    for (int radius : {2, 5, 21}) {
      SCOPED_TRACE(std::string(layout_name(layout)) + " radius " + std::to_string(radius));
      Compositor compositor;
      CompositorOptions options;
      options.blur_radius = radius;
      TestFrame frame(layout, width, height, 5);
      compositor.draw(frame.view(), Mode::Blur, alpha, cv::Mat(), options);
      CountingAllocator counter;
      for (int repeat = 0; repeat < 3; ++repeat)
        compositor.draw(frame.view(), Mode::Blur, alpha, cv::Mat(), options);
      EXPECT_EQ(counter.allocations, 0);
    }
  }
}

}  // namespace
}  // namespace unetseg
