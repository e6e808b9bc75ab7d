/* read_mask: how an application reads the masks unetseg attaches to video buffers.
 *
 *   read-mask [PIPELINE...]
 *
 * PIPELINE is gst-launch-1.0 syntax ending in "appsink name=sink"; the default is
 *   videotestsrc num-buffers=5 ! videoconvert ! unetseg model=MODEL mode=none ! appsink name=sink
 * with MODEL from $UNETSEG_MODEL, else sinet as `unetseg-models fetch sinet` caches it.
 * For each frame it prints the mask meta and the "foreground" region-of-interest meta.
 *
 * Build: cc read_mask.c $(pkg-config --cflags --libs gstunetsegmeta-1.0 gstreamer-app-1.0)
 */
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/unetseg/gstunetsegmeta.h>
#include <gst/video/video.h>

/* Mean foreground of the mask: mean alpha / 255 for a foreground mask, the share of pixels
 * that are not background (id 0) for a semantic one. */
static double
mean_foreground (GstUnetsegMaskMeta * meta)
{
  GstVideoFrame mask;
  if (!gst_unetseg_mask_meta_map (meta, &mask))
    return -1.0;

  const int width = GST_VIDEO_FRAME_WIDTH (&mask);
  const int height = GST_VIDEO_FRAME_HEIGHT (&mask);
  const int stride = GST_VIDEO_FRAME_PLANE_STRIDE (&mask, 0);
  const guint8 *pixels = GST_VIDEO_FRAME_PLANE_DATA (&mask, 0);
  double sum = 0.0;
  for (int y = 0; y < height; y++) {
    const guint8 *row = pixels + y * stride;
    for (int x = 0; x < width; x++)
      sum += meta->type == GST_UNETSEG_MASK_FOREGROUND ? row[x] / 255.0 : (row[x] != 0);
  }
  gst_video_frame_unmap (&mask);
  return sum / ((double) width * height);
}

static void
print_frame (GstBuffer * buffer)
{
  g_print ("pts %" GST_TIME_FORMAT, GST_TIME_ARGS (GST_BUFFER_PTS (buffer)));

  GstUnetsegMaskMeta *meta = gst_buffer_get_unetseg_mask_meta (buffer);
  if (meta == NULL) {
    g_print (": no mask meta\n");
    return;
  }
  GstVideoMeta *vmeta = gst_buffer_get_video_meta (meta->mask);
  g_print (" source_pts %" GST_TIME_FORMAT " model %s mask %ux%u rect %d,%d %dx%d type %s",
      GST_TIME_ARGS (meta->source_pts), gst_unetseg_mask_meta_get_model (meta),
      vmeta->width, vmeta->height, meta->x, meta->y, meta->width, meta->height,
      meta->type == GST_UNETSEG_MASK_FOREGROUND ? "foreground" : "semantic");
  g_print (" labels");
  for (guint i = 0; i < meta->n_regions; i++) {
    const gchar *label = gst_unetseg_mask_meta_get_label (meta, meta->region_ids[i]);
    g_print ("%s%u=%s", i ? "," : " ", meta->region_ids[i], label ? label : "?");
  }
  g_print (" inference %.1f ms mean-foreground %.3f",
      meta->inference_time / 1e6, mean_foreground (meta));

  /* The element also adds a GstVideoRegionOfInterestMeta "foreground": the mask's bounding box
   * in frame pixels (none when the mask is empty). Other elements may add ROIs of their own. */
  const GQuark foreground = g_quark_from_static_string ("foreground");
  gpointer state = NULL;
  GstMeta *m;
  while ((m = gst_buffer_iterate_meta_filtered (buffer, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) m;
    if (roi->roi_type == foreground) {
      g_print (" roi foreground %u,%u %ux%u\n", roi->x, roi->y, roi->w, roi->h);
      return;
    }
  }
  g_print (" roi none\n");
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);

  GError *error = NULL;
  GstElement *pipeline;
  if (argc > 1) {
    pipeline = gst_parse_launchv ((const gchar **) argv + 1, &error);
  } else {
    gchar *model = g_strdup (g_getenv ("UNETSEG_MODEL"));
    if (model == NULL)
      model = g_build_filename (g_get_user_cache_dir (), "unetseg", "models", "sinet.onnx", NULL);
    gchar *description = g_strdup_printf ("videotestsrc num-buffers=5 ! videoconvert ! "
        "unetseg model=\"%s\" mode=none ! appsink name=sink", model);
    pipeline = gst_parse_launch (description, &error);
    g_free (description);
    g_free (model);
  }
  if (error != NULL) {          /* also set for a missing element, with a partial pipeline */
    g_printerr ("read-mask: bad pipeline: %s\n", error->message);
    return 2;
  }
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  if (sink == NULL || !GST_IS_APP_SINK (sink)) {
    g_printerr ("read-mask: the pipeline needs an \"appsink name=sink\"\n");
    return 2;
  }
  g_object_set (sink, "sync", FALSE, NULL);

  /* Pull frames until the end of the stream, or until the pipeline reports an error. */
  GstBus *bus = gst_element_get_bus (pipeline);
  int status = 0, frames = 0;
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  for (;;) {
    GstSample *sample = gst_app_sink_try_pull_sample (GST_APP_SINK (sink), GST_SECOND / 10);
    if (sample) {
      print_frame (gst_sample_get_buffer (sample));
      gst_sample_unref (sample);
      frames++;
      continue;
    }
    if (gst_app_sink_is_eos (GST_APP_SINK (sink)))
      break;
    GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
    if (msg) {
      GError *err = NULL;
      gchar *debug = NULL;
      gst_message_parse_error (msg, &err, &debug);
      g_printerr ("read-mask: error from %s: %s\n%s\n", GST_OBJECT_NAME (msg->src),
          err->message, debug ? debug : "");
      g_clear_error (&err);
      g_free (debug);
      gst_message_unref (msg);
      status = 1;
      break;
    }
  }
  g_print ("%d frames\n", frames);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  return status;
}
