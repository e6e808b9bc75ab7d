#include "unetseg/model_registry.hpp"

#include <sys/stat.h>

#include <filesystem>

#include "unetseg/model_spec.hpp"

namespace unetseg {

namespace {

// A file's identity beyond its name: a model rewritten in place is another model.
std::string file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "-";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
         std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

}  // namespace

ModelRegistry& ModelRegistry::process() {
  static ModelRegistry registry;  // never destroyed before the elements that use it
  return registry;
}

std::shared_ptr<ModelWorker> ModelRegistry::acquire(const std::string& model_path,
                                                    Backend backend,
                                                    const std::string& instance_id,
                                                    const ModelWorker::Options& options,
                                                    std::string* note) {
  ModelWorker::check(options);
  std::error_code error;
  const std::filesystem::path canonical = std::filesystem::weakly_canonical(model_path, error);
  const std::string path = error ? model_path : canonical.string();
  const std::string key = path + "\n" + file_identity(path) + "\n" +
                          file_identity(ModelSpec::sidecar_path_for(path)) + "\n" +
                          to_string(backend) + "\n" + instance_id;
  if (note) note->clear();

  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = workers_.begin(); it != workers_.end();)  // forget the ended ones
    it = it->second.expired() ? workers_.erase(it) : std::next(it);
  if (std::shared_ptr<ModelWorker> alive = workers_[key].lock()) {
    const ModelWorker::Options& got = alive->options();
    if (note && (got.batch_size != options.batch_size ||
                 got.batch_timeout_ms != options.batch_timeout_ms))
      *note = "batch-size=" + std::to_string(options.batch_size) + " batch-timeout=" +
              std::to_string(options.batch_timeout_ms) + " are not applied: model " + path +
              " is shared with an instance started first with batch-size=" +
              std::to_string(got.batch_size) + " batch-timeout=" +
              std::to_string(got.batch_timeout_ms);
    return alive;
  }
  auto worker = std::make_shared<ModelWorker>(std::make_shared<Segmenter>(path, backend), options);
  workers_[key] = worker;
  return worker;
}

std::size_t ModelRegistry::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t n = 0;
  for (const auto& entry : workers_) n += !entry.second.expired();
  return n;
}

}  // namespace unetseg
