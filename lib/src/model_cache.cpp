#include "unetseg/model_cache.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "unetseg/error.hpp"
#include "unetseg/install_paths.hpp"

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
  if (access(cached.c_str(), R_OK) == 0) return cached;  // fetched, or put there by hand
  const std::string fetch = "fetch it with `unetseg-models fetch " + model +
                            "` (in a source tree: `scripts/fetch-model.sh " + model + "`)";
  const std::string catalog = catalog_path();
  const std::vector<std::string> names = catalog_names(catalog);  // none without a catalog
  if (names.empty())  // no catalog to tell a known name from a typo
    throw Error("model '" + model + "' is not in the cache (" + cached + "): if it is a catalog "
                "name, " + fetch + "; or give the path of an .onnx file");
  if (std::find(names.begin(), names.end(), model) == names.end()) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    throw Error("model '" + model + "' is not in the catalog (" + catalog + "): known models are " +
                known + "; or give the path of an .onnx file");
  }
  throw Error("model '" + model + "' is in the catalog but not fetched yet (no " + cached + "): " +
              fetch + ", or give the path of an .onnx file");
}

}  // namespace unetseg
