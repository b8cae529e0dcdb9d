//===- AttributeRangesTest.cpp - Attribute ranges checked at load ---------===//
//
// A plan is untrusted input: kernels take their loop bounds from
// attributes, so num_heads = 0, a negative epsilon or a dropout rate of 1
// must be refused at load, with the instruction, the attribute and expected
// vs found in the message. (Operand shapes are checked by the executor's
// shape rules, exec/ShapeRules.h, tested in exec/tests.)
//
//===----------------------------------------------------------------------===//

#include "SmallPlan.h"

#include "moert/plan/PlanLoader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

namespace moert::plan {
namespace {

using testing::makeSmallPlan;

/// The small plan plus one instruction that `build` appends (index 4).
std::vector<uint8_t> planWith(const std::function<void(PlanWriter &)> &build) {
  PlanWriter writer = makeSmallPlan();
  build(writer);
  return writer.finish();
}

void expectLoads(std::vector<uint8_t> bytes) {
  Expected<LoadedPlan> loaded = loadPlanFromBytes(std::move(bytes));
  EXPECT_TRUE(loaded.ok()) << loaded.status().toString();
}

void expectRejected(std::vector<uint8_t> bytes, const std::string &fragment) {
  Expected<LoadedPlan> loaded = loadPlanFromBytes(std::move(bytes));
  ASSERT_FALSE(loaded.ok()) << "expected an error containing: " << fragment;
  EXPECT_EQ(loaded.status().code(), StatusCode::InvalidArgument);
  EXPECT_NE(loaded.status().message().find(fragment), std::string::npos)
      << "message: " << loaded.status().message()
      << "\nexpected to contain: " << fragment;
}

std::vector<uint8_t> layerNormPlan(std::vector<int64_t> gamma,
                                   std::vector<int64_t> out, double epsilon) {
  return planWith([&](PlanWriter &writer) {
    int x = writer.addPersistentBuffer({2, 10, 16}, fb::DType::f32, "x");
    int g = writer.addPersistentBuffer(gamma, fb::DType::f32, "gamma");
    int b = writer.addPersistentBuffer({16}, fb::DType::f32, "beta");
    int y = writer.addPersistentBuffer(out, fb::DType::f32, "y");
    writer.addInstruction(fb::Opcode::layer_norm, {x, g, b}, {y})
        .floatAttr("epsilon", epsilon);
  });
}

TEST(AttributeRanges, LayerNormEpsilon) {
  expectLoads(layerNormPlan({16}, {2, 10, 16}, 1e-5));
  expectRejected(layerNormPlan({16}, {2, 10, 16}, -1e-5),
                 "instruction #4 (layer_norm): attribute 'epsilon' is -1e-05, "
                 "expected a value in [0, inf)");
  expectRejected(
      layerNormPlan({16}, {2, 10, 16}, std::numeric_limits<double>::quiet_NaN()),
      "attribute 'epsilon' is nan, expected a finite value in [0, inf)");
}

std::vector<uint8_t> attentionPlan(std::vector<int64_t> key,
                                   std::vector<int64_t> value,
                                   int64_t heads) {
  return planWith([&](PlanWriter &writer) {
    int q = writer.addPersistentBuffer({2, 10, 16}, fb::DType::f32, "q");
    int k = writer.addPersistentBuffer(key, fb::DType::f32, "k");
    int v = writer.addPersistentBuffer(value, fb::DType::f32, "v");
    int y = writer.addPersistentBuffer({2, 10, 16}, fb::DType::f32, "y");
    writer.addInstruction(fb::Opcode::attention, {q, k, v}, {y})
        .intAttr("num_heads", heads)
        .boolAttr("causal", true);
  });
}

TEST(AttributeRanges, AttentionHeads) {
  expectLoads(attentionPlan({2, 12, 16}, {2, 12, 16}, 4));
  expectRejected(attentionPlan({2, 12, 16}, {2, 12, 16}, 0),
                 "instruction #4 (attention): attribute 'num_heads' is 0, "
                 "expected a value in [1, inf)");
}

std::vector<uint8_t> dropoutPlan(double rate) {
  return planWith([&](PlanWriter &writer) {
    int x = writer.addPersistentBuffer({2, 10, 16}, fb::DType::f32, "x");
    int y = writer.addPersistentBuffer({2, 10, 16}, fb::DType::f32, "y");
    writer.addInstruction(fb::Opcode::dropout, {x}, {y})
        .floatAttr("rate", rate)
        .intAttr("stream", 0);
  });
}

TEST(AttributeRanges, DropoutRate) {
  expectLoads(dropoutPlan(0.0));
  expectLoads(dropoutPlan(0.1));
  expectRejected(dropoutPlan(1.0), "instruction #4 (dropout): attribute "
                                   "'rate' is 1, expected a value in [0, 1)");
  expectRejected(dropoutPlan(-0.5), "attribute 'rate' is -0.5");
  expectRejected(dropoutPlan(std::numeric_limits<double>::quiet_NaN()),
                 "attribute 'rate' is nan, expected a finite value in [0, 1)");
}

TEST(AttributeRanges, LearningRateAndAdamW) {
  auto schedule = [](double lr) {
    return planWith([&](PlanWriter &writer) {
      int step = writer.addPersistentBuffer({}, fb::DType::f32, "step");
      int out = writer.addPersistentBuffer({}, fb::DType::f32, "lr");
      writer.addInstruction(fb::Opcode::lr_schedule, {step}, {out})
          .floatAttr("peak_lr", lr)
          .intAttr("warmup_steps", 10);
    });
  };
  expectLoads(schedule(3e-4));
  expectRejected(schedule(std::numeric_limits<double>::quiet_NaN()),
                 "attribute 'peak_lr' is nan, expected a finite value");
  expectRejected(schedule(std::numeric_limits<double>::infinity()),
                 "attribute 'peak_lr' is inf, expected a finite value");
  expectRejected(schedule(-1.0), "attribute 'peak_lr' is -1, expected a "
                                 "value in [0, inf)");
}

} // namespace
} // namespace moert::plan
