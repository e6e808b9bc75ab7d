/* unetseg mask meta: the segmentation mask of a video frame, attached to the frame's buffer.
 *
 * Shaped like GStreamer 1.26's GstAnalyticsSegmentationMtd (a GRAY8 mask buffer with a
 * GstVideoMeta, a location rectangle in frame pixels, region ids and labels) so that a port is
 * mechanical, and carrying what that lacks: soft alpha, the PTS of the frame the mask was
 * computed from, the model's name and the inference time.
 *
 * Link with `pkg-config --cflags --libs gstunetsegmeta-1.0`.
 */
#ifndef __GST_UNETSEG_META_H__
#define __GST_UNETSEG_META_H__

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

/**
 * GstUnetsegMaskType:
 * @GST_UNETSEG_MASK_FOREGROUND: mask pixels are soft foreground alpha, 0 (background) .. 255
 *   (foreground); a binary model.
 * @GST_UNETSEG_MASK_SEMANTIC: mask pixels are class ids (0 = background); a multi-class model.
 */
typedef enum {
  GST_UNETSEG_MASK_FOREGROUND = 0,
  GST_UNETSEG_MASK_SEMANTIC = 1,
} GstUnetsegMaskType;

typedef struct _GstUnetsegMaskMeta GstUnetsegMaskMeta;

/**
 * GstUnetsegMaskMeta:
 * @meta: parent
 * @mask: GRAY8 buffer carrying a #GstVideoMeta (width, height, stride); owned by the meta
 * @type: what the mask's pixels mean
 * @x: left of the area of the frame the mask covers, in frame pixels
 * @y: top of that area
 * @width: width of that area (the mask is stretched over it)
 * @height: height of that area
 * @n_regions: number of region (class) ids, labels has as many entries (NULL where unnamed)
 * @region_ids: region ids present in this model's output (0 .. n_regions - 1 for semantic masks;
 *   {0 background, 1 foreground} for foreground masks)
 * @labels: label of each region id as a #GQuark (0 if unnamed)
 * @source_pts: PTS of the frame the mask was computed from; differs from the buffer's own PTS
 *   when a live pipeline reuses the newest mask for later frames
 * @model: name of the model (a #GQuark)
 * @inference_time: time the model took for the mask, in nanoseconds
 *
 * The mask is stretched over the rectangle (@x, @y, @width, @height): mask pixel (i, j) covers
 * frame pixels from (x + i * width / mask_width, y + j * height / mask_height).
 * The meta survives buffer copies (the mask buffer is shared, it is read-only) and video scaling
 * (the rectangle is scaled with the frame).
 */
struct _GstUnetsegMaskMeta {
  GstMeta meta;

  GstBuffer *mask;
  GstUnetsegMaskType type;
  gint x, y, width, height;

  guint n_regions;
  guint *region_ids;
  GQuark *labels;

  GstClockTime source_pts;
  GQuark model;
  GstClockTime inference_time;
};

GType gst_unetseg_mask_meta_api_get_type (void);
#define GST_UNETSEG_MASK_META_API_TYPE (gst_unetseg_mask_meta_api_get_type ())

const GstMetaInfo *gst_unetseg_mask_meta_get_info (void);
#define GST_UNETSEG_MASK_META_INFO (gst_unetseg_mask_meta_get_info ())

/**
 * gst_buffer_add_unetseg_mask_meta:
 * @buffer: a writable #GstBuffer (the video frame)
 * @mask: (transfer full): GRAY8 buffer with a #GstVideoMeta
 * @type: what the mask's pixels mean
 * @x, @y, @width, @height: area of the frame the mask covers, in frame pixels
 *
 * Returns: (transfer none): the new meta, with no regions, source_pts and inference_time
 * GST_CLOCK_TIME_NONE and no model name; set those with the setters below.
 */
GstUnetsegMaskMeta *gst_buffer_add_unetseg_mask_meta (GstBuffer * buffer, GstBuffer * mask,
    GstUnetsegMaskType type, gint x, gint y, gint width, gint height);

/* Returns: (transfer none) (nullable): the buffer's mask meta. */
GstUnetsegMaskMeta *gst_buffer_get_unetseg_mask_meta (GstBuffer * buffer);

/* Sets the region ids and their labels (labels may be NULL, or hold NULL entries). */
void gst_unetseg_mask_meta_set_regions (GstUnetsegMaskMeta * meta, guint n_regions,
    const guint * region_ids, const gchar * const *labels);

void gst_unetseg_mask_meta_set_model (GstUnetsegMaskMeta * meta, const gchar * model);

/* Returns: (nullable): label of the region id, or NULL. */
const gchar *gst_unetseg_mask_meta_get_label (const GstUnetsegMaskMeta * meta, guint region_id);

/* Returns: (nullable): the model's name. */
const gchar *gst_unetseg_mask_meta_get_model (const GstUnetsegMaskMeta * meta);

/**
 * gst_unetseg_mask_meta_map:
 * Maps the mask for reading into @frame (a GRAY8 #GstVideoFrame); unmap it with
 * gst_video_frame_unmap().
 */
gboolean gst_unetseg_mask_meta_map (GstUnetsegMaskMeta * meta, GstVideoFrame * frame);

G_END_DECLS

#endif /* __GST_UNETSEG_META_H__ */
