#include "unetseg/compositor.hpp"

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include <opencv2/imgproc.hpp>

#include "unetseg/error.hpp"
#include "unetseg/frame_threads.hpp"

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

bool mode_from_string(const std::string& name, Mode* mode) {
  for (Mode m : {Mode::None, Mode::Overlay, Mode::Alpha, Mode::Blur, Mode::Replace, Mode::Mask})
    if (name == to_string(m)) {
      *mode = m;
      return true;
    }
  return false;
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

// Runs over a row of alpha in chunks of kChunk pixels, so that a hard mask's sure areas cost
// little: chunks all `idle` (weight 0 everywhere: the mode leaves them as they are) are neither
// read nor written; chunks all `full` (weight 255 everywhere) go to full(begin, end), which
// needs no blending; the rest to mixed(begin, end). Neighbouring chunks of one kind make one
// run, so the kernels still see long rows; the tests are ORs over a chunk, vectorised. With
// full == idle, no chunk is taken as full.
constexpr index_t kChunk = 64;
template <typename Mixed, typename Full>
inline void chunk_runs(const u8* __restrict alpha, index_t width, u8 idle, u8 full,
                       Mixed&& mixed, Full&& full_run) {
  enum Kind { kIdle, kFull, kMixed };
  Kind kind = kIdle;
  index_t begin = 0, c = 0;
  const auto flush = [&](index_t end) {
    if (kind == kMixed) mixed(begin, end);
    else if (kind == kFull) full_run(begin, end);
  };
  for (; c < width; c += kChunk) {
    const index_t n = std::min(kChunk, width - c);
    u8 not_idle = 0, not_full = 0;
    if (n == kChunk) {
      for (index_t j = 0; j < kChunk; ++j) {
        not_idle |= static_cast<u8>(alpha[c + j] ^ idle);
        not_full |= static_cast<u8>(alpha[c + j] ^ full);
      }
    } else {
      for (index_t j = 0; j < n; ++j) {
        not_idle |= static_cast<u8>(alpha[c + j] ^ idle);
        not_full |= static_cast<u8>(alpha[c + j] ^ full);
      }
    }
    const Kind k = !not_idle ? kIdle : (!not_full && full != idle) ? kFull : kMixed;
    if (k != kind) {
      flush(c);
      kind = k;
      begin = c;
    }
  }
  flush(width);
}

// A row's worth of byte masks: 0xFF on colour bytes, 0 on the non-colour one (alpha or padding).
template <int kBpp, int kSkip>
void colour_bytes(u8* out, index_t width) {
  for (index_t i = 0; i < kBpp * width; ++i)
    out[i] = kBpp == 4 && static_cast<int>(i % 4) == kSkip ? 0 : 0xFF;
}

// Weight 255 on the colour bytes: they become target's; the others stay.
[[gnu::noinline]] void take(u8* __restrict px, const u8* __restrict target,
                            const u8* __restrict colour, index_t n) {
  for_blocks(n, [&](index_t i) {
    px[i] = static_cast<u8>((target[i] & colour[i]) | (px[i] & ~colour[i]));
  });
}

// The same with the target between rows a and b as move_towards_between makes it.
[[gnu::noinline]] void take_between(u8* __restrict px, const u8* __restrict a,
                                    const u8* __restrict b, u16 wb, const u8* __restrict colour,
                                    index_t n) {
  const u16 wa = static_cast<u16>(256 - wb);
  for_blocks(n, [&](index_t i) {
    const u8 target = static_cast<u8>(static_cast<u16>(a[i] * wa + b[i] * wb + 128) >> 8);
    px[i] = static_cast<u8>((target & colour[i]) | (px[i] & ~colour[i]));
  });
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

// --- Blur kernels (Compositor::blur says how they fit together).

// acc[i] += px[i] * (255 - alpha_bytes[i]): a frame row, weighted by background, into the
// column sums of its block row. The product fits 16 bits; f rows of it fit 32.
[[gnu::noinline]] void add_weighted(u32* __restrict acc, const u8* __restrict px,
                                    const u8* __restrict alpha_bytes, index_t n) {
  for_blocks(n, [&](index_t i) {
    acc[i] += static_cast<u16>(px[i] * static_cast<u8>(alpha_bytes[i] ^ 255));
  });
}

// acc[i] += 255 - alpha[i]: the weights themselves.
[[gnu::noinline]] void add_background(u32* __restrict acc, const u8* __restrict alpha,
                                      index_t n) {
  for_blocks(n, [&](index_t i) { acc[i] += static_cast<u8>(alpha[i] ^ 255); });
}

// out = w * in, out += w * in, out += w * (a + b): the Gaussian's taps, the symmetric ones in
// pairs (half the passes over `out`).
[[gnu::noinline]] void set_scaled(float* __restrict out, const float* __restrict in, float w,
                                  index_t n) {
  for_blocks(n, [&](index_t i) { out[i] = w * in[i]; });
}
[[gnu::noinline]] void add_scaled(float* __restrict out, const float* __restrict in, float w,
                                  index_t n) {
  for_blocks(n, [&](index_t i) { out[i] += w * in[i]; });
}
[[gnu::noinline]] void add_scaled_pair(float* __restrict out, const float* __restrict a,
                                       const float* __restrict b, float w, index_t n) {
  for_blocks(n, [&](index_t i) { out[i] += w * (a[i] + b[i]); });
}

// Blur's composite where B lies between two rows: px moves towards (a * (256 - wb) + b * wb)
// / 256 (rounded; wb < 256, all of it fits 16 bits) by weight 255 - alpha_bytes[i], as
// move_towards with flip 255 would.
[[gnu::noinline]] void move_towards_between(u8* __restrict px, const u8* __restrict a,
                                            const u8* __restrict b, u16 wb,
                                            const u8* __restrict alpha_bytes, index_t n) {
  const u16 wa = static_cast<u16>(256 - wb);
  for_blocks(n, [&](index_t i) {
    const u16 target = static_cast<u16>(a[i] * wa + b[i] * wb + 128) >> 8;
    px[i] = mix(px[i], target, static_cast<u8>(alpha_bytes[i] ^ 255));
  });
}

// a = (a * (256 - wb[i]) + b * wb[i]) / 256 rounded: B along a row, one weight per byte.
[[gnu::noinline]] void lerp_bytes(u8* __restrict a, const u8* __restrict b,
                                  const u8* __restrict wb, index_t n) {
  for_blocks(n, [&](index_t i) {
    a[i] = static_cast<u8>(static_cast<u16>(a[i] * static_cast<u16>(256 - wb[i]) + b[i] * wb[i] +
                                            128) >> 8);
  });
}

// The Gaussian along a row of `count` pixels of 4 floats, the kernel cut at the row's ends.
void blur_along(float* __restrict out, const float* __restrict in, const float* kernel, int taps,
                int count) {
  set_scaled(out, in, kernel[0], 4 * static_cast<index_t>(count));
  for (int k = 1; k <= std::min(taps, count - 1); ++k) {
    const auto run = [](int from, int to) { return 4 * static_cast<index_t>(to - from); };
    if (k < count - k)  // both neighbours
      add_scaled_pair(out + 4 * k, in, in + 8 * k, kernel[k], run(k, count - k));
    const int plus_end = std::min(k, count - k), minus_begin = std::max(k, count - k);
    add_scaled(out, in + 4 * k, kernel[k], run(0, plus_end));  // only the right one
    add_scaled(out + 4 * minus_begin, in + 4 * (minus_begin - k), kernel[k],
               run(minus_begin, count));  // only the left one
  }
}

// One pixel of the small image is 4 floats: the colour bytes where the frame has them and the
// weight in the fourth slot (the frame's non-colour byte, or slot 3 after RGB and BGR). GCC's
// vector extensions make it one SIMD register on any target, without intrinsics.
using f32x4 = float __attribute__((vector_size(16)));
using i32x4 = std::int32_t __attribute__((vector_size(16)));

template <int kBpp, int kSkip>
constexpr int kWeightSlot = kBpp == 4 ? kSkip : 3;

// Per block of `factor` columns: the sums of acc (kBpp per column) and acc_weight, as floats.
template <int kBpp, int kSkip>
void block_sums(float* __restrict sums, const u32* __restrict acc,
                const u32* __restrict acc_weight, int width, int factor, int count) {
  for (int b = 0; b < count; ++b) {
    i32x4 block = {0, 0, 0, 0};  // at most 181 * 181 * 255 * 255: fits
    std::int32_t weight = 0;
    for (int x = b * factor; x < std::min(width, (b + 1) * factor); ++x) {
      i32x4 px = {0, 0, 0, 0};
      std::memcpy(&px, acc + kBpp * x, 4 * kBpp);
      block += px;
      weight += static_cast<std::int32_t>(acc_weight[x]);
    }
    block[kWeightSlot<kBpp, kSkip>] = weight;  // (a non-colour byte's sum is 0)
    const f32x4 out = __builtin_convertvector(block, f32x4);
    std::memcpy(sums + 4 * b, &out, sizeof out);
  }
}

// out[i] = a[i] * b[i] rounded to a byte, for products in [0, 255] give or take rounding.
// (A ternary, not std::min: GCC vectorises only the former.)
[[gnu::noinline]] void multiply_to_bytes(u8* __restrict out, const float* __restrict a,
                                         const float* __restrict b, index_t n) {
  for_blocks(n, [&](index_t i) {
    const float v = a[i] * b[i] + .5f;
    out[i] = static_cast<u8>(static_cast<std::int32_t>(v < 255.f ? v : 255.f));
  });
}

// B = colour sums / weight sum, rounded to bytes in the frame's order (a non-colour byte gets
// whatever: it is never blended in). A weight sum of 0 (no background within the kernel) comes
// with colour sums of 0, so B = 0 there, never seen: every frame pixel that reads this block is
// then foreground (alpha 255, w = 0), the kernel reaching further than the bilinear upscale.
// `inverses` (4 floats a pixel) and, for 3 bytes a pixel, `bytes` (4 a pixel) are scratch.
template <int kBpp, int kSkip>
void normalise(u8* __restrict out, const float* __restrict blurred, float* __restrict inverses,
               u8* __restrict bytes, int count) {
  for (int i = 0; i < count; ++i) {
    const float inverse = 1 / std::max(blurred[4 * i + kWeightSlot<kBpp, kSkip>], FLT_MIN);
    const f32x4 spread = {inverse, inverse, inverse, inverse};
    std::memcpy(inverses + 4 * i, &spread, sizeof spread);
  }
  // Four bytes a pixel as the floats are: one flat, vectorised pass.
  multiply_to_bytes(kBpp == 4 ? out : bytes, blurred, inverses, 4 * static_cast<index_t>(count));
  if constexpr (kBpp == 3)
    for (int i = 0; i < count; ++i) std::memcpy(out + 3 * i, bytes + 4 * i, 3);
}

// Pixel i of a `factor` times upscale lies between small pixels lo and lo + 1, at fraction
// num / (2 * factor): centres line up, (i + 0.5) / factor - 0.5, clamped at both ends.
struct UpscaleSource {
  int lo, num;
};
inline UpscaleSource upscale_source(int i, int factor, int small_count) {
  const int pos = 2 * i + 1 - factor;
  if (pos <= 0) return {0, 0};
  const UpscaleSource s{pos / (2 * factor), pos % (2 * factor)};
  return s.lo >= small_count - 1 ? UpscaleSource{small_count - 1, 0} : s;
}

// Runs body(stripe, begin, end) over [0, count) cut into `stripes` parts, on OpenCV's threads;
// `stripe` picks the caller's scratch. A ParallelLoopBody, not a lambda: cv::parallel_for_ takes
// lambdas as std::function, which allocates for captures larger than two pointers.
template <typename Body>
class Stripes : public cv::ParallelLoopBody {
 public:
  Stripes(int count, int stripes, Body& body) : count_(count), stripes_(stripes), body_(body) {}
  void operator()(const cv::Range& range) const override {
    for (int s = range.start; s < range.end; ++s)
      body_(s, static_cast<int>(static_cast<std::int64_t>(count_) * s / stripes_),
            static_cast<int>(static_cast<std::int64_t>(count_) * (s + 1) / stripes_));
  }

 private:
  int count_, stripes_;
  Body& body_;
};
template <typename Body>
void in_stripes(int count, int stripes, Body&& body) {
  const Stripes<std::remove_reference_t<Body>> run(count, stripes, body);
  if (stripes == 1)
    run(cv::Range(0, 1));
  else
    cv::parallel_for_(cv::Range(0, stripes), run, stripes);
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
// the weight move_towards describes; `weights` and `colour` are rows of scratch.
template <typename TargetRow>
void move_frame(const FrameView& frame, AlphaRows& alpha, u8 flip, u8 strength,
                cv::Mat& weights, cv::Mat& colour, TargetRow&& target_row) {
  const index_t width = static_cast<index_t>(frame.width);
  weights.create(1, frame.width * frame.bytes_per_pixel(), CV_8UC1);
  colour.create(1, frame.width * frame.bytes_per_pixel(), CV_8UC1);
  // Weight 255 everywhere only where flip is 255 (replace) at full strength: alpha 0 there.
  const u8 full = flip == 255 && strength == 255 ? 0 : flip;
  with_pixel_shape(frame.layout, [&](auto bpp, auto skip) {
    constexpr int kBpp = decltype(bpp)::value, kSkip = decltype(skip)::value;
    colour_bytes<kBpp, kSkip>(colour.data, width);
    for (int y = 0; y < frame.height; ++y) {
      const u8* const a = alpha.row(y, 0);
      u8* const px = row_of(frame, y);
      const u8* const target = target_row(y);
      // Pixels with alpha == flip have weight 0 (overlay: background; replace: foreground);
      // replacing, alpha 0 has weight 255.
      chunk_runs(a, width, flip, full, [&](index_t b, index_t e) {
        spread_alpha<kBpp, kSkip>(weights.data + kBpp * b, a + b, flip, e - b);
        move_towards(px + kBpp * b, target + kBpp * b, weights.data + kBpp * b, flip, strength,
                     kBpp * (e - b));
      }, [&](index_t b, index_t e) {
        take(px + kBpp * b, target + kBpp * b, colour.data + kBpp * b, kBpp * (e - b));
      });
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

// A frame-size Mat read as rows (not copied).
class MatRows final : public AlphaRows {
 public:
  explicit MatRows(const cv::Mat& alpha) : alpha_(alpha) {}
  cv::Size size() const override { return alpha_.size(); }
  void begin(int) override {}
  const std::uint8_t* row(int y, int) override { return alpha_.ptr<std::uint8_t>(y); }

 private:
  const cv::Mat& alpha_;
};

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

void write_alpha(const FrameView& frame, AlphaRows& alpha) {
  const int alpha_byte = channel_offsets(frame.layout).alpha;
  if (alpha_byte < 0)
    throw Error(std::string("Compositor: mode 'alpha' needs a layout with an alpha channel; ") +
                layout_name(frame.layout) + " has none");
  const index_t width = static_cast<index_t>(frame.width);
  for (int y = 0; y < frame.height; ++y) {
    if (alpha_byte == 0)
      write_alpha_row<0>(row_of(frame, y), alpha.row(y, 0), width);
    else
      write_alpha_row<3>(row_of(frame, y), alpha.row(y, 0), width);
  }
}

void paint_mask(const FrameView& frame, AlphaRows& alpha) {
  const bool opaque = has_alpha(frame.layout);
  const index_t width = static_cast<index_t>(frame.width);
  with_pixel_shape(frame.layout, [&](auto bpp, auto skip) {
    constexpr int kBpp = decltype(bpp)::value, kSkip = decltype(skip)::value;
    for (int y = 0; y < frame.height; ++y) {
      if (opaque)
        paint_mask_row<kBpp, kSkip, true>(row_of(frame, y), alpha.row(y, 0), width);
      else
        paint_mask_row<kBpp, kSkip, false>(row_of(frame, y), alpha.row(y, 0), width);
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
  if (by_class) {
    overlay_classes(frame, classes, alpha, options.overlay_opacity, row_weights_, row_targets_);
    return;
  }
  MatRows rows(alpha);
  draw_rows(frame, mode, rows, options);
}

void Compositor::draw(const FrameView& frame, Mode mode, AlphaRows& alpha,
                      const CompositorOptions& options) {
  if (mode == Mode::None) return;
  check_frame(frame);
  const cv::Size size = alpha.size();
  if (size.width != frame.width || size.height != frame.height)
    throw Error("Compositor: the alpha mask is " + size_text(size.width, size.height) +
                " but the frame is " + size_text(frame.width, frame.height));
  draw_rows(frame, mode, alpha, options);
}

void Compositor::draw_rows(const FrameView& frame, Mode mode, AlphaRows& alpha,
                           const CompositorOptions& options) {
  if (mode != Mode::Blur) alpha.begin(1);
  switch (mode) {
    case Mode::None:
      break;
    case Mode::Overlay:
      fill_colour_row(row_targets_, frame, rgb_of(options.overlay_color));
      move_frame(frame, alpha, /*flip=*/0, opacity_weight(options.overlay_opacity), row_weights_,
                 row_colour_,
                 [&](int) { return row_targets_.data; });
      break;
    case Mode::Alpha:
      write_alpha(frame, alpha);
      break;
    case Mode::Blur:
      blur(frame, alpha, options.blur_radius);
      break;
    case Mode::Replace:
      if (has_background_image()) {
        const cv::Mat& back = scaled_background(frame);
        move_frame(frame, alpha, /*flip=*/255, /*strength=*/255, row_weights_, row_colour_,
                   [&](int y) { return back.ptr<u8>(y); });
      } else {
        fill_colour_row(row_targets_, frame, rgb_of(options.background_color));
        move_frame(frame, alpha, /*flip=*/255, /*strength=*/255, row_weights_, row_colour_,
                   [&](int) { return row_targets_.data; });
      }
      break;
    case Mode::Mask:
      paint_mask(frame, alpha);
      break;
  }
}

void Compositor::blur(const FrameView& frame, AlphaRows& alpha, int radius) {
  if (radius < 1)
    throw Error("Compositor: blur radius must be at least 1 pixel, got " +
                std::to_string(radius));
  // B = G(frame * bg) / G(bg), bg = 255 - alpha: a normalised convolution, so that only
  // background pixels make the blurred background and the person leaves no halo in it. G is a
  // Gaussian of sigma = radius / 2, computed where it is cheap: the weighted frame and the
  // weights are summed over factor x factor blocks, blurred there (the kernel cut at 3 sigma and
  // at the frame's edges: the division renormalises both), and B comes back bilinearly, one row
  // at a time, straight into the composite. Own code in buffers kept from frame to frame
  // (cv::resize and cv::GaussianBlur allocate on every call), in 3 passes on OpenCV's threads.
  const double sigma = radius / 2.0;
  // Blocks of about sigma / 1.5 pixels: the Gaussian of 1.5 blocks that is left lets nothing
  // alias through the bilinear upscale, and block averaging plus upscale widen sigma by ~5%. At
  // least 2 pixels from sigma 2 up (1.0 to 1.9 blocks: still under 1% aliased); below, the
  // blur runs at full size, a float Gaussian costing ~4x OpenCV's 8-bit one there. At most 181
  // pixels, so that the block sums fit a signed 32 bits.
  const int factor =
      sigma < 2 ? 1 : std::clamp(static_cast<int>(std::lround(sigma / 1.5)), 2, 181);
  const int width = frame.width, height = frame.height, bpp = frame.bytes_per_pixel();
  const int small_w = (width + factor - 1) / factor, small_h = (height + factor - 1) / factor;
  const index_t row_bytes = static_cast<index_t>(width) * bpp;
  const index_t small_floats = static_cast<index_t>(small_w) * 4;

  const double small_sigma = sigma / factor;
  // Taps out to 3 sigma, and no further than the small image reaches (huge radii).
  const int taps = std::clamp(static_cast<int>(std::min(std::ceil(3 * small_sigma), 1e6)), 1,
                              std::max(small_w, small_h));
  blur_kernel_.create(1, taps + 1, CV_32FC1);
  float* const kernel = blur_kernel_.ptr<float>();
  for (int k = 0; k <= taps; ++k)
    kernel[k] = static_cast<float>(std::exp(-k * k / (2 * small_sigma * small_sigma)));

  // Where each frame column samples a row of blocks: between blocks lo and hi, by a weight out
  // of 256 for hi, one per byte.
  blur_columns_.create(1, width, CV_32SC2);
  blur_column_weights_.create(1, static_cast<int>(row_bytes), CV_8UC1);
  for (int x = 0; x < width; ++x) {
    const UpscaleSource s = upscale_source(x, factor, small_w);
    blur_columns_.ptr<cv::Vec2i>()[x] = {s.lo, s.num > 0 ? s.lo + 1 : s.lo};
    const int w = (s.num * 256 + factor) / (2 * factor);  // rounded, below 256 (factor < 256)
    std::memset(blur_column_weights_.ptr<u8>() + bpp * x, w, bpp);
  }

  // Scratch, one row per stripe: column sums (u32: a row of bytes, a row of weights); a row of
  // bytes (alpha spread per byte, or B per block); another (B's right-hand neighbours along the
  // row, or 4 bytes a block); two rows of blocks in floats. Each starts on a 64-byte boundary.
  const auto aligned = [](index_t bytes) { return (bytes + 63) / 64 * 64; };
  const index_t acc_at = 0, weights_at = acc_at + aligned(4 * row_bytes);
  const index_t bytes_at = weights_at + aligned(4 * static_cast<index_t>(width));
  const index_t target_at = bytes_at + aligned(row_bytes);
  const index_t vertical_at = target_at + aligned(std::max(row_bytes, small_floats));
  const index_t horizontal_at = vertical_at + aligned(4 * small_floats);
  const index_t scratch_bytes = horizontal_at + aligned(4 * small_floats);
  // A few stripes a thread, so that a thread held up elsewhere delays little.
  const int threads = frame_threads();
  const int stripes = threads == 1 ? 1 : std::clamp(4 * threads, 1, 64);
  blur_scratch_.create(stripes, static_cast<int>(scratch_bytes), CV_8UC1);
  blur_colour_.create(1, static_cast<int>(row_bytes), CV_8UC1);
  blur_sums_.create(small_h, static_cast<int>(small_floats), CV_32FC1);
  blur_rows_.create(small_h, static_cast<int>(row_bytes), CV_8UC1);

  with_pixel_shape(frame.layout, [&](auto bpp_c, auto skip_c) {
    constexpr int kBpp = decltype(bpp_c)::value, kSkip = decltype(skip_c)::value;

    colour_bytes<kBpp, kSkip>(blur_colour_.ptr<u8>(), static_cast<index_t>(width));

    // 1. Per block row: sum its frame rows per column, then the columns per block.
    alpha.begin(stripes);
    in_stripes(small_h, stripes, [&](int stripe, int begin, int end) {
      u8* const scratch = blur_scratch_.ptr<u8>(stripe);
      u32* const acc = reinterpret_cast<u32*>(scratch + acc_at);
      u32* const acc_weight = reinterpret_cast<u32*>(scratch + weights_at);
      u8* const alpha_bytes = scratch + bytes_at;
      for (int j = begin; j < end; ++j) {
        std::fill(acc, acc + row_bytes, 0u);
        std::fill(acc_weight, acc_weight + width, 0u);
        for (int y = j * factor; y < std::min(height, (j + 1) * factor); ++y) {
          // The non-colour byte gets alpha 255, weight 0: its sum stays 0 (the weight's slot).
          // Foreground (alpha 255) weighs nothing: its chunks are not read.
          const u8* const a = alpha.row(y, stripe);
          const u8* const px = row_of(frame, y);
          const auto add = [&](index_t b, index_t e) {
            spread_alpha<kBpp, kSkip>(alpha_bytes + kBpp * b, a + b, 255, e - b);
            add_weighted(acc + kBpp * b, px + kBpp * b, alpha_bytes + kBpp * b, kBpp * (e - b));
            add_background(acc_weight + b, a + b, e - b);
          };
          chunk_runs(a, width, 255, 255, add, add);
        }
        block_sums<kBpp, kSkip>(blur_sums_.ptr<float>(j), acc, acc_weight, width, factor,
                                small_w);
      }
    });

    // 2. Per block row: the Gaussian down the columns, then along the row, then B = colour sums
    // / weight sums (rounded to bytes, in the frame's order), then B upscaled along the row to
    // the frame's width.
    in_stripes(small_h, stripes, [&](int stripe, int begin, int end) {
      u8* const scratch = blur_scratch_.ptr<u8>(stripe);
      float* const vertical = reinterpret_cast<float*>(scratch + vertical_at);
      float* const blurred = reinterpret_cast<float*>(scratch + horizontal_at);
      u8* const small_bytes = scratch + bytes_at;
      u8* const right = scratch + target_at;
      const cv::Vec2i* const columns = blur_columns_.ptr<cv::Vec2i>();
      for (int j = begin; j < end; ++j) {
        set_scaled(vertical, blur_sums_.ptr<float>(j), kernel[0], small_floats);
        for (int k = 1; k <= taps; ++k) {
          const bool up = j - k >= 0, down = j + k < small_h;
          if (up && down)
            add_scaled_pair(vertical, blur_sums_.ptr<float>(j - k), blur_sums_.ptr<float>(j + k),
                            kernel[k], small_floats);
          else if (up || down)
            add_scaled(vertical, blur_sums_.ptr<float>(up ? j - k : j + k), kernel[k],
                       small_floats);
        }
        blur_along(blurred, vertical, kernel, taps, small_w);
        // (`vertical` is free again, and `right` not yet in use.)
        normalise<kBpp, kSkip>(small_bytes, blurred, vertical, right, small_w);
        u8* const out = blur_rows_.ptr<u8>(j);
        if (factor == 1) {
          std::memcpy(out, small_bytes, row_bytes);
          continue;
        }
        for (int x = 0; x < width; ++x) {  // gathered, then blended in one vectorised pass
          std::memcpy(out + kBpp * x, small_bytes + kBpp * columns[x][0], kBpp);
          std::memcpy(right + kBpp * x, small_bytes + kBpp * columns[x][1], kBpp);
        }
        lerp_bytes(out, right, blur_column_weights_.ptr<u8>(), row_bytes);
      }
    });

    // 3. Per frame row: B between its two block rows, then the composite with weight
    // 255 - alpha, as move_frame does it.
    alpha.begin(stripes);
    in_stripes(height, stripes, [&](int stripe, int begin, int end) {
      u8* const alpha_bytes = blur_scratch_.ptr<u8>(stripe) + bytes_at;
      const u8* const colour = blur_colour_.ptr<u8>();
      for (int y = begin; y < end; ++y) {
        const UpscaleSource s = upscale_source(y, factor, small_h);
        const int wb = (s.num * 256 + factor) / (2 * factor);  // rounded to 1/256, below 256
        const u8* const a = alpha.row(y, stripe);
        u8* const px = row_of(frame, y);
        const u8* const lo = blur_rows_.ptr<u8>(s.lo);
        const u8* const hi = wb > 0 ? blur_rows_.ptr<u8>(s.lo + 1) : lo;
        // Foreground (alpha 255) stays; background (alpha 0) becomes B.
        chunk_runs(a, width, 255, 0, [&](index_t b, index_t e) {
          const index_t at = kBpp * b, n = kBpp * (e - b);
          spread_alpha<kBpp, kSkip>(alpha_bytes + at, a + b, 255, e - b);
          if (wb > 0)
            move_towards_between(px + at, lo + at, hi + at, static_cast<u16>(wb),
                                 alpha_bytes + at, n);
          else
            move_towards(px + at, lo + at, alpha_bytes + at, /*flip=*/255, /*strength=*/255, n);
        }, [&](index_t b, index_t e) {
          const index_t at = kBpp * b, n = kBpp * (e - b);
          if (wb > 0)
            take_between(px + at, lo + at, hi + at, static_cast<u16>(wb), colour + at, n);
          else
            take(px + at, lo + at, colour + at, n);
        });
      }
    });
  });
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
