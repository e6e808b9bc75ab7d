// See alloc_counter.hpp. The wrappers forward to glibc's exported __libc_* entry points, so the
// memory comes from (and goes back to) the same allocator as without them; the only cost is one
// relaxed atomic add (and a thread-local one) per allocation.
#include "alloc_counter.hpp"

#include <atomic>
#include <cerrno>
#include <cstddef>

extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* ptr, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
void* __libc_valloc(std::size_t size);
void* __libc_pvalloc(std::size_t size);
void __libc_free(void* ptr);
}

namespace {

std::atomic<std::uint64_t> g_count{0};
std::atomic<std::uint64_t> g_bytes{0};
// The executable's own TLS (local-exec): reading it allocates nothing, even inside malloc.
thread_local std::uint64_t t_count = 0, t_bytes = 0;

inline void* counted(void* ptr, std::size_t bytes) {
  if (ptr) {
    g_count.fetch_add(1, std::memory_order_relaxed);
    g_bytes.fetch_add(bytes, std::memory_order_relaxed);
    ++t_count;
    t_bytes += bytes;
  }
  return ptr;
}

}  // namespace

namespace unetseg_tools {

Allocations allocations_so_far() {
  return {g_count.load(std::memory_order_relaxed), g_bytes.load(std::memory_order_relaxed)};
}

Allocations allocations_on_this_thread() { return {t_count, t_bytes}; }

}  // namespace unetseg_tools

extern "C" {

void* malloc(std::size_t size) { return counted(__libc_malloc(size), size); }
void free(void* ptr) { __libc_free(ptr); }
void* calloc(std::size_t count, std::size_t size) {
  return counted(__libc_calloc(count, size), count * size);
}
void* realloc(void* ptr, std::size_t size) { return counted(__libc_realloc(ptr, size), size); }
void* memalign(std::size_t alignment, std::size_t size) {
  return counted(__libc_memalign(alignment, size), size);
}
void* aligned_alloc(std::size_t alignment, std::size_t size) {
  return counted(__libc_memalign(alignment, size), size);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t size) {
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* ptr = counted(__libc_memalign(alignment, size), size);
  if (!ptr) return ENOMEM;
  *out = ptr;
  return 0;
}
void* valloc(std::size_t size) { return counted(__libc_valloc(size), size); }
void* pvalloc(std::size_t size) { return counted(__libc_pvalloc(size), size); }

}  // extern "C"
