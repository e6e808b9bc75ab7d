// Where the streams of one process find a shared model: every caller that names the same model
// file (unchanged on disk), backend and instance id gets the same ModelWorker, so that several
// cameras hold one network in memory and take turns on, or batch through, one inference thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "unetseg/model_worker.hpp"
#include "unetseg/segmenter.hpp"

namespace unetseg {

class ModelRegistry {
 public:
  // The registry every unetseg element of this process shares.
  static ModelRegistry& process();

  // The worker for this model file, backend and instance id ("" is a group like any other):
  // the one already alive when a caller still holds it, else a new one, loading the model
  // (Segmenter(model_path, backend)) and started with `options`. A worker ends with its last
  // holder. The first caller decides the options: when a later one asks for others, its
  // `note` (if given) says what it got instead; it is cleared otherwise. The file is known by
  // its canonical path and, with its sidecar, by size and modification time, so a model
  // rewritten in place loads afresh. Loading happens under the registry's lock (other callers
  // wait: loads are rare, and two at once would only compete for the same cores). Throws
  // unetseg::Error as Segmenter and ModelWorker do.
  std::shared_ptr<ModelWorker> acquire(const std::string& model_path, Backend backend,
                                       const std::string& instance_id,
                                       const ModelWorker::Options& options,
                                       std::string* note = nullptr);

  // Workers alive now.
  std::size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::weak_ptr<ModelWorker>> workers_;
};

}  // namespace unetseg
