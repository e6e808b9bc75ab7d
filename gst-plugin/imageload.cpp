#include "imageload.h"

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include <sys/stat.h>

bool
unetseg_load_image_rgb (const std::string & location, cv::Mat & rgb,
    std::string & error, int timeout_s)
{
  struct stat st;
  if (stat (location.c_str (), &st) != 0 || !S_ISREG (st.st_mode)) {
    error = "image " + location + " does not exist or is not a regular file";
    return false;
  }

  GError *parse_error = NULL;
  GstElement *pipeline = gst_parse_launch ("filesrc name=src ! decodebin ! videoconvert ! "
      "video/x-raw,format=RGB ! appsink name=sink sync=false", &parse_error);
  if (!pipeline) {
    error = std::string ("cannot build an image decoder: ") +
        (parse_error ? parse_error->message : "unknown reason");
    g_clear_error (&parse_error);
    return false;
  }
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (src, "location", location.c_str (), NULL);

  bool ok = false;
  gst_element_set_state (pipeline, GST_STATE_PAUSED);
  GstSample *sample = gst_app_sink_try_pull_preroll (GST_APP_SINK (sink),
      timeout_s * GST_SECOND);
  if (sample) {
    GstVideoInfo info;
    GstVideoFrame frame;
    if (gst_video_info_from_caps (&info, gst_sample_get_caps (sample)) &&
        gst_video_frame_map (&frame, &info, gst_sample_get_buffer (sample),
            GST_MAP_READ)) {
      cv::Mat view (GST_VIDEO_FRAME_HEIGHT (&frame), GST_VIDEO_FRAME_WIDTH (&frame),
          CV_8UC3, GST_VIDEO_FRAME_PLANE_DATA (&frame, 0),
          GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0));
      view.copyTo (rgb);
      gst_video_frame_unmap (&frame);
      ok = true;
    } else {
      error = "image " + location + " decoded to an unusable format";
    }
    gst_sample_unref (sample);
  } else {
    /* Say what the decoder said, e.g. "could not determine type of stream". */
    GstBus *bus = gst_element_get_bus (pipeline);
    GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
    error = "image " + location + " could not be decoded";
    if (msg) {
      GError *err = NULL;
      gst_message_parse_error (msg, &err, NULL);
      error += std::string (": ") + err->message;
      g_clear_error (&err);
      gst_message_unref (msg);
    }
    gst_object_unref (bus);
  }

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  return ok;
}
