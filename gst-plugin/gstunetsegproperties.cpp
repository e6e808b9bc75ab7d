/* unetseg's properties: one entry each, naming the UnetsegSettings field it reads and writes.
 * A new knob is a field in libunetseg's VideoSegmenter::Options (with its default) and one
 * entry here. */
#include "gstunetsegproperties.h"

#include <functional>

#include <gst/gst.h>

#include "gstunetsegenums.h"

namespace
{

using Settings = UnetsegSettings;
template < typename T > using Field = T & (*)(Settings &);

/* How each property's GValue reaches its field and comes back. */
struct Accessor
{
  std::function < void (Settings &, const GValue *) > set;
  std::function < void (Settings &, GValue *) > get;
};
Accessor accessors[N_PROPERTIES];

/* The defaults every param spec states: a default-constructed Settings. */
Settings &
defaults ()
{
  static Settings settings;
  return settings;
}

const GParamFlags kReadWrite = (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
/* Read when the element starts (READY -> PAUSED). */
const GParamFlags kAtStart = (GParamFlags) (kReadWrite | GST_PARAM_MUTABLE_READY);
/* Read for every frame. */
const GParamFlags kPerFrame =
    (GParamFlags) (kReadWrite | GST_PARAM_MUTABLE_PLAYING | GST_PARAM_CONTROLLABLE);

template < typename T > void
install (GObjectClass * klass, guint id, GParamSpec * spec,
    std::function < void (T &, const GValue *) > from, std::function < void (T, GValue *) > to,
    Field < T > field)
{
  accessors[id].set =[field, from] (Settings & s, const GValue * v) { from (field (s), v); };
  accessors[id].get =[field, to] (Settings & s, GValue * v) { to (field (s), v); };
  g_object_class_install_property (klass, id, spec);
}

void
double_property (GObjectClass * klass, guint id, const gchar * name, const gchar * nick,
    const gchar * blurb, double min, double max, GParamFlags flags, Field < double >field)
{
  install < double >(klass, id,
      g_param_spec_double (name, nick, blurb, min, max, field (defaults ()), flags),
      [](double &f, const GValue * v) { f = g_value_get_double (v); },
      [](double f, GValue * v) { g_value_set_double (v, f); }, field);
}

void
int_property (GObjectClass * klass, guint id, const gchar * name, const gchar * nick,
    const gchar * blurb, int min, int max, GParamFlags flags, Field < int >field)
{
  install < int >(klass, id,
      g_param_spec_int (name, nick, blurb, min, max, field (defaults ()), flags),
      [](int &f, const GValue * v) { f = g_value_get_int (v); },
      [](int f, GValue * v) { g_value_set_int (v, f); }, field);
}

void
uint_property (GObjectClass * klass, guint id, const gchar * name, const gchar * nick,
    const gchar * blurb, guint min, guint max, GParamFlags flags, Field < int >field)
{
  install < int >(klass, id,
      g_param_spec_uint (name, nick, blurb, min, max, (guint) field (defaults ()), flags),
      [](int &f, const GValue * v) { f = (int) g_value_get_uint (v); },
      [](int f, GValue * v) { g_value_set_uint (v, (guint) f); }, field);
}

void
bool_property (GObjectClass * klass, guint id, const gchar * name, const gchar * nick,
    const gchar * blurb, GParamFlags flags, Field < bool > field)
{
  install < bool > (klass, id,
      g_param_spec_boolean (name, nick, blurb, field (defaults ()), flags),
      [](bool &f, const GValue * v) { f = g_value_get_boolean (v); },
      [](bool f, GValue * v) { g_value_set_boolean (v, f); }, field);
}

/* NULL reads as, and is written from, the empty string. */
void
string_property (GObjectClass * klass, guint id, const gchar * name, const gchar * nick,
    const gchar * blurb, GParamFlags flags, Field < std::string > field)
{
  const std::string & fallback = field (defaults ());
  install < std::string > (klass, id,
      g_param_spec_string (name, nick, blurb, fallback.empty ()? NULL : fallback.c_str (),
          flags),
      [](std::string & f, const GValue * v) {
        const gchar *s = g_value_get_string (v);
        f = s ? s : "";
      },
      [](std::string f, GValue * v) { g_value_set_string (v, f.empty ()? NULL : f.c_str ()); },
      field);
}

/* The GEnum's values are the field's enum's (gstunetsegenums.cpp checks). */
template < typename E > void
enum_property (GObjectClass * klass, guint id, const gchar * name, const gchar * nick,
    const gchar * blurb, GType type, GParamFlags flags, Field < E > field)
{
  install < E > (klass, id,
      g_param_spec_enum (name, nick, blurb, type, (gint) field (defaults ()), flags),
      [](E & f, const GValue * v) { f = (E) g_value_get_enum (v); },
      [](E f, GValue * v) { g_value_set_enum (v, (gint) f); }, field);
}

/* Big-endian ARGB, as textoverlay's colours: 0xAARRGGBB <-> (R, G, B, A). */
void
argb_property (GObjectClass * klass, guint id, const gchar * name, const gchar * nick,
    const gchar * blurb, GParamFlags flags, Field < cv::Scalar > field)
{
  auto argb_of =[](const cv::Scalar & c) {
    return ((guint) c[3] << 24) | ((guint) c[0] << 16) | ((guint) c[1] << 8) | (guint) c[2];
  };
  install < cv::Scalar > (klass, id,
      g_param_spec_uint (name, nick, blurb, 0, G_MAXUINT32, argb_of (field (defaults ())),
          flags),
      [](cv::Scalar & f, const GValue * v) {
        const guint argb = g_value_get_uint (v);
        f = cv::Scalar ((argb >> 16) & 0xff, (argb >> 8) & 0xff, argb & 0xff, argb >> 24);
      },
      [argb_of] (cv::Scalar f, GValue * v) { g_value_set_uint (v, argb_of (f)); }, field);
}

}                               /* namespace */

void
gst_unetseg_settings_set (UnetsegSettings & settings, guint prop_id, const GValue * value)
{
  accessors[prop_id].set (settings, value);
}

void
gst_unetseg_settings_get (UnetsegSettings & settings, guint prop_id, GValue * value)
{
  accessors[prop_id].get (settings, value);
}

void
gst_unetseg_install_properties (GObjectClass * k)
{
  using S = Settings;

  string_property (k, PROP_MODEL, "model", "Model",
      "Path to an ONNX model with its JSON sidecar (same name, .json) beside it, or the "
      "name of a catalog model fetched with `unetseg-models fetch NAME` (e.g. sinet)", kAtStart,
      [](S & s) -> std::string & { return s.model; });
  enum_property < unetseg::Backend > (k, PROP_BACKEND, "backend", "Backend",
      "Where the model runs", GST_TYPE_UNETSEG_BACKEND, kAtStart,
      [](S & s) -> unetseg::Backend & { return s.backend; });
  g_object_class_install_property (k, PROP_ACTIVE_BACKEND,
      g_param_spec_string ("active-backend", "Active backend",
          "Where the model really runs (cpu, cuda, cuda-fp16) once loaded; NULL before",
          NULL, (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  enum_property < unetseg::Mode > (k, PROP_MODE, "mode", "Mode",
      "What to draw on the frame; the mask meta is attached in every mode",
      GST_TYPE_UNETSEG_MODE, kPerFrame,
      [](S & s) -> unetseg::Mode & { return s.video.mode; });
  double_property (k, PROP_THRESHOLD, "threshold", "Threshold",
      "Foreground where the model's probability is at least this (hard mask)", 0.0, 1.0,
      kPerFrame,[](S & s) -> double &{ return s.video.mask.threshold; });
  bool_property (k, PROP_SOFT_MASK, "soft-mask", "Soft mask",
      "Keep the model's soft probability as alpha instead of a hard 0/255 mask (a matting "
      "model's matte stays soft in blur, replace and alpha whatever this says)", kPerFrame,
      [](S & s) -> bool & { return s.video.mask.soft; });
  argb_property (k, PROP_OVERLAY_COLOR, "overlay-color", "Overlay colour",
      "Tint of the foreground in overlay mode, big-endian ARGB (alpha ignored; see "
      "overlay-opacity)", kPerFrame,
      [](S & s) -> cv::Scalar & { return s.video.draw.overlay_color; });
  double_property (k, PROP_OVERLAY_OPACITY, "overlay-opacity", "Overlay opacity",
      "Opacity of the tint in overlay mode", 0.0, 1.0, kPerFrame,
      [](S & s) -> double &{ return s.video.draw.overlay_opacity; });
  int_property (k, PROP_BLUR_RADIUS, "blur-radius", "Blur radius",
      "Radius of the background blur in blur mode, in frame pixels", 1, 255, kPerFrame,
      [](S & s) -> int &{ return s.video.draw.blur_radius; });
  argb_property (k, PROP_BACKGROUND_COLOR, "background-color", "Background colour",
      "New background in replace mode when no background-location is set, big-endian ARGB "
      "(alpha ignored)", kPerFrame,
      [](S & s) -> cv::Scalar & { return s.video.draw.background_color; });
  string_property (k, PROP_BACKGROUND_LOCATION, "background-location", "Background location",
      "Image file (any format GStreamer decodes) put behind the foreground in replace mode, "
      "stretched to the frame", (GParamFlags) (kReadWrite | GST_PARAM_MUTABLE_PLAYING),
      [](S & s) -> std::string & { return s.background_location; });
  bool_property (k, PROP_POST_MESSAGES, "post-messages", "Post messages",
      "Post an element message \"unetseg\" per frame with foreground-fraction, bbox-*, "
      "inference-time (ns) and timestamps", kPerFrame,
      [](S & s) -> bool & { return s.post_messages; });
  enum_property < GstUnetsegLive > (k, PROP_LIVE, "live", "Live",
      "Whether frames wait for the model (off: every frame gets its own mask) or leave at "
      "once with the newest mask while the model runs on its own thread (on: the video never "
      "stalls; the meta's source_pts names the frame the mask came from). auto: on when "
      "upstream is live (a camera)", GST_TYPE_UNETSEG_LIVE, kAtStart,
      [](S & s) -> GstUnetsegLive & { return s.live; });
  uint_property (k, PROP_INTERVAL, "interval", "Interval",
      "Run the model on every Nth frame; the frames between carry the last mask", 1, 1000,
      kPerFrame,[](S & s) -> int &{ return s.video.interval; });
  double_property (k, PROP_SKIP_THRESHOLD, "skip-threshold", "Skip threshold",
      "Reuse the last mask when the frame differs from the last one the model saw by less "
      "than this mean absolute grey level (on a thumbnail; 0 = never skip)", 0.0, 255.0,
      kPerFrame,[](S & s) -> double &{ return s.video.skip_threshold; });
  int_property (k, PROP_THREADS, "threads", "Threads",
      "CPU threads for OpenCV (the model and the drawing); 0 = OpenCV's default (all cores). "
      "OpenCV has one pool per process: the last element to start sets it", 0, 256, kAtStart,
      [](S & s) -> int &{ return s.threads; });
  double_property (k, PROP_SMOOTHING, "smoothing", "Smoothing",
      "Temporal smoothing of the mask against flicker: the weight kept from the previous "
      "mask (0 = off). Where the picture changed (smoothing-reset) the new mask counts "
      "alone, so moving edges do not lag", 0.0, 0.99, kPerFrame,
      [](S & s) -> double &{ return s.video.smoothing; });
  double_property (k, PROP_SMOOTHING_RESET, "smoothing-reset", "Smoothing reset",
      "Grey-level change of a pixel between inferred frames above which smoothing restarts "
      "there", 0.0, 255.0, kPerFrame,
      [](S & s) -> double &{ return s.video.smoothing_reset; });
  double_property (k, PROP_MIN_ISLAND, "min-island", "Minimum island",
      "Drop foreground blobs, and fill background holes, smaller than this fraction of the "
      "frame (0 = keep all)", 0.0, 1.0, kPerFrame,
      [](S & s) -> double &{ return s.video.mask.min_island; });
  int_property (k, PROP_SMOOTH_CONTOUR, "smooth-contour", "Smooth contour",
      "Smooth the mask's outline over this radius in frame pixels (0 = off)", 0, 100,
      kPerFrame,[](S & s) -> int &{ return s.video.mask.smooth_contour; });
  int_property (k, PROP_FEATHER, "feather", "Feather",
      "Soft edge of this width in frame pixels: > 0 grows the mask outward, < 0 pulls its "
      "edge inward (0 = off)", -100, 100, kPerFrame,
      [](S & s) -> int &{ return s.video.mask.feather; });
  int_property (k, PROP_GUIDED_RADIUS, "guided-radius", "Guided radius",
      "Edge-aware upscaling of the mask, guided by the frame (a guided filter of this radius "
      "in frame pixels), so hair and fingers follow the picture; 0 = bilinear", 0, 64,
      kPerFrame,[](S & s) -> int &{ return s.video.mask.guided_radius; });
  double_property (k, PROP_GUIDED_EPS, "guided-eps", "Guided epsilon",
      "Regularisation of the guided filter: larger follows the frame's edges less", 1e-6,
      1.0, kPerFrame,[](S & s) -> double &{ return s.video.mask.guided_eps; });
  double_property (k, PROP_SCENE_CUT, "scene-cut", "Scene cut",
      "Recurrent models (e.g. rvm): forget the model's memory when the frame differs from the "
      "last one it saw by more than this mean grey level (a new scene); 0 = never. Flushes, "
      "discontinuities and new caps restart it too", 0.0, 255.0, kPerFrame,
      [](S & s) -> double &{ return s.video.scene_cut; });
  bool_property (k, PROP_SHARE_MODEL, "share-model", "Share model",
      "Share one loaded model and one inference thread with every other unetseg of this "
      "process that names the same model file, backend and model-instance-id, batching their "
      "frames where the model allows it; false: a model instance of this element's own",
      kAtStart,[](S & s) -> bool & { return s.share_model; });
  string_property (k, PROP_MODEL_INSTANCE_ID, "model-instance-id", "Model instance id",
      "With share-model: elements with the same id (and model and backend) share one model "
      "instance, other ids get others (empty is an id like any other)", kAtStart,
      [](S & s) -> std::string & { return s.model_instance_id; });
  int_property (k, PROP_BATCH_SIZE, "batch-size", "Batch size",
      "The most frames, of any of the streams sharing the model, that one forward takes; "
      "fewer when the model file fixes a smaller batch (models/prepare.py --batch N). Set by "
      "the first element that starts the shared instance", 1, 256, kAtStart,
      [](S & s) -> int &{ return s.batch.batch_size; });
  int_property (k, PROP_BATCH_TIMEOUT, "batch-timeout", "Batch timeout",
      "Milliseconds the model may wait for more streams' frames to fill a batch; 0: run the "
      "frames that are waiting at once. Set by the first element that starts the shared "
      "instance", 0, 10000, kAtStart,[](S & s) -> int &{ return s.batch.batch_timeout_ms; });
}
