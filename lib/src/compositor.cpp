#include "unetseg/compositor.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include <opencv2/imgproc.hpp>

#include "unetseg/error.hpp"

namespace unetseg {

const char* to_string(Mode mode) {
  switch (mode) {
    case Mode::None: return "none";
    case Mode::Overlay: return "overlay";
    case Mode::Alpha: return "alpha";
    case Mode::Blur: return "blur";
    case Mode::Replace: return "replace";
    case Mode::Mask: return "mask";
  }
  return "unknown";
}

namespace {

using u8 = std::uint8_t;
using u16 = std::uint16_t;
using u32 = std::uint32_t;
using index_t = std::size_t;

// --- Arithmetic. All of it fits 16 bits, so vectorised loops work on 8 or 16 lanes at once.

// x / 255 for x < 65535, without a division.
inline u16 div255(u16 x) { return static_cast<u16>(static_cast<u16>(x + 1 + (x >> 8)) >> 8); }

// a * b / 255 rounded to nearest: b = 255 keeps a exactly.
inline u16 scale255(u16 a, u16 b) { return div255(static_cast<u16>(a * b + 127)); }

// (from * (255 - w) + to * w) / 255 rounded to nearest: w = 0 gives `from` and w = 255 gives
// `to`, exactly; there are no ties, 255 being odd.
inline u8 mix(u16 from, u16 to, u16 w) {
  return static_cast<u8>(div255(static_cast<u16>(from * (255 - w) + to * w + 127)));
}

// Runs body(i) for i in [0, n) in fixed-size blocks plus a tail: GCC's default cost model at
// -O2 only vectorises loops whose trip count is a known multiple of the vector width.
constexpr index_t kBlock = 32;
template <typename Body>
inline void for_blocks(index_t n, Body&& body) {
  index_t i = 0;
  for (; i + kBlock <= n; i += kBlock)
    for (index_t j = 0; j < kBlock; ++j) body(i + j);
  for (; i < n; ++i) body(i);
}

// --- Row kernels. Blending works on a row as a flat run of bytes with one weight per byte:
// colour bytes get the pixel's alpha, the non-colour byte (alpha or padding) a value whose
// weight is 0. So there is one branch-free loop for every layout, and the channel order only
// matters where targets are built (in the frame's order).

// px[i] moves towards target[i] by weight ((alpha[i] ^ flip) * strength) / 255, alpha being one
// value per byte. flip 0 weights by alpha (tint the foreground); flip 255 by 255 - alpha (paint
// the background). Kept out of line: once inlined, GCC forgets the __restrict promises, wants a
// runtime alias check that its -O2 cost model refuses, and the loop stays scalar (5x slower).
[[gnu::noinline]] void move_towards(u8* __restrict px, const u8* __restrict target,
                                    const u8* __restrict alpha, u8 flip, u8 strength, index_t n) {
  for_blocks(n, [&](index_t i) {
    px[i] = mix(px[i], target[i], scale255(static_cast<u8>(alpha[i] ^ flip), strength));
  });
}

// A pixel's 4 bytes as a native word: `colour` in the colour bytes, `other` in byte kSkip.
// Multiplying a byte by byte_pattern<kSkip>(1, 0) copies it into the three colour bytes at once.
template <int kSkip>
u32 byte_pattern(u8 colour, u8 other) {
  u8 bytes[4] = {colour, colour, colour, colour};
  bytes[kSkip] = other;
  u32 word;
  std::memcpy(&word, bytes, 4);
  return word;
}

// One alpha per pixel -> one per byte; the non-colour byte gets `skip_value`.
template <int kBpp, int kSkip>
void spread_alpha(u8* __restrict out, const u8* __restrict alpha, u8 skip_value, index_t width) {
  if constexpr (kBpp == 4) {
    const u32 ones = byte_pattern<kSkip>(1, 0), skip = byte_pattern<kSkip>(0, skip_value);
    for_blocks(width, [&](index_t x) {
      const u32 word = alpha[x] * ones + skip;  // no carries: alpha <= 255
      std::memcpy(out + 4 * x, &word, 4);
    });
  } else {
    for (index_t x = 0; x < width; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = alpha[x];
  }
}

// Mask: colour bytes = alpha; the non-colour byte becomes 255 if it is alpha (kOpaque) or is
// kept if it is padding.
template <int kBpp, int kSkip, bool kOpaque>
void paint_mask_row(u8* __restrict px, const u8* __restrict alpha, index_t width) {
  if constexpr (kBpp == 4) {
    const u32 ones = byte_pattern<kSkip>(1, 0), skip_byte = byte_pattern<kSkip>(0, 255);
    for_blocks(width, [&](index_t x) {
      u32 other = skip_byte;  // opaque alpha
      if constexpr (!kOpaque) {  // padding: keep what is there
        std::memcpy(&other, px + 4 * x, 4);
        other &= skip_byte;
      }
      const u32 word = alpha[x] * ones + other;
      std::memcpy(px + 4 * x, &word, 4);
    });
  } else {
    for (index_t x = 0; x < width; ++x) px[3 * x] = px[3 * x + 1] = px[3 * x + 2] = alpha[x];
  }
}

template <int kAlphaByte>
void write_alpha_row(u8* __restrict px, const u8* __restrict alpha, index_t width) {
  for (index_t x = 0; x < width; ++x) px[4 * x + kAlphaByte] = alpha[x];
}

using Palette = std::array<std::array<u8, 4>, 256>;  // per class id, in the frame's byte order

// Multi-class overlay: per-byte weights and targets looked up by class (class 0 weighs 0), then
// blended like the rest; kByAlpha also scales the weights by alpha.
template <int kBpp, int kSkip, bool kByAlpha>
void class_rows(u8* __restrict weights, u8* __restrict targets, const u8* __restrict classes,
                const u8* __restrict alpha, const Palette& palette,
                const std::array<u8, 256>& class_weight, index_t width) {
  for (index_t x = 0; x < width; ++x) {
    const u8 id = classes[x];
    const u8 w =
        kByAlpha ? static_cast<u8>(scale255(class_weight[id], alpha[x])) : class_weight[id];
    std::memcpy(targets + kBpp * x, palette[id].data(), kBpp);
    if constexpr (kBpp == 4) {
      const u32 word = w * byte_pattern<kSkip>(1, 0);
      std::memcpy(weights + 4 * x, &word, 4);
    } else {
      weights[3 * x] = weights[3 * x + 1] = weights[3 * x + 2] = w;
    }
  }
}

// --- Layout dispatch.

template <int N>
using Int = std::integral_constant<int, N>;

// Calls kernel(Int<bytes per pixel>, Int<non-colour byte, or -1>) for the layout's shape.
template <typename Kernel>
void with_pixel_shape(PixelLayout layout, Kernel&& kernel) {
  const ChannelOffsets o = channel_offsets(layout);
  if (o.bytes_per_pixel == 3)
    kernel(Int<3>{}, Int<-1>{});
  else if (o.r + o.g + o.b == 1 + 2 + 3)  // colour in bytes 1..3: alpha/padding first
    kernel(Int<4>{}, Int<0>{});
  else
    kernel(Int<4>{}, Int<3>{});
}

u8* row_of(const FrameView& frame, int y) { return frame.data + y * frame.stride; }

// Every pixel moves towards its target (target_row(y): kBpp bytes a pixel, frame's order) by
// the weight move_towards describes; `weights` is a row of scratch.
template <typename TargetRow>
void move_frame(const FrameView& frame, const cv::Mat& alpha, u8 flip, u8 strength,
                cv::Mat& weights, TargetRow&& target_row) {
  const index_t width = static_cast<index_t>(frame.width);
  weights.create(1, frame.width * frame.bytes_per_pixel(), CV_8UC1);
  with_pixel_shape(frame.layout, [&](auto bpp, auto skip) {
    constexpr int kBpp = decltype(bpp)::value, kSkip = decltype(skip)::value;
    for (int y = 0; y < frame.height; ++y) {
      spread_alpha<kBpp, kSkip>(weights.data, alpha.ptr<u8>(y), flip, width);
      move_towards(row_of(frame, y), target_row(y), weights.data, flip, strength, kBpp * width);
    }
  });
}

std::array<u8, 4> in_layout(const cv::Vec3b& rgb, PixelLayout layout) {
  const ChannelOffsets o = channel_offsets(layout);
  std::array<u8, 4> px{};
  px[o.r] = rgb[0];
  px[o.g] = rgb[1];
  px[o.b] = rgb[2];
  return px;
}

cv::Vec3b rgb_of(const cv::Scalar& s) {
  return {cv::saturate_cast<u8>(s[0]), cv::saturate_cast<u8>(s[1]), cv::saturate_cast<u8>(s[2])};
}

u8 opacity_weight(double opacity) {
  return opacity > 0 ? static_cast<u8>(std::lround(std::min(opacity, 1.0) * 255)) : 0;
}

// A row of `rgb` pixels in the frame's layout, into `row`.
void fill_colour_row(cv::Mat& row, const FrameView& frame, const cv::Vec3b& rgb) {
  const int bpp = frame.bytes_per_pixel();
  row.create(1, frame.width * bpp, CV_8UC1);
  const std::array<u8, 4> px = in_layout(rgb, frame.layout);
  for (int x = 0; x < frame.width; ++x) std::memcpy(row.data + bpp * x, px.data(), bpp);
}

// --- Checks.

std::string size_text(int width, int height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

void check_frame(const FrameView& frame) {
  if (!frame.data || frame.width <= 0 || frame.height <= 0)
    throw Error("Compositor: empty frame (" + size_text(frame.width, frame.height) + ")");
  const std::size_t row_bytes = static_cast<std::size_t>(frame.width) * frame.bytes_per_pixel();
  if (frame.stride < row_bytes)
    throw Error("Compositor: frame stride " + std::to_string(frame.stride) +
                " is less than a row of " + std::to_string(row_bytes) + " bytes");
}

// `plane` (the mask or class map) must be CV_8UC1 at the frame's size.
void check_plane(const cv::Mat& plane, const FrameView& frame, const char* what) {
  if (plane.empty()) throw Error(std::string("Compositor: ") + what + " is missing (empty Mat)");
  if (plane.type() != CV_8UC1)
    throw Error(std::string("Compositor: ") + what + " must be CV_8UC1, got " +
                cv::typeToString(plane.type()));
  if (plane.cols != frame.width || plane.rows != frame.height)
    throw Error(std::string("Compositor: ") + what + " is " + size_text(plane.cols, plane.rows) +
                " but the frame is " + size_text(frame.width, frame.height));
}

// --- Whole-frame drawing for the modes that need no state.

void write_alpha(const FrameView& frame, const cv::Mat& alpha) {
  const int alpha_byte = channel_offsets(frame.layout).alpha;
  if (alpha_byte < 0)
    throw Error(std::string("Compositor: mode 'alpha' needs a layout with an alpha channel; ") +
                layout_name(frame.layout) + " has none");
  const index_t width = static_cast<index_t>(frame.width);
  for (int y = 0; y < frame.height; ++y) {
    if (alpha_byte == 0)
      write_alpha_row<0>(row_of(frame, y), alpha.ptr<u8>(y), width);
    else
      write_alpha_row<3>(row_of(frame, y), alpha.ptr<u8>(y), width);
  }
}

void paint_mask(const FrameView& frame, const cv::Mat& alpha) {
  const bool opaque = has_alpha(frame.layout);
  const index_t width = static_cast<index_t>(frame.width);
  with_pixel_shape(frame.layout, [&](auto bpp, auto skip) {
    constexpr int kBpp = decltype(bpp)::value, kSkip = decltype(skip)::value;
    for (int y = 0; y < frame.height; ++y) {
      if (opaque)
        paint_mask_row<kBpp, kSkip, true>(row_of(frame, y), alpha.ptr<u8>(y), width);
      else
        paint_mask_row<kBpp, kSkip, false>(row_of(frame, y), alpha.ptr<u8>(y), width);
    }
  });
}

void overlay_classes(const FrameView& frame, const cv::Mat& classes, const cv::Mat& alpha,
                     double opacity, cv::Mat& weights, cv::Mat& targets) {
  Palette palette;
  std::array<u8, 256> class_weight;
  for (int id = 0; id < 256; ++id) {
    palette[id] = in_layout(Compositor::palette_color(id), frame.layout);
    class_weight[id] = id == 0 ? 0 : opacity_weight(opacity);
  }
  const int row_bytes = frame.width * frame.bytes_per_pixel();
  weights.create(1, row_bytes, CV_8UC1);
  targets.create(1, row_bytes, CV_8UC1);
  const index_t width = static_cast<index_t>(frame.width);
  with_pixel_shape(frame.layout, [&](auto bpp, auto skip) {
    constexpr int kBpp = decltype(bpp)::value, kSkip = decltype(skip)::value;
    for (int y = 0; y < frame.height; ++y) {
      if (alpha.empty())
        class_rows<kBpp, kSkip, false>(weights.data, targets.data, classes.ptr<u8>(y), nullptr,
                                       palette, class_weight, width);
      else
        class_rows<kBpp, kSkip, true>(weights.data, targets.data, classes.ptr<u8>(y),
                                      alpha.ptr<u8>(y), palette, class_weight, width);
      move_towards(row_of(frame, y), targets.data, weights.data, 0, 255, kBpp * width);
    }
  });
}

}  // namespace

cv::Vec3b Compositor::palette_color(int class_id) {
  // The Pascal VOC colour map: the id's bits, three at a time, fill R, G and B from their high
  // bit down (1 = (128,0,0), 2 = (0,128,0), 15 = (192,128,128)). Distinct for ids below 2^24;
  // class 0 (and anything negative) is black.
  if (class_id <= 0) return {0, 0, 0};
  int r = 0, g = 0, b = 0;
  for (int bit = 7, id = class_id; bit >= 0 && id; --bit, id >>= 3) {
    r |= (id & 1) << bit;
    g |= ((id >> 1) & 1) << bit;
    b |= ((id >> 2) & 1) << bit;
  }
  return {static_cast<u8>(r), static_cast<u8>(g), static_cast<u8>(b)};
}

void Compositor::set_background_image(const cv::Mat& rgb) {
  if (!rgb.empty() && rgb.type() != CV_8UC3)
    throw Error("Compositor: the background image must be CV_8UC3 RGB, got " +
                cv::typeToString(rgb.type()));
  background_rgb_ = rgb.clone();  // ours: the caller may go on writing into its Mat
  background_scaled_.release();
  background_layout_ = -1;
}

void Compositor::draw(const FrameView& frame, Mode mode, const cv::Mat& alpha,
                      const cv::Mat& classes, const CompositorOptions& options) {
  if (mode == Mode::None) return;
  check_frame(frame);
  const bool by_class = mode == Mode::Overlay && !classes.empty();
  if (by_class) check_plane(classes, frame, "the class map");
  if (!by_class || !alpha.empty()) check_plane(alpha, frame, "the alpha mask");

  switch (mode) {
    case Mode::None:
      break;
    case Mode::Overlay:
      if (by_class) {
        overlay_classes(frame, classes, alpha, options.overlay_opacity, row_weights_,
                        row_targets_);
      } else {
        fill_colour_row(row_targets_, frame, rgb_of(options.overlay_color));
        move_frame(frame, alpha, /*flip=*/0, opacity_weight(options.overlay_opacity),
                   row_weights_, [&](int) { return row_targets_.data; });
      }
      break;
    case Mode::Alpha:
      write_alpha(frame, alpha);
      break;
    case Mode::Blur: {
      const cv::Mat& back = blurred(frame, options.blur_radius);
      move_frame(frame, alpha, /*flip=*/255, /*strength=*/255, row_weights_,
                 [&](int y) { return back.ptr<u8>(y); });
      break;
    }
    case Mode::Replace:
      if (has_background_image()) {
        const cv::Mat& back = scaled_background(frame);
        move_frame(frame, alpha, /*flip=*/255, /*strength=*/255, row_weights_,
                   [&](int y) { return back.ptr<u8>(y); });
      } else {
        fill_colour_row(row_targets_, frame, rgb_of(options.background_color));
        move_frame(frame, alpha, /*flip=*/255, /*strength=*/255, row_weights_,
                   [&](int) { return row_targets_.data; });
      }
      break;
    case Mode::Mask:
      paint_mask(frame, alpha);
      break;
  }
}

const cv::Mat& Compositor::blurred(const FrameView& frame, int radius) {
  if (radius < 1)
    throw Error("Compositor: blur radius must be at least 1 pixel, got " +
                std::to_string(radius));
  // A Gaussian of sigma = radius / 2, computed where it is cheap: the frame is averaged down by
  // `factor` so that about 2 small pixels remain per sigma, blurred there and brought back
  // bilinearly; content that smooth loses nothing visible to the round trip. At 1080p and
  // radius 21 the Gaussian runs on 384x216 pixels. All channels are blurred (that is one pass);
  // the alpha/padding byte of the result is never blended in.
  const double sigma = radius / 2.0;
  const int factor = std::max(1, static_cast<int>(sigma / 2));
  const cv::Mat pixels = frame.mat();
  if (factor == 1) {
    cv::GaussianBlur(pixels, blur_full_, cv::Size(), sigma, sigma, cv::BORDER_REFLECT_101);
    return blur_full_;
  }
  const cv::Size small(std::max(1, (frame.width + factor / 2) / factor),
                       std::max(1, (frame.height + factor / 2) / factor));
  cv::resize(pixels, blur_small_, small, 0, 0, cv::INTER_AREA);
  const double small_sigma = sigma / factor;
  cv::GaussianBlur(blur_small_, blur_tmp_, cv::Size(), small_sigma, small_sigma,
                   cv::BORDER_REFLECT_101);
  cv::resize(blur_tmp_, blur_full_, pixels.size(), 0, 0, cv::INTER_LINEAR);
  return blur_full_;
}

const cv::Mat& Compositor::scaled_background(const FrameView& frame) {
  const cv::Size size(frame.width, frame.height);
  if (background_scaled_.size() == size && background_layout_ == static_cast<int>(frame.layout))
    return background_scaled_;

  // Once per image, frame size or layout: stretch, then reorder into the frame's bytes.
  const bool shrinking = size.width <= background_rgb_.cols && size.height <= background_rgb_.rows;
  cv::Mat stretched;
  cv::resize(background_rgb_, stretched, size, 0, 0,
             shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  const ChannelOffsets o = channel_offsets(frame.layout);
  background_scaled_.create(size, CV_8UC(o.bytes_per_pixel));
  background_scaled_.setTo(cv::Scalar::all(255));  // the non-colour byte, never blended in
  const int from_to[] = {0, o.r, 1, o.g, 2, o.b};
  cv::mixChannels(&stretched, 1, &background_scaled_, 1, from_to, 3);
  background_layout_ = static_cast<int>(frame.layout);
  return background_scaled_;
}

}  // namespace unetseg
