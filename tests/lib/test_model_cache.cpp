#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "test_paths.hpp"
#include "unetseg/error.hpp"
#include "unetseg/install_paths.hpp"
#include "unetseg/model_cache.hpp"

using namespace unetseg;

namespace {
// Sets an environment variable for one test, restoring it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value, bool set = true) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (set)
      setenv(name, value.c_str(), 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() { had_ ? setenv(name_, old_.c_str(), 1) : unsetenv(name_); }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};
}  // namespace

TEST(ModelCache, PathsAndNames) {
  EXPECT_TRUE(is_catalog_name("portrait-unet"));
  EXPECT_TRUE(is_catalog_name("isnet-320"));
  EXPECT_FALSE(is_catalog_name("sinet.onnx"));
  EXPECT_FALSE(is_catalog_name("./sinet"));
  EXPECT_FALSE(is_catalog_name("/models/x"));
  EXPECT_FALSE(is_catalog_name(""));
}

TEST(ModelCache, FollowsXdgCacheHome) {
  {
    ScopedEnv xdg("XDG_CACHE_HOME", "/somewhere/cache");
    EXPECT_EQ(model_cache_dir(), "/somewhere/cache/unetseg/models");
  }
  ScopedEnv xdg("XDG_CACHE_HOME", "");  // unset or empty: ~/.cache
  ScopedEnv home("HOME", "/home/user");
  EXPECT_EQ(model_cache_dir(), "/home/user/.cache/unetseg/models");
}

TEST(ModelCache, ResolvesCachedNamesAndSaysHowToFetchMissingOnes) {
  unetseg_test::TempDir dir;
  ScopedEnv xdg("XDG_CACHE_HOME", dir.path());
  EXPECT_EQ(resolve_model("/abs/model.onnx"), "/abs/model.onnx");
  EXPECT_EQ(resolve_model("rel.onnx"), "rel.onnx");
  try {
    resolve_model("portrait-unet");
    FAIL() << "a name not in the cache must throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'portrait-unet' is in the catalog but not fetched yet"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("`unetseg-models fetch portrait-unet`"), std::string::npos) << msg;
    EXPECT_NE(msg.find("`scripts/fetch-model.sh portrait-unet`"), std::string::npos) << msg;
    EXPECT_NE(msg.find(dir.path() + "/unetseg/models/portrait-unet.onnx"), std::string::npos) << msg;
  }
  ASSERT_EQ(std::system(("mkdir -p '" + dir.path() + "/unetseg/models' && touch '" + dir.path() +
                         "/unetseg/models/portrait-unet.onnx'").c_str()), 0);
  EXPECT_EQ(resolve_model("portrait-unet"), dir.path() + "/unetseg/models/portrait-unet.onnx");
  // A model put in the cache by hand is found by its name, catalog or not.
  ASSERT_EQ(std::system(("touch '" + dir.path() + "/unetseg/models/mine.onnx'").c_str()), 0);
  EXPECT_EQ(resolve_model("mine"), dir.path() + "/unetseg/models/mine.onnx");
}

// A typo is not "not fetched yet": the error lists the catalog's names, and offers no fetch.
TEST(ModelCache, UnknownNameListsTheCatalog) {
  unetseg_test::TempDir dir;
  ScopedEnv xdg("XDG_CACHE_HOME", dir.path());
  try {
    resolve_model("portrait-unte");
    FAIL() << "an unknown name must throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'portrait-unte' is not in the catalog (" +
                       unetseg_test::source_path("models/catalog.toml") + "): known models are "),
              std::string::npos) << msg;
    for (const char* name : {"isnet-320", "portrait-unet", "sinet", "selfie"})
      EXPECT_NE(msg.find(name), std::string::npos) << name << " missing in: " << msg;
    EXPECT_EQ(msg.find("fetch"), std::string::npos) << msg;
  }
}

// From the build tree the catalog is the source tree's; installed it is DATA_DIR/catalog.toml
// (tests/install/test_install.sh checks that side).
TEST(ModelCache, CatalogOfTheBuildTree) {
  EXPECT_TRUE(running_from_build_tree());
  EXPECT_EQ(catalog_path(), unetseg_test::source_path("models/catalog.toml"));
  const std::vector<std::string> names = catalog_names(catalog_path());
  ASSERT_GE(names.size(), 5u);
  EXPECT_EQ(names.front(), "isnet-320");
  for (const char* name : {"sinet", "portrait-unet", "rvm"})
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  // The sidecars' own `name` keys ([model.sidecar], [model.sidecar.input]) are not models.
  for (const char* not_a_model : {"input_1", "activation_10", "src", "pha"})
    EXPECT_EQ(std::find(names.begin(), names.end(), not_a_model), names.end()) << not_a_model;
}

// Only the `name = "..."` lines of [[model]] tables count, however the TOML is spaced.
TEST(ModelCache, CatalogNamesReadsOnlyModelTables) {
  unetseg_test::TempDir dir;
  unetseg_test::write_file(dir.file("c.toml"), R"(# name = "comment"
format = 1
name = "top-level"
[[model]]
name = "a"   # trailing comment
namespace = "not-a-name"
[model.sidecar]
name = "sidecar-name"
[model.sidecar.input]
name = "input"
[[ model ]]
  name='b'
[[model]]  # with a comment
name="c"
[other]
name = "other"
[[model]]
description = "no name"
[[model]]
name = "a"
name = ""
)");
  EXPECT_EQ(catalog_names(dir.file("c.toml")), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(catalog_names(dir.file("absent.toml")).empty());
}

// Without an absolute XDG_CACHE_HOME or HOME there is no cache: never /tmp, where another user
// could plant "portrait-unet.onnx" for the element to load.
TEST(ModelCache, NoHomeMeansNoCacheNotTmp) {
  ScopedEnv xdg("XDG_CACHE_HOME", "", false);
  ScopedEnv home("HOME", "", false);
  for (const auto& call : {+[] { model_cache_dir(); }, +[] { resolve_model("portrait-unet"); }}) {
    try {
      call();
      FAIL() << "must throw";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("XDG_CACHE_HOME"), std::string::npos) << msg;
      EXPECT_NE(msg.find("HOME"), std::string::npos) << msg;
      EXPECT_EQ(msg.find("/tmp"), std::string::npos) << msg;
    }
  }
  EXPECT_EQ(resolve_model("/abs/model.onnx"), "/abs/model.onnx") << "paths need no cache";
  ScopedEnv relative("XDG_CACHE_HOME", "relative/cache");  // invalid: ignored, as the spec says
  EXPECT_THROW(model_cache_dir(), Error);
  ScopedEnv with_home("HOME", "/home/user");
  EXPECT_EQ(model_cache_dir(), "/home/user/.cache/unetseg/models");
}
