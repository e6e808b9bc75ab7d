// A frame-size alpha mask handed out one row at a time, so that whoever draws with it need not
// have it whole: MaskFilter computes the plain upscale's rows as they are asked for, and
// Compositor reads a frame-size Mat through one too.
#pragma once

#include <cstdint>

#include <opencv2/core.hpp>

namespace unetseg {

class AlphaRows {
 public:
  virtual ~AlphaRows() = default;
  // Its size; CV_8UC1 rows of size().width bytes, 255 = foreground.
  virtual cv::Size size() const = 0;
  // Before a pass over the rows by up to `workers` workers at once (worker 0 .. workers - 1):
  // sizes their scratch (allocating only when it grows). Not thread-safe.
  virtual void begin(int workers) = 0;
  // Row y (0 <= y < size().height), valid until this worker's next call. Workers may call at
  // once with different indices; each is fastest going down the rows in order.
  virtual const std::uint8_t* row(int y, int worker) = 0;
};

}  // namespace unetseg
