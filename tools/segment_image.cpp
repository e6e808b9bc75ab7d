// unetseg-segment: one image through a model, the way the element sees a frame (libunetseg's
// Segmenter and MaskFilter), e.g. to cut a person out of a photo or to check a model.
//
//   unetseg-segment --model M.onnx IMAGE [--out MASK.png] [--npy MAP.npy] [--backend cpu]
//                   [--hard [--threshold T]]
//
// --out writes the mask at the image's size as an 8-bit PNG: by default the soft mask (alpha =
// round(255 * probability), bilinear upscale), exactly what the element draws with mode=mask
// soft-mask=true; --hard makes it 0/255 at the threshold like soft-mask=false. --npy writes the
// foreground probability map at the model's output resolution (after the sidecar's min-max,
// before any resizing) as float32 .npy, for parity tests and analysis.
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>

#include "unetseg/error.hpp"
#include "unetseg/frame.hpp"
#include "unetseg/mask_filter.hpp"
#include "unetseg/segmenter.hpp"

namespace {

const char *kUsage =
    "usage: unetseg-segment --model M.onnx IMAGE [--out MASK.png] [--npy MAP.npy]\n"
    "                       [--backend auto|cpu|cuda|cuda-fp16] [--hard [--threshold T]]\n"
    "\n"
    "Segments one image with an ONNX model and its sidecar (M.json beside M.onnx, see\n"
    "docs/MODEL_SPEC.md), exactly as the unetseg element segments a video frame.\n"
    "\n"
    "  --model M.onnx    the model; its sidecar M.json must lie beside it\n"
    "  IMAGE             any image OpenCV reads (JPEG, PNG, ...)\n"
    "  --out MASK.png    the mask at the image's size, 8-bit grey: soft (0..255 = probability)\n"
    "                    like the element's mode=mask soft-mask=true\n"
    "  --npy MAP.npy     the foreground probability map at the model's output size, float32\n"
    "  --backend B       OpenCV DNN backend (default cpu; auto = CUDA when available)\n"
    "  --hard            write a hard 0/255 mask instead (soft-mask=false)\n"
    "  --threshold T     foreground where probability >= T, with --hard (default 0.5)\n"
    "  --help            this text\n"
    "\n"
    "At least one of --out and --npy is needed. Prints the model's timings on stderr.\n"
    "example: unetseg-segment --model u2net.onnx photo.jpg --out photo-mask.png\n";

int fail(const std::string &message) {
  std::fprintf(stderr, "unetseg-segment: %s\n", message.c_str());
  return 1;
}

int usage_error(const std::string &message) {
  std::fprintf(stderr, "unetseg-segment: %s\n%s", message.c_str(), kUsage);
  return 2;
}

// A float32 2-D map as .npy (format version 1.0, little-endian, C order).
bool write_npy(const std::string &path, const cv::Mat &map) {
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
  f.write(reinterpret_cast<const char *>(m.ptr<float>()),
          static_cast<std::streamsize>(m.total() * sizeof(float)));
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char **argv) {
  std::string model, image, out_png, out_npy, backend_name = "cpu";
  bool hard = false;
  double threshold = 0.5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string *dst) {
      if (i + 1 >= argc) return false;
      *dst = argv[++i];
      return true;
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--model") {
      if (!value(&model)) return usage_error("--model needs a file");
    } else if (a == "--out") {
      if (!value(&out_png)) return usage_error("--out needs a file");
    } else if (a == "--npy") {
      if (!value(&out_npy)) return usage_error("--npy needs a file");
    } else if (a == "--backend") {
      if (!value(&backend_name)) return usage_error("--backend needs a name");
    } else if (a == "--hard") {
      hard = true;
    } else if (a == "--threshold") {
      std::string t;
      if (!value(&t)) return usage_error("--threshold needs a number");
      char *end = nullptr;
      threshold = std::strtod(t.c_str(), &end);
      if (end == t.c_str() || *end || !(threshold >= 0 && threshold <= 1))
        return usage_error("--threshold must be a number in [0, 1], not '" + t + "'");
    } else if (!a.empty() && a[0] == '-') {
      return usage_error("unknown option " + a);
    } else if (image.empty()) {
      image = a;
    } else {
      return usage_error("one image only (got '" + image + "' and '" + a + "')");
    }
  }
  if (model.empty()) return usage_error("--model is required");
  if (image.empty()) return usage_error("no image given");
  if (out_png.empty() && out_npy.empty()) return usage_error("nothing to write: give --out and/or --npy");
  unetseg::Backend backend;
  if (!unetseg::backend_from_string(backend_name, &backend))
    return usage_error("unknown backend '" + backend_name + "' (auto, cpu, cuda, cuda-fp16)");

  // imread gives packed BGR, which is one of the library's layouts: no conversion.
  cv::Mat bgr = cv::imread(image, cv::IMREAD_COLOR);
  if (bgr.empty()) return fail(image + ": cannot read it as an image (missing, or not a format "
                               "OpenCV decodes)");
  try {
    unetseg::Segmenter segmenter(model, backend);
    if (!segmenter.backend_note().empty())
      std::fprintf(stderr, "unetseg-segment: %s\n", segmenter.backend_note().c_str());
    const unetseg::FrameView view{bgr.data, bgr.cols, bgr.rows, bgr.step[0],
                                  unetseg::PixelLayout::BGR};
    const unetseg::Prediction &p = segmenter.run(view);
    const unetseg::StageTimes &t = segmenter.last_times();
    std::fprintf(stderr,
                 "unetseg-segment: %s on %dx%d: model %dx%d -> %dx%d, preprocess %.1f ms, "
                 "forward %.1f ms, postprocess %.1f ms (%s)\n",
                 segmenter.spec().name.c_str(), bgr.cols, bgr.rows, segmenter.spec().input_width,
                 segmenter.spec().input_height, p.foreground.cols, p.foreground.rows,
                 t.preprocess_ms, t.forward_ms, t.postprocess_ms,
                 unetseg::to_string(segmenter.active_backend()));
    if (!out_npy.empty() && !write_npy(out_npy, p.foreground))
      return fail(out_npy + ": cannot write it");
    if (!out_png.empty()) {
      unetseg::MaskFilter filter;
      unetseg::MaskOptions options;
      options.soft = !hard;
      options.threshold = threshold;
      options.scaling = segmenter.spec().mask_scaling;
      const cv::Mat &alpha = filter.apply(p.foreground, bgr.size(), options);
      bool written = false;
      try {
        written = cv::imwrite(out_png, alpha);
      } catch (const cv::Exception &e) {
        return fail(out_png + ": cannot write it: " + e.what());
      }
      if (!written) return fail(out_png + ": cannot write it (no such directory, or not a .png?)");
    }
  } catch (const std::exception &e) {
    return fail(e.what());
  }
  return 0;
}
