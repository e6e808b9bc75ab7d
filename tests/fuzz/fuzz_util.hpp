// Shared by the fuzz targets: a fuzz input as a file the library can open by path.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace unetseg_fuzz {

// One anonymous in-memory file (memfd) per process, rewritten for every input and opened by the
// library through /proc/self/fd/N: a regular file to fstat, nothing written to disk.
class MemFile {
 public:
  MemFile() {
    fd_ = ::memfd_create("unetseg-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  // The path of a file holding exactly `data`.
  const std::string& hold(const std::uint8_t* data, std::size_t size) {
    if (::ftruncate(fd_, 0) != 0 || (size > 0 && ::pwrite(fd_, data, size, 0) !=
                                                     static_cast<ssize_t>(size))) {
      std::perror("memfd write");
      std::abort();
    }
    return path_;
  }

 private:
  int fd_ = -1;
  std::string path_;
};

// A finding: what the library must never do (crash, throw something else than unetseg::Error,
// or return something its own contract excludes). Aborting makes libFuzzer save the input.
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::abort();
}

}  // namespace unetseg_fuzz
