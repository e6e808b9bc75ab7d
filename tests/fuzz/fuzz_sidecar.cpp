// libFuzzer target: unetseg::ModelSpec::load on arbitrary bytes as the sidecar file.
//
// It exercises the whole path a sidecar takes: the bounded reader (lib/src/model_file.cpp's
// read_regular_file: open once, fstat, size cap), the nesting check, OpenCV's JSON reader
// (cv::FileStorage), every field's type and range check and ModelSpec::validate. The contract
// checked: load returns a valid spec or throws unetseg::Error; nothing else (no crash, no
// sanitizer report, no other exception, no leak). tests/fuzz/README.md says how to run it.
#include <cmath>
#include <cstdint>
#include <exception>
#include <string>

#include <opencv2/core.hpp>

#include "fuzz_util.hpp"
#include "unetseg/error.hpp"
#include "unetseg/model_spec.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Quiet: OpenCV's own error printing would flood the log at every refused input.
  cv::redirectError([](int, const char*, const char*, const char*, int, void*) { return 0; });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static unetseg_fuzz::MemFile file;
  const std::string& path = file.hold(data, size);
  unetseg::ModelSpec spec;
  try {
    spec = unetseg::ModelSpec::load(path);
  } catch (const unetseg::Error&) {
    return 0;  // refused with a message: the expected outcome for almost every input
  } catch (const cv::Exception& e) {
    unetseg_fuzz::finding(std::string("cv::Exception escaped ModelSpec::load: ") + e.what());
  } catch (const std::exception& e) {
    unetseg_fuzz::finding(std::string("std::exception escaped ModelSpec::load: ") + e.what());
  }
  // Accepted: what validate() promises must hold, and validating again must agree.
  if (spec.input_width < 1 || spec.input_width > 8192 || spec.input_height < 1 ||
      spec.input_height > 8192)
    unetseg_fuzz::finding("accepted an input size outside 1..8192");
  if (spec.labels.size() > 256) unetseg_fuzz::finding("accepted more than 256 labels");
  if (!(spec.scale > 0) || !std::isfinite(static_cast<float>(spec.scale)))
    unetseg_fuzz::finding("accepted a scale that is not a positive float");
  for (int c = 0; c < 3; ++c)
    if (!std::isfinite(static_cast<float>(spec.mean[c])) || !(spec.std[c] > 0) ||
        !std::isfinite(static_cast<float>(spec.std[c])))
      unetseg_fuzz::finding("accepted a mean or std that is not a finite float");
  if (spec.output_index < 0) unetseg_fuzz::finding("accepted a negative output.index");
  try {
    spec.validate(path);
  } catch (const unetseg::Error& e) {
    unetseg_fuzz::finding(std::string("load accepted what validate refuses: ") + e.what());
  }
  (void)spec.expected_channels();
  return 0;
}
