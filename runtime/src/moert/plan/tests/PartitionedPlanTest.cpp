//===- PartitionedPlanTest.cpp - Loader checks of schema 1.1 additions ----===//
//
// What partitioning adds to a plan: the optimizer state's own sharding
// (ZeRO), all_slice, increasing collective axes, `shard_axes` on dropout and
// the gate, and the small kernels token_count, bias_add, mul and div. A
// plan using all of them loads; each test then breaks one thing and checks
// the message.
//
//===----------------------------------------------------------------------===//

#include "SmallPlan.h"

#include "moert/plan/PlanDump.h"
#include "moert/plan/PlanLoader.h"

#include <gtest/gtest.h>

namespace moert::plan {
namespace {

using testing::makeSmallPlan;
using testing::SmallPlanIds;

struct PartitionedIds {
  SmallPlanIds small;
  int expAvg, expAvgSq;
  int slice, labels, count, biasIn, bias, biased, product, dropped;
  int sliceInstruction, countInstruction, biasInstruction, mulInstruction,
      dropoutInstruction;
};

/// The small plan (dp=2 x ep=2 x tp=1) plus: AdamW moments of the expert
/// weight partitioned further over dp (ZeRO), an all_slice over dp, a
/// token_count, a bias_add, a mul and a dropout with shard_axes.
PlanWriter makePartitionedPlan(PartitionedIds *ids = nullptr) {
  PartitionedIds local;
  PlanWriter writer = makeSmallPlan(&local.small);
  const int dp = local.small.dp, ep = local.small.ep;
  // Expert weight [4, 16, 32] split over ep: [2, 16, 32]; its moments also
  // over dp on dimension 1: [2, 8, 32].
  local.expAvg = writer.addPersistentBuffer({2, 8, 32}, fb::DType::f32,
                                            "expert.w1.exp_avg");
  local.expAvgSq = writer.addPersistentBuffer({2, 8, 32}, fb::DType::f32,
                                              "expert.w1.exp_avg_sq");
  fb::ParameterT &expert = *writer.mutablePlan().parameters[1];
  expert.exp_avg_buffer = local.expAvg;
  expert.exp_avg_sq_buffer = local.expAvgSq;
  auto dims = [](std::vector<std::vector<int>> spec) {
    std::vector<std::unique_ptr<fb::DimShardingT>> out;
    for (const std::vector<int> &axes : spec) {
      auto dim = std::make_unique<fb::DimShardingT>();
      for (int axis : axes)
        dim->axes.push_back(static_cast<uint8_t>(axis));
      out.push_back(std::move(dim));
    }
    return out;
  };
  expert.state_sharding = dims({{ep}, {dp}, {}});

  uint64_t offset = 3840; // after the small plan's arena buffers
  auto arena = [&](std::vector<int64_t> shape, fb::DType dtype,
                   const char *name) {
    int64_t bytes = dtypeSize(dtype);
    for (int64_t d : shape)
      bytes *= d;
    int id = writer.addArenaBuffer(shape, dtype, offset, 0, -1, name);
    offset += (static_cast<uint64_t>(bytes) + 63) / 64 * 64;
    return id;
  };
  local.slice = arena({1, 10, 16}, fb::DType::f32, "slice");
  local.labels = arena({2, 10}, fb::DType::i32, "labels");
  local.count = arena({}, fb::DType::f32, "count");
  local.biasIn = arena({2, 10, 16}, fb::DType::f32, "bias_in");
  local.bias = arena({16}, fb::DType::f32, "bias");
  local.biased = arena({2, 10, 16}, fb::DType::f32, "biased");
  local.product = arena({2, 10, 16}, fb::DType::f32, "product");
  local.dropped = arena({2, 10, 16}, fb::DType::f32, "dropped");

  local.sliceInstruction = writer.numInstructions();
  writer
      .addInstruction(fb::Opcode::all_slice, {local.small.summed},
                      {local.slice})
      .collective({dp}, fb::ReductionKind::none, /*splitDim=*/0);
  local.countInstruction = writer.numInstructions();
  writer.addInstruction(fb::Opcode::token_count, {local.labels}, {local.count})
      .intAttr("ignore_index", 0);
  local.biasInstruction = writer.numInstructions();
  writer.addInstruction(fb::Opcode::bias_add, {local.biasIn, local.bias},
                        {local.biased});
  local.mulInstruction = writer.numInstructions();
  writer.addInstruction(fb::Opcode::mul, {local.biased, local.biasIn},
                        {local.product});
  local.dropoutInstruction = writer.numInstructions();
  writer.addInstruction(fb::Opcode::dropout, {local.product}, {local.dropped})
      .floatAttr("rate", 0.1)
      .intAttr("stream", 3)
      .intVectorAttr("shard_axes", {dp, ep});
  if (ids)
    *ids = local;
  return writer;
}

void expectLoadError(const PlanWriter &writer, const std::string &fragment) {
  Expected<LoadedPlan> loaded = loadPlanFromBytes(writer.finish());
  ASSERT_FALSE(loaded.ok()) << "expected an error containing: " << fragment;
  EXPECT_EQ(loaded.status().code(), StatusCode::InvalidArgument)
      << loaded.status().toString();
  EXPECT_NE(loaded.status().message().find(fragment), std::string::npos)
      << "message: " << loaded.status().message()
      << "\nexpected to contain: " << fragment;
}

fb::InstructionT &instruction(PlanWriter &writer, int index) {
  return *writer.mutablePlan().instructions[static_cast<size_t>(index)];
}

TEST(PartitionedPlan, LoadsAndDumps) {
  Expected<LoadedPlan> loaded =
      loadPlanFromBytes(makePartitionedPlan().finish());
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  std::string dump = dumpPlan(loaded->plan());
  EXPECT_NE(dump.find("state [ep, dp, -]"), std::string::npos) << dump;
  EXPECT_NE(dump.find("all_slice"), std::string::npos) << dump;
}

TEST(PartitionedPlan, StateShardingIsCheckedLikeAnySpec) {
  PartitionedIds ids;
  PlanWriter writer = makePartitionedPlan(&ids);
  writer.mutablePlan().parameters[1]->state_sharding[2]->axes.push_back(
      static_cast<uint8_t>(ids.small.ep));
  expectLoadError(writer, "parameter #1 ('encoder.layers.0.moe.w1') "
                          "(state_sharding): grid axis 'ep' splits more than "
                          "one dimension");
}

TEST(PartitionedPlan, StateShardingOfTheWrongRank) {
  PlanWriter writer = makePartitionedPlan();
  writer.mutablePlan().parameters[1]->state_sharding.pop_back();
  expectLoadError(writer, "(state_sharding): the shard spec has 2 entries, "
                          "expected one per dimension (3)");
}

TEST(PartitionedPlan, MomentsMustHaveTheStateShardShape) {
  PartitionedIds ids;
  PlanWriter writer = makePartitionedPlan(&ids);
  // Without the state spec the moments would be the parameter's shard.
  writer.mutablePlan().parameters[1]->state_sharding.clear();
  expectLoadError(writer, "parameter #1 ('encoder.layers.0.moe.w1'): its "
                          "exp_avg buffer is buffer 7 ('expert.w1.exp_avg') "
                          "of shape [2, 8, 32], expected the local shard "
                          "shape [2, 16, 32]");
}

TEST(PartitionedPlan, BothMomentsOrNeither) {
  PlanWriter writer = makePartitionedPlan();
  writer.mutablePlan().parameters[1]->exp_avg_sq_buffer = -1;
  expectLoadError(writer, "has exp_avg buffer 7 and exp_avg_sq buffer -1, "
                          "expected both or neither");
}

TEST(PartitionedPlan, CollectiveAxesMustIncrease) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  writer.mutablePlan().instructions[2]->collective->axes = {
      static_cast<uint8_t>(ids.ep), static_cast<uint8_t>(ids.dp)};
  expectLoadError(writer, "instruction #2 (all_reduce): grid axes 0 after 1, "
                          "expected increasing axes");
}

TEST(PartitionedPlan, AllSliceResultShape) {
  PartitionedIds ids;
  PlanWriter writer = makePartitionedPlan(&ids);
  instruction(writer, ids.sliceInstruction).collective->split_dim = 1;
  expectLoadError(writer, "instruction #4 (all_slice): result has shape "
                          "[1, 10, 16], expected [2, 5, 16] for operand "
                          "shape [2, 10, 16] over a group of 2 ranks");
}

TEST(PartitionedPlan, AllSliceNeedsASplitDimension) {
  PartitionedIds ids;
  PlanWriter writer = makePartitionedPlan(&ids);
  instruction(writer, ids.sliceInstruction).collective->split_dim = -1;
  expectLoadError(writer, "instruction #4 (all_slice): split_dim is -1, "
                          "expected a dimension of the rank-3 operand");
}

TEST(PartitionedPlan, AllSliceDoesNotReduceOrConcatenate) {
  PartitionedIds ids;
  PlanWriter writer = makePartitionedPlan(&ids);
  instruction(writer, ids.sliceInstruction).collective->reduction =
      fb::ReductionKind::sum;
  expectLoadError(writer, "instruction #4 (all_slice): has reduction sum, but "
                          "this collective does not reduce");
  PlanWriter concat = makePartitionedPlan(&ids);
  instruction(concat, ids.sliceInstruction).collective->concat_dim = 2;
  expectLoadError(concat, "instruction #4 (all_slice): has concat_dim 2, "
                          "which this collective does not use");
}

TEST(PartitionedPlan, AllToAllDimensionsInRange) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  fb::InstructionT &inst = *writer.mutablePlan().instructions[2];
  inst.opcode = fb::Opcode::all_to_all;
  inst.collective->reduction = fb::ReductionKind::none;
  inst.collective->split_dim = 1;
  inst.collective->concat_dim = 3;
  expectLoadError(writer, "instruction #2 (all_to_all): concat_dim is 3, "
                          "expected a dimension of the rank-3 operand");
}

TEST(PartitionedPlan, ShardAxesInRangeAndIncreasing) {
  PartitionedIds ids;
  PlanWriter outside = makePartitionedPlan(&ids);
  instruction(outside, ids.dropoutInstruction).attributes.pop_back();
  InstructionEditor(instruction(outside, ids.dropoutInstruction))
      .intVectorAttr("shard_axes", {0, 3});
  expectLoadError(outside, "instruction #8 (dropout): shard_axes names grid "
                           "axis 3, but the grid has 3 axes");
  PlanWriter decreasing = makePartitionedPlan(&ids);
  instruction(decreasing, ids.dropoutInstruction).attributes.pop_back();
  InstructionEditor(instruction(decreasing, ids.dropoutInstruction))
      .intVectorAttr("shard_axes", {1, 0});
  expectLoadError(decreasing, "instruction #8 (dropout): shard_axes has axis "
                              "0 after 1, expected increasing axes");
}

TEST(PartitionedPlan, ShardAxesIsAnIntVector) {
  PartitionedIds ids;
  PlanWriter writer = makePartitionedPlan(&ids);
  instruction(writer, ids.dropoutInstruction).attributes.pop_back();
  InstructionEditor(instruction(writer, ids.dropoutInstruction))
      .intAttr("shard_axes", 0);
  expectLoadError(writer, "instruction #8 (dropout): attribute 'shard_axes' "
                          "is of type int, expected int-vector");
}

TEST(PartitionedPlan, TokenCountTypes) {
  PartitionedIds ids;
  PlanWriter writer = makePartitionedPlan(&ids);
  instruction(writer, ids.countInstruction).operands[0] = ids.biasIn;
  expectLoadError(writer, "instruction #5 (token_count): operand 0 is f32, "
                          "expected i32");
  PlanWriter notScalar = makePartitionedPlan(&ids);
  instruction(notScalar, ids.countInstruction).results[0] = ids.bias;
  expectLoadError(notScalar, "instruction #5 (token_count): result has shape "
                             "[16], expected a scalar");
  PlanWriter noIgnore = makePartitionedPlan(&ids);
  instruction(noIgnore, ids.countInstruction).attributes.clear();
  expectLoadError(noIgnore, "instruction #5 (token_count): missing the "
                            "required int attribute 'ignore_index'");
}

TEST(PartitionedPlan, BiasAddShapes) {
  PartitionedIds ids;
  PlanWriter writer = makePartitionedPlan(&ids);
  instruction(writer, ids.biasInstruction).operands[1] = ids.labels;
  expectLoadError(writer, "instruction #6 (bias_add): operands [2, 10, 16] "
                          "and [2, 10] with result [2, 10, 16], expected x "
                          "[..., N], bias [N] and a result shaped like x");
}

TEST(PartitionedPlan, MulShapes) {
  PartitionedIds ids;
  PlanWriter writer = makePartitionedPlan(&ids);
  instruction(writer, ids.mulInstruction).operands[1] = ids.slice;
  expectLoadError(writer, "instruction #7 (mul): operand 1 has shape "
                          "[1, 10, 16], expected the result shape "
                          "[2, 10, 16]");
}

} // namespace
} // namespace moert::plan
