/* unetseg: U-Net-family segmentation as a GStreamer video filter.
 *
 * GStreamer's side of it only: properties (gstunetsegproperties.cpp), caps, the buffer pool of
 * mask buffers, the metas, bus messages, LATENCY and QoS. Every per-frame decision (when the
 * model runs, which mask a frame gets, smoothing, refinement, drawing) is libunetseg's
 * VideoSegmenter; docs/ARCHITECTURE.md maps a frame's way through both.
 *
 * The model is loaded when the element starts (READY -> PAUSED), so a bad model fails the state
 * change with an error that names the file and the reason. Live or offline pairing is decided
 * at the first caps: live when live=on, or live=auto and upstream answers LATENCY as live.
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
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gstunetsegenums.h"
#include "gstunetsegoutput.h"
#include "gstunetsegproperties.h"
#include "backgroundloader.h"
#include "unetseg/error.hpp"
#include "unetseg/model_cache.hpp"
#include "unetseg/model_registry.hpp"
#include "unetseg/video_segmenter.hpp"

GST_DEBUG_CATEGORY_STATIC (gst_unetseg_debug);
#define GST_CAT_DEFAULT gst_unetseg_debug

#define VIDEO_FORMATS "{ RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, ARGB, ABGR }"
#define ALPHA_FORMATS "{ RGBA, BGRA, ARGB, ABGR }"

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS)));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS)));
static GstStaticCaps alpha_caps = GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (ALPHA_FORMATS));

/* OpenCV has one thread pool per process, and resizing it while another thread runs a
 * parallel_for (another unetseg's forward) can crash the process. So the instances of a process
 * agree: the pool is sized only by an instance that starts while no other one holds it; the
 * others run with what they find (and say so when they asked for something else). */
static std::mutex pool_mutex;
static int pool_holders = 0;    /* started instances, under pool_mutex */

/* Returns what the instance must warn about, "" when nothing. */
static std::string
hold_thread_pool (int threads)
{
  std::lock_guard < std::mutex > lock (pool_mutex);
  std::string note;
  if (threads > 0 && pool_holders == 0)
    cv::setNumThreads (threads);
  else if (threads > 0 && cv::getNumThreads () != threads)
    note = "threads=" + std::to_string (threads) + " is not applied: OpenCV has one thread "
        "pool per process, another unetseg is running with it, and it has " +
        std::to_string (cv::getNumThreads ()) + " thread(s)";
  pool_holders++;
  return note;
}

static void
release_thread_pool (void)
{
  std::lock_guard < std::mutex > lock (pool_mutex);
  pool_holders--;
}

/* What a frame reads of the properties, copied under the object lock once per frame (no
 * allocation but for a new background-location). */
struct FrameSettings
{
  unetseg::VideoSegmenter::Options video;
  gboolean post_messages = FALSE;
  gboolean background_changed = FALSE;
  std::string background_location;      /* when changed */
};

/* What the streaming thread owns; created in start(), dropped in stop(). */
struct UnetsegRuntime
{
  std::unique_ptr < unetseg::VideoSegmenter > video;
  gboolean live_decided = FALSE;        /* at the first caps after start() */
  gboolean upstream_live = FALSE;

  /* How long a frame stays in the element (from prepare_output_buffer to the end of the
   * transform) in each pairing, as answered to LATENCY queries: offline it includes the
   * inference, live it does not. */
  std::atomic < GstClockTime > offline_latency { 0 };
  std::atomic < GstClockTime > live_latency { 0 };
  gint64 frame_start_us = 0;
  gboolean holds_pool = FALSE; /* counted in pool_holders (start() to stop()) */
  FrameSettings frame;          /* the current frame's, taken in before_transform */
  /* Downstream's QoS proportion (1.0 = keeping up; 2.0 = needs twice as fast), set by the src
   * pad's QoS events from another thread. */
  std::atomic < double >qos_proportion { 1.0 };

  std::unique_ptr < UnetsegOutput > output;  /* the metas and messages of this model */
  BackgroundLoader background;  /* background-location's image, decoded off the frame path */
  guint64 non_finite_masks = 0; /* masks where the model gave NaN/Inf (warned about once) */
  unetseg::PixelLayout layout = unetseg::PixelLayout::RGB;
};

struct _GstUnetseg
{
  GstVideoFilter parent;

  UnetsegSettings settings;     /* the properties, under the object lock */
  gboolean background_changed;  /* background-location set since the last frame read it */
  gchar *active_backend;        /* under the object lock */
  UnetsegRuntime *rt;
};

#define gst_unetseg_parent_class parent_class
G_DEFINE_TYPE (GstUnetseg, gst_unetseg, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (unetseg, "unetseg", GST_RANK_NONE, GST_TYPE_UNETSEG);

/* ---- GObject ---- */

static void
gst_unetseg_init (GstUnetseg * self)
{
  new (&self->settings) UnetsegSettings ();
  self->rt = new UnetsegRuntime ();

  /* A meta-only pass maps the frame read-only: no copy of shared frames. */
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  gst_base_transform_set_passthrough (trans, self->settings.video.mode == unetseg::Mode::None);
  gst_base_transform_set_qos_enabled (trans, TRUE);
}

static void
gst_unetseg_finalize (GObject * object)
{
  GstUnetseg *self = GST_UNETSEG (object);

  delete self->rt;
  self->settings.~UnetsegSettings ();
  g_free (self->active_backend);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_unetseg_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstUnetseg *self = GST_UNETSEG (object);

  GST_OBJECT_LOCK (self);
  /* Say so instead of silently ignoring a change that only the next start reads. */
  if ((pspec->flags & GST_PARAM_MUTABLE_READY) && GST_STATE (self) > GST_STATE_READY)
    GST_WARNING_OBJECT (self, "%s changes take effect at the next start (READY -> PAUSED)",
        pspec->name);
  const unetseg::Mode old_mode = self->settings.video.mode;
  gst_unetseg_settings_set (self->settings, prop_id, value);
  const unetseg::Mode mode = self->settings.video.mode;
  if (prop_id == PROP_BACKGROUND_LOCATION)
    self->background_changed = TRUE;
  GST_OBJECT_UNLOCK (self);

  /* Passthrough follows the mode in the streaming thread (before_transform), so that one
   * frame's buffer handling and drawing always agree. Entering or leaving alpha mode changes
   * which formats we accept. */
  if (prop_id == PROP_MODE &&
      (mode == unetseg::Mode::Alpha) != (old_mode == unetseg::Mode::Alpha))
    gst_base_transform_reconfigure_sink (GST_BASE_TRANSFORM (self));
}

static void
gst_unetseg_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstUnetseg *self = GST_UNETSEG (object);

  GST_OBJECT_LOCK (self);
  if (prop_id == PROP_ACTIVE_BACKEND)
    g_value_set_string (value, self->active_backend);
  else
    gst_unetseg_settings_get (self->settings, prop_id, value);
  GST_OBJECT_UNLOCK (self);
}

/* ---- start / stop: the model's lifetime ---- */

/* The background image at start, decoded here: a bad one fails the start. */
static gboolean
load_background (GstUnetseg * self, const std::string & location)
{
  cv::Mat rgb;
  std::string error;
  if (!self->rt->background.load_now (location, rgb, error)) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not load background-location \"%s\".", location.c_str ()),
        ("%s", error.c_str ()));
    return FALSE;
  }
  if (!rgb.empty ())
    GST_INFO_OBJECT (self, "background image %s: %dx%d", location.c_str (), rgb.cols,
        rgb.rows);
  self->rt->video->set_background_image (rgb);
  return TRUE;
}

/* While streaming, a new background-location is decoded on the loader's own thread; the old
 * background stays until it is ready, and a bad one only warns (the stream goes on). */
static void
swap_in_background (GstUnetseg * self)
{
  cv::Mat rgb;
  std::string error, location;
  if (!self->rt->background.take (rgb, error, location))
    return;
  if (!error.empty ()) {
    GST_ELEMENT_WARNING (self, RESOURCE, OPEN_READ,
        ("Could not load background-location \"%s\"; the background stays as it was.",
            location.c_str ()), ("%s", error.c_str ()));
    return;
  }
  GST_INFO_OBJECT (self, "background now %s (%dx%d)", location.empty ()? "the colour" :
      location.c_str (), rgb.cols, rgb.rows);
  self->rt->video->set_background_image (rgb);
}

static gboolean gst_unetseg_stop (GstBaseTransform * trans);

/* What start() does; on FALSE (the error posted) start() undoes what was done. */
static gboolean
open_stream (GstUnetseg * self)
{
  UnetsegRuntime *rt = self->rt;

  GST_OBJECT_LOCK (self);
  const std::string model = self->settings.model;
  const unetseg::Backend backend = self->settings.backend;
  const std::string background = self->settings.background_location;
  self->background_changed = FALSE;
  const gint threads = self->settings.threads;
  const bool share = self->settings.share_model;
  const std::string instance_id = self->settings.model_instance_id;
  const unetseg::ModelWorker::Options batch = self->settings.batch;
  GST_OBJECT_UNLOCK (self);

  if (model.empty ()) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("No model set."),
        ("Set the 'model' property to an ONNX file with its JSON sidecar beside it, or to "
            "a catalog model's name."));
    return FALSE;
  }

  const std::string pool_note = hold_thread_pool (threads);
  rt->holds_pool = TRUE;
  if (!pool_note.empty ())
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS, ("%s", pool_note.c_str ()), (NULL));
  GST_INFO_OBJECT (self, "OpenCV uses %d thread(s)", cv::getNumThreads ());

  /* The model's network and inference thread: shared with the other elements of this process
   * that name the same model (the default), or this element's own. */
  std::shared_ptr < unetseg::ModelWorker > worker;
  std::string batch_note;
  try {
    const std::string path = unetseg::resolve_model (model);
    if (share)
      worker = unetseg::ModelRegistry::process ().acquire (path, backend, instance_id, batch,
          &batch_note);
    else
      worker = std::make_shared < unetseg::ModelWorker >
          (std::make_shared < unetseg::Segmenter > (path, backend), batch);
  } catch (const unetseg::Error & e) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("%s", e.what ()),
        ("model property: %s", model.c_str ()));
    return FALSE;
  } catch (const std::exception & e) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not load model %s: %s", model.c_str (), e.what ()), (NULL));
    return FALSE;
  }

  if (!batch_note.empty ())
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS, ("%s", batch_note.c_str ()), (NULL));
  const unetseg::Segmenter * seg = &worker->segmenter ();
  const unetseg::ModelSpec & spec = seg->spec ();
  GST_INFO_OBJECT (self, "model instance %s, %ld stream(s), batches of up to %d",
      share ? "shared" : "of its own", (long) worker->counters ().streams + 1,
      worker->batch_limit ());
  /* backend=auto fell back to the CPU. With an OpenCV built without CUDA (stock distributions)
   * that is the normal case: said at INFO. With an OpenCV that has CUDA the user may have
   * expected the GPU: a WARNING says why not (no driver, no device, a failed first forward). */
  if (!seg->backend_note ().empty () && !unetseg::opencv_has_cuda ())
    GST_INFO_OBJECT (self, "%s", seg->backend_note ().c_str ());
  else if (!seg->backend_note ().empty ())
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS, ("%s", seg->backend_note ().c_str ()),
        ("backend=auto runs model %s on the CPU", model.c_str ()));
  GST_INFO_OBJECT (self, "model %s (%s): input %dx%d %s, output %dx%dx%d %s, backend %s",
      model.c_str (), spec.name.c_str (), spec.input_width, spec.input_height,
      unetseg::to_string (spec.color_order), seg->output_channels (),
      seg->output_size ().height, seg->output_size ().width,
      unetseg::to_string (spec.output_kind), unetseg::to_string (seg->active_backend ()));

  try {
    rt->output.reset (new UnetsegOutput (*seg));
  } catch (const unetseg::Error & e) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("%s", e.what ()), (NULL));
    return FALSE;
  }

  /* Until frames say otherwise, a frame waits about as long as the warm-up forward took. */
  rt->offline_latency = (GstClockTime) (worker->first_times ().total_ms () * GST_MSECOND);
  rt->live_latency = 0;
  rt->live_decided = FALSE;
  rt->qos_proportion = 1.0;
  rt->non_finite_masks = 0;
  rt->video.reset (new unetseg::VideoSegmenter (worker));

  GST_OBJECT_LOCK (self);
  g_free (self->active_backend);
  self->active_backend = g_strdup (unetseg::to_string (seg->active_backend ()));
  GST_OBJECT_UNLOCK (self);
  g_object_notify (G_OBJECT (self), "active-backend");

  return load_background (self, background);
}

static gboolean
gst_unetseg_start (GstBaseTransform * trans)
{
  if (open_stream (GST_UNETSEG (trans)))
    return TRUE;
  /* GstBaseTransform calls stop() only after a successful start(): release what the failed
   * start took (the model, the mask pool, the thread pool's hold) now. */
  gst_unetseg_stop (trans);
  return FALSE;
}

static gboolean
gst_unetseg_stop (GstBaseTransform * trans)
{
  GstUnetseg *self = GST_UNETSEG (trans);
  UnetsegRuntime *rt = self->rt;

  /* Joins the model thread (live): a forward in progress finishes first (it cannot be
   * interrupted), and nothing it does waits for this thread, so this cannot deadlock. */
  rt->background.cancel ();
  rt->video.reset ();
  rt->output.reset ();
  if (rt->holds_pool)
    release_thread_pool ();
  rt->holds_pool = FALSE;
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
  const unetseg::Mode mode = self->settings.video.mode;
  GST_OBJECT_UNLOCK (self);

  /* Same caps on both sides; a mode that cannot draw on every format (alpha) narrows them to
   * the formats with an alpha channel. */
  GstCaps *result;
  if (!unetseg::Compositor::can_draw (mode, unetseg::PixelLayout::RGB)) {
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
  const GstUnetsegLive live = self->settings.live;
  GST_OBJECT_UNLOCK (self);
  return live == GST_UNETSEG_LIVE_ON || (live == GST_UNETSEG_LIVE_AUTO && upstream_live);
}

/* Once per start, at the first caps (or frame): live or offline pairing. */
static void
decide_live (GstUnetseg * self)
{
  UnetsegRuntime *rt = self->rt;
  rt->upstream_live = upstream_is_live (self);
  rt->video->set_live (resolve_live (self, rt->upstream_live));
  rt->live_decided = TRUE;
  GST_INFO_OBJECT (self, "%s mode (upstream is %slive)", rt->video->live ()? "live" : "offline",
      rt->upstream_live ? "" : "not ");
}

static void
take_settings (GstUnetseg * self, FrameSettings & s)
{
  GST_OBJECT_LOCK (self);
  s.video = self->settings.video;
  s.post_messages = self->settings.post_messages;
  s.background_changed = self->background_changed;
  if (s.background_changed)
    s.background_location = self->settings.background_location;
  self->background_changed = FALSE;
  GST_OBJECT_UNLOCK (self);
}

/* Once per caps, before the first frame: a blank frame of the new size through everything a
 * frame meets besides the model, so that the buffers are in place and the LATENCY answer is a
 * measurement from the start (a live sink would otherwise find the first frames late). */
static void
rehearse_frame (GstUnetseg * self, const GstVideoInfo * info)
{
  UnetsegRuntime *rt = self->rt;
  GST_OBJECT_LOCK (self);
  const unetseg::VideoSegmenter::Options options = self->settings.video;
  GST_OBJECT_UNLOCK (self);
  const cv::Size size (GST_VIDEO_INFO_WIDTH (info), GST_VIDEO_INFO_HEIGHT (info));
  GstClockTime took;
  try {
    took = (GstClockTime) (rt->video->warm_up (size, rt->layout, options) * GST_MSECOND);
  } catch (const std::exception & e) {
    GST_DEBUG_OBJECT (self, "rehearsal failed: %s", e.what ());  /* the real frame will say */
    return;
  }
  rt->live_latency = std::max < GstClockTime > (rt->live_latency, took + took / 4);
  GST_DEBUG_OBJECT (self, "a %dx%d frame takes %" GST_TIME_FORMAT " besides the model",
      size.width, size.height, GST_TIME_ARGS (took));
  if (rt->video->live ())
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
  if (self->rt->video) {
    if (!self->rt->live_decided)
      decide_live (self);
    /* New caps: a recurrent model's memory belongs to the old stream. */
    self->rt->video->restart_recurrence ();
    rehearse_frame (self, in_info);
  }
  return TRUE;
}

/* ---- buffers ---- */

/* The frame's settings, taken once in the streaming thread before GstBaseTransform decides
 * anything about the buffer: passthrough (mode=none: the frame is only looked at) is set from
 * the same snapshot that transform_frame_ip draws with, whatever other threads set meanwhile. */
static void
gst_unetseg_before_transform (GstBaseTransform * trans, GstBuffer * buffer)
{
  GstUnetseg *self = GST_UNETSEG (trans);
  take_settings (self, self->rt->frame);
  gst_base_transform_set_passthrough (trans,
      self->rt->frame.video.mode == unetseg::Mode::None);
}

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

/* When a frame stayed longer than LATENCY queries were told, tell the pipeline, with headroom
 * so that jitter does not repeat this every frame. Offline that is about the inference; live
 * it is the preprocess, mask and drawing, which a synchronised sink must also wait for. */
static void
note_processing_time (GstUnetseg * self)
{
  UnetsegRuntime *rt = self->rt;
  const gboolean live = rt->video->live ();
  const GstClockTime took = (g_get_monotonic_time () - rt->frame_start_us) * GST_USECOND;
  std::atomic < GstClockTime > &latency = live ? rt->live_latency : rt->offline_latency;
  if (took <= latency)
    return;
  latency = took + took / 4;
  GST_DEBUG_OBJECT (self, "a frame took %" GST_TIME_FORMAT ", %s latency now %"
      GST_TIME_FORMAT, GST_TIME_ARGS (took), live ? "live" : "offline",
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
  const FrameSettings & s = rt->frame;
  if (s.background_changed)
    rt->background.request (s.background_location);
  swap_in_background (self);
  if (!rt->live_decided)
    decide_live (self);

  if (GST_BUFFER_IS_DISCONT (frame->buffer))
    rt->video->restart_recurrence ();

  const unetseg::FrameView view {
  static_cast < std::uint8_t * >(GST_VIDEO_FRAME_PLANE_DATA (frame, 0)),
        GST_VIDEO_FRAME_WIDTH (frame), GST_VIDEO_FRAME_HEIGHT (frame),
        static_cast < std::size_t > (GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0)), rt->layout};
  try {
    const unetseg::FrameResult & r = rt->video->process (view,
        (std::int64_t) GST_BUFFER_PTS (frame->buffer), s.video, rt->qos_proportion);
    if (r.fresh && r.non_finite > 0 && rt->non_finite_masks++ == 0)
      GST_ELEMENT_WARNING (self, STREAM, DECODE,
          ("Model %s gave NaN or infinite values for %" G_GSIZE_FORMAT " of its %d output "
              "pixels (a broken export or a float16 overflow?); they are shown as background.",
              rt->video->segmenter ().spec ().name.c_str (), r.non_finite,
              r.model_mask.cols * r.model_mask.rows), ("further such masks are only logged"));
    else if (r.fresh && r.non_finite > 0)
      GST_DEBUG_OBJECT (self, "%" G_GSIZE_FORMAT " non-finite pixels (mask %" G_GUINT64_FORMAT
          ")", r.non_finite, rt->non_finite_masks);
    /* Live, before the first mask, no meta claims a mask (and draw() shows no foreground). */
    if (r.has_mask) {
      if (const gchar * failed = rt->output->attach (frame->buffer, r, view.width,
              view.height)) {
        GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("%s", failed), (NULL));
        return GST_FLOW_ERROR;
      }
    }
    if (!rt->video->draw (view, s.video))
      GST_DEBUG_OBJECT (self, "alpha mode waits for a format with alpha");
    if (r.has_mask && s.post_messages)
      gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self),
              rt->output->message (frame->buffer, &GST_BASE_TRANSFORM (self)->segment, r,
                  rt->video->live ())));
  } catch (const std::exception & e) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Segmentation failed: %s", e.what ()), (NULL));
    return GST_FLOW_ERROR;
  }
  note_processing_time (self);
  return GST_FLOW_OK;
}

/* ---- events and queries ---- */

static gboolean
gst_unetseg_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstUnetseg *self = GST_UNETSEG (trans);
  /* Serialised with the streaming thread, so the runtime is ours to reset. A mask from before
   * a seek belongs to another place in the stream. */
  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP && self->rt->video)
    self->rt->video->reset ();
  /* No more frames from this stream: the streams sharing its model stop waiting for them. */
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS && self->rt->video)
    self->rt->video->pause ();
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

  gobject_class->set_property = gst_unetseg_set_property;
  gobject_class->get_property = gst_unetseg_get_property;
  gobject_class->finalize = gst_unetseg_finalize;
  gst_unetseg_install_properties (gobject_class);

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
  trans_class->before_transform = GST_DEBUG_FUNCPTR (gst_unetseg_before_transform);
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

/* "LGPL" is how GStreamer spells the project's LGPL-2.1-or-later (it refuses any name outside
 * its short list); the package name and origin come from meson (-Dpackage-name,
 * -Dpackage-origin, as in GStreamer's own modules). */
GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, unetseg,
    "U-Net-family segmentation (U-Net, U2-Net, ISNet) through OpenCV DNN",
    plugin_init, VERSION, "LGPL", GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
