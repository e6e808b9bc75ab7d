/* What unetseg attaches to each frame (the mask meta and a foreground region of interest) and
 * the bus message it may post about it: one UnetsegOutput per started model. */
#pragma once

#include <vector>

#include <gst/gst.h>

#include "unetseg/segmenter.hpp"
#include "unetseg/video_segmenter.hpp"

class UnetsegOutput
{
public:
  /* A pool of GRAY8 mask buffers at the model's output size (no maximum: downstream may keep
   * masks as long as it likes without stalling the stream), the model's region ids and labels.
   * Throws unetseg::Error when the pool cannot be made. */
  explicit UnetsegOutput (const unetseg::Segmenter & seg);
  ~UnetsegOutput ();
  UnetsegOutput (const UnetsegOutput &) = delete;
  UnetsegOutput & operator= (const UnetsegOutput &) = delete;

  /* Attaches to `buf` (a frame of width x height) a GstUnetsegMaskMeta holding the result's
   * model-resolution mask (soft alpha, or class ids) in a pooled buffer stretched over the
   * whole frame, and a GstVideoRegionOfInterestMeta "foreground" around alpha >= 128 where
   * there is any. Returns NULL, or what failed. */
  const gchar *attach (GstBuffer * buf, const unetseg::FrameResult & r, int width, int height);

  /* The "unetseg" element message about the frame `buf` of `segment`. */
  GstStructure *message (GstBuffer * buf, const GstSegment * segment,
      const unetseg::FrameResult & r, gboolean live) const;

private:
  GstBuffer * mask_buffer (const unetseg::FrameResult & r);

  GstBufferPool *pool_ = nullptr;
  std::vector < guint > region_ids_;
  std::vector < const gchar * >labels_;       /* interned */
  const gchar *model_name_;     /* interned */
};
