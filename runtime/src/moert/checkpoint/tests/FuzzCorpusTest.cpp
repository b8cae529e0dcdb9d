//===- FuzzCorpusTest.cpp - Replays the committed checkpoint fuzz inputs --===//
//
// The safetensors fuzzer's seeds (fuzz/corpus/safetensors: checkpoints
// written by moe-train and small crafted files) must open; every committed
// regression input (fuzz/regressions/safetensors) must give a Status or a
// checkpoint whose tensors lie inside the file. Replayed in every build.
//
//===----------------------------------------------------------------------===//
#include "moert/checkpoint/Safetensors.h"

#include "FuzzInputs.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using namespace moert::checkpoint;

using moe::fuzz::filesIn;
using moe::fuzz::readBytes;

void checkTensorsInside(const Checkpoint &checkpoint, size_t fileSize,
                        const std::string &path) {
  for (const std::string &name : checkpoint.tensorNames()) {
    auto view = checkpoint.tensor(name);
    ASSERT_TRUE(view.ok()) << path << ": " << name;
    EXPECT_EQ(static_cast<size_t>(view->numElements()) * dtypeSize(view->dtype),
              view->bytes)
        << path << ": " << name;
    EXPECT_LE(view->bytes, fileSize) << path << ": " << name;
  }
}

TEST(SafetensorsFuzzCorpus, SeedCheckpointsOpen) {
  std::vector<std::string> seeds =
      filesIn(std::string(MOE_FUZZ_DIR) + "/corpus/safetensors");
  ASSERT_GE(seeds.size(), 3u) << MOE_FUZZ_DIR;
  for (const std::string &path : seeds) {
    std::vector<uint8_t> bytes = readBytes(path);
    size_t size = bytes.size();
    auto checkpoint = Checkpoint::fromBytes(std::move(bytes), path);
    ASSERT_TRUE(checkpoint.ok())
        << path << ": " << checkpoint.status().toString();
    checkTensorsInside(*checkpoint, size, path);
  }
}

TEST(SafetensorsFuzzCorpus, RegressionInputsGiveAStatus) {
  for (const std::string &path :
       filesIn(std::string(MOE_FUZZ_DIR) + "/regressions/safetensors")) {
    std::vector<uint8_t> bytes = readBytes(path);
    size_t size = bytes.size();
    auto checkpoint = Checkpoint::fromBytes(std::move(bytes), path);
    if (checkpoint.ok())
      checkTensorsInside(*checkpoint, size, path);
    else
      EXPECT_FALSE(checkpoint.status().toString().empty()) << path;
  }
}

} // namespace
