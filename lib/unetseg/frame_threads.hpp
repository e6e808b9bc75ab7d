// How many threads one frame's passes (preprocess, blur) may split into. Alone, a stream gains
// from OpenCV's threads. When several streams share the cores (a model shared by several
// streams), the streams are the parallelism, and worse: OpenCV has one pool per process that
// admits only as many threads as it has, so a frame's parallel pass waits there while another
// stream's forward holds it (measured: 4 streams of 1080p blur, 10 fps each with split passes,
// docs/BENCHMARKS.md). So VideoSegmenter runs its passes in the calling thread then.
#pragma once

#include <opencv2/core/utility.hpp>

namespace unetseg {

// The stripes a pass may use on this thread: 1 inside a SerialFrames scope, else OpenCV's
// thread count.
int frame_threads();

// While it lives, frame_threads() is 1 on this thread (when `serial`); scopes nest.
class SerialFrames {
 public:
  explicit SerialFrames(bool serial);
  ~SerialFrames();
  SerialFrames(const SerialFrames&) = delete;
  SerialFrames& operator=(const SerialFrames&) = delete;

 private:
  bool serial_;
};

}  // namespace unetseg
