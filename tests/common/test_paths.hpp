// Where the tests find their material, and scratch files that clean up after themselves.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace unetseg_test {

inline std::string env_or_die(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) throw std::runtime_error(std::string(name) + " is not set: run the tests through meson test");
  return v;
}

// The generated test models (tests/models/make_test_models.py).
inline std::string test_model(const std::string& stem) {
  return env_or_die("UNETSEG_TEST_MODELS") + "/" + stem + ".onnx";
}
inline std::string source_path(const std::string& rel) {
  return env_or_die("UNETSEG_SOURCE_ROOT") + "/" + rel;
}
inline std::string shared_path(const std::string& rel) {
  return env_or_die("UNETSEG_SHARED") + "/" + rel;
}

inline bool file_exists(const std::string& path) { return access(path.c_str(), R_OK) == 0; }

inline std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A fresh directory under $TMPDIR, removed with everything in it when this goes out of scope.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                       "/unetseg-test-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Copies a test model (and, unless told otherwise, its sidecar) into `dir` under a new stem.
inline std::string copy_model(const std::string& stem, const TempDir& dir,
                              const std::string& new_stem, bool with_sidecar = true) {
  const std::string src = env_or_die("UNETSEG_TEST_MODELS") + "/" + stem;
  const auto onnx = read_file(src + ".onnx");
  write_file(dir.file(new_stem + ".onnx"), std::string(onnx.begin(), onnx.end()));
  if (with_sidecar) {
    const auto json = read_file(src + ".json");
    write_file(dir.file(new_stem + ".json"), std::string(json.begin(), json.end()));
  }
  return dir.file(new_stem + ".onnx");
}

}  // namespace unetseg_test
