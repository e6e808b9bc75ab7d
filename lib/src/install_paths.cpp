#include "unetseg/install_paths.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>

// Set by lib/meson.build: meson's prefix and install directories (absolute), the build and
// source roots.
#ifndef UNETSEG_CONF_PREFIX
#error "UNETSEG_CONF_* come from lib/meson.build"
#endif

namespace unetseg {

namespace {

std::string real_path(const std::string& path) {
  char* real = realpath(path.c_str(), nullptr);
  if (!real) return path;
  std::string out = real;
  std::free(real);
  return out;
}

// The file this code was linked into: the plugin's .so, or a tool's (or test's) executable.
std::string this_object() {
  Dl_info info{};
  // For the main program dladdr names argv[0], which may be a bare name: /proc/self/exe then.
  if (dladdr(reinterpret_cast<void*>(&this_object), &info) && info.dli_fname &&
      std::strstr(info.dli_fname, ".so"))
    return real_path(info.dli_fname);
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  return n > 0 ? std::string(exe, static_cast<size_t>(n)) : std::string();
}

bool starts_with_dir(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool readable(const std::string& path) { return !path.empty() && access(path.c_str(), R_OK) == 0; }

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

}  // namespace

bool running_from_build_tree() {
  return starts_with_dir(this_object(), real_path(UNETSEG_CONF_BUILD_ROOT));
}

std::string installed_dir(const std::string& configured) {
  const std::string prefix = UNETSEG_CONF_PREFIX;
  if (!starts_with_dir(configured, prefix)) return configured;
  const std::string object = this_object();
  const std::string here = object.substr(0, object.rfind('/'));
  // The plugin lies in PREFIX/<libdir>/gstreamer-1.0, the tools in PREFIX/<bindir>.
  for (const std::string dir : {UNETSEG_CONF_PLUGINDIR, UNETSEG_CONF_BINDIR}) {
    if (!starts_with_dir(dir, prefix)) continue;
    const std::string below = dir.substr(prefix.size());
    if (ends_with(here, below) && here.size() > below.size())
      return here.substr(0, here.size() - below.size()) + configured.substr(prefix.size());
  }
  return configured;
}

std::string data_dir() { return installed_dir(UNETSEG_CONF_DATADIR) + "/unetseg"; }

std::string catalog_path() {
  const std::string path = running_from_build_tree()
                               ? std::string(UNETSEG_CONF_SOURCE_ROOT) + "/models/catalog.toml"
                               : data_dir() + "/catalog.toml";
  return readable(path) ? path : "";
}

std::vector<std::string> catalog_names(const std::string& path) {
  std::vector<std::string> names;
  std::ifstream in(path);
  bool in_model = false;  // inside a [[model]] table (not one of its sub-tables)
  for (std::string line; std::getline(in, line);) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[') {
      std::string header = line.substr(0, line.find('#'));
      header.erase(std::remove_if(header.begin(), header.end(), [](char c) { return c == ' ' || c == '\t'; }),
                   header.end());
      in_model = header == "[[model]]";
      continue;
    }
    if (!in_model || line.compare(0, 4, "name") != 0) continue;
    const std::string rest = trim(line.substr(4));
    if (rest.empty() || rest[0] != '=') continue;
    const std::string value = trim(rest.substr(1));
    if (value.size() < 2 || (value[0] != '"' && value[0] != '\'')) continue;
    const auto close = value.find(value[0], 1);
    if (close == std::string::npos || close == 1) continue;
    const std::string name = value.substr(1, close - 1);
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return names;
}

}  // namespace unetseg
