#include "unetseg/video_segmenter.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <utility>

#include "unetseg/error.hpp"
#include "unetseg/frame_threads.hpp"

namespace unetseg {

namespace {

bool same_mask_options(const MaskOptions& a, const MaskOptions& b) {
  return a.threshold == b.threshold && a.soft == b.soft && a.scaling == b.scaling &&
         a.min_island == b.min_island && a.smooth_contour == b.smooth_contour &&
         a.feather == b.feather && a.guided_radius == b.guided_radius &&
         a.guided_eps == b.guided_eps;
}

}  // namespace

VideoSegmenter::VideoSegmenter(std::shared_ptr<ModelWorker> worker, bool live) {
  if (!worker) throw Error("VideoSegmenter: no model worker");
  stream_ = std::make_unique<AsyncSegmenter>(std::move(worker));
  set_live(live);
}

VideoSegmenter::VideoSegmenter(std::shared_ptr<Segmenter> segmenter, bool live)
    : VideoSegmenter(segmenter ? std::make_shared<ModelWorker>(std::move(segmenter)) : nullptr,
                     live) {}

void VideoSegmenter::set_live(bool live) {
  live_ = live;
  reset();
}

void VideoSegmenter::check(const Options& o) {
  auto refuse = [](const std::string& what, double value) {
    throw Error("VideoSegmenter: " + what + ", got " + std::to_string(value));
  };
  MaskFilter::check(o.mask);
  if (!(o.mask.threshold >= 0 && o.mask.threshold <= 1))
    refuse("threshold must be in [0, 1]", o.mask.threshold);
  if (!(o.draw.overlay_opacity >= 0 && o.draw.overlay_opacity <= 1))
    refuse("overlay_opacity must be in [0, 1]", o.draw.overlay_opacity);
  if (o.draw.blur_radius < 1) refuse("blur_radius must be 1 pixel or more", o.draw.blur_radius);
  if (o.interval < 1) refuse("interval must be 1 or more", o.interval);
  if (!(o.skip_threshold >= 0 && o.skip_threshold <= 255))
    refuse("skip_threshold must be 0 to 255 grey levels", o.skip_threshold);
  if (!(o.smoothing >= 0 && o.smoothing < 1)) refuse("smoothing must be in [0, 1)", o.smoothing);
  if (!(o.smoothing_reset >= 0)) refuse("smoothing_reset must be 0 or more", o.smoothing_reset);
  if (!(o.scene_cut >= 0 && o.scene_cut <= 255))
    refuse("scene_cut must be 0 to 255 grey levels", o.scene_cut);
}

MaskOptions VideoSegmenter::mask_options(const Options& options) const {
  MaskOptions mask = options.mask;
  const ModelSpec& spec = segmenter().spec();
  mask.scaling = spec.mask_scaling;  // the model's sidecar decides, not a setting
  // A matte's soft edge is the point of a matting model (hair): compositing keeps it.
  if (spec.output_matte &&
      (options.mode == Mode::Blur || options.mode == Mode::Replace || options.mode == Mode::Alpha))
    mask.soft = true;
  return mask;
}

// Always until there is a mask (unless live and the model already has a frame), then every
// interval-th frame, stretched while downstream cannot keep up, unless the picture barely moved.
bool VideoSegmenter::wants_inference(const Options& options, double qos_proportion) const {
  if (!have_result_ && !(live_ && stream_->busy())) return true;
  int interval = std::max(1, options.interval);
  if (qos_proportion > 1.0)
    interval = std::max(interval, static_cast<int>(std::ceil(std::min(qos_proportion, 1e6))));
  if (frames_since_submit_ + 1 < interval) return false;
  if (options.skip_threshold > 0 && !submitted_thumbnail_.empty() &&
      mean_abs_difference(thumbnail_, submitted_thumbnail_) < options.skip_threshold)
    return false;
  return true;
}

const FrameResult& VideoSegmenter::process(const FrameView& frame, std::int64_t tag,
                                           const Options& options, double qos_proportion) {
  const SerialFrames serial(shares_cores());
  Segmenter& seg = segmenter();
  const bool watch_cuts = seg.recurrent() && options.scene_cut > 0;
  const bool need_thumbnail = options.skip_threshold > 0 || options.smoothing > 0 || watch_cuts;
  if (need_thumbnail)
    frame_thumbnail(frame, seg.output_size(), thumbnail_);
  else
    thumbnail_.release();

  bool fresh = false;
  out_.submitted = wants_inference(options, qos_proportion);
  if (out_.submitted) {
    frames_since_submit_ = 0;
    // A recurrent model's memory of another scene only misleads it.
    const bool restart = restart_pending_ ||
                         (watch_cuts && !submitted_thumbnail_.empty() &&
                          mean_abs_difference(thumbnail_, submitted_thumbnail_) > options.scene_cut);
    restart_pending_ = false;
    if (need_thumbnail) thumbnail_.copyTo(submitted_thumbnail_);
    if (live_)
      stream_->submit(frame, tag, thumbnail_, restart);
    else
      fresh = stream_->run(frame, tag, result_, thumbnail_, restart);
  } else {
    frames_since_submit_++;
  }
  if (live_) fresh = stream_->take_latest(result_);
  if (fresh) accept(options);
  out_.fresh = fresh;
  return finish(frame, options);
}

const FrameResult& VideoSegmenter::process_inferred(const FrameView& frame,
                                                    const SegmentResult& inferred,
                                                    const Options& options) {
  // Copies (of model-size maps), so that result_ never shares the caller's memory.
  inferred.foreground.copyTo(result_.foreground);
  inferred.class_map.copyTo(result_.class_map);
  inferred.thumbnail.copyTo(result_.thumbnail);
  result_.tag = inferred.tag;
  result_.times = inferred.times;
  result_.non_finite = inferred.non_finite;
  result_.batch = inferred.batch;
  accept(options);
  out_.submitted = false;
  out_.fresh = true;
  return finish(frame, options);
}

// A fresh mask, smoothed over time: where the picture changed, the new one counts alone.
void VideoSegmenter::accept(const Options& options) {
  have_result_ = true;
  if (options.smoothing > 0 && !result_.thumbnail.empty()) {
    smoothed_ = smoother_.apply(result_.foreground, result_.thumbnail, options.smoothing,
                                options.smoothing_reset);
  } else {
    smoother_.reset();
    smoothed_ = result_.foreground;
  }
}

// The newest mask at the frame's size, refined and guided by this frame's own edges.
const FrameResult& VideoSegmenter::finish(const FrameView& frame, const Options& options) {
  out_.has_mask = have_result_;
  if (!have_result_) {
    out_.source_tag = -1;
    out_.model_mask = cv::Mat();
    out_.class_map = cv::Mat();
    out_.alpha = cv::Mat();
    out_.stats = MaskStats();
    alpha_reusable_ = false;
    out_.times = StageTimes();
    out_.batch = 1;
    out_.non_finite = 0;
    return out_;
  }
  // The plain upscale, its threshold and the stats in one pass, the rows kept (computing them
  // again inside draw() instead measured slower than reading them back: unetseg-bench's passes
  // section, 'fused' against 'kept'); refinements as MaskFilter::apply makes them.
  // A frame that carries the last mask over (interval, skip-threshold, live between results)
  // gets the same bytes again: no pass at all, unless the guided filter follows this frame.
  const MaskOptions mask = mask_options(options);
  const cv::Size size(frame.width, frame.height);
  if (!(alpha_reusable_ && !out_.fresh && size == alpha_size_ &&
        same_mask_options(mask, alpha_options_))) {
    mask_filter_.apply_rows(smoothed_, frame, mask);
    out_.stats = mask_filter_.stats(/*keep=*/true);
    out_.alpha = mask_filter_.alpha();
    alpha_reusable_ = mask.guided_radius == 0;
    alpha_options_ = mask;
    alpha_size_ = size;
  }
  out_.source_tag = result_.tag;
  out_.model_mask = smoothed_;
  out_.class_map = result_.class_map;
  out_.times = result_.times;
  out_.batch = result_.batch;
  out_.non_finite = result_.non_finite;
  return out_;
}

bool VideoSegmenter::draw(const FrameView& frame, const Options& options) {
  if (options.mode == Mode::None) return true;
  const SerialFrames serial(shares_cores());
  if (!Compositor::can_draw(options.mode, frame.layout)) return false;
  const cv::Size size(frame.width, frame.height);
  if (!out_.has_mask) {
    no_foreground_.create(size, CV_8UC1);
    no_foreground_.setTo(0);
    compositor_.draw(frame, options.mode, no_foreground_, cv::Mat(), options.draw);
    return true;
  }
  const bool classes = segmenter().spec().multi_class() && options.mode == Mode::Overlay;
  compositor_.draw(frame, options.mode, out_.alpha,
                   classes ? mask_filter_.upscale_classes(out_.class_map, size) : cv::Mat(),
                   options.draw);
  return true;
}

void VideoSegmenter::reset() {
  stream_->flush();  // which also restarts the recurrent state before the next forward
  restart_pending_ = false;
  have_result_ = false;
  result_.tag = -1;
  smoother_.reset();
  frames_since_submit_ = 0;
  submitted_thumbnail_.release();
  out_ = FrameResult();
  alpha_reusable_ = false;
}

double VideoSegmenter::warm_up(cv::Size size, PixelLayout layout, const Options& options) {
  const auto start = std::chrono::steady_clock::now();
  cv::Mat blank(size, CV_8UC(channel_offsets(layout).bytes_per_pixel), cv::Scalar::all(0));
  const FrameView view{blank.data, blank.cols, blank.rows, blank.step[0], layout};
  cv::Mat resized, blob;
  segmenter().preprocess(view, resized, blob);
  frame_thumbnail(view, segmenter().output_size(), thumbnail_);
  const cv::Mat nothing = cv::Mat::zeros(segmenter().output_size(), CV_32FC1);
  mask_filter_.apply_rows(nothing, view, mask_options(options));
  mask_filter_.stats(/*keep=*/true);
  alpha_reusable_ = false;  // the filter's buffer (out_.alpha's too) now holds the blank
  if (options.mode != Mode::None && Compositor::can_draw(options.mode, layout))
    compositor_.draw(view, options.mode, mask_filter_.alpha(), cv::Mat(), options.draw);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace unetseg
