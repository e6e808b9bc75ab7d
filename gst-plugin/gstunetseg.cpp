/* unetseg: U-Net-family segmentation as a GStreamer video filter.
 *
 * Thin GObject glue around libunetseg: properties, caps, buffers in and out, the mask meta.
 * The model is loaded when the element starts (READY -> PAUSED), so a bad model fails the state
 * change with an error that names the file and the reason.
 *
 * Two ways to pair frames and masks:
 * - offline (files): each frame waits for the model, and carries the mask of its own pixels
 *   (or, with interval / skip-threshold / QoS, of the last frame the model saw);
 * - live (cameras; automatic when upstream is live): the model runs on a thread of its own
 *   (libunetseg's AsyncSegmenter) on the newest frame, and every frame leaves at once with
 *   the newest mask; the meta's source_pts says which frame that mask came from.
 */

/**
 * SECTION:element-unetseg
 * @title: unetseg
 *
 * Runs a U-Net-family ONNX segmentation model (U-Net, U²-Net, ISNet, ...) through OpenCV DNN
 * on every frame, attaches the mask as a #GstUnetsegMaskMeta plus a
 * #GstVideoRegionOfInterestMeta ("foreground") with its bounding box, and optionally draws it.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! \
 *     unetseg model=sinet.onnx mode=blur ! videoconvert ! autovideosink
 * gst-launch-1.0 -m videotestsrc num-buffers=10 ! unetseg model=sinet.onnx mode=none \
 *     post-messages=true ! fakesink
 * gst-launch-1.0 v4l2src ! videoconvert ! unetseg model=portrait-unet mode=blur \
 *     smoothing=0.5 ! videoconvert ! autovideosink
 * ]|
 */

#include "gstunetseg.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <string>

#include <gst/video/gstvideometa.h>

#include "gstunetsegmeta.h"
#include "imageload.h"
#include "unetseg/async_segmenter.hpp"
#include "unetseg/compositor.hpp"
#include "unetseg/error.hpp"
#include "unetseg/mask_filter.hpp"
#include "unetseg/model_cache.hpp"
#include "unetseg/segmenter.hpp"
#include "unetseg/temporal.hpp"

GST_DEBUG_CATEGORY_STATIC (gst_unetseg_debug);
#define GST_CAT_DEFAULT gst_unetseg_debug

#define DEFAULT_MODEL NULL
#define DEFAULT_BACKEND GST_UNETSEG_BACKEND_AUTO
#define DEFAULT_MODE GST_UNETSEG_MODE_OVERLAY
#define DEFAULT_THRESHOLD 0.5
#define DEFAULT_SOFT_MASK FALSE
#define DEFAULT_OVERLAY_COLOR 0xff00ff00u
#define DEFAULT_OVERLAY_OPACITY 0.5
#define DEFAULT_BLUR_RADIUS 21
#define DEFAULT_BACKGROUND_COLOR 0xff00ff00u
#define DEFAULT_BACKGROUND_LOCATION NULL
#define DEFAULT_POST_MESSAGES FALSE
#define DEFAULT_LIVE GST_UNETSEG_LIVE_AUTO
#define DEFAULT_INTERVAL 1
#define DEFAULT_SKIP_THRESHOLD 0.0
#define DEFAULT_THREADS 0
#define DEFAULT_SMOOTHING 0.0
#define DEFAULT_SMOOTHING_RESET 12.0
#define DEFAULT_MIN_ISLAND 0.0
#define DEFAULT_SMOOTH_CONTOUR 0
#define DEFAULT_FEATHER 0
#define DEFAULT_GUIDED_RADIUS 0
#define DEFAULT_GUIDED_EPS 0.001

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_BACKEND,
  PROP_ACTIVE_BACKEND,
  PROP_MODE,
  PROP_THRESHOLD,
  PROP_SOFT_MASK,
  PROP_OVERLAY_COLOR,
  PROP_OVERLAY_OPACITY,
  PROP_BLUR_RADIUS,
  PROP_BACKGROUND_COLOR,
  PROP_BACKGROUND_LOCATION,
  PROP_POST_MESSAGES,
  PROP_LIVE,
  PROP_INTERVAL,
  PROP_SKIP_THRESHOLD,
  PROP_THREADS,
  PROP_SMOOTHING,
  PROP_SMOOTHING_RESET,
  PROP_MIN_ISLAND,
  PROP_SMOOTH_CONTOUR,
  PROP_FEATHER,
  PROP_GUIDED_RADIUS,
  PROP_GUIDED_EPS,
};

#define VIDEO_FORMATS "{ RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, ARGB, ABGR }"
#define ALPHA_FORMATS "{ RGBA, BGRA, ARGB, ABGR }"

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS)));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS)));
static GstStaticCaps alpha_caps = GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (ALPHA_FORMATS));

/* What the streaming thread owns; created in start(), dropped in stop(). */
struct UnetsegRuntime
{
  std::unique_ptr < unetseg::Segmenter > segmenter;
  /* Live mode only: the model's own thread. Declared after the segmenter it drives, so that it
   * is destroyed (joined) first. */
  std::unique_ptr < unetseg::AsyncSegmenter > async;
  gboolean live_decided = FALSE;
  gboolean live = FALSE;

  /* The newest mask: the model's result and, with smoothing, its running average. */
  unetseg::SegmentResult result;
  gboolean have_result = FALSE;
  unetseg::TemporalSmoother smoother;
  cv::Mat smoothed;
  cv::Mat no_foreground;        /* drawn before a live stream's first mask */

  /* When to run the model: every interval-th frame, unless the frame barely changed. */
  guint frames_since_submit = 0;
  cv::Mat thumbnail;            /* of this frame, at the model's output size */
  cv::Mat submitted_thumbnail;  /* of the last frame handed to the model */

  /* How long a frame stays in the element (from prepare_output_buffer to the end of the
   * transform) in each mode, as answered to LATENCY queries: offline it includes the
   * inference, live it does not. */
  std::atomic < GstClockTime > offline_latency { 0 };
  std::atomic < GstClockTime > live_latency { 0 };
  gint64 frame_start_us = 0;
  gboolean upstream_live = FALSE;
  /* Downstream's QoS proportion (1.0 = keeping up; 2.0 = needs twice as fast), set by the src
   * pad's QoS events from another thread. */
  std::atomic < double >qos_proportion { 1.0 };

  unetseg::MaskFilter mask_filter;
  unetseg::Compositor compositor;
  GstBufferPool *mask_pool = nullptr;   /* GRAY8 at the model's output size */
  cv::Mat mask_scratch;
  std::vector < guint > region_ids;
  std::vector < const gchar * >labels;
  unetseg::PixelLayout layout = unetseg::PixelLayout::RGB;
};


/* A snapshot of the drawing properties, taken under the object lock once per frame. */
struct UnetsegSettings
{
  GstUnetsegMode mode;
  guint interval;
  gdouble skip_threshold;
  gdouble smoothing;
  gdouble smoothing_reset;
  unetseg::MaskOptions mask;
  unetseg::CompositorOptions draw;
  gboolean post_messages;
  gboolean background_changed;
  std::string background_location;
};

struct _GstUnetseg
{
  GstVideoFilter parent;

  /* properties, under the object lock */
  gchar *model;
  GstUnetsegBackend backend;
  gchar *active_backend;
  GstUnetsegMode mode;
  gdouble threshold;
  gboolean soft_mask;
  guint overlay_color;
  gdouble overlay_opacity;
  gint blur_radius;
  guint background_color;
  gchar *background_location;
  gboolean background_changed;
  gboolean post_messages;
  GstUnetsegLive live;
  guint interval;
  gdouble skip_threshold;
  gint threads;
  gdouble smoothing;
  gdouble smoothing_reset;
  gdouble min_island;
  gint smooth_contour;
  gint feather;
  gint guided_radius;
  gdouble guided_eps;

  UnetsegRuntime *rt;
};

#define gst_unetseg_parent_class parent_class
G_DEFINE_TYPE (GstUnetseg, gst_unetseg, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (unetseg, "unetseg", GST_RANK_NONE, GST_TYPE_UNETSEG);

/* ---- enums ---- */

#define GST_TYPE_UNETSEG_MODE (gst_unetseg_mode_get_type ())
static GType
gst_unetseg_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_UNETSEG_MODE_NONE, "Attach the mask meta only; pixels untouched (passthrough)",
        "none"},
    {GST_UNETSEG_MODE_OVERLAY, "Tint the foreground (multi-class: a colour per class)",
        "overlay"},
    {GST_UNETSEG_MODE_ALPHA, "Write the mask into the alpha channel (for compositor)",
        "alpha"},
    {GST_UNETSEG_MODE_BLUR, "Blur the background, keep the foreground sharp", "blur"},
    {GST_UNETSEG_MODE_REPLACE, "Replace the background with a colour or an image",
        "replace"},
    {GST_UNETSEG_MODE_MASK, "Show the mask itself: white foreground on black", "mask"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstUnetsegMode", values));
  return type;
}

#define GST_TYPE_UNETSEG_BACKEND (gst_unetseg_backend_get_type ())
static GType
gst_unetseg_backend_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_UNETSEG_BACKEND_AUTO, "CUDA if OpenCV has it and a GPU works, else the CPU", "auto"},
    {GST_UNETSEG_BACKEND_CPU, "OpenCV's own CPU backend", "cpu"},
    {GST_UNETSEG_BACKEND_CUDA, "OpenCV's CUDA backend, 32-bit float", "cuda"},
    {GST_UNETSEG_BACKEND_CUDA_FP16, "OpenCV's CUDA backend, 16-bit float", "cuda-fp16"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstUnetsegBackend", values));
  return type;
}

#define GST_TYPE_UNETSEG_LIVE (gst_unetseg_live_get_type ())
static GType
gst_unetseg_live_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_UNETSEG_LIVE_AUTO, "Live when upstream is live (a camera), offline otherwise",
        "auto"},
    {GST_UNETSEG_LIVE_ON, "The model runs on its own thread on the newest frame; every frame "
          "leaves at once with the newest mask", "on"},
    {GST_UNETSEG_LIVE_OFF, "Every frame waits for the model and gets its own mask", "off"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstUnetsegLive", values));
  return type;
}

static unetseg::Backend
to_lib_backend (GstUnetsegBackend backend)
{
  switch (backend) {
    case GST_UNETSEG_BACKEND_CPU:
      return unetseg::Backend::Cpu;
    case GST_UNETSEG_BACKEND_CUDA:
      return unetseg::Backend::Cuda;
    case GST_UNETSEG_BACKEND_CUDA_FP16:
      return unetseg::Backend::CudaFp16;
    default:
      return unetseg::Backend::Auto;
  }
}

static unetseg::Mode
to_lib_mode (GstUnetsegMode mode)
{
  switch (mode) {
    case GST_UNETSEG_MODE_OVERLAY:
      return unetseg::Mode::Overlay;
    case GST_UNETSEG_MODE_ALPHA:
      return unetseg::Mode::Alpha;
    case GST_UNETSEG_MODE_BLUR:
      return unetseg::Mode::Blur;
    case GST_UNETSEG_MODE_REPLACE:
      return unetseg::Mode::Replace;
    case GST_UNETSEG_MODE_MASK:
      return unetseg::Mode::Mask;
    default:
      return unetseg::Mode::None;
  }
}

/* Big-endian ARGB, as textoverlay's colours: 0xAARRGGBB -> (R, G, B). */
static cv::Scalar
argb_to_rgb (guint argb)
{
  return cv::Scalar ((argb >> 16) & 0xff, (argb >> 8) & 0xff, argb & 0xff);
}

/* ---- GObject ---- */

static void
gst_unetseg_init (GstUnetseg * self)
{
  self->model = g_strdup (DEFAULT_MODEL);
  self->backend = DEFAULT_BACKEND;
  self->active_backend = NULL;
  self->mode = DEFAULT_MODE;
  self->threshold = DEFAULT_THRESHOLD;
  self->soft_mask = DEFAULT_SOFT_MASK;
  self->overlay_color = DEFAULT_OVERLAY_COLOR;
  self->overlay_opacity = DEFAULT_OVERLAY_OPACITY;
  self->blur_radius = DEFAULT_BLUR_RADIUS;
  self->background_color = DEFAULT_BACKGROUND_COLOR;
  self->background_location = g_strdup (DEFAULT_BACKGROUND_LOCATION);
  self->background_changed = FALSE;
  self->post_messages = DEFAULT_POST_MESSAGES;
  self->live = DEFAULT_LIVE;
  self->interval = DEFAULT_INTERVAL;
  self->skip_threshold = DEFAULT_SKIP_THRESHOLD;
  self->threads = DEFAULT_THREADS;
  self->smoothing = DEFAULT_SMOOTHING;
  self->smoothing_reset = DEFAULT_SMOOTHING_RESET;
  self->min_island = DEFAULT_MIN_ISLAND;
  self->smooth_contour = DEFAULT_SMOOTH_CONTOUR;
  self->feather = DEFAULT_FEATHER;
  self->guided_radius = DEFAULT_GUIDED_RADIUS;
  self->guided_eps = DEFAULT_GUIDED_EPS;
  self->rt = new UnetsegRuntime ();

  /* A meta-only pass maps the frame read-only: no copy of shared frames. */
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  gst_base_transform_set_passthrough (trans, DEFAULT_MODE == GST_UNETSEG_MODE_NONE);
  gst_base_transform_set_qos_enabled (trans, TRUE);
}

static void
gst_unetseg_finalize (GObject * object)
{
  GstUnetseg *self = GST_UNETSEG (object);

  if (self->rt->mask_pool)
    gst_object_unref (self->rt->mask_pool);
  delete self->rt;
  g_free (self->model);
  g_free (self->active_backend);
  g_free (self->background_location);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

/* Properties marked MUTABLE_READY only take effect at the next start; say so instead of
 * silently ignoring a change made while streaming. */
static gboolean
is_streaming (GstUnetseg * self)
{
  return GST_STATE (self) > GST_STATE_READY;
}

static void
gst_unetseg_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstUnetseg *self = GST_UNETSEG (object);
  gboolean renegotiate = FALSE;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      if (is_streaming (self))
        GST_WARNING_OBJECT (self, "model changes take effect at the next start (READY -> PAUSED)");
      g_free (self->model);
      self->model = g_value_dup_string (value);
      break;
    case PROP_BACKEND:
      if (is_streaming (self))
        GST_WARNING_OBJECT (self, "backend changes take effect at the next start");
      self->backend = (GstUnetsegBackend) g_value_get_enum (value);
      break;
    case PROP_MODE:{
      GstUnetsegMode mode = (GstUnetsegMode) g_value_get_enum (value);
      /* Entering or leaving alpha mode changes which formats we accept. */
      renegotiate = (mode == GST_UNETSEG_MODE_ALPHA) != (self->mode == GST_UNETSEG_MODE_ALPHA);
      self->mode = mode;
      break;
    }
    case PROP_THRESHOLD:
      self->threshold = g_value_get_double (value);
      break;
    case PROP_SOFT_MASK:
      self->soft_mask = g_value_get_boolean (value);
      break;
    case PROP_OVERLAY_COLOR:
      self->overlay_color = g_value_get_uint (value);
      break;
    case PROP_OVERLAY_OPACITY:
      self->overlay_opacity = g_value_get_double (value);
      break;
    case PROP_BLUR_RADIUS:
      self->blur_radius = g_value_get_int (value);
      break;
    case PROP_BACKGROUND_COLOR:
      self->background_color = g_value_get_uint (value);
      break;
    case PROP_BACKGROUND_LOCATION:
      g_free (self->background_location);
      self->background_location = g_value_dup_string (value);
      self->background_changed = TRUE;
      break;
    case PROP_POST_MESSAGES:
      self->post_messages = g_value_get_boolean (value);
      break;
    case PROP_LIVE:
      if (is_streaming (self))
        GST_WARNING_OBJECT (self, "live changes take effect at the next start");
      self->live = (GstUnetsegLive) g_value_get_enum (value);
      break;
    case PROP_INTERVAL:
      self->interval = g_value_get_uint (value);
      break;
    case PROP_SKIP_THRESHOLD:
      self->skip_threshold = g_value_get_double (value);
      break;
    case PROP_THREADS:
      if (is_streaming (self))
        GST_WARNING_OBJECT (self, "threads changes take effect at the next start");
      self->threads = g_value_get_int (value);
      break;
    case PROP_SMOOTHING:
      self->smoothing = g_value_get_double (value);
      break;
    case PROP_SMOOTHING_RESET:
      self->smoothing_reset = g_value_get_double (value);
      break;
    case PROP_MIN_ISLAND:
      self->min_island = g_value_get_double (value);
      break;
    case PROP_SMOOTH_CONTOUR:
      self->smooth_contour = g_value_get_int (value);
      break;
    case PROP_FEATHER:
      self->feather = g_value_get_int (value);
      break;
    case PROP_GUIDED_RADIUS:
      self->guided_radius = g_value_get_int (value);
      break;
    case PROP_GUIDED_EPS:
      self->guided_eps = g_value_get_double (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  const gboolean passthrough = self->mode == GST_UNETSEG_MODE_NONE;
  GST_OBJECT_UNLOCK (self);

  if (prop_id == PROP_MODE) {
    gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), passthrough);
    if (renegotiate)
      gst_base_transform_reconfigure_sink (GST_BASE_TRANSFORM (self));
  }
}

static void
gst_unetseg_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstUnetseg *self = GST_UNETSEG (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model);
      break;
    case PROP_BACKEND:
      g_value_set_enum (value, self->backend);
      break;
    case PROP_ACTIVE_BACKEND:
      g_value_set_string (value, self->active_backend);
      break;
    case PROP_MODE:
      g_value_set_enum (value, self->mode);
      break;
    case PROP_THRESHOLD:
      g_value_set_double (value, self->threshold);
      break;
    case PROP_SOFT_MASK:
      g_value_set_boolean (value, self->soft_mask);
      break;
    case PROP_OVERLAY_COLOR:
      g_value_set_uint (value, self->overlay_color);
      break;
    case PROP_OVERLAY_OPACITY:
      g_value_set_double (value, self->overlay_opacity);
      break;
    case PROP_BLUR_RADIUS:
      g_value_set_int (value, self->blur_radius);
      break;
    case PROP_BACKGROUND_COLOR:
      g_value_set_uint (value, self->background_color);
      break;
    case PROP_BACKGROUND_LOCATION:
      g_value_set_string (value, self->background_location);
      break;
    case PROP_POST_MESSAGES:
      g_value_set_boolean (value, self->post_messages);
      break;
    case PROP_LIVE:
      g_value_set_enum (value, self->live);
      break;
    case PROP_INTERVAL:
      g_value_set_uint (value, self->interval);
      break;
    case PROP_SKIP_THRESHOLD:
      g_value_set_double (value, self->skip_threshold);
      break;
    case PROP_THREADS:
      g_value_set_int (value, self->threads);
      break;
    case PROP_SMOOTHING:
      g_value_set_double (value, self->smoothing);
      break;
    case PROP_SMOOTHING_RESET:
      g_value_set_double (value, self->smoothing_reset);
      break;
    case PROP_MIN_ISLAND:
      g_value_set_double (value, self->min_island);
      break;
    case PROP_SMOOTH_CONTOUR:
      g_value_set_int (value, self->smooth_contour);
      break;
    case PROP_FEATHER:
      g_value_set_int (value, self->feather);
      break;
    case PROP_GUIDED_RADIUS:
      g_value_set_int (value, self->guided_radius);
      break;
    case PROP_GUIDED_EPS:
      g_value_set_double (value, self->guided_eps);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ---- start / stop: the model's lifetime ---- */

/* Loads the background image for replace mode; posts an error and returns FALSE on failure. */
static gboolean
load_background (GstUnetseg * self, const std::string & location)
{
  cv::Mat rgb;
  std::string error;
  if (location.empty ()) {
    self->rt->compositor.set_background_image (cv::Mat ());
    return TRUE;
  }
  if (!unetseg_load_image_rgb (location, rgb, error)) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not load background-location \"%s\".", location.c_str ()),
        ("%s", error.c_str ()));
    return FALSE;
  }
  GST_INFO_OBJECT (self, "background image %s: %dx%d", location.c_str (), rgb.cols, rgb.rows);
  self->rt->compositor.set_background_image (rgb);
  return TRUE;
}

/* Forgets the masks of the stream so far (start, flush): the next frame starts afresh. */
static void
reset_stream (UnetsegRuntime * rt)
{
  if (rt->async)
    rt->async->flush ();
  rt->have_result = FALSE;
  rt->result.tag = -1;
  rt->smoother.reset ();
  rt->frames_since_submit = 0;
  rt->submitted_thumbnail.release ();
}

static GstBufferPool *
make_mask_pool (cv::Size size)
{
  GstVideoInfo info;
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_GRAY8, size.width, size.height);
  GstCaps *caps = gst_video_info_to_caps (&info);
  GstBufferPool *pool = gst_video_buffer_pool_new ();
  GstStructure *config = gst_buffer_pool_get_config (pool);
  /* No maximum: downstream may keep masks as long as it likes without stalling us. */
  gst_buffer_pool_config_set_params (config, caps, info.size, 2, 0);
  gst_buffer_pool_config_add_option (config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  gst_buffer_pool_set_config (pool, config);
  gst_caps_unref (caps);
  if (!gst_buffer_pool_set_active (pool, TRUE)) {
    gst_object_unref (pool);
    return NULL;
  }
  return pool;
}

static gboolean
gst_unetseg_start (GstBaseTransform * trans)
{
  GstUnetseg *self = GST_UNETSEG (trans);
  UnetsegRuntime *rt = self->rt;

  GST_OBJECT_LOCK (self);
  const std::string model = self->model ? self->model : "";
  const unetseg::Backend backend = to_lib_backend (self->backend);
  const std::string background = self->background_location ? self->background_location : "";
  self->background_changed = FALSE;
  const gint threads = self->threads;
  GST_OBJECT_UNLOCK (self);

  if (model.empty ()) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("No model set."),
        ("Set the 'model' property to an ONNX file with its JSON sidecar beside it, or to "
            "a catalog model's name."));
    return FALSE;
  }

  /* OpenCV has one thread pool per process: the last element to start sets it. */
  if (threads > 0) {
    cv::setNumThreads (threads);
    GST_INFO_OBJECT (self, "OpenCV uses %d thread(s)", cv::getNumThreads ());
  }

  try {
    rt->segmenter.reset (new unetseg::Segmenter (unetseg::resolve_model (model), backend));
  } catch (const unetseg::Error & e) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("%s", e.what ()),
        ("model property: %s", model.c_str ()));
    return FALSE;
  } catch (const std::exception & e) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not load model %s: %s", model.c_str (), e.what ()), (NULL));
    return FALSE;
  }

  const unetseg::Segmenter & seg = *rt->segmenter;
  const unetseg::ModelSpec & spec = seg.spec ();
  if (!seg.backend_note ().empty ())
    /* backend=auto fell back to the CPU: the user may have expected a GPU, so say why. */
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS, ("%s", seg.backend_note ().c_str ()),
        ("backend=auto runs model %s on the CPU", model.c_str ()));
  GST_INFO_OBJECT (self, "model %s (%s): input %dx%d %s, output %dx%dx%d %s, backend %s",
      model.c_str (), spec.name.c_str (), spec.input_width, spec.input_height,
      unetseg::to_string (spec.color_order), seg.output_channels (),
      seg.output_size ().height, seg.output_size ().width,
      unetseg::to_string (spec.output_kind), unetseg::to_string (seg.active_backend ()));

  rt->mask_pool = make_mask_pool (seg.output_size ());
  if (!rt->mask_pool) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("Could not allocate mask buffers."), (NULL));
    rt->segmenter.reset ();
    return FALSE;
  }

  /* Region ids and labels, the same for every frame of this model. */
  const int regions = spec.multi_class ()? seg.output_channels () : 2;
  rt->region_ids.resize (regions);
  rt->labels.assign (regions, nullptr);
  for (int i = 0; i < regions; i++) {
    rt->region_ids[i] = i;
    if (i < (int) spec.labels.size ())
      rt->labels[i] = g_intern_string (spec.labels[i].c_str ());
  }
  if (!spec.multi_class () && spec.labels.empty ()) {
    rt->labels[0] = g_intern_static_string ("background");
    rt->labels[1] = g_intern_static_string ("foreground");
  }

  /* Until frames say otherwise, a frame waits about as long as the warm-up forward took. */
  rt->offline_latency = (GstClockTime) (seg.last_times ().total_ms () * GST_MSECOND);
  rt->live_latency = 0;
  reset_stream (rt);
  rt->live_decided = FALSE;
  rt->qos_proportion = 1.0;

  GST_OBJECT_LOCK (self);
  g_free (self->active_backend);
  self->active_backend = g_strdup (unetseg::to_string (seg.active_backend ()));
  GST_OBJECT_UNLOCK (self);
  g_object_notify (G_OBJECT (self), "active-backend");

  return load_background (self, background);
}

static gboolean
gst_unetseg_stop (GstBaseTransform * trans)
{
  GstUnetseg *self = GST_UNETSEG (trans);
  UnetsegRuntime *rt = self->rt;

  /* Joins the model thread: a forward in progress finishes first (it cannot be interrupted),
   * and nothing it does waits for this thread, so this cannot deadlock. */
  rt->async.reset ();
  if (rt->mask_pool) {
    gst_buffer_pool_set_active (rt->mask_pool, FALSE);
    gst_object_unref (rt->mask_pool);
    rt->mask_pool = NULL;
  }
  rt->segmenter.reset ();
  GST_OBJECT_LOCK (self);
  g_clear_pointer (&self->active_backend, g_free);
  GST_OBJECT_UNLOCK (self);
  g_object_notify (G_OBJECT (self), "active-backend");
  return TRUE;
}

/* ---- caps ---- */

static GstCaps *
gst_unetseg_transform_caps (GstBaseTransform * trans, GstPadDirection direction,
    GstCaps * caps, GstCaps * filter)
{
  GstUnetseg *self = GST_UNETSEG (trans);

  GST_OBJECT_LOCK (self);
  const gboolean alpha = self->mode == GST_UNETSEG_MODE_ALPHA;
  GST_OBJECT_UNLOCK (self);

  /* Same caps on both sides; alpha mode narrows them to formats that have an alpha channel. */
  GstCaps *result;
  if (alpha) {
    GstCaps *allowed = gst_static_caps_get (&alpha_caps);
    result = gst_caps_intersect (caps, allowed);
    gst_caps_unref (allowed);
  } else {
    result = gst_caps_ref (caps);
  }
  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, result, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (result);
    result = tmp;
  }
  GST_DEBUG_OBJECT (self, "%s %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT,
      direction == GST_PAD_SINK ? "sink" : "src", caps, result);
  return result;
}

static void decide_live (GstUnetseg * self);
static void take_settings (GstUnetseg * self, UnetsegSettings & s);

/* Once per caps, before the first frame: runs a blank frame of the new size through everything
 * a frame meets besides the model, so that the buffers are in place and the LATENCY answer is
 * a measurement from the start (a live sink would otherwise find the first frames late). */
static void
rehearse_frame (GstUnetseg * self, const GstVideoInfo * info)
{
  UnetsegRuntime *rt = self->rt;
  UnetsegSettings settings;
  take_settings (self, settings);
  const gint64 start = g_get_monotonic_time ();
  const int bpp = unetseg::channel_offsets (rt->layout).bytes_per_pixel;
  cv::Mat blank (GST_VIDEO_INFO_HEIGHT (info), GST_VIDEO_INFO_WIDTH (info), CV_8UC (bpp),
      cv::Scalar::all (0));
  const unetseg::FrameView view { blank.data, blank.cols, blank.rows, blank.step[0], rt->layout };
  try {
    cv::Mat blob;
    rt->segmenter->preprocess (view, blob);
    unetseg::frame_thumbnail (view, rt->segmenter->output_size (), rt->thumbnail);
    const cv::Mat nothing = cv::Mat::zeros (rt->segmenter->output_size (), CV_32FC1);
    const cv::Mat & alpha = rt->mask_filter.apply (nothing, view, settings.mask);
    if (settings.mode != GST_UNETSEG_MODE_NONE && settings.mode != GST_UNETSEG_MODE_ALPHA)
      rt->compositor.draw (view, to_lib_mode (settings.mode), alpha, cv::Mat (), settings.draw);
  } catch (const std::exception & e) {
    GST_DEBUG_OBJECT (self, "rehearsal failed: %s", e.what ());  /* the real frame will say */
    return;
  }
  const GstClockTime took = (g_get_monotonic_time () - start) * GST_USECOND;
  rt->live_latency = std::max < GstClockTime > (rt->live_latency, took + took / 4);
  GST_DEBUG_OBJECT (self, "a %dx%d frame takes %" GST_TIME_FORMAT " besides the model",
      blank.cols, blank.rows, GST_TIME_ARGS (took));
  if (rt->live)
    gst_element_post_message (GST_ELEMENT (self), gst_message_new_latency (GST_OBJECT (self)));
}

static gboolean
gst_unetseg_set_info (GstVideoFilter * filter, GstCaps * incaps, GstVideoInfo * in_info,
    GstCaps * outcaps, GstVideoInfo * out_info)
{
  GstUnetseg *self = GST_UNETSEG (filter);
  unetseg::PixelLayout layout;

  if (!unetseg::layout_from_name (GST_VIDEO_INFO_NAME (in_info), &layout)) {
    GST_ERROR_OBJECT (self, "unsupported format %s", GST_VIDEO_INFO_NAME (in_info));
    return FALSE;
  }
  self->rt->layout = layout;
  GST_DEBUG_OBJECT (self, "%s %dx%d", GST_VIDEO_INFO_NAME (in_info),
      GST_VIDEO_INFO_WIDTH (in_info), GST_VIDEO_INFO_HEIGHT (in_info));
  if (self->rt->segmenter) {
    if (!self->rt->live_decided)
      decide_live (self);
    rehearse_frame (self, in_info);
  }
  return TRUE;
}

/* ---- buffers ---- */

/* Passthrough (mode=none) still adds metas, which needs a writable buffer; a shallow copy of
 * the buffer shares the pixels, so nothing is copied but the metadata. */
static GstFlowReturn
gst_unetseg_prepare_output_buffer (GstBaseTransform * trans, GstBuffer * input,
    GstBuffer ** outbuf)
{
  /* A frame's stay starts here: a copy of a shared buffer before drawing is part of it. */
  GST_UNETSEG (trans)->rt->frame_start_us = g_get_monotonic_time ();
  if (gst_base_transform_is_passthrough (trans)) {
    *outbuf = gst_buffer_is_writable (input) ? input : gst_buffer_copy (input);
    return GST_FLOW_OK;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->prepare_output_buffer (trans, input, outbuf);
}

static void
take_settings (GstUnetseg * self, UnetsegSettings & s)
{
  GST_OBJECT_LOCK (self);
  s.mode = self->mode;
  s.interval = self->interval;
  s.skip_threshold = self->skip_threshold;
  s.smoothing = self->smoothing;
  s.smoothing_reset = self->smoothing_reset;
  s.mask.threshold = self->threshold;
  s.mask.soft = self->soft_mask;
  s.mask.scaling = self->rt->segmenter->spec ().mask_scaling;
  s.mask.min_island = self->min_island;
  s.mask.smooth_contour = self->smooth_contour;
  s.mask.feather = self->feather;
  s.mask.guided_radius = self->guided_radius;
  s.mask.guided_eps = self->guided_eps;
  s.draw.overlay_color = argb_to_rgb (self->overlay_color);
  s.draw.overlay_opacity = self->overlay_opacity;
  s.draw.blur_radius = self->blur_radius;
  s.draw.background_color = argb_to_rgb (self->background_color);
  s.post_messages = self->post_messages;
  s.background_changed = self->background_changed;
  if (s.background_changed)
    s.background_location = self->background_location ? self->background_location : "";
  self->background_changed = FALSE;
  GST_OBJECT_UNLOCK (self);
}

/* The model's view of the frame, as region ids or soft alpha, in a pooled GRAY8 buffer. */
static GstBuffer *
make_mask_buffer (GstUnetseg * self, const cv::Mat & foreground, const cv::Mat & class_map)
{
  UnetsegRuntime *rt = self->rt;
  GstBuffer *mask = NULL;
  if (gst_buffer_pool_acquire_buffer (rt->mask_pool, &mask, NULL) != GST_FLOW_OK)
    return NULL;

  const cv::Size size = rt->segmenter->output_size ();
  GstVideoInfo info;
  GstVideoFrame frame;
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_GRAY8, size.width, size.height);
  if (!gst_video_frame_map (&frame, &info, mask, GST_MAP_WRITE)) {
    gst_buffer_unref (mask);
    return NULL;
  }
  cv::Mat out (size, CV_8UC1, GST_VIDEO_FRAME_PLANE_DATA (&frame, 0),
      GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0));
  if (rt->segmenter->spec ().multi_class ())
    class_map.copyTo (out);
  else
    foreground.convertTo (out, CV_8U, 255.0);
  gst_video_frame_unmap (&frame);
  return mask;
}

static void
post_frame_message (GstUnetseg * self, GstBuffer * buf, const unetseg::MaskStats & stats,
    GstClockTime inference_ns, GstClockTime mask_pts)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  const GstClockTime pts = GST_BUFFER_PTS (buf);
  const GstSegment *segment = &trans->segment;

  GstStructure *s = gst_structure_new ("unetseg",
      "timestamp", G_TYPE_UINT64, pts,
      "stream-time", G_TYPE_UINT64,
      gst_segment_to_stream_time (segment, GST_FORMAT_TIME, pts),
      "running-time", G_TYPE_UINT64,
      gst_segment_to_running_time (segment, GST_FORMAT_TIME, pts),
      "duration", G_TYPE_UINT64, GST_BUFFER_DURATION (buf),
      "foreground-fraction", G_TYPE_DOUBLE, stats.foreground_fraction,
      "bbox-x", G_TYPE_INT, stats.bounding_box.x,
      "bbox-y", G_TYPE_INT, stats.bounding_box.y,
      "bbox-width", G_TYPE_INT, stats.bounding_box.width,
      "bbox-height", G_TYPE_INT, stats.bounding_box.height,
      "inference-time", G_TYPE_UINT64, inference_ns,
      "mask-timestamp", G_TYPE_UINT64, mask_pts,
      "live", G_TYPE_BOOLEAN, self->rt->live,
      "model", G_TYPE_STRING, self->rt->segmenter->spec ().name.c_str (), NULL);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self), s));
}

/* Whether the model should see this frame: always until there is a mask, then every
 * interval-th frame (stretched while downstream's QoS says it cannot keep up), unless the frame
 * barely differs from the last one the model saw. */
static gboolean
wants_inference (UnetsegRuntime * rt, const UnetsegSettings & settings)
{
  if (!rt->have_result && !(rt->async && rt->async->busy ()))
    return TRUE;
  guint interval = settings.interval;
  const double proportion = rt->qos_proportion;
  if (proportion > 1.0)
    interval = std::max (interval, (guint) std::ceil (proportion));
  if (rt->frames_since_submit + 1 < interval)
    return FALSE;
  if (settings.skip_threshold > 0 && !rt->submitted_thumbnail.empty () &&
      unetseg::mean_abs_difference (rt->thumbnail, rt->submitted_thumbnail) <
      settings.skip_threshold)
    return FALSE;
  return TRUE;
}

static gboolean
upstream_is_live (GstUnetseg * self)
{
  GstQuery *query = gst_query_new_latency ();
  gboolean live = FALSE;
  if (gst_pad_peer_query (GST_BASE_TRANSFORM_SINK_PAD (self), query))
    gst_query_parse_latency (query, &live, NULL, NULL);
  gst_query_unref (query);
  return live;
}

static gboolean
resolve_live (GstUnetseg * self, gboolean upstream_live)
{
  GST_OBJECT_LOCK (self);
  const GstUnetsegLive live = self->live;
  GST_OBJECT_UNLOCK (self);
  return live == GST_UNETSEG_LIVE_ON || (live == GST_UNETSEG_LIVE_AUTO && upstream_live);
}

/* Once per start, at the first frame: live or offline, and the model thread for live. */
static void
decide_live (GstUnetseg * self)
{
  UnetsegRuntime *rt = self->rt;
  rt->upstream_live = upstream_is_live (self);
  rt->live = resolve_live (self, rt->upstream_live);
  rt->live_decided = TRUE;
  if (rt->live && !rt->async)
    rt->async.reset (new unetseg::AsyncSegmenter (*rt->segmenter));
  GST_INFO_OBJECT (self, "%s mode (upstream is %slive)", rt->live ? "live" : "offline",
      rt->upstream_live ? "" : "not ");
}

/* When a frame stayed longer than LATENCY queries were told, tell the pipeline, with headroom
 * so that jitter does not repeat this every frame. Offline that is about the inference; live
 * it is the preprocess, mask and drawing, which a synchronised sink must also wait for. */
static void
note_processing_time (GstUnetseg * self)
{
  UnetsegRuntime *rt = self->rt;
  const GstClockTime took = (g_get_monotonic_time () - rt->frame_start_us) * GST_USECOND;
  std::atomic < GstClockTime > &latency = rt->live ? rt->live_latency : rt->offline_latency;
  if (took <= latency)
    return;
  latency = took + took / 4;
  GST_DEBUG_OBJECT (self, "a frame took %" GST_TIME_FORMAT ", %s latency now %"
      GST_TIME_FORMAT, GST_TIME_ARGS (took), rt->live ? "live" : "offline",
      GST_TIME_ARGS ((GstClockTime) latency));
  if (rt->upstream_live)
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_latency (GST_OBJECT (self)));
}

static GstFlowReturn
gst_unetseg_transform_frame_ip (GstVideoFilter * filter, GstVideoFrame * frame)
{
  GstUnetseg *self = GST_UNETSEG (filter);
  UnetsegRuntime *rt = self->rt;
  unetseg::Segmenter & seg = *rt->segmenter;
  UnetsegSettings settings;
  take_settings (self, settings);

  if (settings.background_changed && !load_background (self, settings.background_location))
    return GST_FLOW_ERROR;
  if (!rt->live_decided)
    decide_live (self);

  const unetseg::FrameView view {
  static_cast < std::uint8_t * >(GST_VIDEO_FRAME_PLANE_DATA (frame, 0)),
        GST_VIDEO_FRAME_WIDTH (frame), GST_VIDEO_FRAME_HEIGHT (frame),
        static_cast < std::size_t > (GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0)), rt->layout};
  const cv::Size frame_size (view.width, view.height);
  GstBuffer *buf = frame->buffer;
  const bool multi = seg.spec ().multi_class ();

  try {
    /* 1. The model: on this frame, beside it (live), or not at all (interval, unchanged). */
    const bool need_thumbnail = settings.skip_threshold > 0 || settings.smoothing > 0;
    if (need_thumbnail)
      unetseg::frame_thumbnail (view, seg.output_size (), rt->thumbnail);
    else
      rt->thumbnail.release ();
    bool fresh = false;
    if (wants_inference (rt, settings)) {
      rt->frames_since_submit = 0;
      if (need_thumbnail)
        rt->thumbnail.copyTo (rt->submitted_thumbnail);
      const std::int64_t tag = (std::int64_t) GST_BUFFER_PTS (buf);
      if (rt->live) {
        rt->async->submit (view, tag, rt->thumbnail);
      } else {
        const unetseg::Prediction & p = seg.run (view);
        rt->result.assign (p, rt->thumbnail, tag, seg.last_times ());
        rt->result.sequence++;
        fresh = true;
      }
    } else {
      rt->frames_since_submit++;
    }
    if (rt->live)
      fresh = rt->async->take_latest (rt->result);

    /* 2. The newest mask, smoothed over time: where the picture changed the new one counts. */
    if (fresh) {
      rt->have_result = TRUE;
      if (settings.smoothing > 0 && !rt->result.thumbnail.empty ())
        rt->smoothed = rt->smoother.apply (rt->result.foreground, rt->result.thumbnail,
            settings.smoothing, settings.smoothing_reset);
      else {
        rt->smoother.reset ();
        rt->smoothed = rt->result.foreground;
      }
    }
    if (!rt->have_result) {
      /* Live, before the first mask: nothing is known to be foreground, so nothing is shown as
       * such (for blur/replace that hides rather than reveals), and no meta claims a mask. */
      if (settings.mode != GST_UNETSEG_MODE_NONE &&
          !(settings.mode == GST_UNETSEG_MODE_ALPHA && !unetseg::has_alpha (rt->layout))) {
        rt->no_foreground.create (frame_size, CV_8UC1);
        rt->no_foreground.setTo (0);
        rt->compositor.draw (view, to_lib_mode (settings.mode), rt->no_foreground, cv::Mat (),
            settings.draw);
      }
      GST_LOG_OBJECT (self, "no mask yet for %" GST_TIME_FORMAT,
          GST_TIME_ARGS (GST_BUFFER_PTS (buf)));
      note_processing_time (self);
      return GST_FLOW_OK;
    }

    /* 3. At frame size, refined, guided by this frame's own edges. */
    const cv::Mat & alpha = rt->mask_filter.apply (rt->smoothed, view, settings.mask);
    const unetseg::MaskStats stats = unetseg::MaskFilter::stats (alpha);
    const GstClockTime mask_pts = rt->result.tag < 0 ? GST_CLOCK_TIME_NONE :
        (GstClockTime) rt->result.tag;
    const GstClockTime inference_ns =
        (GstClockTime) (rt->result.times.total_ms () * GST_MSECOND);

    /* 4. The meta: the model-resolution mask stretched over the whole frame. */
    GstBuffer *mask = make_mask_buffer (self, rt->smoothed, rt->result.class_map);
    if (!mask) {
      GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("Could not get a mask buffer."), (NULL));
      return GST_FLOW_ERROR;
    }
    GST_BUFFER_PTS (mask) = mask_pts;
    GstUnetsegMaskMeta *meta = gst_buffer_add_unetseg_mask_meta (buf, mask,
        multi ? GST_UNETSEG_MASK_SEMANTIC : GST_UNETSEG_MASK_FOREGROUND,
        0, 0, view.width, view.height);
    if (!meta) {
      gst_buffer_unref (mask);
      GST_ELEMENT_ERROR (self, CORE, FAILED, ("Could not attach the mask meta."), (NULL));
      return GST_FLOW_ERROR;
    }
    gst_unetseg_mask_meta_set_regions (meta, rt->region_ids.size (), rt->region_ids.data (),
        rt->labels.data ());
    gst_unetseg_mask_meta_set_model (meta, seg.spec ().name.c_str ());
    meta->source_pts = mask_pts;
    meta->inference_time = inference_ns;

    if (!stats.bounding_box.empty ()) {
      const cv::Rect & r = stats.bounding_box;
      gst_buffer_add_video_region_of_interest_meta (buf, "foreground", r.x, r.y,
          r.width, r.height);
    }

    /* 5. The drawing. */
    if (settings.mode != GST_UNETSEG_MODE_NONE) {
      if (settings.mode == GST_UNETSEG_MODE_ALPHA && !unetseg::has_alpha (rt->layout)) {
        /* Only while a switch to alpha mode is still being renegotiated. */
        GST_DEBUG_OBJECT (self, "alpha mode waits for a format with alpha");
      } else {
        const cv::Mat & classes = multi && settings.mode == GST_UNETSEG_MODE_OVERLAY ?
            rt->mask_filter.upscale_classes (rt->result.class_map, frame_size) : cv::Mat ();
        rt->compositor.draw (view, to_lib_mode (settings.mode), alpha, classes,
            settings.draw);
      }
    }

    if (settings.post_messages)
      post_frame_message (self, buf, stats, inference_ns, mask_pts);
    note_processing_time (self);
  } catch (const std::exception & e) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Segmentation failed: %s", e.what ()), (NULL));
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

/* ---- events and queries ---- */

static gboolean
gst_unetseg_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstUnetseg *self = GST_UNETSEG (trans);
  /* Serialised with the streaming thread, so the runtime is ours to reset. A mask from before
   * a seek belongs to another place in the stream. */
  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP && self->rt->segmenter)
    reset_stream (self->rt);
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static gboolean
gst_unetseg_src_event (GstBaseTransform * trans, GstEvent * event)
{
  GstUnetseg *self = GST_UNETSEG (trans);
  if (GST_EVENT_TYPE (event) == GST_EVENT_QOS) {
    gdouble proportion;
    gst_event_parse_qos (event, NULL, &proportion, NULL, NULL);
    self->rt->qos_proportion = proportion;
    GST_LOG_OBJECT (self, "QoS proportion %.2f", proportion);
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->src_event (trans, event);
}

/* LATENCY: what a frame stays in the element. Offline that includes its inference (the warm-up
 * forward until frames are measured); live it does not, only the preprocess, mask and drawing
 * (the mask's own age is in the meta's source_pts, not in the pipeline's latency). */
static gboolean
gst_unetseg_query (GstBaseTransform * trans, GstPadDirection direction, GstQuery * query)
{
  GstUnetseg *self = GST_UNETSEG (trans);
  if (direction != GST_PAD_SRC || GST_QUERY_TYPE (query) != GST_QUERY_LATENCY)
    return GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans, direction, query);

  if (!GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans, direction, query))
    return FALSE;
  gboolean upstream_live;
  GstClockTime min, max;
  gst_query_parse_latency (query, &upstream_live, &min, &max);
  const GstClockTime ours = resolve_live (self, upstream_live) ?
      (GstClockTime) self->rt->live_latency : (GstClockTime) self->rt->offline_latency;
  GST_DEBUG_OBJECT (self, "upstream latency %" GST_TIME_FORMAT " (%slive), ours %"
      GST_TIME_FORMAT, GST_TIME_ARGS (min), upstream_live ? "" : "not ",
      GST_TIME_ARGS (ours));
  min += ours;
  if (GST_CLOCK_TIME_IS_VALID (max))
    max += ours;
  gst_query_set_latency (query, upstream_live, min, max);
  return TRUE;
}

/* ---- class ---- */

static void
gst_unetseg_class_init (GstUnetsegClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);
  const GParamFlags rw = (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  const GParamFlags ready = (GParamFlags) (rw | GST_PARAM_MUTABLE_READY);
  const GParamFlags playing =
      (GParamFlags) (rw | GST_PARAM_MUTABLE_PLAYING | GST_PARAM_CONTROLLABLE);

  gobject_class->set_property = gst_unetseg_set_property;
  gobject_class->get_property = gst_unetseg_get_property;
  gobject_class->finalize = gst_unetseg_finalize;

  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model",
          "Path to an ONNX model with its JSON sidecar (same name, .json) beside it, or the "
          "name of a catalog model fetched with scripts/fetch-model.sh (e.g. sinet)",
          DEFAULT_MODEL, ready));
  g_object_class_install_property (gobject_class, PROP_BACKEND,
      g_param_spec_enum ("backend", "Backend", "Where the model runs",
          GST_TYPE_UNETSEG_BACKEND, DEFAULT_BACKEND, ready));
  g_object_class_install_property (gobject_class, PROP_ACTIVE_BACKEND,
      g_param_spec_string ("active-backend", "Active backend",
          "Where the model really runs (cpu, cuda, cuda-fp16) once loaded; NULL before",
          NULL, (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property (gobject_class, PROP_MODE,
      g_param_spec_enum ("mode", "Mode", "What to draw on the frame; the mask meta is "
          "attached in every mode", GST_TYPE_UNETSEG_MODE, DEFAULT_MODE, playing));
  g_object_class_install_property (gobject_class, PROP_THRESHOLD,
      g_param_spec_double ("threshold", "Threshold",
          "Foreground where the model's probability is at least this (hard mask)",
          0.0, 1.0, DEFAULT_THRESHOLD, playing));
  g_object_class_install_property (gobject_class, PROP_SOFT_MASK,
      g_param_spec_boolean ("soft-mask", "Soft mask",
          "Keep the model's soft probability as alpha instead of a hard 0/255 mask",
          DEFAULT_SOFT_MASK, playing));
  g_object_class_install_property (gobject_class, PROP_OVERLAY_COLOR,
      g_param_spec_uint ("overlay-color", "Overlay colour",
          "Tint of the foreground in overlay mode, big-endian ARGB (alpha ignored; see "
          "overlay-opacity)", 0, G_MAXUINT32, DEFAULT_OVERLAY_COLOR, playing));
  g_object_class_install_property (gobject_class, PROP_OVERLAY_OPACITY,
      g_param_spec_double ("overlay-opacity", "Overlay opacity",
          "Opacity of the tint in overlay mode", 0.0, 1.0, DEFAULT_OVERLAY_OPACITY, playing));
  g_object_class_install_property (gobject_class, PROP_BLUR_RADIUS,
      g_param_spec_int ("blur-radius", "Blur radius",
          "Radius of the background blur in blur mode, in frame pixels",
          1, 255, DEFAULT_BLUR_RADIUS, playing));
  g_object_class_install_property (gobject_class, PROP_BACKGROUND_COLOR,
      g_param_spec_uint ("background-color", "Background colour",
          "New background in replace mode when no background-location is set, "
          "big-endian ARGB (alpha ignored)", 0, G_MAXUINT32, DEFAULT_BACKGROUND_COLOR,
          playing));
  g_object_class_install_property (gobject_class, PROP_BACKGROUND_LOCATION,
      g_param_spec_string ("background-location", "Background location",
          "Image file (any format GStreamer decodes) put behind the foreground in replace "
          "mode, stretched to the frame", DEFAULT_BACKGROUND_LOCATION,
          (GParamFlags) (rw | GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property (gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
          "Post an element message \"unetseg\" per frame with foreground-fraction, bbox-*, "
          "inference-time (ns) and timestamps", DEFAULT_POST_MESSAGES, playing));

  g_object_class_install_property (gobject_class, PROP_LIVE,
      g_param_spec_enum ("live", "Live", "Whether frames wait for the model (off: every frame "
          "gets its own mask) or leave at once with the newest mask while the model runs on "
          "its own thread (on: the video never stalls; the meta's source_pts names the frame "
          "the mask came from). auto: on when upstream is live (a camera)",
          GST_TYPE_UNETSEG_LIVE, DEFAULT_LIVE, ready));
  g_object_class_install_property (gobject_class, PROP_INTERVAL,
      g_param_spec_uint ("interval", "Interval",
          "Run the model on every Nth frame; the frames between carry the last mask",
          1, 1000, DEFAULT_INTERVAL, playing));
  g_object_class_install_property (gobject_class, PROP_SKIP_THRESHOLD,
      g_param_spec_double ("skip-threshold", "Skip threshold",
          "Reuse the last mask when the frame differs from the last one the model saw by less "
          "than this mean absolute grey level (on a thumbnail; 0 = never skip)",
          0.0, 255.0, DEFAULT_SKIP_THRESHOLD, playing));
  g_object_class_install_property (gobject_class, PROP_THREADS,
      g_param_spec_int ("threads", "Threads",
          "CPU threads for OpenCV (the model and the drawing); 0 = OpenCV's default (all "
          "cores). OpenCV has one pool per process: the last element to start sets it",
          0, 256, DEFAULT_THREADS, ready));
  g_object_class_install_property (gobject_class, PROP_SMOOTHING,
      g_param_spec_double ("smoothing", "Smoothing",
          "Temporal smoothing of the mask against flicker: the weight kept from the previous "
          "mask (0 = off). Where the picture changed (smoothing-reset) the new mask counts "
          "alone, so moving edges do not lag", 0.0, 0.99, DEFAULT_SMOOTHING, playing));
  g_object_class_install_property (gobject_class, PROP_SMOOTHING_RESET,
      g_param_spec_double ("smoothing-reset", "Smoothing reset",
          "Grey-level change of a pixel between inferred frames above which smoothing "
          "restarts there", 0.0, 255.0, DEFAULT_SMOOTHING_RESET, playing));
  g_object_class_install_property (gobject_class, PROP_MIN_ISLAND,
      g_param_spec_double ("min-island", "Minimum island",
          "Drop foreground blobs, and fill background holes, smaller than this fraction of "
          "the frame (0 = keep all)", 0.0, 1.0, DEFAULT_MIN_ISLAND, playing));
  g_object_class_install_property (gobject_class, PROP_SMOOTH_CONTOUR,
      g_param_spec_int ("smooth-contour", "Smooth contour",
          "Smooth the mask's outline over this radius in frame pixels (0 = off)",
          0, 100, DEFAULT_SMOOTH_CONTOUR, playing));
  g_object_class_install_property (gobject_class, PROP_FEATHER,
      g_param_spec_int ("feather", "Feather",
          "Soft edge of this width in frame pixels: > 0 grows the mask outward, < 0 pulls "
          "its edge inward (0 = off)", -100, 100, DEFAULT_FEATHER, playing));
  g_object_class_install_property (gobject_class, PROP_GUIDED_RADIUS,
      g_param_spec_int ("guided-radius", "Guided radius",
          "Edge-aware upscaling of the mask, guided by the frame (a guided filter of this "
          "radius in frame pixels), so hair and fingers follow the picture; 0 = bilinear",
          0, 64, DEFAULT_GUIDED_RADIUS, playing));
  g_object_class_install_property (gobject_class, PROP_GUIDED_EPS,
      g_param_spec_double ("guided-eps", "Guided epsilon",
          "Regularisation of the guided filter: larger follows the frame's edges less",
          1e-6, 1.0, DEFAULT_GUIDED_EPS, playing));

  gst_element_class_set_static_metadata (element_class,
      "U-Net segmentation", "Filter/Effect/Video/Analyzer",
      "Segments each frame with a U-Net-family ONNX model (OpenCV DNN), attaches the mask "
      "as metadata and draws it as an overlay, alpha, blurred or replaced background",
      "unetseg developers");
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);

  trans_class->start = GST_DEBUG_FUNCPTR (gst_unetseg_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_unetseg_stop);
  trans_class->transform_caps = GST_DEBUG_FUNCPTR (gst_unetseg_transform_caps);
  trans_class->prepare_output_buffer =
      GST_DEBUG_FUNCPTR (gst_unetseg_prepare_output_buffer);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_unetseg_sink_event);
  trans_class->src_event = GST_DEBUG_FUNCPTR (gst_unetseg_src_event);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_unetseg_query);
  trans_class->transform_ip_on_passthrough = TRUE;
  filter_class->set_info = GST_DEBUG_FUNCPTR (gst_unetseg_set_info);
  filter_class->transform_frame_ip = GST_DEBUG_FUNCPTR (gst_unetseg_transform_frame_ip);

  gst_type_mark_as_plugin_api (GST_TYPE_UNETSEG_MODE, (GstPluginAPIFlags) 0);
  gst_type_mark_as_plugin_api (GST_TYPE_UNETSEG_BACKEND, (GstPluginAPIFlags) 0);
  gst_type_mark_as_plugin_api (GST_TYPE_UNETSEG_LIVE, (GstPluginAPIFlags) 0);
}

static gboolean
plugin_init (GstPlugin * plugin)
{
  GST_DEBUG_CATEGORY_INIT (gst_unetseg_debug, "unetseg", 0,
      "U-Net-family segmentation");
  return GST_ELEMENT_REGISTER (unetseg, plugin);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, unetseg,
    "U-Net-family segmentation (U-Net, U2-Net, ISNet) through OpenCV DNN",
    plugin_init, VERSION, "LGPL", "unetseg", "unetseg")
