// Reading a model file safely, and what its ONNX graph declares, without OpenCV.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unetseg {

// The largest model file read: far above any model in the catalog (ISNet at 1024 in fp32 is
// 176 MB), far below what would exhaust a machine's memory.
constexpr std::uint64_t kMaxModelBytes = 2ull << 30;  // 2 GiB

// The bytes of a file that must be a regular file of 1 to max_bytes bytes. The path is opened
// once, without blocking (a FIFO or device put in its place cannot stall the caller), and
// everything is decided on that one descriptor (a huge or sparse file is refused by its size
// before anything is read). Throws unetseg::Error naming `what` ("model"), the path and the
// reason; `holding` says what the file should hold ("an ONNX model").
std::vector<std::uint8_t> read_regular_file(const std::string& path, std::uint64_t max_bytes,
                                            const std::string& what, const std::string& holding);

// A model file: read_regular_file(path, kMaxModelBytes, "model", "an ONNX model").
std::vector<std::uint8_t> read_model_file(const std::string& path);

// One input or output of an ONNX graph: its name and, where the graph fixes them, its
// dimensions (-1 where a dimension is symbolic or missing; empty when no shape is given).
struct GraphValue {
  std::string name;
  std::vector<std::int64_t> dims;
};

// The graph's inputs (initializers listed as inputs, as older exporters do, left out) and
// outputs, in the graph's own order (OpenCV lists outputs in layer order, which for U2-Net
// puts the fused d0 last; a sidecar's output.index means the graph's order).
struct OnnxGraph {
  std::vector<GraphValue> inputs;
  std::vector<GraphValue> outputs;
  const GraphValue* input(const std::string& name) const;
  const GraphValue* output(const std::string& name) const;
};

// Read straight from the protobuf wire format: ModelProto.graph (7) -> GraphProto.input (11),
// .output (12), .initializer (5) -> ValueInfoProto.name (1), .type (2) -> TypeProto.tensor_type
// (1) -> .shape (2) -> .dim (1) -> .dim_value (1). Both lists are empty when the bytes are not
// a readable ONNX model (OpenCV then says why).
OnnxGraph read_onnx_graph(const std::vector<std::uint8_t>& model);

}  // namespace unetseg
