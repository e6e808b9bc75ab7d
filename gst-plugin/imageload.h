/* Decodes a still image (the element's background-location) into RGB pixels with GStreamer's own
 * decoders, so the element needs no image codec library beyond what the pipeline already has.
 *
 * Limits, all checked before anything is decoded:
 * - The file: opened once (O_RDONLY | O_NONBLOCK | O_CLOEXEC, so a FIFO or device at the path
 *   cannot block the open), then fstat of that descriptor: it must be a regular file (not a FIFO,
 *   socket, device or directory), not empty, and at most UNETSEG_IMAGE_MAX_BYTES (64 MiB) long.
 *   Exactly those bytes are read from that descriptor; the path is never opened again.
 * - The format: decided by GStreamer's typefinder on the bytes themselves (never by the name's
 *   extension). Only JPEG (image/jpeg, decoded by jpegdec from gst-plugins-good) and PNG
 *   (image/png, pngdec from gst-plugins-good) are accepted; anything else (playlists, URI lists,
 *   other images, media) is refused. PNGs with 16 bits per channel are accepted in grey only:
 *   16-bit colour ones (RGB, RGBA, grey+alpha) are refused, as GStreamer 1.22's pngdec decodes
 *   them shifted by one sample (wrong colours). The decoder chain is fixed per format
 *   (appsrc ! jpegdec|pngdec ! videoconvert ! appsink): no decodebin, no source element that
 *   reads a path or a URI, so nothing but the file itself is ever read and nothing reaches the
 *   network.
 * - The size: width and height are read from the header (PNG: the IHDR chunk, which must come
 *   first; JPEG: the first SOFn frame header) and each must be 1..UNETSEG_IMAGE_MAX_SIDE (8192),
 *   so a decoded image has at most 8192 x 8192 = 67,108,864 pixels (192 MiB as packed RGB; the
 *   decoder's and the converter's buffers come on top while it decodes: about 550 MB peak for an
 *   8192x8192 JPEG). The decoder's output caps are restricted to the same range, so a second
 *   image in the file or a header the decoder reads differently cannot decode to more; only the
 *   file's first image is used.
 * - The time: the decode is abandoned after `timeout_s` seconds (10 by default).
 */
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include <opencv2/core.hpp>

/* The largest background image file read, in bytes. */
constexpr std::uint64_t UNETSEG_IMAGE_MAX_BYTES = std::uint64_t (64) << 20;
/* The largest width, and the largest height, of a background image, in pixels. */
constexpr int UNETSEG_IMAGE_MAX_SIDE = 8192;

/* Fills `rgb` (CV_8UC3, packed RGB) from the image file at `location`; on failure returns false
 * and says why in `error` (naming the file). Blocks until the image is decoded or `timeout_s`
 * passes, or until `*cancel` (when given) becomes true: then it returns false soon after
 * (the wait is checked every few tens of milliseconds). Requires gst_init(). Thread-safe: every
 * call builds and tears down its own pipeline. */
bool unetseg_load_image_rgb (const std::string & location, cv::Mat & rgb,
    std::string & error, int timeout_s = 10,
    const std::atomic < bool > *cancel = nullptr);
