#include "unetseg/model_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "unetseg/error.hpp"

namespace unetseg {

namespace {

// A file descriptor that closes itself.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Protobuf's wire format, just enough to walk an ONNX ModelProto without a protobuf library.
class ProtoReader {
 public:
  ProtoReader(const std::uint8_t* p, std::size_t n) : p_(p), end_(p + n) {}
  bool done() const { return p_ >= end_; }
  bool next(std::uint32_t* field, std::uint32_t* wire) {
    std::uint64_t key;
    if (!varint(&key)) return false;
    *field = static_cast<std::uint32_t>(key >> 3);
    *wire = static_cast<std::uint32_t>(key & 7);
    return true;
  }
  bool bytes(ProtoReader* sub) {
    std::uint64_t n;
    if (!varint(&n) || n > static_cast<std::uint64_t>(end_ - p_)) return false;
    *sub = ProtoReader(p_, n);
    p_ += n;
    return true;
  }
  bool varint(std::uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && p_ < end_; shift += 7) {
      const std::uint8_t b = *p_++;
      *v |= std::uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool skip(std::uint32_t wire) {
    std::uint64_t v;
    ProtoReader sub(nullptr, 0);
    switch (wire) {
      case 0: return varint(&v);
      case 1: return advance(8);
      case 2: return bytes(&sub);
      case 5: return advance(4);
      default: return false;
    }
  }
  std::string rest() const {
    return std::string(reinterpret_cast<const char*>(p_), static_cast<std::size_t>(end_ - p_));
  }

 private:
  bool advance(std::size_t n) {
    if (n > static_cast<std::size_t>(end_ - p_)) return false;
    p_ += n;
    return true;
  }
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

// Calls on_field(field, reader) for each length-delimited field of `message` (the callback
// consumes it into the given sub-reader) and skips the rest; false when the bytes break off.
template <typename F>
bool each_field(ProtoReader message, F on_field) {
  std::uint32_t field, wire;
  while (!message.done()) {
    if (!message.next(&field, &wire)) return false;
    if (wire == 2) {
      ProtoReader sub(nullptr, 0);
      if (!message.bytes(&sub) || !on_field(field, sub)) return false;
    } else if (!message.skip(wire)) {
      return false;
    }
  }
  return true;
}

// TensorShapeProto.dim (1) -> Dimension.dim_value (1, varint); a dim_param leaves -1.
bool read_dims(ProtoReader shape, std::vector<std::int64_t>* dims) {
  return each_field(shape, [&](std::uint32_t field, ProtoReader dim) {
    if (field != 1) return true;
    std::int64_t value = -1;
    std::uint32_t f, w;
    while (!dim.done()) {
      if (!dim.next(&f, &w)) return false;
      std::uint64_t v;
      if (f == 1 && w == 0) {
        if (!dim.varint(&v)) return false;
        value = static_cast<std::int64_t>(v);
      } else if (!dim.skip(w)) {
        return false;
      }
    }
    dims->push_back(value);
    return true;
  });
}

// ValueInfoProto: name (1), type (2) -> TypeProto.tensor_type (1) -> shape (2).
bool read_value(ProtoReader info, GraphValue* value) {
  return each_field(info, [&](std::uint32_t field, ProtoReader sub) {
    if (field == 1) value->name = sub.rest();
    if (field != 2) return true;
    return each_field(sub, [&](std::uint32_t f, ProtoReader tensor) {
      if (f != 1) return true;
      return each_field(tensor, [&](std::uint32_t g, ProtoReader shape) {
        return g != 2 || read_dims(shape, &value->dims);
      });
    });
  });
}

// TensorProto.name (8).
bool read_tensor_name(ProtoReader tensor, std::string* name) {
  return each_field(tensor, [&](std::uint32_t field, ProtoReader sub) {
    if (field == 8) *name = sub.rest();
    return true;
  });
}

}  // namespace

namespace {
std::string size_text(std::uint64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}
}  // namespace

std::vector<std::uint8_t> read_regular_file(const std::string& path, std::uint64_t max_bytes,
                                            const std::string& what, const std::string& holding) {
  const std::string name = what + " " + path;
  Fd file{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
  if (file.fd < 0) throw Error(name + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) throw Error(name + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode))
    throw Error(name + " is a directory, not a regular file holding " + holding);
  if (!S_ISREG(st.st_mode))
    throw Error(name + " is not a regular file (a device or pipe?), not " + holding);
  if (st.st_size == 0) throw Error(name + " is empty (0 bytes)");
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes)
    throw Error(name + " is " + size_text(static_cast<std::uint64_t>(st.st_size)) +
                ", more than the " + size_text(max_bytes) + " a " + what +
                " may have: not read");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(file.fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(name + " could not be read: " + std::strerror(errno));
    if (n == 0) throw Error(name + " could not be read completely (it shrank)");
    got += static_cast<std::size_t>(n);
  }
  return bytes;
}

std::vector<std::uint8_t> read_model_file(const std::string& path) {
  return read_regular_file(path, kMaxModelBytes, "model", "an ONNX model");
}

const GraphValue* OnnxGraph::input(const std::string& name) const {
  for (const GraphValue& v : inputs)
    if (v.name == name) return &v;
  return nullptr;
}

const GraphValue* OnnxGraph::output(const std::string& name) const {
  for (const GraphValue& v : outputs)
    if (v.name == name) return &v;
  return nullptr;
}

OnnxGraph read_onnx_graph(const std::vector<std::uint8_t>& model) {
  OnnxGraph graph;
  std::vector<std::string> initializers;
  const bool ok = each_field(ProtoReader(model.data(), model.size()),
                             [&](std::uint32_t field, ProtoReader g) {
    if (field != 7) return true;  // ModelProto.graph
    return each_field(g, [&](std::uint32_t f, ProtoReader sub) {
      if (f == 5) {  // initializer
        initializers.emplace_back();
        return read_tensor_name(sub, &initializers.back());
      }
      if (f != 11 && f != 12) return true;
      GraphValue value;
      if (!read_value(sub, &value)) return false;
      (f == 11 ? graph.inputs : graph.outputs).push_back(std::move(value));
      return true;
    });
  });
  if (!ok) return OnnxGraph();
  // Older exporters list every initializer as a graph input too: those are weights.
  std::vector<GraphValue> inputs;
  for (GraphValue& v : graph.inputs) {
    bool weight = false;
    for (const std::string& name : initializers) weight = weight || name == v.name;
    if (!weight) inputs.push_back(std::move(v));
  }
  graph.inputs = std::move(inputs);
  return graph;
}

}  // namespace unetseg
