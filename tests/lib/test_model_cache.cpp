#include <gtest/gtest.h>

#include <cstdlib>

#include "test_paths.hpp"
#include "unetseg/error.hpp"
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
    EXPECT_NE(msg.find("scripts/fetch-model.sh portrait-unet"), std::string::npos) << msg;
    EXPECT_NE(msg.find(dir.path() + "/unetseg/models/portrait-unet.onnx"), std::string::npos) << msg;
  }
  ASSERT_EQ(std::system(("mkdir -p '" + dir.path() + "/unetseg/models' && touch '" + dir.path() +
                         "/unetseg/models/portrait-unet.onnx'").c_str()), 0);
  EXPECT_EQ(resolve_model("portrait-unet"), dir.path() + "/unetseg/models/portrait-unet.onnx");
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
