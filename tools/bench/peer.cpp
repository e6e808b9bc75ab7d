// The peer section: the same U2-Net-family network in PyTorch on the CPU (tools/bench_peer.py),
// forward and the official U2-Net frame pipeline, against unetseg's frame path on the same
// exported ONNX, the same photo and frame size, in the same run.
#include <opencv2/core/utility.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdio>
#include <unistd.h>

#include "bench.hpp"
#include "unetseg/error.hpp"

namespace bench {

namespace {

std::vector<double> read_numbers(const cv::FileNode& node) {
  std::vector<double> out;
  for (const auto& item : node) out.push_back(static_cast<double>(item));
  return out;
}

}  // namespace

PeerResult bench_peer(const std::vector<cv::Mat>& photos, const fs::path& photo_file,
                      const Options& opt) {
  PeerResult r;
  const PeerFiles files = peer_files();
  const std::string script = files.script.string();
  if (!fs::is_regular_file(files.script))
    throw unetseg::Error("the peer section needs " + script + " and the unetseg_models package "
                         "beside it: install unetseg (meson install), or set "
                         "UNETSEG_SOURCE_ROOT to a unetseg source tree");
  const fs::path dir = fs::temp_directory_path() /
                       ("unetseg-bench-" + std::to_string(static_cast<long>(getpid())));
  fs::create_directories(dir);
  const std::string onnx = (dir / (opt.peer_arch + ".onnx")).string();
  const int threads = opt.threads > 0 ? opt.threads : cv::getNumThreads();
  const std::string frame_arg =
      std::to_string(opt.peer_frame.size.width) + "x" + std::to_string(opt.peer_frame.size.height);
  std::vector<std::string> args{"/usr/bin/python3", script,
                                "--arch",           opt.peer_arch,
                                "--onnx",           onnx,
                                "--image",          photo_file.string(),
                                "--frame",          frame_arg,
                                "--size",           std::to_string(opt.peer_size),
                                "--frames",         std::to_string(opt.peer_frames),
                                "--threads",        std::to_string(threads)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The script imports the project's PyTorch models (the unetseg_models package in models/).
  gchar** envp = g_environ_setenv(g_get_environ(), "PYTHONPATH", files.python_path.c_str(), TRUE);
  gchar* out = nullptr;
  gint status = 0;
  GError* error = nullptr;
  std::fprintf(stderr, "unetseg-bench: peer: %s (PyTorch) ...\n", opt.peer_arch.c_str());
  const bool spawned = g_spawn_sync(nullptr, argv.data(), envp, G_SPAWN_DEFAULT, nullptr,
                                    nullptr, &out, nullptr, &status, &error);
  g_strfreev(envp);
  const std::string json = out ? out : "";
  g_free(out);
  if (!spawned || !g_spawn_check_wait_status(status, &error)) {
    const std::string why = error ? error->message : "failed";
    g_clear_error(&error);
    fs::remove_all(dir);
    throw unetseg::Error(script + ": " + why);
  }
  cv::FileStorage fs_json(json, cv::FileStorage::READ | cv::FileStorage::MEMORY |
                                     cv::FileStorage::FORMAT_JSON);
  r.torch_version = static_cast<std::string>(fs_json["torch_version"]);
  r.arch = opt.peer_arch;
  r.threads = static_cast<int>(fs_json["threads"]);
  r.torch_forward_ms = read_numbers(fs_json["forward_ms"]["all"]);
  r.torch_pipeline_ms = read_numbers(fs_json["pipeline_ms"]["all"]);

  // The same network through unetseg, with the sidecar the exporter wrote (the official U2-Net
  // pre- and postprocessing), the soft mask, every frame inferred.
  std::fprintf(stderr, "unetseg-bench: peer: %s (unetseg) ...\n", opt.peer_arch.c_str());
  unetseg::VideoSegmenter video(std::make_shared<unetseg::Segmenter>(onnx, unetseg::Backend::Cpu));
  unetseg::VideoSegmenter::Options options;
  options.mask.soft = true;
  cv::Mat frame;
  cv::resize(photos[0], frame, opt.peer_frame.size, 0, 0, cv::INTER_AREA);
  const unetseg::FrameView view = view_of(frame);
  for (int i = 0; i < opt.warmup + opt.peer_frames; ++i) {
    const auto t0 = Clock::now();
    const unetseg::FrameResult& fr = video.process(view, i, options);
    if (i >= opt.warmup) {
      r.unetseg_pipeline_ms.push_back(ms_since(t0));
      r.opencv_forward_ms.push_back(fr.times.forward_ms);
    }
  }
  fs::remove_all(dir);
  return r;
}

void print_peer(const PeerResult& r, const Options& opt) {
  const Summary tf = summarize(r.torch_forward_ms), of = summarize(r.opencv_forward_ms);
  const Summary tp = summarize(r.torch_pipeline_ms), up = summarize(r.unetseg_pipeline_ms);
  std::printf("\nPeer: %s at %dx%d (random weights), PyTorch %s on the CPU, %d threads\n",
              r.arch.c_str(), opt.peer_size, opt.peer_size, r.torch_version.c_str(), r.threads);
  std::printf("%-34s %-18s %-18s %s\n", "", "PyTorch ms", "unetseg ms", "PyTorch / unetseg");
  std::printf("%-34s %-18s %-18s %.2fx\n", "forward (OpenCV DNN for unetseg)", fmt(tf).c_str(),
              fmt(of).c_str(), tf.median / of.median);
  char label[64];
  std::snprintf(label, sizeof label, "frame %dx%d, official pre/post", opt.peer_frame.size.width,
                opt.peer_frame.size.height);
  std::printf("%-34s %-18s %-18s %.2fx\n", label, fmt(tp).c_str(), fmt(up).c_str(),
              tp.median / up.median);
}

}  // namespace bench
