// What unetseg-bench's sections share: statistics, sizes, photos, the bare forward, pipelines.
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "bench.hpp"
#include "unetseg/error.hpp"
#include "unetseg/install_paths.hpp"
#include "unetseg/model_file.hpp"

namespace bench {

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

Summary summarize(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) {
    const auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::max<std::size_t>(i, 1) - 1];
  };
  return {rank(0.5), rank(0.95)};
}

std::string fmt(const Summary& s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f / %.2f", s.median, s.p95);
  return buf;
}

bool parse_size(const std::string& text, NamedSize* out) {
  if (text == "720p") *out = {text, {1280, 720}};
  else if (text == "1080p") *out = {text, {1920, 1080}};
  else if (text == "2160p") *out = {text, {3840, 2160}};
  else {
    int w = 0, h = 0;
    char x = 0, extra = 0;
    std::istringstream in(text);
    if (!(in >> w >> x >> h) || (x != 'x' && x != 'X') || in >> extra || w < 1 || h < 1 ||
        w > 16384 || h > 16384)
      return false;
    *out = {text, {w, h}};
  }
  return true;
}

double per_frame(const Allocations& a, int frames) {
  return frames > 0 ? static_cast<double>(a.count) / frames : 0;
}

bool Options::wants(const std::string& section) const {
  return std::find(sections.begin(), sections.end(), section) != sections.end();
}

std::string Options::element(const std::string& model_path, const std::string& name) const {
  std::string properties = unetseg_tools::element_properties(frame);
  const std::string batch = model.element_properties();
  if (!batch.empty()) properties += (properties.empty() ? "" : " ") + batch;
  return "unetseg name=" + name + " backend=" + std::string(unetseg::to_string(model.backend)) +
         " model=" + quoted(model_path) + (properties.empty() ? "" : " " + properties);
}

fs::path source_root() {
  const char* env = std::getenv("UNETSEG_SOURCE_ROOT");
  return env && *env ? fs::path(env) : fs::path(UNETSEG_SOURCE_DIR);
}

fs::path shared_dir() {
  const char* env = std::getenv("UNETSEG_SHARED");
  return env && *env ? fs::path(env) : source_root() / ".." / "shared";
}

PeerFiles peer_files() {
  const char* env = std::getenv("UNETSEG_SOURCE_ROOT");
  if ((env && *env) || unetseg::running_from_build_tree())
    return {source_root() / "tools" / "bench_peer.py", source_root() / "models"};
  const fs::path data = unetseg::data_dir();
  return {data / "bench_peer.py", data};
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  return "unknown";
}

double resident_mib() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

Photos load_photos(const fs::path& dir, int count) {
  std::vector<fs::path> files;
  if (fs::is_directory(dir))
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string ext = entry.path().extension().string();
      if (ext == ".jpg" || ext == ".jpeg" || ext == ".png") files.push_back(entry.path());
    }
  std::sort(files.begin(), files.end());
  Photos photos;
  for (const auto& file : files) {
    if (static_cast<int>(photos.rgba.size()) == count) break;
    cv::Mat bgr = cv::imread(file.string(), cv::IMREAD_COLOR);
    if (bgr.empty()) continue;
    cv::Mat rgba;
    cv::cvtColor(bgr, rgba, cv::COLOR_BGR2RGBA);
    if (photos.rgba.empty()) photos.first = file;
    photos.rgba.push_back(rgba);
  }
  if (photos.rgba.empty())
    throw unetseg::Error("no readable photos (*.jpg, *.png) in " + dir.string() +
                         ": give --images DIR (or set UNETSEG_SHARED to the directory holding "
                         "data/person-dev)");
  return photos;
}

unetseg::FrameView view_of(cv::Mat& rgba) {
  return {rgba.data, rgba.cols, rgba.rows, rgba.step[0], unetseg::PixelLayout::RGBA};
}

BareForward::BareForward(const unetseg::Segmenter& seg, const cv::Mat& input_blob) {
  net = cv::dnn::readNetFromONNX(seg.model_path());
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  input_blob.copyTo(blob);
  const unetseg::ModelSpec& spec = seg.spec();
  if (spec.recurrent()) {
    // The graph's own input shapes, as the Segmenter reads them (it has checked them at load).
    const unetseg::OnnxGraph graph =
        unetseg::read_onnx_graph(unetseg::read_model_file(seg.model_path()));
    for (const unetseg::GraphValue& v : graph.inputs) {
      const bool is_state = std::any_of(spec.state.begin(), spec.state.end(),
                                        [&](const auto& p) { return p.input == v.name; });
      if (!is_state) {
        if (input.empty()) input = v.name;
        continue;
      }
      std::vector<int> dims(v.dims.begin(), v.dims.end());
      state.emplace_back(v.name, cv::Mat(static_cast<int>(dims.size()), dims.data(), CV_32F,
                                         cv::Scalar(0)));
    }
    if (!spec.input_name.empty()) input = spec.input_name;
    output_names = net.getUnconnectedOutLayersNames();
  }
  once();
}

void BareForward::once() {
  net.setInput(blob, input);
  for (const auto& s : state) net.setInput(s.second, s.first);
  if (output_names.empty())
    net.forward(outputs);
  else
    net.forward(outputs, output_names);
}

std::vector<double> BareForward::times(int frames, Allocations* allocations) {
  std::vector<double> out;
  const Allocations a0 = allocations_so_far();
  for (int i = 0; i < frames; ++i) {
    const auto t0 = Clock::now();
    once();
    out.push_back(ms_since(t0));
  }
  if (allocations) *allocations = allocations_so_far() - a0;
  return out;
}

GstElement* parse_pipeline(const std::string& description) {
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(description.c_str(), &error);
  if (!pipeline) {
    const std::string message = error ? error->message : "unknown error";
    g_clear_error(&error);
    throw unetseg::Error("cannot build the pipeline '" + description + "': " + message);
  }
  g_clear_error(&error);  // a recoverable warning
  return pipeline;
}

std::string error_text(GstMessage* msg) {
  GError* err = nullptr;
  gchar* debug = nullptr;
  gst_message_parse_error(msg, &err, &debug);
  std::string text = std::string(err->message) + (debug ? std::string(" (") + debug + ")" : "");
  g_clear_error(&err);
  g_free(debug);
  return text;
}

std::string play_until_done(GstElement* pipeline, GstMessageType also,
                            const std::function<bool(GstMessage*)>& on_message) {
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    return "the pipeline would not start";
  GstBus* bus = gst_element_get_bus(pipeline);
  std::string failure;
  for (bool go_on = true; go_on;) {
    GstMessage* msg = gst_bus_timed_pop_filtered(
        bus, GST_CLOCK_TIME_NONE,
        static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_EOS | also));
    switch (GST_MESSAGE_TYPE(msg)) {
      case GST_MESSAGE_ERROR:
        failure = error_text(msg);
        go_on = false;
        break;
      case GST_MESSAGE_EOS:
        go_on = false;
        break;
      default:
        go_on = on_message(msg);
    }
    gst_message_unref(msg);
  }
  gst_object_unref(bus);
  return failure;
}

std::string caps_for(const cv::Size& s) {
  return "video/x-raw,format=RGBA,pixel-aspect-ratio=1/1,width=" + std::to_string(s.width) +
         ",height=" + std::to_string(s.height);
}

std::string quoted(const std::string& path) {
  gchar* q = g_strescape(path.c_str(), nullptr);
  std::string out = std::string("\"") + q + "\"";
  g_free(q);
  return out;
}

bool find_element() {
  if (GstElementFactory* f = gst_element_factory_find("unetseg")) {
    gst_object_unref(f);
    return true;
  }
  // Not in GStreamer's path: the plugin built beside this tool, or installed beside it.
  const std::string dir = unetseg::running_from_build_tree()
                              ? std::string(UNETSEG_PLUGIN_BUILD_DIR)
                              : unetseg::installed_dir(UNETSEG_PLUGIN_INSTALL_DIR);
  gst_registry_scan_path(gst_registry_get(), dir.c_str());
  GstElementFactory* f = gst_element_factory_find("unetseg");
  if (f) gst_object_unref(f);
  return f != nullptr;
}

}  // namespace bench
