/* unetseg mask meta: see gstunetsegmeta.h for the contract. */

/**
 * SECTION:gstunetsegmeta
 * @title: GstUnetsegMaskMeta
 * @short_description: the segmentation mask of a video frame
 *
 * The unetseg element attaches a #GstUnetsegMaskMeta to each frame it segments. Downstream
 * elements and applications read it with gst_buffer_get_unetseg_mask_meta() and
 * gst_unetseg_mask_meta_map().
 *
 * The mask is a GRAY8 buffer that is never written after it is attached, so copies of the meta
 * share it instead of copying its pixels.
 */

#include <string.h>

#include "gstunetsegmeta.h"

/* The meta as registered: the public struct, then room for the region ids and labels of the
 * usual model (background and person; a few classes), which region_ids and labels then point
 * into. Attaching and copying the meta thus allocates nothing per frame; more regions are
 * allocated. Private: the public struct and its pointers are the API. */
#define INLINE_REGIONS 8
typedef struct
{
  GstUnetsegMaskMeta meta;
  guint ids[INLINE_REGIONS];
  GQuark labels[INLINE_REGIONS];
} UnetsegMaskMetaStorage;

/* Points the meta's arrays at room for n regions: its own, or allocated. */
static void
reserve_regions (GstUnetsegMaskMeta * meta, guint n_regions)
{
  UnetsegMaskMetaStorage *storage = (UnetsegMaskMetaStorage *) meta;

  if (meta->region_ids != storage->ids)
    g_free (meta->region_ids);
  if (meta->labels != storage->labels)
    g_free (meta->labels);
  meta->n_regions = n_regions;
  if (n_regions == 0) {
    meta->region_ids = NULL;
    meta->labels = NULL;
  } else if (n_regions <= INLINE_REGIONS) {
    meta->region_ids = storage->ids;
    meta->labels = storage->labels;
  } else {
    meta->region_ids = g_new (guint, n_regions);
    meta->labels = g_new (GQuark, n_regions);
  }
}

static gboolean
gst_unetseg_mask_meta_init (GstMeta * meta, gpointer params, GstBuffer * buffer)
{
  GstUnetsegMaskMeta *mmeta = (GstUnetsegMaskMeta *) meta;

  mmeta->mask = NULL;
  mmeta->type = GST_UNETSEG_MASK_FOREGROUND;
  mmeta->x = mmeta->y = mmeta->width = mmeta->height = 0;
  mmeta->n_regions = 0;
  mmeta->region_ids = NULL;
  mmeta->labels = NULL;
  mmeta->source_pts = GST_CLOCK_TIME_NONE;
  mmeta->model = 0;
  mmeta->inference_time = GST_CLOCK_TIME_NONE;

  return TRUE;
}

static void
gst_unetseg_mask_meta_free (GstMeta * meta, GstBuffer * buffer)
{
  GstUnetsegMaskMeta *mmeta = (GstUnetsegMaskMeta *) meta;

  gst_clear_buffer (&mmeta->mask);
  reserve_regions (mmeta, 0);
}

/* Scales a coordinate, rounding half away from zero; the rectangle may start left of or above
 * the frame, so @v may be negative. */
static gint
scale_coord (gint v, gint from, gint to)
{
  if (v >= 0)
    return (gint) gst_util_uint64_scale_int_round (v, to, from);
  return -(gint) gst_util_uint64_scale_int_round (-(gint64) v, to, from);
}

static gboolean
gst_unetseg_mask_meta_transform (GstBuffer * dest, GstMeta * meta,
    GstBuffer * buffer, GQuark type, gpointer data)
{
  GstUnetsegMaskMeta *smeta = (GstUnetsegMaskMeta *) meta;
  GstUnetsegMaskMeta *dmeta;
  gint x = smeta->x, y = smeta->y, width = smeta->width, height = smeta->height;

  if (GST_META_TRANSFORM_IS_COPY (type)) {
    GstMetaTransformCopy *copy = data;

    /* Like GstVideoMeta: a copy of part of the bytes is not the frame any more, so the
     * rectangle would point at the wrong pixels. */
    if (copy->region)
      return FALSE;
  } else if (GST_VIDEO_META_TRANSFORM_IS_SCALE (type)) {
    GstVideoMetaTransform *trans = data;
    gint in_w = GST_VIDEO_INFO_WIDTH (trans->in_info);
    gint in_h = GST_VIDEO_INFO_HEIGHT (trans->in_info);
    gint out_w = GST_VIDEO_INFO_WIDTH (trans->out_info);
    gint out_h = GST_VIDEO_INFO_HEIGHT (trans->out_info);
    gint x1, y1;

    if (in_w <= 0 || in_h <= 0 || out_w <= 0 || out_h <= 0)
      return FALSE;

    /* Scale the edges rather than the size, so that rectangles that tile the frame (or cover
     * it) still do after rounding; keep at least one pixel, since the mask covers something. */
    x1 = scale_coord (smeta->x + smeta->width, in_w, out_w);
    y1 = scale_coord (smeta->y + smeta->height, in_h, out_h);
    x = scale_coord (smeta->x, in_w, out_w);
    y = scale_coord (smeta->y, in_h, out_h);
    width = MAX (x1 - x, 1);
    height = MAX (y1 - y, 1);
  } else {
    /* A transform we do not know (rotation, crop, ...) moves the pixels the rectangle refers
     * to: dropping the meta is the only answer that is never wrong. */
    return FALSE;
  }

  dmeta = (GstUnetsegMaskMeta *) gst_buffer_add_meta (dest,
      GST_UNETSEG_MASK_META_INFO, NULL);
  if (!dmeta)
    return FALSE;

  /* The mask is read-only once attached: share it, a scale only changes where it is
   * stretched to. */
  dmeta->mask = gst_buffer_ref (smeta->mask);
  dmeta->type = smeta->type;
  dmeta->x = x;
  dmeta->y = y;
  dmeta->width = width;
  dmeta->height = height;
  reserve_regions (dmeta, smeta->n_regions);
  if (smeta->n_regions) {
    memcpy (dmeta->region_ids, smeta->region_ids, smeta->n_regions * sizeof (guint));
    memcpy (dmeta->labels, smeta->labels, smeta->n_regions * sizeof (GQuark));
  }
  dmeta->source_pts = smeta->source_pts;
  dmeta->model = smeta->model;
  dmeta->inference_time = smeta->inference_time;

  return TRUE;
}

GType
gst_unetseg_mask_meta_api_get_type (void)
{
  static GType type = 0;
  /* The same tags as GstVideoRegionOfInterestMeta, for the same reasons:
   * - video: the meta describes the pixels of a video frame;
   * - size: x/y/width/height are frame pixels, so a scaler must transform it rather than copy
   *   it (videoscale calls our transform with the scale quark);
   * - orientation: the rectangle only fits the frame as it is oriented now, so an element that
   *   rotates or flips must not copy it, and any transform but copy and scale is refused below.
   * videoconvert and videoscale keep metas with exactly these tags; elements that move pixels
   * and know none of them (videoflip, videocrop: GstVideoFilter keeps only metas tagged
   * "video" alone) drop the meta, which is right. Checked with GStreamer 1.22 by the tests. */
  static const gchar *tags[] = { GST_META_TAG_VIDEO_STR,
    GST_META_TAG_VIDEO_SIZE_STR, GST_META_TAG_VIDEO_ORIENTATION_STR, NULL
  };

  if (g_once_init_enter (&type)) {
    GType _type = gst_meta_api_type_register ("GstUnetsegMaskMetaAPI", tags);
    g_once_init_leave (&type, _type);
  }
  return type;
}

const GstMetaInfo *
gst_unetseg_mask_meta_get_info (void)
{
  static const GstMetaInfo *meta_info = NULL;

  if (g_once_init_enter ((GstMetaInfo **) & meta_info)) {
    const GstMetaInfo *mi =
        gst_meta_register (GST_UNETSEG_MASK_META_API_TYPE,
        "GstUnetsegMaskMeta", sizeof (UnetsegMaskMetaStorage),
        gst_unetseg_mask_meta_init, gst_unetseg_mask_meta_free,
        gst_unetseg_mask_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & meta_info, (GstMetaInfo *) mi);
  }
  return meta_info;
}

GstUnetsegMaskMeta *
gst_buffer_add_unetseg_mask_meta (GstBuffer * buffer, GstBuffer * mask,
    GstUnetsegMaskType type, gint x, gint y, gint width, gint height)
{
  GstUnetsegMaskMeta *meta;
  GstVideoMeta *vmeta;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (gst_buffer_is_writable (buffer), NULL);
  g_return_val_if_fail (GST_IS_BUFFER (mask), NULL);
  /* The buffer would hold the last reference to itself and never be freed. */
  g_return_val_if_fail (mask != buffer, NULL);
  g_return_val_if_fail (type == GST_UNETSEG_MASK_FOREGROUND
      || type == GST_UNETSEG_MASK_SEMANTIC, NULL);
  g_return_val_if_fail (width > 0 && height > 0, NULL);

  vmeta = gst_buffer_get_video_meta (mask);
  g_return_val_if_fail (vmeta != NULL, NULL);
  g_return_val_if_fail (vmeta->format == GST_VIDEO_FORMAT_GRAY8, NULL);

  meta = (GstUnetsegMaskMeta *) gst_buffer_add_meta (buffer,
      GST_UNETSEG_MASK_META_INFO, NULL);
  g_return_val_if_fail (meta != NULL, NULL);

  meta->mask = mask;
  meta->type = type;
  meta->x = x;
  meta->y = y;
  meta->width = width;
  meta->height = height;

  return meta;
}

GstUnetsegMaskMeta *
gst_buffer_get_unetseg_mask_meta (GstBuffer * buffer)
{
  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);

  return (GstUnetsegMaskMeta *) gst_buffer_get_meta (buffer,
      GST_UNETSEG_MASK_META_API_TYPE);
}

void
gst_unetseg_mask_meta_set_regions (GstUnetsegMaskMeta * meta, guint n_regions,
    const guint * region_ids, const gchar * const *labels)
{
  guint i;

  g_return_if_fail (meta != NULL);
  g_return_if_fail (n_regions == 0 || region_ids != NULL);

  reserve_regions (meta, n_regions);
  if (n_regions)
    memcpy (meta->region_ids, region_ids, n_regions * sizeof (guint));
  /* Quarks: labels are few and repeat on every frame, so interning them costs nothing after
   * the first frame and makes copies of the meta cheap. */
  for (i = 0; i < n_regions; i++)
    meta->labels[i] = labels ? g_quark_from_string (labels[i]) : 0;
}

void
gst_unetseg_mask_meta_set_model (GstUnetsegMaskMeta * meta, const gchar * model)
{
  g_return_if_fail (meta != NULL);

  meta->model = g_quark_from_string (model);
}

const gchar *
gst_unetseg_mask_meta_get_label (const GstUnetsegMaskMeta * meta,
    guint region_id)
{
  guint i;

  g_return_val_if_fail (meta != NULL, NULL);

  for (i = 0; i < meta->n_regions; i++) {
    if (meta->region_ids[i] == region_id)
      return g_quark_to_string (meta->labels[i]);
  }
  return NULL;
}

const gchar *
gst_unetseg_mask_meta_get_model (const GstUnetsegMaskMeta * meta)
{
  g_return_val_if_fail (meta != NULL, NULL);

  return g_quark_to_string (meta->model);
}

gboolean
gst_unetseg_mask_meta_map (GstUnetsegMaskMeta * meta, GstVideoFrame * frame)
{
  GstVideoMeta *vmeta;
  GstVideoInfo info;

  g_return_val_if_fail (meta != NULL, FALSE);
  g_return_val_if_fail (frame != NULL, FALSE);
  g_return_val_if_fail (GST_IS_BUFFER (meta->mask), FALSE);

  vmeta = gst_buffer_get_video_meta (meta->mask);
  g_return_val_if_fail (vmeta != NULL, FALSE);

  /* Only format and size come from here: gst_video_frame_map() takes the stride and offset
   * from the mask's GstVideoMeta, so padded rows are mapped as they are. */
  if (!gst_video_info_set_format (&info, GST_VIDEO_FORMAT_GRAY8, vmeta->width,
          vmeta->height))
    return FALSE;

  return gst_video_frame_map (frame, &info, meta->mask, GST_MAP_READ);
}
