//===- MemoryPlanTest.cpp - Arena plan invariants on real training steps --===//
#include "compiler/MemoryPlan.h"
#include "compiler/InitAll.h"
#include "compiler/ModelBuilder.h"
#include "compiler/Pipelines.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace mlir::moe;

namespace {

class MemoryPlanTest : public ::testing::Test {
protected:
  MemoryPlanTest() {
    DialectRegistry registry;
    registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
  }

  /// The demo model compiled to @train_step.
  OwningOpRef<ModuleOp> compileDemo() {
    std::string path = std::string(MOE_SOURCE_DIR) + "/models/demo.json";
    auto buffer = llvm::MemoryBuffer::getFile(path);
    EXPECT_TRUE(static_cast<bool>(buffer));
    auto config = parseModelConfig((*buffer)->getBuffer(), path);
    EXPECT_TRUE(static_cast<bool>(config));
    OwningOpRef<ModuleOp> module = buildModel(context, *config);
    PassManager pm(&context);
    buildTrainingPipeline(pm, TrainingPipelineOptions());
    EXPECT_TRUE(succeeded(pm.run(*module)));
    return module;
  }

  /// Checks the plan independently of how it was made: every buffer in the
  /// arena and aligned, no two buffers live at the same time share a byte.
  void checkInvariants(const MemoryPlan &plan, int64_t alignment) {
    for (const BufferAssignment &b : plan.buffers) {
      EXPECT_EQ(b.offset % alignment, 0);
      EXPECT_GE(b.size, tensorBytes(b.value.getType()));
      EXPECT_LE(b.offset + b.size, plan.arenaBytes);
      EXPECT_LE(b.firstUse, b.lastUse);
    }
    int64_t collisions = 0;
    for (size_t i = 0; i < plan.buffers.size(); ++i)
      for (size_t j = i + 1; j < plan.buffers.size(); ++j) {
        const BufferAssignment &a = plan.buffers[i], &b = plan.buffers[j];
        bool liveTogether = !(a.lastUse < b.firstUse || b.lastUse < a.firstUse);
        bool shareBytes =
            a.offset < b.offset + b.size && b.offset < a.offset + a.size;
        collisions += liveTogether && shareBytes;
      }
    EXPECT_EQ(collisions, 0);
    EXPECT_GE(plan.arenaBytes, plan.liveLowerBound);
    EXPECT_LE(plan.arenaBytes, plan.unsharedBytes);
  }

  MLIRContext context;
};

TEST_F(MemoryPlanTest, TrainStepPlanIsValidAndReusesMemory) {
  OwningOpRef<ModuleOp> module = compileDemo();
  auto trainStep = module->lookupSymbol<func::FuncOp>("train_step");
  ASSERT_TRUE(trainStep);
  MemoryPlan plan = planMemory(trainStep, 64);
  ASSERT_GT(plan.buffers.size(), 100u);
  checkInvariants(plan, 64);
  // Reuse must actually happen on a training step.
  EXPECT_LT(plan.arenaBytes, plan.unsharedBytes * 3 / 4);
}

TEST_F(MemoryPlanTest, EveryFunctionAndAlignment) {
  OwningOpRef<ModuleOp> module = compileDemo();
  for (int64_t alignment : {1, 64, 4096})
    module->walk([&](func::FuncOp func) {
      checkInvariants(planMemory(func, alignment), alignment);
    });
}

TEST_F(MemoryPlanTest, ArgumentsAreNotInTheArena) {
  OwningOpRef<ModuleOp> module = compileDemo();
  auto trainStep = module->lookupSymbol<func::FuncOp>("train_step");
  MemoryPlan plan = planMemory(trainStep, 64);
  int64_t expected = 0;
  for (Type t : trainStep.getArgumentTypes())
    expected += tensorBytes(t);
  EXPECT_EQ(plan.argumentBytes, expected);
  for (const BufferAssignment &b : plan.buffers)
    EXPECT_FALSE(isa<BlockArgument>(b.value));
}

} // namespace
