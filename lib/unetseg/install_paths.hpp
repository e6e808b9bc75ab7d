// Where this copy of unetseg runs from, and where its data lies: the build tree (data in the
// source tree it was built from) or an installed prefix (data in PREFIX/share/unetseg).
//
// An installed copy finds its prefix from its own file (the plugin's .so, a tool's executable),
// so that a prefix that was moved, or a `meson install --destdir` staging, finds its own data;
// where the file is not where meson installed it, the prefix given to meson is used.
#pragma once

#include <string>
#include <vector>

namespace unetseg {

// True when the code runs from a file under the build directory it was built in.
bool running_from_build_tree();

// An absolute install directory meson was told (e.g. PREFIX/share), as this copy sees it: moved
// along with the prefix when the plugin or tool lies below a prefix other than meson's.
std::string installed_dir(const std::string& configured);

// The data directory of an installed unetseg: PREFIX/share/unetseg (as installed_dir sees it).
std::string data_dir();

// The model catalog this copy reads: the source tree's models/catalog.toml from the build tree,
// else DATA_DIR/catalog.toml. "" when it cannot be read.
std::string catalog_path();

// The names of the [[model]] tables of a catalog (their `name = "..."` lines; nothing else of
// the TOML is read). Empty when the file cannot be read.
std::vector<std::string> catalog_names(const std::string& path);

}  // namespace unetseg
