// Frame -> model input blob, in one pass over the frame.
#pragma once

#include <opencv2/core.hpp>

#include "unetseg/frame.hpp"
#include "unetseg/model_spec.hpp"

namespace unetseg {

// Stretches the frame to the model's input size (bilinear; area averaging when shrinking by
// more than 2x, so that thin structures are not aliased away), reorders the colour channels
// to the spec's order and normalises them into `blob` (1 x 3 x H x W, CV_32F, NCHW).
// `resized` is scratch space; both are reused across calls, so nothing is allocated once the
// sizes are stable (when the frame shrinks at most 2x, cv::resize's tables excepted).
void preprocess(const FrameView& frame, const ModelSpec& spec, cv::Mat& resized, cv::Mat& blob);

}  // namespace unetseg
