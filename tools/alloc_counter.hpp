// A process-wide count of heap allocations, so that a benchmark can show that a loop allocates
// nothing rather than assert it. Linking alloc_counter.cpp into a program replaces glibc's
// malloc family with thin counting wrappers around glibc's own allocator, which glibc supports
// ("Replacing malloc" in its manual): every malloc, calloc, realloc and aligned allocation of
// every library in the process is counted, on every thread, including operator new and
// cv::fastMalloc, which end in them.
#pragma once

#include <cstdint>

namespace unetseg_tools {

struct Allocations {
  std::uint64_t count = 0;  // calls that returned new memory (realloc counts as one)
  std::uint64_t bytes = 0;  // bytes requested by them
};

Allocations allocations_so_far();
// Those of the calling thread alone (e.g. a streaming thread's, between two pad probes).
Allocations allocations_on_this_thread();

inline Allocations operator-(const Allocations& a, const Allocations& b) {
  return {a.count - b.count, a.bytes - b.bytes};
}

}  // namespace unetseg_tools
