#include <gtest/gtest.h>

#include "unetseg/frame.hpp"

using namespace unetseg;

TEST(Frame, EveryLayoutRoundTripsByName) {
  for (const char* name : {"RGB", "BGR", "RGBx", "BGRx", "xRGB", "xBGR", "RGBA", "BGRA", "ARGB", "ABGR"}) {
    PixelLayout layout;
    ASSERT_TRUE(layout_from_name(name, &layout)) << name;
    EXPECT_STREQ(layout_name(layout), name);
  }
  PixelLayout layout;
  EXPECT_FALSE(layout_from_name("I420", &layout));
  EXPECT_FALSE(layout_from_name("", &layout));
}

TEST(Frame, ChannelOffsetsMatchTheFormatNames) {
  // For each layout, the byte that holds R, G, B and A must be where its name puts it.
  for (int i = 0; i <= static_cast<int>(PixelLayout::ABGR); ++i) {
    const auto layout = static_cast<PixelLayout>(i);
    const std::string name = layout_name(layout);
    const ChannelOffsets off = channel_offsets(layout);
    EXPECT_EQ(off.bytes_per_pixel, static_cast<int>(name.size())) << name;
    EXPECT_EQ(name[off.r], 'R') << name;
    EXPECT_EQ(name[off.g], 'G') << name;
    EXPECT_EQ(name[off.b], 'B') << name;
    if (name.find('A') != std::string::npos) {
      EXPECT_EQ(off.alpha, static_cast<int>(name.find('A'))) << name;
      EXPECT_TRUE(has_alpha(layout));
    } else {
      EXPECT_EQ(off.alpha, -1) << name;  // 'x' padding is not alpha
      EXPECT_FALSE(has_alpha(layout));
    }
  }
}

TEST(Frame, MatViewSharesThePixelsAndKeepsTheStride) {
  std::vector<uint8_t> pixels(3 * 40, 0);
  FrameView view{pixels.data(), 5, 3, 40, PixelLayout::BGRx};
  cv::Mat m = view.mat();
  EXPECT_EQ(m.type(), CV_8UC4);
  EXPECT_EQ(m.step[0], 40u);
  m.at<cv::Vec4b>(2, 4) = cv::Vec4b(1, 2, 3, 4);
  EXPECT_EQ(pixels[2 * 40 + 4 * 4 + 3], 4);
}
