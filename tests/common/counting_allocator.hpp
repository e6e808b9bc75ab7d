// Counts the cv::Mat buffers allocated while it is installed (cv::Mat's default allocator), for
// the tests that promise "nothing is allocated once the frame size is stable".
#pragma once

#include <cstddef>

#include <opencv2/core.hpp>

namespace unetseg_test {

// Counts the cv::Mat buffers (all, and those of at least kLarge bytes) allocated while it is
// installed.
class CountingAllocator : public cv::MatAllocator {
 public:
  static constexpr std::size_t kLarge = 1024;
  CountingAllocator() : previous_(cv::Mat::getDefaultAllocator()) {
    cv::Mat::setDefaultAllocator(this);
  }
  ~CountingAllocator() override { cv::Mat::setDefaultAllocator(previous_); }

  cv::UMatData* allocate(int dims, const int* sizes, int type, void* data, std::size_t* step,
                         cv::AccessFlag flags, cv::UMatUsageFlags usage) const override {
    std::size_t bytes = CV_ELEM_SIZE(type);
    for (int i = 0; i < dims; ++i) bytes *= sizes[i];
    if (!data) ++allocations;
    if (!data && bytes >= kLarge) ++large_allocations;
    return std_->allocate(dims, sizes, type, data, step, flags, usage);
  }
  bool allocate(cv::UMatData* u, cv::AccessFlag flags, cv::UMatUsageFlags usage) const override {
    return std_->allocate(u, flags, usage);
  }
  void deallocate(cv::UMatData* u) const override { std_->deallocate(u); }

  mutable int allocations = 0, large_allocations = 0;

 private:
  cv::MatAllocator* previous_;
  cv::MatAllocator* std_ = cv::Mat::getStdAllocator();
};

}  // namespace unetseg_test
