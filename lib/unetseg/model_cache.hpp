// Where catalog models live once fetched, and how a `model` setting names one.
#pragma once

#include <string>

namespace unetseg {

// ${XDG_CACHE_HOME:-$HOME/.cache}/unetseg/models: `unetseg-models fetch` (in a source tree
// also scripts/fetch-model.sh) writes NAME.onnx and NAME.json there. A relative XDG_CACHE_HOME
// is ignored (as the XDG spec says); with neither an absolute XDG_CACHE_HOME nor an absolute
// HOME it throws unetseg::Error naming both (no fallback to a shared directory such as /tmp).
std::string model_cache_dir();

// A `model` setting is a path when it contains '/' or ends in ".onnx", else a catalog name.
bool is_catalog_name(const std::string& model);

// The .onnx file a `model` setting means: the path itself, or the cached model of that name.
// Throws unetseg::Error for a name that is not in the cache: for one of the catalog's names
// (catalog_path()) saying the command that fetches it, for any other name listing the
// catalog's names.
std::string resolve_model(const std::string& model);

}  // namespace unetseg
