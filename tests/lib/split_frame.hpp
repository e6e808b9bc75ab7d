// Frames whose right mask the red/green test models know: red (foreground) left of a column,
// green right of it, so every mask can be checked against the frame it claims to be of.
#pragma once

#include <cstdint>
#include <vector>

#include "unetseg/async_segmenter.hpp"
#include "unetseg/frame.hpp"

namespace unetseg_test {

// 320x240 RGB: red (foreground for the *_rg models) left of column `split`, green right of it.
struct SplitFrame {
  std::vector<uint8_t> data;
  unetseg::FrameView view;
  explicit SplitFrame(int split) : data(320 * 240 * 3) {
    for (int y = 0; y < 240; ++y)
      for (int x = 0; x < 320; ++x) data[(y * 320 + x) * 3 + (x < split ? 0 : 1)] = 255;
    view = unetseg::FrameView{data.data(), 320, 240, 320 * 3, unetseg::PixelLayout::RGB};
  }
};

// Frame `tag` splits at 5 * tag model columns (the model sees 64 columns, 5 frame pixels each).
inline int split_of(std::int64_t tag) { return 5 * 5 * static_cast<int>(tag % 13); }

// Whether a result's map is foreground exactly left of its tag's split.
inline bool matches_its_frame(const unetseg::SegmentResult& r) {
  const int split_column = split_of(r.tag) / 5;
  for (int x = 0; x < r.foreground.cols; ++x) {
    const float v = r.foreground.at<float>(r.foreground.rows / 2, x);
    if ((x < split_column) != (v > 0.5f)) return false;
  }
  return true;
}

}  // namespace unetseg_test
