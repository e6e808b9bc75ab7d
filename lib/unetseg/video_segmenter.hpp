// One video stream's frame path: when the model runs, which mask each frame gets, smoothing,
// refinement and drawing. The unetseg element and the tools (eval, segment, bench) all go
// through it, so what the tools measure is what the element does.
#pragma once

#include <cstdint>
#include <memory>

#include <opencv2/core.hpp>

#include "unetseg/async_segmenter.hpp"
#include "unetseg/compositor.hpp"
#include "unetseg/frame.hpp"
#include "unetseg/mask_filter.hpp"
#include "unetseg/model_worker.hpp"
#include "unetseg/segmenter.hpp"
#include "unetseg/temporal.hpp"

namespace unetseg {

// What process() says about one frame. Owned by the VideoSegmenter; valid until its next
// process(), process_inferred(), warm_up() or reset().
struct FrameResult {
  // false only in live mode before the model's first mask: nothing is known to be foreground,
  // the Mats below are empty and draw() shows no foreground.
  bool has_mask = false;
  // Whether this frame was handed to the model (interval, skip-threshold and QoS decide).
  bool submitted = false;
  // Whether the mask is new since the previous call: offline, the model just ran on this frame;
  // live, a result arrived from the model's thread.
  bool fresh = false;
  // The tag (the element: PTS) of the frame the mask was computed from; -1 without a mask.
  std::int64_t source_tag = -1;
  cv::Mat model_mask;  // CV_32FC1 foreground probability at the model's output size, smoothed
  cv::Mat class_map;   // CV_8UC1 class ids at the model's output size; multi-class models only
  cv::Mat alpha;       // CV_8UC1 at the frame's size, refined, 0/255 unless mask.soft
  MaskStats stats;     // of alpha
  StageTimes times;    // of the inference that made the mask
  int batch = 1;       // frames of any stream in that inference's forward
  // Pixels of that inference where the model gave NaN or Inf, shown as background (a broken
  // export, an fp16 overflow: worth a warning).
  std::size_t non_finite = 0;
};

class VideoSegmenter {
 public:
  // Every setting of the frame path, with its default: the element's properties read and write
  // exactly these fields (and take their defaults from here), the tools' flags too.
  struct Options {
    Mode mode = Mode::Overlay;  // what draw() draws
    MaskOptions mask;           // threshold, soft mask, refinement (mask.scaling: the model's)
    CompositorOptions draw;     // colours, opacity, blur radius

    // When the model runs: on every interval-th frame (>= 1); a QoS proportion above 1
    // stretches the interval to ceil(proportion). With skip_threshold > 0 (grey levels), a
    // frame whose thumbnail differs from the last submitted one's by less than that on average
    // is not submitted either. Until there is a mask (and, live, no frame is in the model),
    // every frame is submitted.
    int interval = 1;
    double skip_threshold = 0;

    // Temporal smoothing of fresh masks (TemporalSmoother): the weight kept from the previous
    // mask, 0 = off, restarted where the picture changed by more than smoothing_reset grey
    // levels.
    double smoothing = 0;
    double smoothing_reset = 12;

    // Recurrent models (ModelSpec::state): the model forgets its state before a submitted
    // frame whose thumbnail differs from the last submitted one's by more than this mean grey
    // change (a scene cut: the memory of the old scene would only mislead); 0 = never.
    double scene_cut = 40;
  };

  // Throws unetseg::Error, naming the field, when an option is out of its range (each part of
  // the frame path checks its own when it runs; this checks them all at once, e.g. before a
  // tool loads a model).
  static void check(const Options& options);

  // A matting model's matte (ModelSpec::output_matte) is drawn soft in the compositing modes
  // (blur, replace, alpha) whatever options.mask.soft says; MaskOptions as process() uses them.
  MaskOptions mask_options(const Options& options) const;

  // Takes a model's worker, maybe shared with other streams (each VideoSegmenter is one stream
  // of it); `live` says how masks are paired with frames:
  //  - offline (false): process() hands the frames it submits to the worker and waits for
  //    their masks, so each such frame gets the mask of its own pixels;
  //  - live (true): submitted frames are preprocessed in the calling thread and inferred on the
  //    worker's thread, always this stream's newest one; process() never waits for a forward,
  //    and every frame gets the newest mask there is.
  // Either way the frame is preprocessed on the calling thread, inferred on the worker's
  // (batched with other streams' frames where the model allows it; ModelWorker).
  explicit VideoSegmenter(std::shared_ptr<ModelWorker> worker, bool live = false);
  // A worker of its own for `segmenter` (ModelWorker's ownership rule applies).
  explicit VideoSegmenter(std::shared_ptr<Segmenter> segmenter, bool live = false);
  VideoSegmenter(const VideoSegmenter&) = delete;
  VideoSegmenter& operator=(const VideoSegmenter&) = delete;

  Segmenter& segmenter() const { return stream_->segmenter(); }
  ModelWorker& worker() const { return stream_->worker(); }
  bool live() const { return live_; }
  // Switches pairing (see the constructor) and forgets the stream, as reset() does; a forward in
  // progress on the model's thread finishes first.
  void set_live(bool live);

  // One frame of the stream: decides whether the model sees it, takes the newest mask, smooths
  // a fresh one, refines it at the frame's size (guided by this frame) and measures it. `tag`
  // names the frame (the element: its PTS); qos_proportion is downstream's (1 = keeping up).
  // The frame is only read. Allocates nothing once the frame size is stable, but what OpenCV
  // allocates inside forward(). Throws unetseg::Error for bad options or a failed inference
  // (live: a forward that failed on the model's thread).
  const FrameResult& process(const FrameView& frame, std::int64_t tag, const Options& options,
                             double qos_proportion = 1.0);

  // The part of process() after the model, for a frame whose inference the caller made itself
  // (e.g. to compare settings on the same inference): `inferred` is taken as a fresh mask for
  // this frame (inferred.thumbnail, a frame_thumbnail() at the model's output size, is needed
  // for smoothing), then smoothed, refined and measured as process() does.
  const FrameResult& process_inferred(const FrameView& frame, const SegmentResult& inferred,
                                      const Options& options);

  // Draws the last result on `frame` (the frame process() was given, or one of the same size)
  // per options.mode, in place: before the first mask, no foreground. Multi-class overlays get
  // a colour per class. Returns false, touching nothing, where the mode cannot draw on this
  // layout (Compositor::can_draw: alpha on a layout without alpha, e.g. while a switch to alpha
  // mode is being renegotiated). Throws unetseg::Error as Compositor::draw does.
  bool draw(const FrameView& frame, const Options& options);

  // The picture Replace puts behind the foreground (Compositor::set_background_image).
  void set_background_image(const cv::Mat& rgb) { compositor_.set_background_image(rgb); }

  // Forgets the stream so far (a flush, a seek, a new stream): no mask, no smoothing history,
  // no recurrent state, the next frame is submitted; live, a frame waiting or in the model is
  // dropped unseen.
  void reset();
  // The stream sends no frames for a while (end of stream): other streams sharing the model
  // stop waiting for its frames to fill a batch until its next process().
  void pause() { stream_->pause(); }
  // Only a recurrent model's memory: the next submitted frame starts from a zero state, the
  // masks so far stay (a discontinuity, new caps). Nothing for other models.
  void restart_recurrence() { restart_pending_ = true; }

  // Runs a blank frame of this size and layout through everything a frame meets but the
  // model's forward (preprocess, thumbnail, refinement, drawing per options), so that buffers
  // are in place before the first real frame; returns how long that took, in milliseconds (what
  // a live frame costs). Leaves the stream's state as it was.
  double warm_up(cv::Size size, PixelLayout layout, const Options& options);

 private:
  bool wants_inference(const Options& options, double qos_proportion) const;
  // Whether other streams share this one's model, and so the cores: its passes then run in the
  // calling thread (frame_threads.hpp says why).
  bool shares_cores() const { return worker().streams() > 1; }
  void accept(const Options& options);  // result_ is fresh: smoothing
  const FrameResult& finish(const FrameView& frame, const Options& options);

  std::unique_ptr<AsyncSegmenter> stream_;  // this stream's way to the model's worker
  bool live_ = false;
  TemporalSmoother smoother_;
  MaskFilter mask_filter_;
  Compositor compositor_;

  SegmentResult result_;  // the newest inference
  bool have_result_ = false;
  cv::Mat smoothed_;      // result_.foreground smoothed, or a header of it
  int frames_since_submit_ = 0;
  bool restart_pending_ = false;  // the next submitted frame restarts the recurrent state
  cv::Mat thumbnail_;            // of the current frame, when skipping or smoothing needs it
  cv::Mat submitted_thumbnail_;  // of the last frame handed to the model
  cv::Mat no_foreground_;        // what draw() shows before the first mask
  FrameResult out_;
  // What out_.alpha was made from, so that a frame with the same mask (not fresh), size and
  // mask options reuses it instead of upscaling it again; not with the guided filter (it
  // follows each frame).
  bool alpha_reusable_ = false;
  MaskOptions alpha_options_;
  cv::Size alpha_size_;
};

}  // namespace unetseg
