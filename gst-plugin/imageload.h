/* Decodes a still image into RGB pixels with GStreamer's own decoders, so the element needs no
 * image codec library beyond what the pipeline already has. */
#pragma once

#include <string>

#include <opencv2/core.hpp>

/* Fills `rgb` (CV_8UC3) from the image file at `location`; on failure returns false and says
 * why in `error`. Blocks until the image is decoded or `timeout_s` passes. */
bool unetseg_load_image_rgb (const std::string & location, cv::Mat & rgb,
    std::string & error, int timeout_s = 10);
