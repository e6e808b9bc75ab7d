// A non-owning view of one packed 8-bit RGB-family video frame, and what each layout means.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <opencv2/core.hpp>

namespace unetseg {

// The packed layouts the library reads and draws on; names follow GStreamer's video formats
// (byte order in memory, 'x' a padding byte, 'A' alpha).
enum class PixelLayout { RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, ARGB, ABGR };

// Byte offsets of the channels inside one pixel; alpha is -1 where the layout has none
// (padding bytes are not alpha: nothing may read meaning from them).
struct ChannelOffsets {
  int r, g, b, alpha;
  int bytes_per_pixel;
};

ChannelOffsets channel_offsets(PixelLayout layout);
inline bool has_alpha(PixelLayout layout) { return channel_offsets(layout).alpha >= 0; }
const char* layout_name(PixelLayout layout);
// Parses a GStreamer format name ("RGBx", ...); returns false if it is not one of ours.
bool layout_from_name(const std::string& name, PixelLayout* layout);

struct FrameView {
  std::uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  std::size_t stride = 0;  // bytes from one row to the next; may exceed width * bytes_per_pixel
  PixelLayout layout = PixelLayout::RGB;

  int bytes_per_pixel() const { return channel_offsets(layout).bytes_per_pixel; }
  // The same pixels as a cv::Mat header (CV_8UC3 or CV_8UC4); no copy.
  cv::Mat mat() const {
    return cv::Mat(height, width, CV_8UC(bytes_per_pixel()), data, stride);
  }
};

}  // namespace unetseg
