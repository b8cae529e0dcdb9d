//===- Trainer.cpp - Runs a compiled training plan step by step -----------===//
#include "moert/runner/Trainer.h"

#include "moert/checkpoint/Safetensors.h"
#include "moert/runner/PlanProgram.h"
#include "moert/runner/StepIO.h"

#include <chrono>
#include <cstring>

namespace moert {
namespace runner {

namespace fb = plan::fb;

int64_t ParameterState::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

Expected<std::unique_ptr<Trainer>>
Trainer::create(plan::LoadedPlan loaded, uint64_t seed, int64_t alphabet) {
  std::unique_ptr<Trainer> trainer(new Trainer(std::move(loaded), seed));
  const fb::Plan &plan = trainer->plan_.plan();
  if (plan::numRanks(*plan.grid()) != 1)
    return failedPrecondition("the plan is partitioned for " +
                              std::to_string(plan::numRanks(*plan.grid())) +
                              " ranks; run it with mpirun -np <ranks>");
  MOERT_ASSIGN_OR_RETURN(exec::Program program, programFromPlan(plan));
  MOERT_ASSIGN_OR_RETURN(trainer->executor_,
                         exec::Executor::create(std::move(program)));
  exec::Executor &executor = *trainer->executor_;

  MOERT_ASSIGN_OR_RETURN(trainer->batchBuffers_, findBatchBuffers(plan));
  if (trainer->batchBuffers_.step < 0)
    return invalidArgument("the plan has no batch input 'step' (expected a "
                           "training step; @forward_grad plans run with "
                           "moe-step-dump)");

  // Step outputs by name.
  const exec::Program &p = executor.program();
  for (size_t id = 0; id < p.buffers.size(); ++id) {
    const std::string &name = p.buffers[id].name;
    int32_t buffer = static_cast<int32_t>(id);
    if (name == "output:loss")
      trainer->lossBuffer_ = buffer;
    else if (name == "output:aux_loss")
      trainer->auxBuffer_ = buffer;
    else if (name == "output:grad_norm")
      trainer->normBuffer_ = buffer;
    else if (name == "output:lr")
      trainer->lrBuffer_ = buffer;
    else if (name.rfind("output:expert_counts", 0) == 0)
      trainer->countBuffers_.push_back(buffer);
  }
  if (trainer->lossBuffer_ < 0)
    return invalidArgument("the plan has no 'output:loss' buffer");

  // Parameters and their moments.
  if (plan.parameters())
    for (const fb::Parameter *param : *plan.parameters()) {
      ParameterState state;
      state.name = param->name()->str();
      state.shape.assign(param->shape()->begin(), param->shape()->end());
      auto data = [&](int32_t id) {
        return id < 0 ? nullptr : static_cast<float *>(executor.bufferData(id));
      };
      state.value = data(param->buffer());
      state.expAvg = data(param->exp_avg_buffer());
      state.expAvgSq = data(param->exp_avg_sq_buffer());
      if (!state.value)
        return invalidArgument("parameter '" + state.name +
                               "' has no buffer in the plan");
      trainer->parameters_.push_back(std::move(state));
    }

  // The synthetic task takes its shapes from the batch buffers and the
  // vocabulary and pad id from the loss.
  MOERT_ASSIGN_OR_RETURN(
      SyntheticTaskConfig task,
      syntheticTaskConfig(p, trainer->batchBuffers_, alphabet));
  MOERT_ASSIGN_OR_RETURN(SyntheticTask made, SyntheticTask::create(task));
  trainer->task_ = std::make_unique<SyntheticTask>(std::move(made));
  return std::move(trainer);
}

Status Trainer::initializeParameters() {
  MOERT_RETURN_IF_ERROR(
      initializeAllParameters(plan_.plan(), *executor_, seed_));
  for (ParameterState &state : parameters_) {
    size_t bytes = static_cast<size_t>(state.numElements()) * sizeof(float);
    if (state.expAvg)
      std::memset(state.expAvg, 0, bytes);
    if (state.expAvgSq)
      std::memset(state.expAvgSq, 0, bytes);
  }
  return Status::success();
}

Expected<StepMetrics> Trainer::runStep(int64_t step) {
  auto start = std::chrono::steady_clock::now();
  SeqBatch batch = task_->batch(seed_, step);
  MOERT_RETURN_IF_ERROR(writeBatch(*executor_, batchBuffers_, batch, step));

  exec::RunContext context;
  context.seed = seed_;
  context.step = static_cast<uint32_t>(step);
  context.training = true;
  MOERT_RETURN_IF_ERROR(executor_->run(context).withContext(
      "training step " + std::to_string(step)));

  StepMetrics metrics;
  metrics.step = step;
  auto scalar = [&](int32_t buffer) {
    return buffer < 0
               ? 0.0f
               : *static_cast<const float *>(executor_->bufferData(buffer));
  };
  metrics.loss = scalar(lossBuffer_);
  metrics.auxLoss = scalar(auxBuffer_);
  metrics.gradNorm = scalar(normBuffer_);
  metrics.learningRate = scalar(lrBuffer_);
  metrics.targetTokens = batch.targetTokens;
  for (int32_t buffer : countBuffers_) {
    const int32_t *counts =
        static_cast<const int32_t *>(executor_->bufferData(buffer));
    int64_t n = executor_->program().buffers[buffer].type.numElements();
    metrics.expertCounts.emplace_back(counts, counts + n);
  }
  metrics.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return metrics;
}

Status Trainer::saveCheckpoint(const std::string &path, int64_t step) const {
  checkpoint::CheckpointWriter writer;
  for (const ParameterState &p : parameters_) {
    MOERT_RETURN_IF_ERROR(writer.addF32(p.name, p.shape, p.value));
    if (p.expAvg)
      MOERT_RETURN_IF_ERROR(
          writer.addF32(p.name + ".exp_avg", p.shape, p.expAvg));
    if (p.expAvgSq)
      MOERT_RETURN_IF_ERROR(
          writer.addF32(p.name + ".exp_avg_sq", p.shape, p.expAvgSq));
  }
  writer.setStep(step);
  MOERT_RETURN_IF_ERROR(
      writer.setMetadata("moert.seed", std::to_string(seed_)));
  const fb::Plan &plan = plan_.plan();
  MOERT_RETURN_IF_ERROR(writer.setMetadata(
      "moert.model", plan.model_name() ? plan.model_name()->str() : ""));
  return writer.write(path).withContext("writing checkpoint '" + path + "'");
}

Expected<int64_t> Trainer::loadCheckpoint(const std::string &path) {
  MOERT_ASSIGN_OR_RETURN(checkpoint::Checkpoint file,
                         checkpoint::Checkpoint::open(path));
  auto seed = file.metadata().find("moert.seed");
  if (seed == file.metadata().end())
    return invalidArgument("checkpoint '" + path +
                           "' has no moert.seed metadata");
  if (seed->second != std::to_string(seed_))
    return invalidArgument("checkpoint '" + path + "' was trained with seed " +
                           seed->second + ", this run uses seed " +
                           std::to_string(seed_) +
                           " (resume with the same --seed)");
  MOERT_ASSIGN_OR_RETURN(int64_t step, file.step());
  // Read everything before writing anything: a bad checkpoint leaves the
  // trainer's state untouched.
  std::vector<std::vector<float>> values;
  for (const ParameterState &p : parameters_) {
    for (const char *suffix : {"", ".exp_avg", ".exp_avg_sq"}) {
      if ((suffix[0] && !p.expAvg))
        continue;
      MOERT_ASSIGN_OR_RETURN(std::vector<float> data,
                             file.readF32(p.name + suffix, p.shape));
      values.push_back(std::move(data));
    }
  }
  size_t next = 0;
  for (ParameterState &p : parameters_) {
    for (float *target : {p.value, p.expAvg, p.expAvgSq}) {
      if (!target)
        continue;
      std::memcpy(target, values[next].data(),
                  values[next].size() * sizeof(float));
      ++next;
    }
  }
  return step;
}

} // namespace runner
} // namespace moert
