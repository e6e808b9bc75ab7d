#include "unetseg/model_cache.hpp"

#include <unistd.h>

#include <cstdlib>

#include "unetseg/error.hpp"

namespace unetseg {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

std::string model_cache_dir() {
  // The XDG base directory spec: a relative XDG_CACHE_HOME is invalid and ignored.
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && *xdg == '/') return std::string(xdg) + "/unetseg/models";
  const char* home = std::getenv("HOME");
  if (home && *home == '/') return std::string(home) + "/.cache/unetseg/models";
  // Never a shared fallback such as /tmp, where another user could plant a model.
  throw Error("no model cache: neither XDG_CACHE_HOME nor HOME is set to an absolute path, so "
              "catalog names cannot be looked up; set one of them, or give the model's path");
}

bool is_catalog_name(const std::string& model) {
  return !model.empty() && model.find('/') == std::string::npos && !ends_with(model, ".onnx");
}

std::string resolve_model(const std::string& model) {
  if (!is_catalog_name(model)) return model;
  const std::string cached = model_cache_dir() + "/" + model + ".onnx";
  if (access(cached.c_str(), R_OK) != 0)
    throw Error("model '" + model + "' is a catalog name, but it is not in the cache (" + cached +
                "): fetch it with `scripts/fetch-model.sh " + model +
                "` from the unetseg source tree, or give the path of an .onnx file");
  return cached;
}

}  // namespace unetseg
