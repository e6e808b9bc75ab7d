/* unetseg's properties. Each is one field of UnetsegSettings, declared once in
 * gstunetsegproperties.cpp with its name, blurb, range and flags; its default is the field's
 * own default, so the frame path's defaults live in libunetseg (VideoSegmenter::Options) and
 * nowhere else. */
#pragma once

#include <string>

#include <glib-object.h>

#include "gstunetseg.h"
#include "unetseg/model_worker.hpp"
#include "unetseg/segmenter.hpp"
#include "unetseg/video_segmenter.hpp"

/* Everything the properties hold. The element keeps one, under its object lock; the streaming
 * thread copies `video` once per frame (no allocation: it holds numbers only). */
struct UnetsegSettings
{
  std::string model;                    /* .onnx path or catalog name; empty: none set */
  unetseg::Backend backend = unetseg::Backend::Auto;
  GstUnetsegLive live = GST_UNETSEG_LIVE_AUTO;
  int threads = 0;                      /* OpenCV's pool size; 0: OpenCV's default */
  bool share_model = true;              /* false: a model instance of the element's own */
  std::string model_instance_id;        /* elements with the same id share; "" is one too */
  unetseg::ModelWorker::Options batch;  /* batch-size, batch-timeout (a shared one's first) */
  bool post_messages = false;
  std::string background_location;      /* empty: background-color */
  unetseg::VideoSegmenter::Options video;       /* mode, mask, drawing, scheduling, smoothing */
};

enum UnetsegProperty
{
  PROP_0,
  PROP_MODEL,
  PROP_BACKEND,
  PROP_ACTIVE_BACKEND,          /* read-only, not a setting: the element answers it */
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
  PROP_SCENE_CUT,
  PROP_SHARE_MODEL,
  PROP_MODEL_INSTANCE_ID,
  PROP_BATCH_SIZE,
  PROP_BATCH_TIMEOUT,
  N_PROPERTIES
};

/* Installs every property on the element's class, with the ids above. */
void gst_unetseg_install_properties (GObjectClass * klass);

/* Writes a property's value into its field of `settings`, or reads it back; the caller holds
 * whatever lock guards `settings`. Not for PROP_ACTIVE_BACKEND. */
void gst_unetseg_settings_set (UnetsegSettings & settings, guint prop_id,
    const GValue * value);
void gst_unetseg_settings_get (UnetsegSettings & settings, guint prop_id, GValue * value);
