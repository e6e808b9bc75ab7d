#include "flags.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>

#include "unetseg/compositor.hpp"
#include "unetseg/model_cache.hpp"

namespace unetseg_tools {

using Options = unetseg::VideoSegmenter::Options;

// ---- Args ---------------------------------------------------------------------------------

bool Args::next() {
  if (++i_ >= argc_) return false;
  const std::string arg = argv_[i_];
  flag_.clear();
  positional_.clear();
  has_inline_ = false;
  if (arg.size() > 1 && arg[0] == '-') {
    const auto eq = arg.find('=');
    flag_ = arg.substr(0, eq);
    if (eq != std::string::npos) {
      inline_value_ = arg.substr(eq + 1);
      has_inline_ = true;
    }
  } else {
    positional_ = arg;
  }
  return true;
}

std::string Args::value() {
  if (has_inline_) {
    has_inline_ = false;
    return inline_value_;
  }
  if (i_ + 1 >= argc_) throw UsageError("missing value: " + flag_);
  return argv_[++i_];
}

bool Args::boolean() {
  if (!has_inline_) return true;
  const std::string v = value();
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  throw UsageError(flag_ + ": true or false, not '" + v + "'");
}

int Args::integer(int low, int high) {
  const std::string v = value();
  char* end = nullptr;
  const long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end || n < low || n > high)
    throw UsageError(flag_ + ": a whole number from " + std::to_string(low) + " to " +
                     std::to_string(high) + ", not '" + v + "'");
  return static_cast<int>(n);
}

double Args::number(double low, double high) {
  const std::string v = value();
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !(x >= low && x <= high)) {
    char range[96];
    std::snprintf(range, sizeof range, "a number from %g to %g", low, high);
    throw UsageError(flag_ + ": " + range + ", not '" + v + "'");
  }
  return x;
}

std::vector<std::string> Args::list() {
  std::vector<std::string> out;
  std::stringstream in(value());
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

void Args::unknown() const {
  if (flag_.empty()) throw UsageError("unexpected argument '" + positional_ + "'");
  throw UsageError("unknown option " + flag_);
}

// ---- the frame path's flags ---------------------------------------------------------------

namespace {

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Big-endian ARGB as the element's colour properties: 0xAARRGGBB <-> (R, G, B, A).
std::string argb_text(const cv::Scalar& c) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%02x%02x%02x%02x", static_cast<unsigned>(c[3]),
                static_cast<unsigned>(c[0]), static_cast<unsigned>(c[1]),
                static_cast<unsigned>(c[2]));
  return buf;
}

cv::Scalar parse_argb(Args& args) {
  const std::string v = args.value();
  char* end = nullptr;
  const unsigned long argb = std::strtoul(v.c_str(), &end, 0);
  if (v.empty() || *end || argb > 0xffffffffUL)
    throw UsageError(args.flag() + ": a colour 0xAARRGGBB, not '" + v + "'");
  return cv::Scalar((argb >> 16) & 0xff, (argb >> 8) & 0xff, argb & 0xff, argb >> 24);
}

// One flag: its group, how it reads its value, how it shows one (for defaults and properties),
// and its help. The ranges are only what the value can be at all; the library checks the rest
// (VideoSegmenter::check).
struct FrameFlag {
  const char* name;  // without "--": the element's property name
  unsigned group;
  const char* help;
  std::function<void(Args&, Options&)> read;
  std::function<std::string(const Options&)> show;
};

const std::vector<FrameFlag>& frame_flags() {
  static const double inf = HUGE_VAL;
  static const std::vector<FrameFlag> flags = {
      {"mode", kDrawFlags, "none, overlay, alpha, blur, replace or mask",
       [](Args& a, Options& o) {
         const std::string v = a.value();
         if (!unetseg::mode_from_string(v, &o.mode))
           throw UsageError("--mode: none, overlay, alpha, blur, replace or mask, not '" + v +
                            "'");
       },
       [](const Options& o) { return std::string(unetseg::to_string(o.mode)); }},
      {"threshold", kMaskFlags, "foreground where the probability is at least this",
       [](Args& a, Options& o) { o.mask.threshold = a.number(-inf, inf); },
       [](const Options& o) { return number_text(o.mask.threshold); }},
      {"soft-mask", kMaskFlags, "soft alpha; --soft-mask=false: a hard 0/255 mask",
       [](Args& a, Options& o) { o.mask.soft = a.boolean(); },
       [](const Options& o) { return std::string(o.mask.soft ? "true" : "false"); }},
      {"min-island", kMaskFlags, "drop blobs, fill holes under this share of the area",
       [](Args& a, Options& o) { o.mask.min_island = a.number(-inf, inf); },
       [](const Options& o) { return number_text(o.mask.min_island); }},
      {"smooth-contour", kMaskFlags, "smooth the outline over this radius, pixels",
       [](Args& a, Options& o) { o.mask.smooth_contour = a.integer(-100000, 100000); },
       [](const Options& o) { return std::to_string(o.mask.smooth_contour); }},
      {"feather", kMaskFlags, "soft edge this wide, growing (> 0) or shrinking",
       [](Args& a, Options& o) { o.mask.feather = a.integer(-100000, 100000); },
       [](const Options& o) { return std::to_string(o.mask.feather); }},
      {"guided-radius", kMaskFlags, "guided-filter upscale of this radius (0: bilinear)",
       [](Args& a, Options& o) { o.mask.guided_radius = a.integer(-100000, 100000); },
       [](const Options& o) { return std::to_string(o.mask.guided_radius); }},
      {"guided-eps", kMaskFlags, "its regularisation, a grey variance in 0..1",
       [](Args& a, Options& o) { o.mask.guided_eps = a.number(-inf, inf); },
       [](const Options& o) { return number_text(o.mask.guided_eps); }},
      {"overlay-color", kDrawFlags, "overlay tint, 0xAARRGGBB",
       [](Args& a, Options& o) { o.draw.overlay_color = parse_argb(a); },
       [](const Options& o) { return argb_text(o.draw.overlay_color); }},
      {"overlay-opacity", kDrawFlags, "overlay strength, 0 to 1",
       [](Args& a, Options& o) { o.draw.overlay_opacity = a.number(-inf, inf); },
       [](const Options& o) { return number_text(o.draw.overlay_opacity); }},
      {"blur-radius", kDrawFlags, "background blur in blur mode, pixels",
       [](Args& a, Options& o) { o.draw.blur_radius = a.integer(-100000, 100000); },
       [](const Options& o) { return std::to_string(o.draw.blur_radius); }},
      {"background-color", kDrawFlags, "replace mode's background, 0xAARRGGBB",
       [](Args& a, Options& o) { o.draw.background_color = parse_argb(a); },
       [](const Options& o) { return argb_text(o.draw.background_color); }},
      {"interval", kStreamFlags, "run the model on every Nth frame",
       [](Args& a, Options& o) { o.interval = a.integer(-100000, 100000); },
       [](const Options& o) { return std::to_string(o.interval); }},
      {"skip-threshold", kStreamFlags, "reuse the mask when the frame changed less, grey",
       [](Args& a, Options& o) { o.skip_threshold = a.number(-inf, inf); },
       [](const Options& o) { return number_text(o.skip_threshold); }},
      {"smoothing", kStreamFlags, "weight kept from the last mask (0: off)",
       [](Args& a, Options& o) { o.smoothing = a.number(-inf, inf); },
       [](const Options& o) { return number_text(o.smoothing); }},
      {"smoothing-reset", kStreamFlags, "grey change that restarts the smoothing there",
       [](Args& a, Options& o) { o.smoothing_reset = a.number(-inf, inf); },
       [](const Options& o) { return number_text(o.smoothing_reset); }},
      {"scene-cut", kStreamFlags, "grey change that restarts a recurrent model's state",
       [](Args& a, Options& o) { o.scene_cut = a.number(-inf, inf); },
       [](const Options& o) { return number_text(o.scene_cut); }},
  };
  return flags;
}

}  // namespace

bool parse_frame_flag(Args& args, unsigned groups, Options& options) {
  for (const FrameFlag& f : frame_flags())
    if ((f.group & groups) && args.flag() == std::string("--") + f.name) {
      f.read(args, options);
      try {
        unetseg::VideoSegmenter::check(options);
      } catch (const std::exception& e) {
        throw UsageError(args.flag() + ": " + e.what());
      }
      return true;
    }
  return false;
}

std::string frame_flags_usage(unsigned groups, const Options& defaults) {
  std::string out;
  for (const FrameFlag& f : frame_flags()) {
    if (!(f.group & groups)) continue;
    char line[160];
    std::snprintf(line, sizeof line, "  --%-16s %s (default %s)\n", f.name, f.help,
                  f.show(defaults).c_str());
    out += line;
  }
  return out;
}

std::string element_properties(const Options& options) {
  const Options defaults;
  std::string out;
  for (const FrameFlag& f : frame_flags()) {
    const std::string value = f.show(options);
    if (value == f.show(defaults)) continue;
    out += (out.empty() ? "" : " ") + std::string(f.name) + "=" + value;
  }
  return out;
}

// ---- the model ----------------------------------------------------------------------------

bool ModelFlags::parse(Args& args) {
  if (args.flag() == "--model") {
    model = args.value();
  } else if (args.flag() == "--backend") {
    const std::string v = args.value();
    if (!unetseg::backend_from_string(v, &backend))
      throw UsageError("--backend: auto, cpu, cuda or cuda-fp16, not '" + v + "'");
  } else if (args.flag() == "--batch-size") {
    batch.batch_size = args.integer(1, 256);
  } else if (args.flag() == "--batch-timeout") {
    batch.batch_timeout_ms = args.integer(0, 10000);
  } else {
    return false;
  }
  return true;
}

std::string ModelFlags::element_properties() const {
  const unetseg::ModelWorker::Options defaults;
  std::string out;
  if (batch.batch_size != defaults.batch_size)
    out += "batch-size=" + std::to_string(batch.batch_size);
  if (batch.batch_timeout_ms != defaults.batch_timeout_ms)
    out += (out.empty() ? "" : " ") + std::string("batch-timeout=") +
           std::to_string(batch.batch_timeout_ms);
  return out;
}

std::string ModelFlags::usage() const {
  return "  --model M          a catalog model's name (fetched with unetseg-models fetch NAME)\n"
         "                     or an .onnx file with its sidecar (.json) beside it" +
         (model.empty() ? std::string(" (required)") : " (default " + model + ")") +
         "\n  --backend B        auto, cpu, cuda or cuda-fp16 (default " +
         unetseg::to_string(backend) + ")\n" +
         "  --batch-size N     frames of streams sharing the model per forward (default " +
         std::to_string(batch.batch_size) + ")\n" +
         "  --batch-timeout MS how long a forward may wait for more streams' frames (default " +
         std::to_string(batch.batch_timeout_ms) + ")\n";
}

std::shared_ptr<unetseg::Segmenter> ModelFlags::load(const char* tool) const {
  auto seg = std::make_shared<unetseg::Segmenter>(unetseg::resolve_model(model), backend);
  if (!seg->backend_note().empty())
    std::fprintf(stderr, "%s: %s\n", tool, seg->backend_note().c_str());
  return seg;
}

}  // namespace unetseg_tools
