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

#include <algorithm>
#include <random>
#include <vector>

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

/// First fit by its definition, independent of the planner's index: for
/// each buffer in order, the placed buffers whose lifetimes overlap its own,
/// sorted by offset, swept for the first gap that holds it.
std::vector<int64_t> referenceFirstFit(ArrayRef<BufferAssignment> buffers,
                                       ArrayRef<unsigned> order) {
  std::vector<int64_t> offsets(buffers.size(), -1);
  std::vector<unsigned> placed;
  for (unsigned i : order) {
    const BufferAssignment &b = buffers[i];
    std::vector<std::pair<int64_t, int64_t>> busy; // [offset, end)
    for (unsigned j : placed)
      if (!(buffers[j].lastUse < b.firstUse || b.lastUse < buffers[j].firstUse))
        busy.push_back({offsets[j], offsets[j] + buffers[j].size});
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (auto [begin, end] : busy) {
      if (offset + b.size <= begin)
        break;
      offset = std::max(offset, end);
    }
    offsets[i] = offset;
    placed.push_back(i);
  }
  return offsets;
}

/// Largest first, then by first use: the order planMemory places in.
std::vector<unsigned> largestFirst(ArrayRef<BufferAssignment> buffers) {
  std::vector<unsigned> order(buffers.size());
  for (unsigned i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](unsigned a, unsigned b) {
    if (buffers[a].size != buffers[b].size)
      return buffers[a].size > buffers[b].size;
    return buffers[a].firstUse < buffers[b].firstUse;
  });
  return order;
}

TEST_F(MemoryPlanTest, PlacementIsFirstFitOnTheTrainingStep) {
  OwningOpRef<ModuleOp> module = compileDemo();
  auto trainStep = module->lookupSymbol<func::FuncOp>("train_step");
  MemoryPlan plan = planMemory(trainStep, 64);
  std::vector<int64_t> want =
      referenceFirstFit(plan.buffers, largestFirst(plan.buffers));
  for (size_t i = 0; i < plan.buffers.size(); ++i)
    ASSERT_EQ(plan.buffers[i].offset, want[i]) << "buffer " << i;
}

TEST(FirstFit, EqualsTheDefinitionOnRandomLifetimes) {
  // Layered lifetimes as a training step has them (activations live from
  // the forward to the backward pass, nested; short temporaries), plus
  // arbitrary intervals, over several size classes and placement orders.
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t positions = 50 + trial * 40;
    std::vector<BufferAssignment> buffers;
    std::uniform_int_distribution<int64_t> at(0, positions - 1),
        sizeClass(0, 4), shortLife(0, 3);
    for (int i = 0; i < 15 * (trial + 2); ++i) {
      BufferAssignment b;
      b.size = int64_t{64} << sizeClass(rng);
      if (i % 4 == 0) {
        b.size += 64 * shortLife(rng); // sizes that are not powers of two
      }
      int64_t f = at(rng);
      switch (i % 3) {
      case 0: // nested: forward to the mirrored backward position
        b.firstUse = std::min(f, positions - 1 - f);
        b.lastUse = std::max(f, positions - 1 - f);
        break;
      case 1: // short
        b.firstUse = f;
        b.lastUse = std::min(positions - 1, f + shortLife(rng));
        break;
      default: // anything
        b.firstUse = std::min(f, at(rng));
        b.lastUse = std::max(f, at(rng));
        if (b.lastUse < b.firstUse)
          std::swap(b.firstUse, b.lastUse);
      }
      buffers.push_back(b);
    }
    std::vector<unsigned> order = largestFirst(buffers);
    if (trial % 2) // also an order that is not by size
      std::shuffle(order.begin(), order.end(), rng);
    placeFirstFit(buffers, order);
    std::vector<int64_t> want = referenceFirstFit(buffers, order);
    for (size_t i = 0; i < buffers.size(); ++i)
      ASSERT_EQ(buffers[i].offset, want[i])
          << "trial " << trial << ", buffer " << i;
  }
}

} // namespace
