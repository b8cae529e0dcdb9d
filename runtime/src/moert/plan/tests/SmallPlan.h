//===- SmallPlan.h - A small valid plan shared by the plan tests ----------===//
//
// Touches every part of the schema: a 2 x 2 x 1 grid with ZeRO-1, a dense
// and an expert parameter, a sharded batch input, persistent buffers, arena
// buffers that share bytes with disjoint lifetimes, kernels with attributes
// and a collective.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_PLAN_TESTS_SMALLPLAN_H
#define MOERT_PLAN_TESTS_SMALLPLAN_H

#include "moert/plan/PlanWriter.h"

namespace moert::plan::testing {

struct SmallPlanIds {
  int dp, ep, tp;
  int tableBuffer, expertBuffer, tokensBuffer;
  int embedded, activated, reduced, summed;
};

inline PlanWriter makeSmallPlan(SmallPlanIds *ids = nullptr) {
  PlanWriter writer("small-test-model");
  SmallPlanIds local;
  local.dp = writer.addGridAxis("dp", 2, fb::AxisRole::data);
  local.ep = writer.addGridAxis("ep", 2, fb::AxisRole::expert);
  local.tp = writer.addGridAxis("tp", 1, fb::AxisRole::tensor);
  writer.setZeroStage(1);

  local.tableBuffer =
      writer.addPersistentBuffer({100, 16}, fb::DType::f32, "embed.table");
  local.expertBuffer =
      writer.addPersistentBuffer({2, 16, 32}, fb::DType::f32, "expert.w1");
  local.tokensBuffer =
      writer.addPersistentBuffer({2, 10}, fb::DType::i32, "tokens");

  ParameterSpec table;
  table.name = "embed.table";
  table.shape = {100, 16};
  table.init = fb::InitKind::normal;
  table.initScale = 0.02;
  table.buffer = local.tableBuffer;
  writer.addParameter(table);

  ParameterSpec expert;
  expert.name = "encoder.layers.0.moe.w1";
  expert.shape = {4, 16, 32};
  expert.sharding = {{local.ep}, {}, {}};
  expert.init = fb::InitKind::xavier_uniform;
  expert.group = fb::ParamGroup::expert;
  expert.buffer = local.expertBuffer;
  writer.addParameter(expert);

  BatchInputSpec tokens;
  tokens.name = "tokens";
  tokens.shape = {8, 10};
  tokens.sharding = {{local.dp, local.ep}, {}};
  tokens.buffer = local.tokensBuffer;
  writer.addBatchInput(tokens);

  // [2, 10, 16] f32 = 1280 bytes, a multiple of the 64-byte alignment.
  local.embedded =
      writer.addArenaBuffer({2, 10, 16}, fb::DType::f32, 0, 0, 1, "embedded");
  local.activated = writer.addArenaBuffer({2, 10, 16}, fb::DType::f32, 1280, 1,
                                          3, "activated");
  // Reuses the bytes of `embedded`, which is dead from instruction 2 on.
  local.reduced =
      writer.addArenaBuffer({2, 10, 16}, fb::DType::f32, 0, 2, 3, "reduced");
  local.summed =
      writer.addArenaBuffer({2, 10, 16}, fb::DType::f32, 2560, 3, -1, "summed");

  writer
      .addInstruction(fb::Opcode::embedding,
                      {local.tokensBuffer, local.tableBuffer}, {local.embedded})
      .stringAttr("position", "sinusoidal")
      .boolAttr("scaled", true)
      .location("model.mlir:12:5");
  writer
      .addInstruction(fb::Opcode::activation, {local.embedded},
                      {local.activated})
      .stringAttr("kind", "gelu");
  writer
      .addInstruction(fb::Opcode::all_reduce, {local.activated},
                      {local.reduced})
      .collective({local.ep}, fb::ReductionKind::sum);
  writer.addInstruction(fb::Opcode::add, {local.reduced, local.activated},
                        {local.summed});

  fb::TrainingConfigT training;
  training.seed = 1234;
  training.learning_rate = 3e-4;
  training.beta2 = 0.98;
  training.weight_decay = 0.01;
  training.warmup_steps = 4000;
  training.steps = 100;
  writer.setTrainingConfig(training);
  if (ids)
    *ids = local;
  return writer;
}

} // namespace moert::plan::testing

#endif // MOERT_PLAN_TESTS_SMALLPLAN_H
