//===- ComputeTypeTest.cpp - The compute_type attribute of GEMM opcodes ---===//
//
// moe-mixed-precision marks GEMM ops with compute_type ("f32", "bf16",
// "f16"); the plan accepts it on exactly those opcodes, rejects other
// spellings, and rejects it on the router, the loss, norms and the
// optimizer, which always run in fp32.
//
//===----------------------------------------------------------------------===//

#include "SmallPlan.h"

#include "moert/plan/KernelSignatures.h"
#include "moert/plan/PlanLoader.h"

#include <gtest/gtest.h>

namespace moert::plan {
namespace {

using testing::makeSmallPlan;
using testing::SmallPlanIds;

TEST(ComputeType, OnExactlyTheGemmOpcodes) {
  const fb::Opcode gemms[] = {
      fb::Opcode::linear,     fb::Opcode::linear_grad,
      fb::Opcode::attention,  fb::Opcode::attention_grad,
      fb::Opcode::expert_ffn, fb::Opcode::expert_ffn_grad};
  for (fb::Opcode opcode : gemms) {
    const KernelSignature *signature = kernelSignature(opcode);
    ASSERT_NE(signature, nullptr);
    const AttributeSignature *attr = signature->findAttribute("compute_type");
    ASSERT_NE(attr, nullptr) << fb::EnumNameOpcode(opcode);
    EXPECT_FALSE(attr->required);
    EXPECT_EQ(attr->type, fb::AttrValue::StringValue);
    EXPECT_EQ(attr->allowedValues,
              (std::vector<std::string>{"f32", "bf16", "f16"}));
  }
  const fb::Opcode fp32Only[] = {fb::Opcode::gate,
                                 fb::Opcode::gate_grad,
                                 fb::Opcode::cross_entropy,
                                 fb::Opcode::cross_entropy_grad,
                                 fb::Opcode::layer_norm,
                                 fb::Opcode::layer_norm_grad,
                                 fb::Opcode::adamw,
                                 fb::Opcode::sum_squares,
                                 fb::Opcode::clip_by_global_norm,
                                 fb::Opcode::combine,
                                 fb::Opcode::dispatch,
                                 fb::Opcode::embedding};
  for (fb::Opcode opcode : fp32Only)
    EXPECT_EQ(kernelSignature(opcode)->findAttribute("compute_type"), nullptr)
        << fb::EnumNameOpcode(opcode);
}

/// The small plan plus `logits = linear(summed, table^T)` with `value` as
/// its compute_type.
PlanWriter planWithLinear(const std::string &value) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  int logits = writer.addArenaBuffer({2, 10, 100}, fb::DType::f32, 3840, 4, -1,
                                     "logits");
  writer
      .addInstruction(fb::Opcode::linear, {ids.summed, ids.tableBuffer},
                      {logits})
      .boolAttr("transpose_weight", true)
      .stringAttr("compute_type", value);
  return writer;
}

TEST(ComputeType, EverySpellingLoads) {
  for (const char *value : {"f32", "bf16", "f16"}) {
    Expected<LoadedPlan> loaded =
        loadPlanFromBytes(planWithLinear(value).finish());
    EXPECT_TRUE(loaded.ok()) << value << ": " << loaded.status().toString();
  }
}

TEST(ComputeType, OtherSpellingsAreRejected) {
  for (const char *value : {"fp16", "bfloat16", "f8", ""}) {
    Expected<LoadedPlan> loaded =
        loadPlanFromBytes(planWithLinear(value).finish());
    ASSERT_FALSE(loaded.ok()) << value;
    EXPECT_NE(loaded.status().message().find(
                  "attribute 'compute_type' is '" + std::string(value) +
                  "', expected one of f32, bf16, f16"),
              std::string::npos)
        << loaded.status().message();
  }
}

TEST(ComputeType, RejectedOnANonGemmOpcode) {
  PlanWriter writer = makeSmallPlan();
  InstructionEditor(*writer.mutablePlan().instructions[1])
      .stringAttr("compute_type", "bf16");
  Expected<LoadedPlan> loaded = loadPlanFromBytes(writer.finish());
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find(
                "instruction #1 (activation): unknown attribute "
                "'compute_type'"),
            std::string::npos)
      << loaded.status().message();
}

} // namespace
} // namespace moert::plan
