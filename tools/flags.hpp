// The command line the tools share. Flags that set the frame path are spelled like the unetseg
// element's properties (--guided-radius, --soft-mask, ...) and land in the same
// VideoSegmenter::Options the element fills, so a tool runs what a pipeline with those
// properties runs.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "unetseg/model_worker.hpp"
#include "unetseg/segmenter.hpp"
#include "unetseg/video_segmenter.hpp"

namespace unetseg_tools {

// A command line the tool cannot take: print it with the usage, exit 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Walks argv: "--name VALUE", "--name=VALUE", "--flag" alone for booleans, and positional
// arguments. Errors throw UsageError naming the flag.
class Args {
 public:
  Args(int argc, char** argv) : argc_(argc), argv_(argv) {}
  // Moves to the next argument; false at the end.
  bool next();
  // The current flag ("--soft-mask", without any "=value"), or "" for a positional argument.
  const std::string& flag() const { return flag_; }
  const std::string& positional() const { return positional_; }
  // The flag's value: after '=' or the next argument.
  std::string value();
  // A boolean flag: true alone, or =true|false (also 1|0, yes|no, on|off).
  bool boolean();
  int integer(int low, int high);
  double number(double low, double high);
  // A comma-separated list ("a,b,c"), empty items dropped.
  std::vector<std::string> list();
  // Throws "unknown option" for the current flag, or "unexpected argument" for a positional.
  [[noreturn]] void unknown() const;

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string flag_, positional_, inline_value_;
  bool has_inline_ = false;
};

// Which of the frame path's flags a tool takes.
enum FrameFlags : unsigned {
  kMaskFlags = 1,    // --threshold --soft-mask --min-island --smooth-contour --feather
                     // --guided-radius --guided-eps
  kDrawFlags = 2,    // --mode --overlay-color --overlay-opacity --blur-radius --background-color
  kStreamFlags = 4,  // --interval --skip-threshold --smoothing --smoothing-reset --scene-cut
  kAllFrameFlags = 7,
};

// If args.flag() is one of the frame path's flags in `groups`, reads its value into `options`
// and returns true; false for any other flag.
bool parse_frame_flag(Args& args, unsigned groups, unetseg::VideoSegmenter::Options& options);
// Usage lines for the flags in `groups`, with `defaults` as their defaults.
std::string frame_flags_usage(unsigned groups,
                              const unetseg::VideoSegmenter::Options& defaults);
// The settings that differ from the element's defaults as gst-launch properties
// ("threshold=0.6 soft-mask=true"), for the pipelines a tool builds.
std::string element_properties(const unetseg::VideoSegmenter::Options& options);

// --model NAME|M.onnx (a catalog name, or an .onnx with its sidecar beside it) and --backend.
struct ModelFlags {
  std::string model;
  unetseg::Backend backend = unetseg::Backend::Cpu;
  unetseg::ModelWorker::Options batch;  // --batch-size, --batch-timeout (streams sharing it)

  // Reads --model, --backend, --batch-size or --batch-timeout into this; false for any other.
  bool parse(Args& args);
  // Usage lines for --model and --backend, with this object's values as their defaults.
  std::string usage() const;
  // batch-size and batch-timeout where they differ from the element's defaults, as gst-launch
  // properties ("batch-size=2"), for the pipelines a tool builds.
  std::string element_properties() const;
  // Resolves a catalog name and loads the model; prints the backend note (why not CUDA) on
  // stderr as "TOOL: ...". Throws unetseg::Error as Segmenter does.
  std::shared_ptr<unetseg::Segmenter> load(const char* tool) const;
};

}  // namespace unetseg_tools
