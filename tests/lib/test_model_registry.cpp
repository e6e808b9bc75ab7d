// ModelRegistry: who shares a model. Same file, backend and instance id: one worker while any
// holder lives; anything else, or a file rewritten meanwhile: a worker of its own.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_paths.hpp"
#include "unetseg/error.hpp"
#include "unetseg/model_registry.hpp"

using namespace unetseg;
using unetseg_test::test_model;
namespace fs = std::filesystem;

TEST(ModelRegistry, TheSameModelBackendAndIdShareOneWorker) {
  ModelRegistry registry;
  const ModelWorker::Options o;
  auto a = registry.acquire(test_model("unet_rg"), Backend::Cpu, "", o);
  auto b = registry.acquire(test_model("unet_rg"), Backend::Cpu, "", o);
  EXPECT_EQ(a, b);
  // The same file by another spelling of its path is the same model.
  const std::string dotted = fs::path(test_model("unet_rg")).parent_path().string() +
                             "/./unet_rg.onnx";
  EXPECT_EQ(registry.acquire(dotted, Backend::Cpu, "", o), a);
  EXPECT_NE(registry.acquire(test_model("unet_rg"), Backend::Cpu, "cameras-2", o), a)
      << "another instance id";
  EXPECT_NE(registry.acquire(test_model("unet_rg"), Backend::Auto, "", o), a)
      << "another backend";
  EXPECT_NE(registry.acquire(test_model("logit_rg"), Backend::Cpu, "", o), a)
      << "another model";
}

TEST(ModelRegistry, AWorkerEndsWithItsLastHolder) {
  ModelRegistry registry;
  const ModelWorker::Options o;
  auto a = registry.acquire(test_model("unet_rg"), Backend::Cpu, "", o);
  std::weak_ptr<ModelWorker> weak = a;
  EXPECT_EQ(registry.size(), 1u);
  a.reset();
  EXPECT_TRUE(weak.expired()) << "the registry must not keep a model alive";
  EXPECT_EQ(registry.size(), 0u);
  EXPECT_NE(registry.acquire(test_model("unet_rg"), Backend::Cpu, "", o), nullptr);
}

TEST(ModelRegistry, TheFirstHolderDecidesTheBatchingAndLaterOnesAreTold) {
  ModelRegistry registry;
  ModelWorker::Options first, other;
  first.batch_size = 2;
  other.batch_size = 4;
  other.batch_timeout_ms = 5;
  std::string note = "stale";
  auto a = registry.acquire(test_model("batch_rg"), Backend::Cpu, "", first, &note);
  EXPECT_EQ(note, "");
  auto b = registry.acquire(test_model("batch_rg"), Backend::Cpu, "", other, &note);
  EXPECT_EQ(a, b);
  EXPECT_EQ(b->options().batch_size, 2);
  EXPECT_NE(note.find("batch-size=4"), std::string::npos) << note;
  EXPECT_NE(note.find("batch-size=2"), std::string::npos) << note;
  registry.acquire(test_model("batch_rg"), Backend::Cpu, "", first, &note);
  EXPECT_EQ(note, "");
  other.batch_size = 0;
  EXPECT_THROW(registry.acquire(test_model("batch_rg"), Backend::Cpu, "", other), Error);
}

TEST(ModelRegistry, AModelRewrittenInPlaceLoadsAfresh) {
  const fs::path dir = fs::temp_directory_path() / ("unetseg-registry-" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (const char* ext : {".onnx", ".json"})
    fs::copy_file(fs::path(test_model("unet_rg")).replace_extension(ext),
                  dir / (std::string("m") + ext), fs::copy_options::overwrite_existing);
  ModelRegistry registry;
  const ModelWorker::Options o;
  auto a = registry.acquire((dir / "m.onnx").string(), Backend::Cpu, "", o);
  // Another model under the same name (a newer export copied over the old one).
  fs::copy_file(test_model("logit_rg"), dir / "m.onnx", fs::copy_options::overwrite_existing);
  fs::copy_file(fs::path(test_model("logit_rg")).replace_extension(".json"), dir / "m.json",
                fs::copy_options::overwrite_existing);
  auto b = registry.acquire((dir / "m.onnx").string(), Backend::Cpu, "", o);
  EXPECT_NE(a, b);
  EXPECT_EQ(b->segmenter().spec().output_kind, OutputKind::Logit);
  fs::remove_all(dir);
}

TEST(ModelRegistry, ABadModelIsAnErrorNamingIt) {
  ModelRegistry registry;
  try {
    registry.acquire("/nonexistent/model.onnx", Backend::Cpu, "", ModelWorker::Options());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.onnx"), std::string::npos) << e.what();
  }
  EXPECT_EQ(registry.size(), 0u);
}
