#include "unetseg/frame_threads.hpp"

namespace unetseg {

namespace {
thread_local int serial_depth = 0;
}  // namespace

int frame_threads() { return serial_depth > 0 ? 1 : cv::getNumThreads(); }

SerialFrames::SerialFrames(bool serial) : serial_(serial) { serial_depth += serial_; }

SerialFrames::~SerialFrames() { serial_depth -= serial_; }

}  // namespace unetseg
