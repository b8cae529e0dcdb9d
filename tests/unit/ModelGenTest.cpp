//===- ModelGenTest.cpp - Model generator, statistics and expansion -------===//
//
// The generator's parameter counts are checked against a closed-form count
// written here independently, and the expansion against the shared capacity
// formula.
//
//===----------------------------------------------------------------------===//
#include "compiler/InitAll.h"
#include "compiler/ModelBuilder.h"
#include "compiler/ModelStats.h"
#include "dialects/Moe/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "moert/GateCapacity.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace mlir::moe;

namespace {

ModelConfig loadConfig(StringRef name) {
  std::string path = std::string(MOE_SOURCE_DIR) + "/models/" + name.str();
  auto buffer = llvm::MemoryBuffer::getFile(path);
  EXPECT_TRUE(static_cast<bool>(buffer)) << path;
  auto config = parseModelConfig((*buffer)->getBuffer(), path);
  EXPECT_TRUE(static_cast<bool>(config)) << llvm::toString(config.takeError());
  return *config;
}

/// Parameters of the model described by `c`, counted from the architecture.
struct ExpectedCounts {
  int64_t dense = 0, expert = 0, tensors = 0;
};
ExpectedCounts countByHand(const ModelConfig &c) {
  int64_t m = c.modelDim, e = c.numExperts, h = c.expertHiddenDim();
  ExpectedCounts n;
  auto add = [&](int64_t elements, int64_t tensors) {
    n.dense += elements;
    n.tensors += tensors;
  };
  add(c.vocabSize * m, 1); // shared embedding table
  if (!c.tieEmbeddings)
    add(m * c.vocabSize, 1);
  auto attention = [&] { add(4 * (m * m + m), 8); };
  auto norm = [&] { add(2 * m, 2); };
  auto ffn = [&](int64_t layer) {
    if (c.isMoeLayer(layer)) {
      add(m * e, 1); // gate
      n.expert += e * (m * h + h + h * m + m);
      n.tensors += 4;
    } else {
      add(m * c.ffnHidden + c.ffnHidden + c.ffnHidden * m + m, 4);
    }
  };
  for (int64_t l = 0; l < c.encoderLayers; ++l) {
    norm();
    attention();
    norm();
    ffn(l);
  }
  norm(); // encoder final norm
  for (int64_t l = 0; l < c.decoderLayers; ++l) {
    norm();
    attention();
    norm();
    attention();
    norm();
    ffn(l);
  }
  norm(); // decoder final norm
  return n;
}

class ModelGenTest : public ::testing::Test {
protected:
  ModelGenTest() {
    DialectRegistry registry;
    registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
  }
  func::FuncOp forward(ModuleOp module) {
    return module.lookupSymbol<func::FuncOp>("forward");
  }
  MLIRContext context;
};

TEST_F(ModelGenTest, DemoModelCountsMatchArchitecture) {
  ModelConfig config = loadConfig("demo.json");
  OwningOpRef<ModuleOp> module = buildModel(context, config);
  ASSERT_TRUE(succeeded(verify(*module)));
  ParamStats stats = computeParamStats(forward(*module));
  ExpectedCounts expected = countByHand(config);
  EXPECT_EQ(stats.denseElements, expected.dense);
  EXPECT_EQ(stats.expertElements, expected.expert);
  EXPECT_EQ(stats.numParams, expected.tensors);
  EXPECT_EQ(stats.moeLayers, 2);
  EXPECT_EQ(stats.numExperts, 8);
  EXPECT_EQ(stats.topK, 2);
  // Active: dense + k/E of the experts.
  EXPECT_DOUBLE_EQ(stats.activeElements,
                   expected.dense + expected.expert * 2.0 / 8.0);
}

TEST_F(ModelGenTest, ZcodeM3CountsMatchArchitecture) {
  ModelConfig config = loadConfig("zcode-m3.json");
  OwningOpRef<ModuleOp> module = buildModel(context, config);
  ASSERT_TRUE(succeeded(verify(*module)));
  ParamStats stats = computeParamStats(forward(*module));
  ExpectedCounts expected = countByHand(config);
  EXPECT_EQ(stats.denseElements, expected.dense);
  EXPECT_EQ(stats.expertElements, expected.expert);
  EXPECT_EQ(stats.moeLayers, 18); // every other of 24 + 12 layers
  EXPECT_EQ(stats.numExperts, 64);
  // The paper's model is the ~10B-parameter Z-code M3.
  EXPECT_GT(stats.totalElements, 10'000'000'000);
  EXPECT_LT(stats.totalElements, 11'000'000'000);
}

TEST_F(ModelGenTest, GenerationIsDeterministic) {
  ModelConfig config = loadConfig("demo.json");
  auto text = [&] {
    OwningOpRef<ModuleOp> module = buildModel(context, config);
    std::string out;
    llvm::raw_string_ostream os(out);
    module->print(os);
    return out;
  };
  EXPECT_EQ(text(), text());
}

TEST_F(ModelGenTest, ExpansionInfersCapacityPerLayer) {
  ModelConfig config = loadConfig("demo.json");
  OwningOpRef<ModuleOp> module = buildModel(context, config);
  PassManager pm(&context);
  pm.addPass(createMoeExpandMoeLayer());
  ASSERT_TRUE(succeeded(pm.run(*module)));
  int64_t gates = 0;
  module->walk([&](MoeLayerOp) { ADD_FAILURE() << "moe_layer left over"; });
  module->walk([&](DispatchOp dispatch) {
    ++gates;
    auto type = cast<RankedTensorType>(dispatch.getType());
    int64_t tokens = config.batchSize * config.srcLen; // srcLen == tgtLen
    EXPECT_EQ(type.getShape()[0], config.numExperts);
    EXPECT_EQ(type.getShape()[1],
              moert::groupedExpertCapacity(
                  tokens, config.gating.groups, config.numExperts,
                  config.gating.topK, config.gating.capacityFactor,
                  config.gating.minCapacity, true));
    EXPECT_EQ(type.getShape()[2], config.modelDim);
  });
  EXPECT_EQ(gates, 2);
  EXPECT_TRUE(succeeded(verify(*module)));
}

TEST(ModelConfigTest, ErrorsNameKeyExpectationAndFinding) {
  struct Case {
    const char *json;
    const char *message;
  } cases[] = {
      {"{\"vocab_size\": \"many\"}",
       "key \"vocab_size\" expects an integer, found \"many\""},
      {"{\"bogus\": 1}", "unknown key \"bogus\""},
      {"{", "not valid JSON"},
      {"{\"vocab_size\": 8, \"d_model\": 6, \"num_heads\": 4, \"ffn_hidden\": "
       "4, \"encoder_layers\": 1, \"decoder_layers\": 1, \"batch_size\": 1, "
       "\"src_len\": 2, \"tgt_len\": 2}",
       "\"d_model\" (6) must be divisible by \"num_heads\" (4)"},
      {"{\"vocab_size\": 8, \"d_model\": 8, \"num_heads\": 4, \"ffn_hidden\": "
       "4, \"encoder_layers\": 1, \"decoder_layers\": 1, \"batch_size\": 1, "
       "\"src_len\": 2, \"tgt_len\": 2, \"moe\": {\"num_experts\": 2, "
       "\"every\": 2, \"offset\": 2}}",
       "\"offset\" in [0, every)"},
      {"{\"vocab_size\": 8, \"d_model\": 8, \"num_heads\": 4, \"ffn_hidden\": "
       "4, \"encoder_layers\": 1, \"decoder_layers\": 1, \"batch_size\": 1, "
       "\"src_len\": 2, \"tgt_len\": 2, \"dropout\": 1.0}",
       "\"dropout\" must be in [0, 1), found 1"},
  };
  for (const Case &c : cases) {
    auto config = parseModelConfig(c.json, "test.json");
    ASSERT_FALSE(static_cast<bool>(config)) << c.json;
    std::string message = llvm::toString(config.takeError());
    EXPECT_NE(message.find(c.message), std::string::npos)
        << c.json << " gave: " << message;
    EXPECT_EQ(message.rfind("test.json", 0), 0u) << message;
  }
}

// The model-config fuzzer's seeds (fuzz/corpus/model-config) parse; every
// committed regression input (fuzz/regressions/model-config) gives an error
// or a configuration that validates. Replayed in every build.
TEST(ModelConfigTest, FuzzCorpusReplays) {
  std::error_code ec;
  int seeds = 0;
  for (const char *kind : {"corpus", "regressions"}) {
    std::string directory =
        std::string(MOE_SOURCE_DIR) + "/fuzz/" + kind + "/model-config";
    for (llvm::sys::fs::directory_iterator it(directory, ec), end;
         !ec && it != end; it.increment(ec)) {
      auto buffer = llvm::MemoryBuffer::getFile(it->path());
      ASSERT_TRUE(static_cast<bool>(buffer)) << it->path();
      auto config = parseModelConfig((*buffer)->getBuffer(), it->path());
      if (std::string(kind) == "corpus") {
        ++seeds;
        EXPECT_TRUE(static_cast<bool>(config))
            << it->path() << ": " << llvm::toString(config.takeError());
      } else if (config) {
        EXPECT_FALSE(
            static_cast<bool>(validateModelConfig(*config, it->path())))
            << it->path();
      } else {
        EXPECT_FALSE(llvm::toString(config.takeError()).empty());
      }
      if (!config)
        llvm::consumeError(config.takeError());
    }
  }
  EXPECT_GE(seeds, 5);
}

} // namespace
