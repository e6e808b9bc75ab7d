// The flicker section: not speed but stability. Real clips decoded frame by frame; the model
// runs once per frame and each smoothing setting's own VideoSegmenter takes that inference
// (process_inferred), so the rows differ only in their settings. Flicker: the mask's change
// from frame to frame; lag: how far smoothing holds the mask back.
#include <algorithm>
#include <cstdio>
#include <iterator>

#include "bench.hpp"
#include "unetseg/error.hpp"

namespace bench {

int FlickerRow::lag() const {
  int best = 0;
  for (int k = 1; k <= kMaxLag; ++k)
    if (lag_count[k] && lag_error(k) < lag_error(best)) best = k;
  return best;
}

namespace {

constexpr double kFlickerFactors[] = {0.5, 0.7, 0.9};  // and 0, the raw masks

// Share of pixels whose hard mask (alpha >= 128) differs between two alphas of one size.
double hard_change(const cv::Mat& a, const cv::Mat& b) {
  long changed = 0;
  for (int y = 0; y < a.rows; ++y) {
    const std::uint8_t* p = a.ptr<std::uint8_t>(y);
    const std::uint8_t* q = b.ptr<std::uint8_t>(y);
    for (int x = 0; x < a.cols; ++x) changed += (p[x] >= 128) != (q[x] >= 128);
  }
  return static_cast<double>(changed) / static_cast<double>(a.total());
}

std::vector<fs::path> flicker_clips(const Options& opt) {
  std::vector<std::string> items = opt.flicker_clips;
  if (items.empty()) items.push_back((shared_dir() / "media" / "asl").string());
  std::vector<fs::path> clips;
  for (const auto& item : items) {
    const fs::path path(item);
    if (fs::is_directory(path)) {
      std::vector<fs::path> found;
      for (const auto& entry : fs::directory_iterator(path)) {
        const std::string ext = entry.path().extension().string();
        if (ext == ".mkv" || ext == ".mp4" || ext == ".webm" || ext == ".avi" || ext == ".mov")
          found.push_back(entry.path());
      }
      if (found.empty()) throw unetseg::Error("no clips (*.mkv, *.mp4, ...) in " + item);
      std::sort(found.begin(), found.end());
      clips.insert(clips.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(path)) {
      clips.push_back(path);
    } else {
      throw unetseg::Error("no clip at " + item + ": give --flicker-clips FILE|DIR,...");
    }
  }
  return clips;
}

// Decodes `clip` to RGBA (at `size` unless it is empty) through an appsink, calling on_frame for
// each frame until the end of the clip or max_frames (0: all). Returns the number of frames.
int decode_clip(const fs::path& clip, cv::Size size, int max_frames,
                const std::function<void(const unetseg::FrameView&)>& on_frame) {
  std::string caps = "video/x-raw,format=RGBA";
  if (size.width > 0)
    caps += ",pixel-aspect-ratio=1/1,width=" + std::to_string(size.width) +
            ",height=" + std::to_string(size.height);
  const std::string description = "filesrc location=" + quoted(clip.string()) +
                                   " ! decodebin ! videoconvert ! videoscale ! " + caps +
                                   " ! appsink name=sink sync=false max-buffers=2";
  GstElement* pipeline = parse_pipeline(description);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  std::string failure;
  int frames = 0;
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    failure = "the pipeline would not start";
  GstBus* bus = gst_element_get_bus(pipeline);
  auto stop = [&] {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(bus);
    gst_object_unref(sink);
    gst_object_unref(pipeline);
  };
  try {
    while (failure.empty() && (max_frames <= 0 || frames < max_frames)) {
      // appsink's action signal (no link to libgstapp needed), with a timeout: an error
      // upstream (not a video, say) ends nothing at the sink, so the bus is checked meanwhile.
      GstSample* sample = nullptr;
      g_signal_emit_by_name(sink, "try-pull-sample", static_cast<guint64>(100 * GST_MSECOND),
                            &sample);
      if (!sample) {
        if (GstMessage* msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
          failure = error_text(msg);
          gst_message_unref(msg);
        }
        gboolean eos = FALSE;
        g_object_get(sink, "eos", &eos, nullptr);
        if (eos) break;
        continue;
      }
      int width = 0, height = 0;
      const GstStructure* st = gst_caps_get_structure(gst_sample_get_caps(sample), 0);
      gst_structure_get_int(st, "width", &width);
      gst_structure_get_int(st, "height", &height);
      GstBuffer* buffer = gst_sample_get_buffer(sample);
      GstMapInfo map;
      if (buffer && gst_buffer_map(buffer, &map, GST_MAP_READ)) {
        // RGBA rows are width * 4 bytes, already 4-aligned: GStreamer's default stride.
        const std::size_t stride = static_cast<std::size_t>(width) * 4;
        if (width > 0 && height > 0 && map.size >= stride * height) {
          try {
            on_frame({map.data, width, height, stride, unetseg::PixelLayout::RGBA});
          } catch (...) {
            gst_buffer_unmap(buffer, &map);
            gst_sample_unref(sample);
            throw;
          }
          ++frames;
        }
        gst_buffer_unmap(buffer, &map);
      }
      gst_sample_unref(sample);
    }
  } catch (...) {
    stop();
    throw;
  }
  stop();
  if (!failure.empty()) throw unetseg::Error(clip.string() + ": " + failure);
  if (frames == 0) throw unetseg::Error(clip.string() + ": no frame decoded");
  return frames;
}

}  // namespace

FlickerResult bench_flicker(const std::shared_ptr<unetseg::Segmenter>& seg, const Options& opt) {
  if (seg->spec().multi_class())
    throw unetseg::Error("the flicker section needs a foreground model, not a multi-class one");
  FlickerResult r;
  r.threshold = opt.flicker_threshold;
  // rows[0] the raw masks; then each factor with the reset, then each without (a threshold no
  // change can exceed).
  const std::size_t factors = std::size(kFlickerFactors);
  r.rows.resize(1 + 2 * factors);
  for (std::size_t i = 0; i < factors; ++i) {
    r.rows[1 + i].factor = r.rows[1 + factors + i].factor = kFlickerFactors[i];
    r.rows[1 + i].reset = true;
  }
  // A recurrent model: one more row, the same network with its state zeroed before every frame
  // (a second copy of it, so that the first keeps its state), to show what the state brings.
  std::shared_ptr<unetseg::Segmenter> zero;
  if (seg->recurrent()) {
    zero = std::make_shared<unetseg::Segmenter>(seg->model_path(), seg->spec(),
                                                seg->active_backend());
    r.rows.emplace_back();
    r.rows.back().zero_state = true;
  }
  std::vector<unetseg::VideoSegmenter::Options> options(r.rows.size(), opt.frame);
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    options[i].mask.soft = true;
    options[i].smoothing = r.rows[i].factor;
    options[i].smoothing_reset = r.rows[i].reset ? r.threshold : 256.0;
    r.rows[i].video = std::make_shared<unetseg::VideoSegmenter>(seg);
  }
  unetseg::SegmentResult inferred, inferred_from_zero;
  cv::Mat thumbnail;
  std::vector<cv::Mat> raw_history(kMaxLag + 1);  // raw alpha of frame t at t % (kMaxLag + 1)
  for (const fs::path& clip : flicker_clips(opt)) {
    std::fprintf(stderr, "unetseg-bench: flicker: %s ...\n", clip.filename().string().c_str());
    seg->reset_state();  // a recurrent model starts each clip from nothing
    for (FlickerRow& row : r.rows) {
      row.video->reset();
      row.previous.release();
    }
    int t = 0;
    const int frames = decode_clip(clip, opt.flicker_size.size, opt.flicker_frames,
                                   [&](const unetseg::FrameView& view) {
      const auto t0 = Clock::now();
      unetseg::frame_thumbnail(view, seg->output_size(), thumbnail);
      inferred.assign(seg->run(view), thumbnail, t, seg->last_times());
      if (zero) {
        zero->reset_state();
        inferred_from_zero.assign(zero->run(view), thumbnail, t, zero->last_times());
      }
      const cv::Size frame_size(view.width, view.height);
      if (r.size.empty()) r.size = frame_size;
      std::vector<const cv::Mat*> alpha(r.rows.size());
      for (std::size_t i = 0; i < r.rows.size(); ++i)
        alpha[i] = &r.rows[i].video->process_inferred(
            view, r.rows[i].zero_state ? inferred_from_zero : inferred, options[i]).alpha;
      r.ms.push_back(ms_since(t0));
      alpha[0]->copyTo(raw_history[t % (kMaxLag + 1)]);
      for (std::size_t i = 0; i < r.rows.size(); ++i) {
        FlickerRow& row = r.rows[i];
        if (!row.previous.empty()) {
          row.change_sum += unetseg::mean_abs_difference(*alpha[i], row.previous) / 255.0;
          row.hard_change_sum += hard_change(*alpha[i], row.previous);
          ++row.pairs;
        }
        alpha[i]->copyTo(row.previous);
        ++row.frames;
        if (i == 0) continue;  // the raw masks against themselves: 0 at lag 0
        row.deviation_sum += unetseg::mean_abs_difference(*alpha[i], *alpha[0]) / 255.0;
        for (int k = 0; k <= std::min(t, kMaxLag); ++k) {
          row.lag_sum[k] += unetseg::mean_abs_difference(
                                *alpha[i], raw_history[(t - k) % (kMaxLag + 1)]) / 255.0;
          ++row.lag_count[k];
        }
      }
      ++t;
    });
    r.clips.push_back(clip.filename().string());
    r.clip_frames.push_back(frames);
    r.frames += frames;
  }
  r.rows[0].frames = r.frames;  // (its deviation and lags are 0 by definition)
  return r;
}

void print_flicker(const FlickerResult& r, const unetseg::Segmenter& seg) {
  std::printf("\nFlicker: %s, %d frames at %dx%d from %zu clip(s):", seg.spec().name.c_str(),
              r.frames, r.size.width, r.size.height, r.clips.size());
  for (std::size_t i = 0; i < r.clips.size(); ++i)
    std::printf("%s%s %d", i ? ", " : " ", r.clips[i].c_str(), r.clip_frames[i]);
  std::printf("\nsoft mask; the reset where the thumbnail changed by more than %g grey levels.\n"
              "Flicker: mean |alpha_t - alpha_t-1|, 0..1 and %%; hard: share of pixels whose\n"
              "alpha >= 128 flips; lag: mean |alpha_t - raw_t| and the k minimising\n"
              "mean |alpha_t - raw_t-k| (raw: factor 0)\n",
              r.threshold);
  if (r.rows.back().zero_state)
    std::printf("recurrent model: raw and smoothed rows carry its state from frame to frame; the "
                "row 'zero' restarts it from zero on every frame\n");
  std::printf("%-7s %-6s %-18s %-10s %-10s %-14s %-10s\n", "factor", "reset", "flicker", "vs raw",
              "hard %", "|s - raw| %", "lag frames");
  const double raw = r.rows[0].flicker();
  for (const FlickerRow& row : r.rows) {
    char flicker[32];
    std::snprintf(flicker, sizeof flicker, "%.5f (%.3f%%)", row.flicker(), 100 * row.flicker());
    std::printf("%-7.2g %-6s %-18s %-10.3f %-10.3f %-14.3f %-10d\n", row.factor,
                row.zero_state ? "zero" : row.factor == 0 ? "-" : row.reset ? "yes" : "no", flicker,
                raw > 0 ? row.flicker() / raw : 0.0, 100 * row.hard_flicker(),
                100 * row.deviation(), row.lag());
  }
  const Summary ms = summarize(r.ms);
  std::printf("per frame: the model + thumbnail + %zu VideoSegmenters' frame paths, ms median / "
              "p95: %s\n",
              r.rows.size(), fmt(ms).c_str());
}

}  // namespace bench
