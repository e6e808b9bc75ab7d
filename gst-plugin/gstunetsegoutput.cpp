#include "gstunetsegoutput.h"

#include <gst/video/gstvideometa.h>
#include <gst/video/video.h>

#include "gstunetsegmeta.h"
#include "unetseg/error.hpp"

UnetsegOutput::UnetsegOutput (const unetseg::Segmenter & seg)
{
  const unetseg::ModelSpec & spec = seg.spec ();
  model_name_ = g_intern_string (spec.name.c_str ());

  /* Region ids and labels, the same for every frame of this model. */
  const int regions = spec.multi_class ()? seg.output_channels () : 2;
  region_ids_.resize (regions);
  labels_.assign (regions, nullptr);
  for (int i = 0; i < regions; i++) {
    region_ids_[i] = i;
    if (i < (int) spec.labels.size ())
      labels_[i] = g_intern_string (spec.labels[i].c_str ());
  }
  if (!spec.multi_class () && spec.labels.empty ()) {
    labels_[0] = g_intern_static_string ("background");
    labels_[1] = g_intern_static_string ("foreground");
  }

  GstVideoInfo info;
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_GRAY8, seg.output_size ().width,
      seg.output_size ().height);
  GstCaps *caps = gst_video_info_to_caps (&info);
  pool_ = gst_video_buffer_pool_new ();
  GstStructure *config = gst_buffer_pool_get_config (pool_);
  gst_buffer_pool_config_set_params (config, caps, info.size, 2, 0);
  gst_buffer_pool_config_add_option (config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  gst_buffer_pool_set_config (pool_, config);
  gst_caps_unref (caps);
  if (!gst_buffer_pool_set_active (pool_, TRUE)) {
    gst_object_unref (pool_);
    throw unetseg::Error ("Could not allocate mask buffers.");
  }
}

UnetsegOutput::~UnetsegOutput ()
{
  gst_buffer_pool_set_active (pool_, FALSE);
  gst_object_unref (pool_);
}

/* The model's view of the frame, as region ids or soft alpha, in a pooled GRAY8 buffer. */
GstBuffer *
UnetsegOutput::mask_buffer (const unetseg::FrameResult & r)
{
  GstBuffer *mask = NULL;
  if (gst_buffer_pool_acquire_buffer (pool_, &mask, NULL) != GST_FLOW_OK)
    return NULL;

  const cv::Size size = r.model_mask.size ();
  GstVideoInfo info;
  GstVideoFrame frame;
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_GRAY8, size.width, size.height);
  if (!gst_video_frame_map (&frame, &info, mask, GST_MAP_WRITE)) {
    gst_buffer_unref (mask);
    return NULL;
  }
  cv::Mat out (size, CV_8UC1, GST_VIDEO_FRAME_PLANE_DATA (&frame, 0),
      GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0));
  if (!r.class_map.empty ())
    r.class_map.copyTo (out);
  else
    r.model_mask.convertTo (out, CV_8U, 255.0);
  gst_video_frame_unmap (&frame);
  return mask;
}

static GstClockTime
mask_pts (const unetseg::FrameResult & r)
{
  return r.source_tag < 0 ? GST_CLOCK_TIME_NONE : (GstClockTime) r.source_tag;
}

static GstClockTime
inference_ns (const unetseg::FrameResult & r)
{
  return (GstClockTime) (r.times.total_ms () * GST_MSECOND);
}

const gchar *
UnetsegOutput::attach (GstBuffer * buf, const unetseg::FrameResult & r, int width, int height)
{
  GstBuffer *mask = mask_buffer (r);
  if (!mask)
    return "Could not get a mask buffer.";
  GST_BUFFER_PTS (mask) = mask_pts (r);
  GstUnetsegMaskMeta *meta = gst_buffer_add_unetseg_mask_meta (buf, mask,
      r.class_map.empty ()? GST_UNETSEG_MASK_FOREGROUND : GST_UNETSEG_MASK_SEMANTIC,
      0, 0, width, height);
  if (!meta) {
    gst_buffer_unref (mask);
    return "Could not attach the mask meta.";
  }
  gst_unetseg_mask_meta_set_regions (meta, region_ids_.size (), region_ids_.data (),
      labels_.data ());
  gst_unetseg_mask_meta_set_model (meta, model_name_);
  meta->source_pts = mask_pts (r);
  meta->inference_time = inference_ns (r);

  const cv::Rect & box = r.stats.bounding_box;
  if (!box.empty ())
    gst_buffer_add_video_region_of_interest_meta (buf, "foreground", box.x, box.y,
        box.width, box.height);
  return NULL;
}

GstStructure *
UnetsegOutput::message (GstBuffer * buf, const GstSegment * segment,
    const unetseg::FrameResult & r, gboolean live) const
{
  const GstClockTime pts = GST_BUFFER_PTS (buf);
  return gst_structure_new ("unetseg",
      "timestamp", G_TYPE_UINT64, pts,
      "stream-time", G_TYPE_UINT64,
      gst_segment_to_stream_time (segment, GST_FORMAT_TIME, pts),
      "running-time", G_TYPE_UINT64,
      gst_segment_to_running_time (segment, GST_FORMAT_TIME, pts),
      "duration", G_TYPE_UINT64, GST_BUFFER_DURATION (buf),
      "foreground-fraction", G_TYPE_DOUBLE, r.stats.foreground_fraction,
      "bbox-x", G_TYPE_INT, r.stats.bounding_box.x,
      "bbox-y", G_TYPE_INT, r.stats.bounding_box.y,
      "bbox-width", G_TYPE_INT, r.stats.bounding_box.width,
      "bbox-height", G_TYPE_INT, r.stats.bounding_box.height,
      "inference-time", G_TYPE_UINT64, inference_ns (r),
      "mask-timestamp", G_TYPE_UINT64, mask_pts (r),
      "batch", G_TYPE_INT, r.batch,
      "live", G_TYPE_BOOLEAN, live, "model", G_TYPE_STRING, model_name_, NULL);
}
