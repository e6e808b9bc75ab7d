// BilinearUpscaler: byte for byte cv::resize INTER_LINEAR, and nothing allocated per call.

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "../common/counting_allocator.hpp"
#include "unetseg/bilinear_upscaler.hpp"

namespace unetseg {
namespace {

cv::Mat random_map(cv::Size size, int seed, bool hard_edges) {
  cv::Mat m(size, CV_8UC1);
  cv::RNG rng(seed);
  rng.fill(m, cv::RNG::UNIFORM, 0, 256);
  if (hard_edges) cv::threshold(m, m, 127, 255, cv::THRESH_BINARY);
  return m;
}

// Model sizes against frame sizes, integer and odd factors, one axis unchanged, tiny sources.
TEST(BilinearUpscaler, MatchesOpenCvByteForByte) {
  const cv::Size sources[] = {{256, 256}, {320, 320}, {144, 256}, {1, 1}, {1, 7}, {5, 3},
                              {33, 17}, {512, 288}};
  const cv::Size frames[] = {{1920, 1080}, {1280, 720}, {640, 480}, {3840, 2160}, {257, 999},
                             {512, 512}, {1000, 3}};
  BilinearUpscaler up;
  int seed = 1;
  for (cv::Size from : sources)
    for (cv::Size to : frames) {
      if (to.width < from.width || to.height < from.height) continue;
      for (bool hard : {false, true}) {
        const cv::Mat src = random_map(from, seed++, hard);
        cv::Mat expected, got;
        cv::resize(src, expected, to, 0, 0, cv::INTER_LINEAR);
        up.resize(src, to, got);
        ASSERT_EQ(got.size(), expected.size());
        ASSERT_EQ(cv::norm(got, expected, cv::NORM_INF), 0)
            << from << " -> " << to << (hard ? " hard" : " soft");
      }
    }
}

// Shrinking goes to cv::resize itself (exactly half is area averaging there).
TEST(BilinearUpscaler, ShrinkingIsOpenCvsOwn) {
  BilinearUpscaler up;
  const cv::Mat src = random_map({64, 48}, 7, false);
  for (cv::Size to : {cv::Size(32, 24), cv::Size(50, 60), cv::Size(17, 5)}) {
    cv::Mat expected, got;
    cv::resize(src, expected, to, 0, 0, cv::INTER_LINEAR);
    up.resize(src, to, got);
    EXPECT_EQ(cv::norm(got, expected, cv::NORM_INF), 0) << to;
  }
}

// Rows in any order are the rows of the whole.
TEST(BilinearUpscaler, RowsInAnyOrderMatchTheWhole) {
  BilinearUpscaler up;
  const cv::Mat src = random_map({256, 256}, 3, false);
  cv::Mat whole;
  up.resize(src, {1920, 1080}, whole);
  up.load(src);
  std::vector<std::uint8_t> out(1920);
  for (int y : {1079, 0, 500, 501, 499, 7, 7, 1078}) {
    up.row(y, out.data());
    EXPECT_EQ(0, std::memcmp(out.data(), whole.ptr(y), 1920)) << "row " << y;
  }
}

TEST(BilinearUpscaler, AllocatesNothingOnceTheSizesAreStable) {
  BilinearUpscaler up;
  const cv::Mat src = random_map({256, 256}, 5, true);
  cv::Mat dst;
  up.resize(src, {1280, 720}, dst);
  unetseg_test::CountingAllocator counter;
  const void* before = dst.data;
  for (int i = 0; i < 3; ++i) up.resize(src, {1280, 720}, dst);
  EXPECT_EQ(counter.allocations, 0);
  EXPECT_EQ(dst.data, before);
}

}  // namespace
}  // namespace unetseg
