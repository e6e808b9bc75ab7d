// The passes section: what VideoSegmenter does to a frame besides the model's forward
// (preprocess, thumbnail when the settings need one, the mask's upscale and refinement, its
// statistics, drawing), per size, layout and mode, beside one full-frame read + write (a memcpy
// of the same frame) timed in the same run: each mode's cost in "frame copies". The mask is a
// real one (the model run once per photo); then only the rest is timed, as process_inferred()
// takes it. Beside it, the reference path built from public pieces as the frame path was before
// its passes were fused (the mask materialised at frame size with cv::resize, thresholded,
// measured, then drawn), alternating with it frame by frame.
#include <opencv2/imgproc.hpp>

#include <cstdio>
#include <cstring>

#include "bench.hpp"
#include "unetseg/temporal.hpp"

namespace bench {

namespace {

using unetseg::PixelLayout;
using unetseg::VideoSegmenter;

void count(StageSeries& s, Allocations before) {
  const Allocations made = allocations_so_far() - before;
  s.allocations.count += made.count;
  s.allocations.bytes += made.bytes;
}

// The frame path as it was: the mask at frame size (OpenCV's 8-bit bilinear resize of the
// quantised map, then the threshold), its statistics, then Compositor::draw on it. Only for the
// settings without refinement (the bench's defaults).
struct Reference {
  unetseg::MaskFilter filter;  // the fused and kept variants
  unetseg::Compositor compositor;
  cv::Mat small, alpha, blob;
  unetseg::MaskStats stats;
  void mask(const cv::Mat& foreground, cv::Size size, const unetseg::MaskOptions& o) {
    unetseg::MaskFilter::to_alpha8(foreground, small);
    cv::resize(small, alpha, size, 0, 0, cv::INTER_LINEAR);
    if (!o.soft) {
      float t = static_cast<float>(std::min(std::max(o.threshold, 0.0), 1.0));
      std::uint8_t level = 0;
      cv::Mat level_mat(1, 1, CV_8UC1, &level);
      unetseg::MaskFilter::to_alpha8(cv::Mat(1, 1, CV_32FC1, &t), level_mat);
      cv::threshold(alpha, alpha, level - 1, 255, cv::THRESH_BINARY);
    }
    stats = unetseg::MaskFilter::stats(alpha);
  }
};

bool refined(const unetseg::MaskOptions& o) {
  return o.min_island > 0 || o.guided_radius > 0 || o.smooth_contour != 0 || o.feather != 0 ||
         o.scaling != unetseg::MaskScaling::Bilinear;
}

}  // namespace

std::vector<PassesResult> bench_passes(const std::shared_ptr<unetseg::Segmenter>& seg,
                                       const NamedSize& size, const std::vector<cv::Mat>& photos,
                                       const Options& opt) {
  std::vector<PassesResult> results;
  // The element's usual layouts (4 bytes a pixel, what videoconvert hands a 1080p camera);
  // alpha mode needs an alpha channel, so it runs on the same bytes read as RGBA / BGRA.
  for (PixelLayout layout : {PixelLayout::RGBx, PixelLayout::BGRx}) {
    PassesResult r;
    r.size = size;
    r.layout = layout;
    r.frames = opt.frames;
    std::vector<cv::Mat> sources;
    std::vector<unetseg::SegmentResult> masks;
    for (const cv::Mat& photo : photos) {
      cv::Mat scaled;
      cv::resize(photo, scaled, size.size, 0, 0, cv::INTER_AREA);
      if (layout == PixelLayout::BGRx) cv::cvtColor(scaled, scaled, cv::COLOR_RGBA2BGRA);
      sources.push_back(scaled);
      cv::Mat work = scaled.clone();
      const unetseg::FrameView v{work.data, work.cols, work.rows, work.step[0], layout};
      cv::Mat thumbnail;
      unetseg::frame_thumbnail(v, seg->output_size(), thumbnail);
      masks.emplace_back();
      masks.back().assign(seg->run(v), thumbnail, 0, seg->last_times());
    }
    cv::Mat frame = sources[0].clone(), copy = sources[0].clone();
    const std::size_t bytes = frame.total() * frame.elemSize();

    std::map<Mode, std::unique_ptr<VideoSegmenter>> videos;
    std::map<Mode, Reference> references;
    for (Mode m : opt.modes) videos[m] = std::make_unique<VideoSegmenter>(seg);

    for (int i = 0; i < opt.warmup + opt.frames; ++i) {
      const bool timed = i >= opt.warmup;
      const cv::Mat& source = sources[i % sources.size()];
      const unetseg::SegmentResult& inferred = masks[i % masks.size()];
      Allocations a = allocations_so_far();
      auto t0 = Clock::now();
      std::memcpy(copy.data, source.data, bytes);  // one full-frame read + write
      if (timed) {
        const double ms = ms_since(t0);
        count(r.memcpy_, a);  // before the vectors below grow
        r.memcpy_.ms.push_back(ms);
      }
      for (Mode m : opt.modes) {
        VideoSegmenter::Options o = opt.frame;
        o.mode = m;
        const PixelLayout drawn_on = m != Mode::Alpha         ? layout
                                     : layout == PixelLayout::RGBx ? PixelLayout::RGBA
                                                                   : PixelLayout::BGRA;
        const unetseg::FrameView view{frame.data, frame.cols, frame.rows, frame.step[0],
                                      drawn_on};
        VideoSegmenter& video = *videos[m];
        const bool thumbnail = o.skip_threshold > 0 || o.smoothing > 0 ||
                               (seg->recurrent() && o.scene_cut > 0);
        PassesResult::Row& row = r.modes[m];
        // The element's path, then three ways of the mask's passes from public pieces: as they
        // were (reference), its rows computed again inside draw() (fused: no frame-size mask),
        // its rows kept by the stats pass and drawn from (kept). Each frame starts with another
        // of the four, so that none always finds the cache warm.
        for (int k = 0; k < 4; ++k) {
          const int variant = (k + i) % 4;
          const unetseg::MaskOptions mo = video.mask_options(o);
          if (variant > 0 && refined(mo)) continue;
          std::memcpy(frame.data, source.data, bytes);
          Reference& ref = references[m];
          a = allocations_so_far();
          t0 = Clock::now();
          if (variant == 0) {
            seg->preprocess(view, row.blob);
            const double preprocess_ms = ms_since(t0);
            if (thumbnail) unetseg::frame_thumbnail(view, seg->output_size(), row.thumbnail);
            video.process_inferred(view, inferred, o);
            const double mask_ms = ms_since(t0);
            video.draw(view, o);
            if (timed) {
              const double ms = ms_since(t0);
              count(row.total, a);
              row.total.ms.push_back(ms);
              row.preprocess.push_back(preprocess_ms);
              row.mask.push_back(mask_ms - preprocess_ms);
            }
            continue;
          }
          seg->preprocess(view, ref.blob);
          const auto t1 = Clock::now();
          StageSeries& series = variant == 1 ? row.reference : variant == 2 ? row.fused : row.kept;
          if (variant == 1) {
            ref.mask(inferred.foreground, size.size, mo);
          } else {
            ref.filter.apply_rows(inferred.foreground, view, mo);
            ref.stats = ref.filter.stats(/*keep=*/variant == 3);
          }
          const double mask_ms = ms_since(t1);
          if (variant == 2)
            ref.compositor.draw(view, m, ref.filter, o.draw);
          else
            ref.compositor.draw(view, m, variant == 1 ? ref.alpha : ref.filter.alpha(), cv::Mat(),
                                o.draw);
          if (timed) {
            const double ms = ms_since(t0);
            count(series, a);
            series.ms.push_back(ms);
            if (variant == 1) row.reference_mask.push_back(mask_ms);
          }
        }
      }
    }
    results.push_back(std::move(r));
  }
  return results;
}

void print_passes(const std::vector<PassesResult>& results, const Options& opt) {
  if (results.empty()) return;
  const std::string properties = unetseg_tools::element_properties(opt.frame);
  std::printf(
      "\nPasses: everything VideoSegmenter does to a frame besides the forward (preprocess,\n"
      "thumbnail if the settings need one, mask upscale/refinement + statistics, draw), ms median\n"
      "over %d frames%s%s, beside a memcpy of the same frame in the same run; copies = median /\n"
      "memcpy median; allocs: heap allocations per frame. Beside it, the same work from public\n"
      "pieces, the four taking turns: reference = as before the passes were made lean\n"
      "(cv::resize to a frame-size alpha, threshold, stats, Compositor::draw); fused = the mask's\n"
      "rows computed for the stats and again inside draw(), never whole; kept = computed once,\n"
      "kept by the stats pass, drawn from (alpha mode: the same bytes as RGBA/BGRA)\n",
      opt.frames, properties.empty() ? "" : ", with ", properties.c_str());
  std::printf("%-6s %-6s %-8s %-7s %-10s %-9s %-7s %-7s %-6s %-6s | %-13s %-7s %-13s %-13s\n",
              "size", "layout", "mode", "memcpy", "preprocess", "mask+stat", "draw", "total",
              "copies", "allocs", "reference", "mask", "fused", "kept");
  const auto cell = [](const StageSeries& s, double copy, int frames) {
    char text[64];
    std::snprintf(text, sizeof text, "%.2f %.2fc %.0fa", summarize(s.ms).median,
                  summarize(s.ms).median / copy, per_frame(s.allocations, frames));
    return std::string(text);
  };
  for (const auto& r : results) {
    const double copy = summarize(r.memcpy_.ms).median;
    for (Mode m : opt.modes) {
      const PassesResult::Row& row = r.modes.at(m);
      const double total = summarize(row.total.ms).median;
      const double pre = summarize(row.preprocess).median, mask = summarize(row.mask).median;
      std::printf("%-6s %-6s %-8s %-7.2f %-10.2f %-9.2f %-7.2f %-7.2f %-6.2f %-6.1f |",
                  r.size.name.c_str(), unetseg::layout_name(r.layout), unetseg::to_string(m),
                  copy, pre, mask, total - pre - mask, total, total / copy,
                  per_frame(row.total.allocations, r.frames));
      if (row.reference.ms.empty()) {
        std::printf(" (refined: no reference)\n");
        continue;
      }
      std::printf(" %-13s %-7.2f %-13s %-13s\n", cell(row.reference, copy, r.frames).c_str(),
                  summarize(row.reference_mask).median, cell(row.fused, copy, r.frames).c_str(),
                  cell(row.kept, copy, r.frames).c_str());
    }
  }
}

namespace {

void write_series(cv::FileStorage& fs, const std::string& key, const StageSeries& s,
                  int frames) {
  fs << key << "{" << "median" << summarize(s.ms).median << "p95" << summarize(s.ms).p95
     << "allocations_per_frame" << per_frame(s.allocations, frames) << "all" << s.ms << "}";
}

}  // namespace

void write_passes(cv::FileStorage& fs, const std::vector<PassesResult>& results) {
  fs << "passes" << "[";
  for (const auto& r : results) {
    const double copy = summarize(r.memcpy_.ms).median;
    fs << "{" << "size" << r.size.name << "width" << r.size.size.width << "height"
       << r.size.size.height << "layout" << unetseg::layout_name(r.layout);
    write_series(fs, "memcpy", r.memcpy_, r.frames);
    fs << "modes" << "{";
    for (const auto& [mode, row] : r.modes) {
      fs << unetseg::to_string(mode) << "{";
      write_series(fs, "total", row.total, r.frames);
      fs << "frame_copies" << summarize(row.total.ms).median / copy;
      fs << "preprocess" << summarize(row.preprocess).median << "mask"
         << summarize(row.mask).median;
      if (!row.reference.ms.empty()) {
        write_series(fs, "reference", row.reference, r.frames);
        write_series(fs, "fused", row.fused, r.frames);
        write_series(fs, "kept", row.kept, r.frames);
      }
      fs << "}";
    }
    fs << "}" << "}";
  }
  fs << "]";
}

}  // namespace bench
