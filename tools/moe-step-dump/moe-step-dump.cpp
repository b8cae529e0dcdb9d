//===- moe-step-dump.cpp - Run one step of a plan and dump everything -----===//
//
//   moe-step-dump <plan.moeplan> --seed S --step N --out FILE.safetensors
//                 [--alphabet A]
//
// Loads and verifies the plan, draws every parameter from its initializer
// (seed S), builds batch N of the synthetic reversal task, runs the step
// once in training mode (RunContext{seed S, step N, training}) and writes a
// safetensors file with
//   param:<name>      every parameter as the step saw it (F32),
//   batch:<name>      src_tokens, tgt_tokens, labels (I32),
//   output:<...>      every buffer the compiler named "output:*" (loss, aux
//                     loss, expert counts, gradients, ...), in its dtype,
// and metadata moert.seed, moert.step and moert.plan. Meant for cross-checks
// of the runtime against an independent implementation (e.g. the PyTorch
// reference, tests/reference/test_runtime_against_torch.py): run it on a
// @forward_grad plan, whose parameters the step does not modify.
//
//===----------------------------------------------------------------------===//
#include "moert/checkpoint/Safetensors.h"
#include "moert/plan/PlanLoader.h"
#include "moert/runner/CommandLine.h"
#include "moert/runner/PlanProgram.h"
#include "moert/runner/StepIO.h"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace moert;

namespace {

struct Options {
  std::string plan, out;
  int64_t seed = -1, step = -1;
  int64_t alphabet = 32;
};

const char *kUsage =
    "usage: moe-step-dump <plan.moeplan> --seed S --step N --out "
    "FILE.safetensors [--alphabet A]\n"
    "  runs step N (>= 1) of the plan once, in training mode, on parameters "
    "drawn with seed S and the synthetic task's batch N, and writes the "
    "parameters (param:*), the batch (batch:*) and every output:* buffer\n"
    "  --alphabet A  content tokens of the synthetic reversal task "
    "(default 32, as moe-train; 0 = whole vocabulary)\n";

bool parseOptions(int argc, char **argv, Options &options) {
  runner::CommandLine cl("moe-step-dump", kUsage, argc, argv);
  while (cl.next()) {
    const std::string &arg = cl.arg();
    bool ok = true;
    if (arg == "--seed") {
      ok = cl.integer(0, options.seed);
    } else if (arg == "--step") {
      // The kernels key their random numbers by a 32-bit step.
      ok = cl.integer(1, options.step, UINT32_MAX);
    } else if (arg == "--alphabet") {
      ok = cl.integer(0, options.alphabet);
    } else if (arg == "--out" || arg == "-o") {
      ok = cl.value(options.out);
      if (ok && options.out.empty())
        ok = cl.error("--out expects a path");
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (cl.isFlag()) {
      ok = cl.unknownOption();
    } else if (options.plan.empty()) {
      options.plan = arg;
    } else {
      ok = cl.error("expected one plan file, found a second argument '" + arg +
                    "'");
    }
    if (!ok)
      return false;
  }
  const char *missing = options.plan.empty()  ? "a plan file"
                        : options.seed < 0    ? "--seed"
                        : options.step < 0    ? "--step"
                        : options.out.empty() ? "--out"
                                              : nullptr;
  if (missing)
    return cl.error(std::string("missing ") + missing);
  return true;
}

int fail(const Status &status) {
  std::fprintf(stderr, "moe-step-dump: error: %s\n", status.toString().c_str());
  return 1;
}

Expected<checkpoint::DType> checkpointDType(const exec::TensorType &type,
                                            const std::string &name) {
  switch (type.dtype) {
  case exec::DType::F32:
    return checkpoint::DType::F32;
  case exec::DType::I32:
    return checkpoint::DType::I32;
  case exec::DType::I64:
    return checkpoint::DType::I64;
  case exec::DType::Bool:
    return checkpoint::DType::Bool;
  case exec::DType::BF16:
    return checkpoint::DType::BF16;
  case exec::DType::F16:
    return checkpoint::DType::F16;
  }
  return invalidArgument("buffer '" + name + "' has an unknown dtype");
}

} // namespace

int main(int argc, char **argv) {
  Options options;
  if (!parseOptions(argc, argv, options))
    return 2;

  Expected<plan::LoadedPlan> loaded = plan::loadPlan(options.plan);
  if (!loaded.ok())
    return fail(loaded.status());
  const plan::fb::Plan &plan = loaded->plan();
  if (plan::numRanks(*plan.grid()) != 1)
    return fail(
        failedPrecondition("the plan is partitioned for " +
                           std::to_string(plan::numRanks(*plan.grid())) +
                           " ranks; moe-step-dump runs single-rank plans"));
  Expected<exec::Program> program = runner::programFromPlan(plan);
  if (!program.ok())
    return fail(program.status());
  Expected<std::unique_ptr<exec::Executor>> created =
      exec::Executor::create(std::move(*program));
  if (!created.ok())
    return fail(created.status());
  exec::Executor &executor = **created;
  const exec::Program &p = executor.program();

  Expected<runner::BatchBuffers> buffers = runner::findBatchBuffers(plan);
  if (!buffers.ok())
    return fail(buffers.status());
  Expected<runner::SyntheticTaskConfig> taskConfig =
      runner::syntheticTaskConfig(p, *buffers, options.alphabet);
  if (!taskConfig.ok())
    return fail(taskConfig.status());
  Expected<runner::SyntheticTask> task =
      runner::SyntheticTask::create(*taskConfig);
  if (!task.ok())
    return fail(task.status());

  uint64_t seed = static_cast<uint64_t>(options.seed);
  if (Status s = runner::initializeAllParameters(plan, executor, seed); !s.ok())
    return fail(s);
  // Parameters are copied before the step: a step that updates them in
  // place (a @train_step plan) must not change what is reported as input.
  struct Param {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<float> values;
  };
  std::vector<Param> params;
  if (plan.parameters())
    for (const plan::fb::Parameter *param : *plan.parameters()) {
      Param copy;
      copy.name = param->name()->str();
      if (param->shape())
        copy.shape.assign(param->shape()->begin(), param->shape()->end());
      copy.values.resize(static_cast<size_t>(
          p.buffers[param->buffer()].type.numElements()));
      if (Status status = executor.readBuffer(
              param->buffer(), copy.values.data(),
              copy.values.size() * sizeof(float));
          !status.ok())
        return fail(status);
      params.push_back(std::move(copy));
    }

  runner::SeqBatch batch = task->batch(seed, options.step);
  if (Status s = runner::writeBatch(executor, *buffers, batch, options.step);
      !s.ok())
    return fail(s);
  // An fp16 training step (moe-mixed-precision) scales its loss by its
  // `loss_scale` input: 1 leaves the gradients unscaled.
  if (int32_t scale = runner::batchInputBuffer(plan, "loss_scale"); scale >= 0)
    *static_cast<float *>(executor.bufferData(scale)) = 1.0f;

  exec::RunContext context;
  context.seed = seed;
  context.step = static_cast<uint32_t>(options.step);
  context.training = true;
  if (Status s = executor.run(context); !s.ok())
    return fail(s.withContext("step " + std::to_string(options.step)));

  std::vector<int32_t> outputs = runner::buffersWithPrefix(p, "output:");
  if (outputs.empty())
    return fail(invalidArgument("the plan names no 'output:*' buffer"));

  checkpoint::CheckpointWriter writer;
  auto check = [&](Status s) { return s.ok() ? 0 : fail(s); };
  for (const Param &param : params)
    if (int rc = check(writer.addF32("param:" + param.name, param.shape,
                                     param.values.data())))
      return rc;
  auto addBatch = [&](const char *name, const std::vector<int32_t> &values,
                      int64_t length) {
    return writer.addTensor(std::string("batch:") + name,
                            checkpoint::DType::I32,
                            {taskConfig->batchSize, length}, values.data(),
                            values.size() * sizeof(int32_t));
  };
  if (int rc =
          check(addBatch("src_tokens", batch.srcTokens, taskConfig->srcLen)))
    return rc;
  if (int rc =
          check(addBatch("tgt_tokens", batch.tgtTokens, taskConfig->tgtLen)))
    return rc;
  if (int rc = check(addBatch("labels", batch.labels, taskConfig->tgtLen)))
    return rc;
  // The writer keeps pointers until write(): the host copies live until then.
  std::vector<std::vector<uint8_t>> hostCopies;
  hostCopies.reserve(outputs.size());
  for (int32_t id : outputs) {
    const exec::Buffer &buffer = p.buffers[id];
    Expected<checkpoint::DType> dtype =
        checkpointDType(buffer.type, buffer.name);
    if (!dtype.ok())
      return fail(dtype.status());
    hostCopies.emplace_back(static_cast<size_t>(buffer.type.byteSize()));
    std::vector<uint8_t> &bytes = hostCopies.back();
    if (int rc = check(executor.readBuffer(id, bytes.data(), bytes.size())))
      return rc;
    if (int rc = check(writer.addTensor(buffer.name, *dtype, buffer.type.shape,
                                        bytes.data(), bytes.size())))
      return rc;
  }
  writer.setStep(options.step);
  for (auto [key, value] :
       {std::pair<std::string, std::string>{"moert.seed", std::to_string(seed)},
        {"moert.alphabet", std::to_string(options.alphabet)},
        {"moert.plan", options.plan}})
    if (int rc = check(writer.setMetadata(key, value)))
      return rc;
  if (Status s = writer.write(options.out); !s.ok())
    return fail(s);
  std::printf("moe-step-dump: step %" PRId64 " (seed %" PRIu64 "): %zu "
              "parameters, %zu outputs -> %s\n",
              options.step, seed, params.size(), outputs.size(),
              options.out.c_str());
  return 0;
}
