//===- Trainer.h - Runs a compiled training plan step by step -------------===//
//
// Owns the executor of one plan: initializes the parameters from the plan's
// initializers, feeds batches into the batch-input buffers, runs the step
// and reads the step's outputs (loss, aux loss, gradient norm, learning
// rate, expert counts) from the buffers the compiler named `output:*`.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_TRAINER_H
#define MOERT_RUNNER_TRAINER_H

#include "moert/exec/Executor.h"
#include "moert/plan/PlanLoader.h"
#include "moert/runner/StepIO.h"
#include "moert/runner/SyntheticTask.h"

#include <memory>
#include <string>
#include <vector>

namespace moert {
namespace runner {

struct StepMetrics {
  int64_t step = 0;
  float loss = 0, auxLoss = 0, gradNorm = 0, learningRate = 0;
  int64_t targetTokens = 0;
  double seconds = 0;
  std::vector<std::vector<int32_t>> expertCounts; // per MoE layer
};

/// A parameter's persistent tensors (logical shape; one rank holds it all).
struct ParameterState {
  std::string name;
  std::vector<int64_t> shape;
  float *value = nullptr, *expAvg = nullptr, *expAvgSq = nullptr;
  int64_t numElements() const;
};

class Trainer {
public:
  /// `alphabet`: content tokens of the synthetic task (0 = the whole
  /// vocabulary).
  static Expected<std::unique_ptr<Trainer>>
  create(plan::LoadedPlan plan, uint64_t seed, int64_t alphabet = 0);

  /// Draws every parameter from its initializer; moments start at zero.
  Status initializeParameters();
  /// Runs training step `step` (1-based) on the synthetic task's batch.
  Expected<StepMetrics> runStep(int64_t step);

  /// Writes parameters and AdamW moments (logical tensors: "<name>",
  /// "<name>.exp_avg", "<name>.exp_avg_sq") with the step, seed and model
  /// name, atomically.
  Status saveCheckpoint(const std::string &path, int64_t step) const;
  /// Restores what saveCheckpoint wrote; returns the step it was taken at.
  /// Every tensor must exist with the plan's shape, and the seed must be
  /// this trainer's (the batches and noise of later steps depend on it).
  Expected<int64_t> loadCheckpoint(const std::string &path);

  std::vector<ParameterState> &parameters() { return parameters_; }
  const SyntheticTask &task() const { return *task_; }
  const plan::LoadedPlan &plan() const { return plan_; }
  const exec::Executor &executor() const { return *executor_; }
  uint64_t seed() const { return seed_; }

private:
  Trainer(plan::LoadedPlan plan, uint64_t seed)
      : plan_(std::move(plan)), seed_(seed) {}

  plan::LoadedPlan plan_;
  uint64_t seed_;
  std::unique_ptr<exec::Executor> executor_;
  std::unique_ptr<SyntheticTask> task_;
  std::vector<ParameterState> parameters_;
  BatchBuffers batchBuffers_;
  int32_t lossBuffer_ = -1, auxBuffer_ = -1, normBuffer_ = -1, lrBuffer_ = -1;
  std::vector<int32_t> countBuffers_;
};

} // namespace runner
} // namespace moert

#endif // MOERT_RUNNER_TRAINER_H
