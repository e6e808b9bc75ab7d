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
 * @mask: GRAY8 buffer carrying a #GstVideoMeta (width, height, stride); owned by the meta and
 *   shared, read-only, between copies of the meta: never write into it
 * @type: what the mask's pixels mean
 * @x: left of the area of the frame the mask covers, in frame pixels
 * @y: top of that area
 * @width: width of that area (the mask is stretched over it)
 * @height: height of that area
 * @n_regions: number of region (class) ids, labels has as many entries (0 where unnamed)
 * @region_ids: (array length=n_regions): region ids present in this model's output
 *   (0 .. n_regions - 1 for semantic masks; {0 background, 1 foreground} for foreground masks)
 * @labels: (array length=n_regions): label of each region id as a #GQuark (0 if unnamed)
 * @source_pts: PTS of the frame the mask was computed from; differs from the buffer's own PTS
 *   when a live pipeline reuses the newest mask for later frames
 * @model: name of the model (a #GQuark)
 * @inference_time: time the model took for the mask, in nanoseconds
 *
 * The mask is stretched over the rectangle (@x, @y, @width, @height): mask pixel (i, j) covers
 * frame pixels from (x + i * width / mask_width, y + j * height / mask_height).
 * The meta survives buffer copies (the mask buffer is shared, it is read-only) and video scaling
 * (the rectangle is scaled with the frame). Any other transform drops it: rotating, flipping or
 * cropping the frame would leave the rectangle and the mask describing pixels that moved.
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
 * @mask: (transfer full): GRAY8 buffer with a #GstVideoMeta, not @buffer itself
 * @type: what the mask's pixels mean
 * @x: left of the area of the frame the mask covers, in frame pixels
 * @y: top of that area
 * @width: width of that area, > 0
 * @height: height of that area, > 0
 *
 * Attaches @mask to @buffer. On invalid arguments a critical is logged, NULL is returned and
 * @mask is left to the caller (g_return_val_if_fail() style).
 *
 * Returns: (transfer none) (nullable): the new meta, with no regions, source_pts and
 * inference_time GST_CLOCK_TIME_NONE and no model name; set those with the setters below.
 */
GstUnetsegMaskMeta *gst_buffer_add_unetseg_mask_meta (GstBuffer * buffer, GstBuffer * mask,
    GstUnetsegMaskType type, gint x, gint y, gint width, gint height);

/**
 * gst_buffer_get_unetseg_mask_meta:
 * @buffer: a #GstBuffer
 *
 * Returns: (transfer none) (nullable): the buffer's mask meta.
 */
GstUnetsegMaskMeta *gst_buffer_get_unetseg_mask_meta (GstBuffer * buffer);

/**
 * gst_unetseg_mask_meta_set_regions:
 * @meta: a #GstUnetsegMaskMeta
 * @n_regions: number of regions; 0 clears them
 * @region_ids: (array length=n_regions) (nullable): the region ids, copied
 * @labels: (array length=n_regions) (nullable): the label of each region id (NULL, or holding
 *   NULL entries, for unnamed regions), copied
 *
 * Sets the region ids and their labels, replacing any previous ones.
 */
void gst_unetseg_mask_meta_set_regions (GstUnetsegMaskMeta * meta, guint n_regions,
    const guint * region_ids, const gchar * const *labels);

/**
 * gst_unetseg_mask_meta_set_model:
 * @meta: a #GstUnetsegMaskMeta
 * @model: (nullable): the model's name; NULL clears it
 */
void gst_unetseg_mask_meta_set_model (GstUnetsegMaskMeta * meta, const gchar * model);

/**
 * gst_unetseg_mask_meta_get_label:
 * @meta: a #GstUnetsegMaskMeta
 * @region_id: a region id
 *
 * Returns: (nullable): label of the region id, or NULL if it is unnamed or not a region of
 * this meta.
 */
const gchar *gst_unetseg_mask_meta_get_label (const GstUnetsegMaskMeta * meta, guint region_id);

/**
 * gst_unetseg_mask_meta_get_model:
 * @meta: a #GstUnetsegMaskMeta
 *
 * Returns: (nullable): the model's name.
 */
const gchar *gst_unetseg_mask_meta_get_model (const GstUnetsegMaskMeta * meta);

/**
 * gst_unetseg_mask_meta_map:
 * @meta: a #GstUnetsegMaskMeta
 * @frame: (out caller-allocates): the #GstVideoFrame to map the mask into
 *
 * Maps the mask for reading into @frame (a GRAY8 #GstVideoFrame with the mask's width, height
 * and stride); unmap it with gst_video_frame_unmap().
 *
 * Returns: TRUE if the mask was mapped.
 */
gboolean gst_unetseg_mask_meta_map (GstUnetsegMaskMeta * meta, GstVideoFrame * frame);

G_END_DECLS

#endif /* __GST_UNETSEG_META_H__ */
