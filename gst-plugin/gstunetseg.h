/* unetseg: U-Net-family segmentation as a GStreamer video filter. */
#ifndef __GST_UNETSEG_H__
#define __GST_UNETSEG_H__

#include <gst/gst.h>
#include <gst/video/gstvideofilter.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

#define GST_TYPE_UNETSEG (gst_unetseg_get_type ())
G_DECLARE_FINAL_TYPE (GstUnetseg, gst_unetseg, GST, UNETSEG, GstVideoFilter)

/* What the element draws on the frame (the mask meta is attached in every mode). */
typedef enum {
  GST_UNETSEG_MODE_NONE,
  GST_UNETSEG_MODE_OVERLAY,
  GST_UNETSEG_MODE_ALPHA,
  GST_UNETSEG_MODE_BLUR,
  GST_UNETSEG_MODE_REPLACE,
  GST_UNETSEG_MODE_MASK,
} GstUnetsegMode;

typedef enum {
  GST_UNETSEG_BACKEND_AUTO,
  GST_UNETSEG_BACKEND_CPU,
  GST_UNETSEG_BACKEND_CUDA,
  GST_UNETSEG_BACKEND_CUDA_FP16,
} GstUnetsegBackend;

/* Whether the video waits for the model (off) or the model runs beside it (on). */
typedef enum {
  GST_UNETSEG_LIVE_AUTO,
  GST_UNETSEG_LIVE_ON,
  GST_UNETSEG_LIVE_OFF,
} GstUnetsegLive;

GST_ELEMENT_REGISTER_DECLARE (unetseg);

G_END_DECLS

#endif /* __GST_UNETSEG_H__ */
