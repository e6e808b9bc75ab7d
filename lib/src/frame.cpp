#include "unetseg/frame.hpp"

#include <array>

namespace unetseg {

namespace {

struct LayoutInfo {
  PixelLayout layout;
  const char* name;
  ChannelOffsets offsets;  // r, g, b, alpha, bytes per pixel
};

constexpr std::array<LayoutInfo, 10> kLayouts{{
    {PixelLayout::RGB, "RGB", {0, 1, 2, -1, 3}},
    {PixelLayout::BGR, "BGR", {2, 1, 0, -1, 3}},
    {PixelLayout::RGBx, "RGBx", {0, 1, 2, -1, 4}},
    {PixelLayout::BGRx, "BGRx", {2, 1, 0, -1, 4}},
    {PixelLayout::xRGB, "xRGB", {1, 2, 3, -1, 4}},
    {PixelLayout::xBGR, "xBGR", {3, 2, 1, -1, 4}},
    {PixelLayout::RGBA, "RGBA", {0, 1, 2, 3, 4}},
    {PixelLayout::BGRA, "BGRA", {2, 1, 0, 3, 4}},
    {PixelLayout::ARGB, "ARGB", {1, 2, 3, 0, 4}},
    {PixelLayout::ABGR, "ABGR", {3, 2, 1, 0, 4}},
}};

}  // namespace

ChannelOffsets channel_offsets(PixelLayout layout) {
  return kLayouts[static_cast<size_t>(layout)].offsets;
}

const char* layout_name(PixelLayout layout) { return kLayouts[static_cast<size_t>(layout)].name; }

bool layout_from_name(const std::string& name, PixelLayout* layout) {
  for (const auto& info : kLayouts) {
    if (name == info.name) {
      *layout = info.layout;
      return true;
    }
  }
  return false;
}

}  // namespace unetseg
