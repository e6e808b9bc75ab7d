#include "imageload.h"

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/base/gsttypefindhelper.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace {

/* How often a decode in progress looks at its cancel flag. */
constexpr gint64 kCancelPollUs = 20 * G_TIME_SPAN_MILLISECOND;

/* A file descriptor that closes itself. */
struct Fd
{
  int fd;
  ~Fd () {
    if (fd >= 0)
      ::close (fd);
  }
};

/* Bytes from g_malloc, handed to a GstBuffer without a copy (release()) or freed. */
struct Bytes
{
  guint8 *data = nullptr;
  gsize size = 0;
  ~Bytes () {
    g_free (data);
  }
  guint8 *release () {
    guint8 *d = data;
    data = nullptr;
    return d;
  }
};

const char *
file_kind (mode_t mode)
{
  if (S_ISDIR (mode))
    return "a directory";
  if (S_ISFIFO (mode))
    return "a FIFO (named pipe)";
  if (S_ISSOCK (mode))
    return "a socket";
  if (S_ISCHR (mode))
    return "a character device";
  if (S_ISBLK (mode))
    return "a block device";
  return "not a regular file";
}

/* Opens `path` once, without blocking (a FIFO or device at the path cannot hang the open),
 * checks THAT descriptor (a regular file of 1..max_bytes bytes) and reads its bytes. The path is
 * never looked at again, so what was checked is what is read. */
bool
read_file_bounded (const std::string & path, std::uint64_t max_bytes, const std::string & what,
    Bytes & out, std::string & error)
{
  Fd file { ::open (path.c_str (), O_RDONLY | O_NONBLOCK | O_CLOEXEC) };
  if (file.fd < 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR)
      error = what + " " + path + " does not exist or is not a regular file (" +
          std::strerror (e) + ")";
    else
      error = what + " " + path + " cannot be opened: " + std::strerror (e);
    return false;
  }
  struct stat st {};
  if (::fstat (file.fd, &st) != 0) {
    error = what + " " + path + " cannot be examined: " + std::strerror (errno);
    return false;
  }
  if (!S_ISREG (st.st_mode)) {
    error = what + " " + path + " does not exist or is not a regular file (it is " +
        file_kind (st.st_mode) + ")";
    return false;
  }
  if (st.st_size <= 0) {
    error = what + " " + path + " is empty (0 bytes)";
    return false;
  }
  if (static_cast < std::uint64_t > (st.st_size) > max_bytes) {
    error = what + " " + path + " is " + std::to_string (st.st_size) + " bytes, more than the " +
        std::to_string (max_bytes >> 20) + " MiB (" + std::to_string (max_bytes) +
        " bytes) limit";
    return false;
  }
  const gsize size = static_cast < gsize > (st.st_size);
  out.data = static_cast < guint8 * >(g_try_malloc (size));
  if (!out.data) {
    error = what + " " + path + ": out of memory for " + std::to_string (size) + " bytes";
    return false;
  }
  gsize got = 0;
  while (got < size) {
    const ssize_t n = ::read (file.fd, out.data + got, size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      error = what + " " + path + " cannot be read: " + std::strerror (errno);
      return false;
    }
    if (n == 0) {
      error = what + " " + path + " became shorter while it was read (" +
          std::to_string (got) + " of " + std::to_string (size) + " bytes)";
      return false;
    }
    got += static_cast < gsize > (n);
  }
  out.size = size;
  return true;
}

guint32
be32 (const guint8 * p)
{
  return (guint32 (p[0]) << 24) | (guint32 (p[1]) << 16) | (guint32 (p[2]) << 8) | p[3];
}

guint
be16 (const guint8 * p)
{
  return (guint (p[0]) << 8) | p[1];
}

/* What a header says: the size, and why the decoder cannot take it (empty when it can). */
struct Header
{
  guint64 width = 0, height = 0;
  std::string unsupported;
};

/* PNG: the signature, then the IHDR chunk first (as the format requires): length 13, "IHDR",
 * width and height as 32-bit big-endian numbers, bit depth, colour type. */
bool
png_header (const guint8 * d, gsize n, Header & header, std::string & why)
{
  static const guint8 signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
  if (n < 8 + 8 + 13 || std::memcmp (d, signature, 8) != 0) {
    why = "it is a PNG too short for its header";
    return false;
  }
  if (be32 (d + 8) != 13 || std::memcmp (d + 12, "IHDR", 4) != 0) {
    why = "it is a PNG without an IHDR header first";
    return false;
  }
  header.width = be32 (d + 16);
  header.height = be32 (d + 20);
  /* pngdec (gst-plugins-good 1.22) decodes 16-bit colour PNGs (RGB, RGBA, grey+alpha) shifted
   * by one 16-bit sample, so RGB ones come out with wrong colours; 16-bit grey is right. */
  const guint depth = d[24], colour_type = d[25];
  if (depth == 16 && colour_type != 0)
    header.unsupported = "16-bit colour PNGs are not supported (GStreamer's pngdec decodes them "
        "wrongly): save it with 8 bits per channel";
  return true;
}

/* JPEG: walks the marker segments from SOI, as libjpeg does (skipping stray bytes and fill
 * bytes between segments, APPn/COM/DQT/DHT... by their length), to the first frame header
 * (SOF0..SOF15 except DHT C4, JPG C8 and DAC CC): precision, height, width. */
bool
jpeg_header (const guint8 * d, gsize n, Header & header, std::string & why)
{
  if (n < 4 || d[0] != 0xff || d[1] != 0xd8) {
    why = "it is a JPEG without a start-of-image marker";
    return false;
  }
  gsize p = 2;
  for (;;) {
    while (p < n && d[p] != 0xff)
      ++p;
    while (p < n && d[p] == 0xff)
      ++p;
    if (p >= n)
      break;
    const guint8 marker = d[p++];
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7))
      continue;                 /* no length */
    if (marker == 0xd8 || marker == 0xd9 || marker == 0xda)
      break;                    /* another SOI, EOI or the scan data before any frame header */
    if (p + 2 > n)
      break;
    const gsize length = be16 (d + p);
    if (length < 2 || p + length > n)
      break;
    const bool sof = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 &&
        marker != 0xcc;
    if (sof) {
      if (length < 8)
        break;
      header.height = be16 (d + p + 3);
      header.width = be16 (d + p + 5);
      return true;
    }
    p += length;
  }
  why = "it is a JPEG without a frame header (SOFn) before its image data";
  return false;
}

struct Format
{
  const char *media_type;       /* from the typefinder */
  const char *decoder;          /* the one element that decodes it */
  bool (*header) (const guint8 *, gsize, Header &, std::string &);
};

const Format kFormats[] = {
  {"image/jpeg", "jpegdec", jpeg_header},
  {"image/png", "pngdec", png_header},
};

/* Runs appsrc ! DECODER ! (size cap) ! videoconvert ! RGB appsink on `bytes` (consumed). */
bool
decode (const std::string & location, const Format & format, Bytes & bytes, cv::Mat & rgb,
    std::string & error, int timeout_s, const std::atomic < bool > *cancel)
{
  const std::string cap = std::to_string (UNETSEG_IMAGE_MAX_SIDE);
  const std::string description = std::string ("appsrc name=src ! ") + format.decoder +
      " ! video/x-raw,width=(int)[1," + cap + "],height=(int)[1," + cap + "] ! videoconvert"
      " ! video/x-raw,format=RGB ! appsink name=sink sync=false max-buffers=1"
      " enable-last-sample=false";
  GError *parse_error = NULL;
  GstElement *pipeline = gst_parse_launch_full (description.c_str (), NULL,
      GST_PARSE_FLAG_FATAL_ERRORS, &parse_error);
  if (!pipeline) {
    error = "image " + location + " could not be decoded: cannot build the " +
        format.decoder + " decoder: " + (parse_error ? parse_error->message : "unknown reason");
    g_clear_error (&parse_error);
    return false;
  }
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  GstCaps *caps = gst_caps_new_empty_simple (format.media_type);
  g_object_set (src, "caps", caps, "format", GST_FORMAT_BYTES, NULL);
  gst_caps_unref (caps);
  GstBus *bus = gst_element_get_bus (pipeline);

  bool ok = false;
  if (gst_element_set_state (pipeline, GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE) {
    error = "image " + location + " could not be decoded: the decoder did not start";
  } else {
    const gsize size = bytes.size;
    gst_app_src_push_buffer (GST_APP_SRC (src), gst_buffer_new_wrapped (bytes.release (), size));
    gst_app_src_end_of_stream (GST_APP_SRC (src));

    /* Wait for the preroll (a picture, or EOS without one) or an error, in short slices so
     * that a cancel is seen soon. */
    const gint64 deadline = g_get_monotonic_time () + gint64 (timeout_s) * G_TIME_SPAN_SECOND;
    GstMessage *msg = NULL;
    bool cancelled = false;
    for (;;) {
      if (cancel && cancel->load ()) {
        cancelled = true;
        break;
      }
      const gint64 left = deadline - g_get_monotonic_time ();
      if (left <= 0)
        break;
      msg = gst_bus_timed_pop_filtered (bus, MIN (left, kCancelPollUs) * GST_USECOND,
          (GstMessageType) (GST_MESSAGE_ERROR | GST_MESSAGE_ASYNC_DONE));
      if (msg)
        break;
    }

    if (cancelled) {
      error = "image " + location + ": loading was cancelled";
    } else if (!msg) {
      error = "image " + location + " could not be decoded within " +
          std::to_string (timeout_s) + " s";
    } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      GError *err = NULL;
      gst_message_parse_error (msg, &err, NULL);
      error = "image " + location + " could not be decoded: " + err->message;
      g_clear_error (&err);
    } else {
      GstSample *sample = gst_app_sink_try_pull_preroll (GST_APP_SINK (sink), 0);
      GstVideoInfo info;
      GstVideoFrame frame;
      if (!sample) {
        /* EOS without a picture: the decoder dropped the frame; say what it warned. */
        error = "image " + location + " could not be decoded: no picture came out of " +
            format.decoder;
        GstMessage *warning = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
        if (warning) {
          GError *err = NULL;
          gst_message_parse_warning (warning, &err, NULL);
          error += std::string (" (") + err->message + ")";
          g_clear_error (&err);
          gst_message_unref (warning);
        }
      } else if (gst_video_info_from_caps (&info, gst_sample_get_caps (sample)) &&
          GST_VIDEO_INFO_FORMAT (&info) == GST_VIDEO_FORMAT_RGB &&
          gst_video_frame_map (&frame, &info, gst_sample_get_buffer (sample),
              GST_MAP_READ)) {
        cv::Mat view (GST_VIDEO_FRAME_HEIGHT (&frame), GST_VIDEO_FRAME_WIDTH (&frame),
            CV_8UC3, GST_VIDEO_FRAME_PLANE_DATA (&frame, 0),
            GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0));
        view.copyTo (rgb);
        gst_video_frame_unmap (&frame);
        ok = true;
      } else {
        error = "image " + location + " decoded to an unusable format";
      }
      if (sample)
        gst_sample_unref (sample);
    }
    if (msg)
      gst_message_unref (msg);
  }

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (src);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  return ok;
}

}  // namespace

bool
unetseg_load_image_rgb (const std::string & location, cv::Mat & rgb,
    std::string & error, int timeout_s, const std::atomic < bool > *cancel)
{
  Bytes bytes;
  if (!read_file_bounded (location, UNETSEG_IMAGE_MAX_BYTES, "image", bytes, error))
    return false;

  /* What the bytes are, from the bytes alone (the name's extension is not asked). */
  GstTypeFindProbability probability = GST_TYPE_FIND_NONE;
  GstCaps *found = gst_type_find_helper_for_data (NULL, bytes.data, bytes.size, &probability);
  const std::string media_type = found && !gst_caps_is_empty (found) && !gst_caps_is_any (found) ?
      gst_structure_get_name (gst_caps_get_structure (found, 0)) : "";
  if (found)
    gst_caps_unref (found);
  const Format *format = NULL;
  for (const Format & f:kFormats)
    if (media_type == f.media_type)
      format = &f;
  if (!format) {
    error = "image " + location + " could not be decoded: it is not a JPEG or PNG image (found " +
        (media_type.empty () ? std::string ("no known type") : media_type) + ")";
    return false;
  }

  /* The size it claims, before anything is decoded. */
  Header header;
  std::string why;
  if (!format->header (bytes.data, bytes.size, header, why)) {
    error = "image " + location + " could not be decoded: " + why;
    return false;
  }
  const guint64 width = header.width, height = header.height;
  if (width == 0 || height == 0) {
    error = "image " + location + " could not be decoded: its header gives an empty size (" +
        std::to_string (width) + "x" + std::to_string (height) + ")";
    return false;
  }
  if (width > guint64 (UNETSEG_IMAGE_MAX_SIDE) || height > guint64 (UNETSEG_IMAGE_MAX_SIDE)) {
    const std::string cap = std::to_string (UNETSEG_IMAGE_MAX_SIDE);
    error = "image " + location + " claims " + std::to_string (width) + "x" +
        std::to_string (height) + " pixels, more than the " + cap + "x" + cap +
        " limit for a background image (width and height at most " + cap + " each)";
    return false;
  }
  if (!header.unsupported.empty ()) {
    error = "image " + location + " could not be decoded: " + header.unsupported;
    return false;
  }

  return decode (location, *format, bytes, rgb, error, timeout_s, cancel);
}
