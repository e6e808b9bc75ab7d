// unetseg-segment: one image through a model, exactly as the element segments a frame (the same
// VideoSegmenter path), e.g. to cut a person out of a photo or to check a model.
//
//   unetseg-segment --model NAME|M.onnx IMAGE [--out MASK.png] [--npy MAP.npy] [--backend cpu]
//                   [--soft-mask=false] [--threshold T] [refinement flags]
//
// --out writes the mask at the image's size as an 8-bit PNG: by default the soft mask (alpha =
// round(255 * probability), bilinear upscale), exactly what the element draws with mode=mask
// soft-mask=true; --soft-mask=false makes it 0/255 at the threshold like the element's default.
// --npy writes the foreground probability map at the model's output resolution (after the
// sidecar's min-max, before any resizing) as float32 .npy, for parity tests and analysis.
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>

#include "flags.hpp"
#include "unetseg/error.hpp"
#include "unetseg/frame.hpp"
#include "unetseg/video_segmenter.hpp"

namespace {

using unetseg_tools::UsageError;

std::string usage(const unetseg::VideoSegmenter::Options& defaults) {
  return "usage: unetseg-segment --model NAME|M.onnx IMAGE [--out MASK.png] [--npy MAP.npy]\n"
         "                       [--backend B] [--soft-mask=false] [--threshold T] [...]\n"
         "\n"
         "Segments one image with a model (docs/MODEL_SPEC.md), exactly as the unetseg element\n"
         "segments a video frame; the flags below are the element's properties.\n"
         "\n" +
         unetseg_tools::ModelFlags().usage() +
         "  IMAGE              any image OpenCV reads (JPEG, PNG, ...)\n"
         "  --out MASK.png     the mask at the image's size, 8-bit grey (soft: 0..255 is the\n"
         "                     probability, like the element's mode=mask soft-mask=true)\n"
         "  --npy MAP.npy      the foreground probability map at the model's output size, "
         "float32\n" +
         unetseg_tools::frame_flags_usage(unetseg_tools::kMaskFlags, defaults) +
         "  --help             this text\n"
         "\n"
         "At least one of --out and --npy is needed. Prints the model's timings on stderr.\n"
         "example: unetseg-segment --model portrait-unet photo.jpg --out photo-mask.png\n";
}

int fail(const std::string& message) {
  std::fprintf(stderr, "unetseg-segment: %s\n", message.c_str());
  return 1;
}

// A float32 2-D map as .npy (format version 1.0, little-endian, C order).
bool write_npy(const std::string& path, const cv::Mat& map) {
  cv::Mat m = map.isContinuous() ? map : map.clone();
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(m.rows) + ", " + std::to_string(m.cols) + "), }";
  // magic (6) + version (2) + length (2) + header + '\n', padded with spaces to 64 bytes.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream f(path, std::ios::binary);
  if (!f) return false;
  const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  f.write(magic, 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char len_le[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  f.write(len_le, 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  // The host is little-endian (x86-64, aarch64), as '<f4' says.
  f.write(reinterpret_cast<const char*>(m.ptr<float>()),
          static_cast<std::streamsize>(m.total() * sizeof(float)));
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char** argv) {
  unetseg::VideoSegmenter::Options options;
  options.mask.soft = true;  // this tool's default: the soft mask
  const unetseg::VideoSegmenter::Options defaults = options;
  unetseg_tools::ModelFlags model;
  std::string image, out_png, out_npy;
  try {
    unetseg_tools::Args args(argc, argv);
    while (args.next()) {
      if (args.flag() == "--help" || args.flag() == "-h") {
        std::fputs(usage(defaults).c_str(), stdout);
        return 0;
      } else if (args.flag() == "--out") {
        out_png = args.value();
      } else if (args.flag() == "--npy") {
        out_npy = args.value();
      } else if (args.flag().empty() && image.empty()) {
        image = args.positional();
      } else if (args.flag().empty()) {
        throw UsageError("one image only (got '" + image + "' and '" + args.positional() + "')");
      } else if (!model.parse(args) &&
                 !unetseg_tools::parse_frame_flag(args, unetseg_tools::kMaskFlags, options)) {
        args.unknown();
      }
    }
    if (model.model.empty()) throw UsageError("--model is required");
    if (image.empty()) throw UsageError("no image given");
    if (out_png.empty() && out_npy.empty())
      throw UsageError("nothing to write: give --out and/or --npy");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "unetseg-segment: %s\n%s", e.what(), usage(defaults).c_str());
    return 2;
  }

  // imread gives packed BGR, which is one of the library's layouts: no conversion.
  cv::Mat bgr = cv::imread(image, cv::IMREAD_COLOR);
  if (bgr.empty())
    return fail(image + ": cannot read it as an image (missing, or not a format OpenCV decodes)");
  try {
    unetseg::VideoSegmenter video(model.load("unetseg-segment"));
    const unetseg::Segmenter& seg = video.segmenter();
    const unetseg::FrameView view{bgr.data, bgr.cols, bgr.rows, bgr.step[0],
                                  unetseg::PixelLayout::BGR};
    const unetseg::FrameResult& r = video.process(view, 0, options);
    const unetseg::StageTimes& t = r.times;
    std::fprintf(stderr,
                 "unetseg-segment: %s on %dx%d: model %dx%d -> %dx%d, preprocess %.1f ms, "
                 "forward %.1f ms, postprocess %.1f ms (%s)\n",
                 seg.spec().name.c_str(), bgr.cols, bgr.rows, seg.spec().input_width,
                 seg.spec().input_height, r.model_mask.cols, r.model_mask.rows, t.preprocess_ms,
                 t.forward_ms, t.postprocess_ms, unetseg::to_string(seg.active_backend()));
    if (!out_npy.empty() && !write_npy(out_npy, r.model_mask))
      return fail(out_npy + ": cannot write it");
    if (!out_png.empty()) {
      bool written = false;
      try {
        written = cv::imwrite(out_png, r.alpha);
      } catch (const cv::Exception& e) {
        return fail(out_png + ": cannot write it: " + e.what());
      }
      if (!written) return fail(out_png + ": cannot write it (no such directory, or not a .png?)");
    }
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return 0;
}
