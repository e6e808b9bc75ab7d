// libFuzzer target: the model-file checks, unetseg::read_model_file and unetseg::read_onnx_graph
// (lib/src/model_file.cpp's protobuf walker) on arbitrary bytes as the .onnx file.
//
// The contract checked: read_model_file returns the file's bytes or throws unetseg::Error;
// read_onnx_graph never throws nor reads out of bounds (the bytes are an exactly sized heap
// vector, so ASan sees a read one byte past the end), and what it returns is made of the
// input's own bytes (no name or dimension list can be longer than the input). OpenCV's own ONNX
// importer is not fuzzed here (Debian's build is not instrumented). tests/fuzz/README.md says
// how to run it.
#include <algorithm>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "unetseg/error.hpp"
#include "unetseg/model_file.hpp"

namespace {

void check(const unetseg::GraphValue& v, std::size_t size, const char* what) {
  if (v.name.size() > size || v.dims.size() > size)
    unetseg_fuzz::finding(std::string(what) + " larger than the input itself");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static unetseg_fuzz::MemFile file;
  std::vector<std::uint8_t> bytes;
  try {
    bytes = unetseg::read_model_file(file.hold(data, size));
  } catch (const unetseg::Error&) {
    if (size != 0) unetseg_fuzz::finding("read_model_file refused a non-empty regular file");
    return 0;
  }
  if (bytes.size() != size || !std::equal(bytes.begin(), bytes.end(), data))
    unetseg_fuzz::finding("read_model_file returned other bytes than the file holds");

  unetseg::OnnxGraph graph;
  try {
    graph = unetseg::read_onnx_graph(bytes);
  } catch (const std::exception& e) {
    unetseg_fuzz::finding(std::string("read_onnx_graph threw: ") + e.what());
  }
  for (const unetseg::GraphValue& v : graph.inputs) {
    check(v, size, "an input");
    if (graph.input(v.name) == nullptr) unetseg_fuzz::finding("input() misses a listed input");
  }
  for (const unetseg::GraphValue& v : graph.outputs) {
    check(v, size, "an output");
    if (graph.output(v.name) == nullptr) unetseg_fuzz::finding("output() misses a listed output");
  }
  return 0;
}
