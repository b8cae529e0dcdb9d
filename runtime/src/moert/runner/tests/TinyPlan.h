//===- TinyPlan.h - A small hand-written partitioned training step --------===//
//
// The runner's multi-rank tests need a training step that the compiler did
// not write: a grid dp x ep x tp (ep of size 1), the batch split over dp, a
// projection split over tp (gathered for the forward pass, its gradient
// sliced back), a replicated embedding whose AdamW moments ZeRO splits over
// dp (the update runs on a dp slice and is gathered again), and the loss
// and gradients averaged over dp. The same instructions serve every grid,
// dp = tp = 1 included, so a checkpoint of one grid can be loaded on
// another. The numbers are not meant to match between grids (the loss is a
// mean of per-shard means); the tests check shards, checkpoints and resume.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_TESTS_TINYPLAN_H
#define MOERT_RUNNER_TESTS_TINYPLAN_H

#include "moert/plan/PlanWriter.h"

#include <functional>

namespace moert::runner::testing {

/// Vocabulary, model width, batch, source and target lengths.
inline constexpr int64_t kTinyVocab = 16, kTinyDim = 8, kTinyBatch = 4,
                         kTinySrcLen = 4, kTinyTgtLen = 6;

/// The step for a dp x 1 x tp grid (dp must divide the batch and the model
/// width, tp the vocabulary).
inline std::vector<uint8_t> makeTinyPlan(int dp, int tp) {
  using plan::fb::DType;
  using plan::fb::Opcode;
  using plan::fb::ReductionKind;
  const int64_t V = kTinyVocab, D = kTinyDim, B = kTinyBatch / dp,
                T = kTinyTgtLen;
  plan::PlanWriter writer("tiny");
  const int dpAxis = writer.addGridAxis("dp", dp, plan::fb::AxisRole::data);
  writer.addGridAxis("ep", 1, plan::fb::AxisRole::expert);
  const int tpAxis = writer.addGridAxis("tp", tp, plan::fb::AxisRole::tensor);
  writer.setZeroStage(1);

  // Persistent state: parameters, moments, batch.
  int embed = writer.addPersistentBuffer({V, D}, DType::f32, "embed");
  int embedM = writer.addPersistentBuffer({V, D / dp}, DType::f32, "embed.m");
  int embedV = writer.addPersistentBuffer({V, D / dp}, DType::f32, "embed.v");
  int proj = writer.addPersistentBuffer({V / tp, D}, DType::f32, "proj");
  int projM = writer.addPersistentBuffer({V / tp, D}, DType::f32, "proj.m");
  int projV = writer.addPersistentBuffer({V / tp, D}, DType::f32, "proj.v");
  int src = writer.addPersistentBuffer({B, kTinySrcLen}, DType::i32, "src");
  int tgt = writer.addPersistentBuffer({B, T}, DType::i32, "tgt");
  int labels = writer.addPersistentBuffer({B, T}, DType::i32, "labels");
  int step = writer.addPersistentBuffer({}, DType::i64, "step");

  plan::ParameterSpec embedSpec;
  embedSpec.name = "embed";
  embedSpec.shape = {V, D};
  embedSpec.init = plan::fb::InitKind::normal;
  embedSpec.initScale = 0.5;
  embedSpec.buffer = embed;
  embedSpec.expAvgBuffer = embedM;
  embedSpec.expAvgSqBuffer = embedV;
  embedSpec.stateSharding = {{}, {dpAxis}};
  writer.addParameter(embedSpec);
  plan::ParameterSpec projSpec;
  projSpec.name = "proj";
  projSpec.shape = {V, D};
  projSpec.sharding = {{tpAxis}, {}};
  projSpec.init = plan::fb::InitKind::xavier_uniform;
  projSpec.buffer = proj;
  projSpec.expAvgBuffer = projM;
  projSpec.expAvgSqBuffer = projV;
  writer.addParameter(projSpec);
  auto batchInput = [&](const char *name, std::vector<int64_t> shape,
                        int buffer, plan::ShardSpec sharding, DType dtype) {
    plan::BatchInputSpec spec;
    spec.name = name;
    spec.shape = std::move(shape);
    spec.sharding = std::move(sharding);
    spec.buffer = buffer;
    spec.dtype = dtype;
    writer.addBatchInput(spec);
  };
  batchInput("src_tokens", {kTinyBatch, kTinySrcLen}, src, {{dpAxis}, {}},
             DType::i32);
  batchInput("tgt_tokens", {kTinyBatch, T}, tgt, {{dpAxis}, {}}, DType::i32);
  batchInput("labels", {kTinyBatch, T}, labels, {{dpAxis}, {}}, DType::i32);
  batchInput("step", {}, step, {}, DType::i64);

  // Step temporaries, one after the other.
  uint64_t offset = 0;
  auto arena = [&](std::vector<int64_t> shape, const char *name) {
    int64_t bytes = 4;
    for (int64_t d : shape)
      bytes *= d;
    int id = writer.addArenaBuffer(shape, DType::f32, offset, 0, -1, name);
    offset += (static_cast<uint64_t>(bytes) + 63) / 64 * 64;
    return id;
  };
  int one = writer.addConstantBuffer({}, DType::f32, 1.0, "one");
  int x = arena({B, T, D}, "x");
  int projFull = arena({V, D}, "proj.full");
  int logits = arena({B, T, V}, "logits");
  int shardLoss = arena({}, "shard_loss");
  int loss = arena({}, "output:loss");
  int dLogits = arena({B, T, V}, "d_logits");
  int dx = arena({B, T, D}, "d_x");
  int dProjFull = arena({V, D}, "d_proj.full");
  int dProj = arena({V / tp, D}, "d_proj");
  int dEmbed = arena({V, D}, "d_embed");
  int lr = arena({}, "output:lr");
  int embedSlice = arena({V, D / dp}, "embed.slice");
  int dEmbedSlice = arena({V, D / dp}, "d_embed.slice");

  auto adamw = [&](int param, int grad, int m, int v) {
    writer
        .addInstruction(Opcode::adamw, {param, grad, m, v, lr, one, step},
                        {param, m, v})
        .stringAttr("group", "dense")
        .floatAttr("beta1", 0.9)
        .floatAttr("beta2", 0.99)
        .floatAttr("epsilon", 1e-8)
        .floatAttr("weight_decay", 0.01);
  };
  writer.addInstruction(Opcode::embedding, {tgt, embed}, {x})
      .stringAttr("position", "none");
  writer.addInstruction(Opcode::all_gather, {proj}, {projFull})
      .collective({tpAxis}, ReductionKind::none, -1, 0);
  writer.addInstruction(Opcode::linear, {x, projFull}, {logits})
      .boolAttr("transpose_weight", true);
  writer.addInstruction(Opcode::cross_entropy, {logits, labels}, {shardLoss})
      .floatAttr("label_smoothing", 0.0)
      .intAttr("ignore_index", 0);
  writer.addInstruction(Opcode::all_reduce, {shardLoss}, {loss})
      .collective({dpAxis}, ReductionKind::mean);
  writer
      .addInstruction(Opcode::cross_entropy_grad, {one, logits, labels},
                      {dLogits})
      .floatAttr("label_smoothing", 0.0)
      .intAttr("ignore_index", 0);
  writer
      .addInstruction(Opcode::linear_grad, {dLogits, x, projFull},
                      {dx, dProjFull})
      .boolAttr("transpose_weight", true);
  writer.addInstruction(Opcode::all_reduce, {dProjFull}, {dProjFull})
      .collective({dpAxis}, ReductionKind::mean);
  writer.addInstruction(Opcode::all_slice, {dProjFull}, {dProj})
      .collective({tpAxis}, ReductionKind::none, 0);
  writer.addInstruction(Opcode::embedding_grad, {dx, tgt}, {dEmbed});
  writer.addInstruction(Opcode::all_reduce, {dEmbed}, {dEmbed})
      .collective({dpAxis}, ReductionKind::mean);
  writer.addInstruction(Opcode::lr_schedule, {step}, {lr})
      .floatAttr("peak_lr", 0.05)
      .intAttr("warmup_steps", 2);
  // ZeRO: the embedding's update runs on this rank's dp slice.
  writer.addInstruction(Opcode::all_slice, {embed}, {embedSlice})
      .collective({dpAxis}, ReductionKind::none, 1);
  writer.addInstruction(Opcode::all_slice, {dEmbed}, {dEmbedSlice})
      .collective({dpAxis}, ReductionKind::none, 1);
  adamw(embedSlice, dEmbedSlice, embedM, embedV);
  writer.addInstruction(Opcode::all_gather, {embedSlice}, {embed})
      .collective({dpAxis}, ReductionKind::none, -1, 1);
  adamw(proj, dProj, projM, projV);

  plan::fb::TrainingConfigT training;
  training.seed = 1;
  training.learning_rate = 0.05;
  training.steps = 4;
  writer.setTrainingConfig(training);
  return writer.finish();
}

} // namespace moert::runner::testing

#endif // MOERT_RUNNER_TESTS_TINYPLAN_H
