//===- Trainer.h - Runs a compiled training plan step by step -------------===//
//
// Owns the executor of one plan on one rank: initializes the parameters
// from the plan's initializers, feeds batches into the batch-input buffers,
// runs the step and reads the step's outputs (loss, aux loss, gradient
// norm, learning rate, expert counts) from the buffers the compiler named
// `output:*`.
//
// A partitioned plan runs on every rank of its grid (SPMD) with the rank's
// grid communicators: each rank draws the logical parameters and batch and
// keeps its shard; the step's outputs are replicated by the plan's
// collectives. Checkpoints hold logical tensors: saving gathers the shards
// to rank 0, which writes; loading cuts every rank's shard out of the file,
// so a checkpoint of one grid resumes on any other.
//
// A plan compiled for fp16 (moe-mixed-precision) has a `loss_scale` batch
// input: the trainer then runs DeepSpeed's dynamic loss scaler
// (train/LossScaler.h), writes its scale before every step, reads the
// overflow flag from the step's gradient norm (non-finite: the plan has
// already skipped the update), and feeds the plan's `step` input with the
// count of applied steps, so that skipped steps advance neither the
// learning-rate schedule nor AdamW's bias correction. The scaler's state
// travels in the checkpoint's metadata.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_TRAINER_H
#define MOERT_RUNNER_TRAINER_H

#include "moert/comm/Communicator.h"
#include "moert/eval/Decode.h"
#include "moert/exec/Executor.h"
#include "moert/plan/PlanLoader.h"
#include "moert/runner/BatchSource.h"
#include "moert/runner/HeldOutLoss.h"
#include "moert/runner/Sharding.h"
#include "moert/runner/StepIO.h"
#include "moert/runner/SyntheticTask.h"
#include "moert/train/LossScaler.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace moert {
namespace runner {

struct StepMetrics {
  int64_t step = 0;
  float loss = 0, auxLoss = 0, gradNorm = 0, learningRate = 0;
  int64_t targetTokens = 0;
  /// Non-pad source tokens of the global batch (from the batch source).
  int64_t sourceTokens = 0;
  /// The length bucket the step ran in (BucketTrainer; 0 otherwise).
  int bucket = 0;
  double seconds = 0;
  std::vector<std::vector<int32_t>> expertCounts; // per MoE layer
  /// What this rank's communicators did during the step (zero without
  /// grid communicators).
  comm::CommStats comm;
  /// fp16 plans: the loss scale the step ran with (0 without loss
  /// scaling) and whether it overflowed and was skipped.
  double lossScale = 0;
  bool skipped = false;
};

/// A parameter's persistent tensors on this rank: the value's block
/// `valueBlock` of the logical `shape` (split as `sharding`), the AdamW
/// moments' block `stateBlock` (split as `stateSharding`, which ZeRO may
/// partition further).
struct ParameterState {
  std::string name;
  std::vector<int64_t> shape;
  ShardSpec sharding, stateSharding;
  exec::TensorBlock valueBlock, stateBlock;
  /// Executor buffers of the value and the AdamW moments (-1: none).
  int32_t value = -1, expAvg = -1, expAvgSq = -1;
  bool hasMoments() const { return expAvg >= 0; }
  /// Elements of the logical tensor.
  int64_t numElements() const;
};

class Trainer;

/// Length buckets (BucketTrainer.h): where a trainer's executor gets its
/// arena, persistent and host regions.
struct TrainerMemory {
  /// Use this trainer's regions (its persistent state at the same offsets;
  /// BucketTrainer checks); null: allocate them.
  const Trainer *shareWith = nullptr;
  /// When allocating: at least these many bytes of arena and persistent
  /// region (room for every plan that will share them).
  int64_t arenaBytes = 0, persistentBytes = 0;
};

/// The program a trainer runs for `plan`: the plan's, with the AdamW
/// moments moved to the host region when `offloadOptimizerState`.
Expected<exec::Program> trainerProgram(const plan::fb::Plan &plan,
                                       bool offloadOptimizerState);

class Trainer {
public:
  /// `alphabet`: content tokens of the synthetic task (0 = the whole
  /// vocabulary). `grid`: this rank's communicators on the plan's grid
  /// (same shape), kept by the caller for the trainer's lifetime; null for
  /// a single process, which then runs only plans of one rank. `device`:
  /// where the plan runs (kept by the caller for the trainer's lifetime);
  /// null = the host CPU.
  /// `offloadOptimizerState`: keep the AdamW moments in host memory
  /// (ZeRO-Offload; exec::offloadOptimizerState), same results.
  /// `memory`: length buckets only (TrainerMemory; `device` is then the
  /// sharing trainer's).
  static Expected<std::unique_ptr<Trainer>>
  create(plan::LoadedPlan plan, uint64_t seed, int64_t alphabet = 0,
         comm::GridCommunicators *grid = nullptr, hal::Device *device = nullptr,
         bool offloadOptimizerState = false, const TrainerMemory &memory = {});

  /// Draws every parameter from its initializer; moments start at zero.
  Status initializeParameters();
  /// Plans compiled with offload=params keep fp32 master weights in host
  /// memory and 16-bit copies on the device; the plan's `refresh_params`
  /// program rewrites the copies from the masters (after initializing or
  /// loading them; the step keeps them current). Nothing to do otherwise.
  Status refreshDeviceCopies();
  /// Whether the plan keeps 16-bit device copies of host master weights
  /// (it carries the `refresh_params` program).
  bool hasDeviceCopies() const {
    return executor_->program().findEntryPoint(kRefreshProgram) != nullptr;
  }
  /// Runs training step `step` (1-based) on the synthetic task's batch.
  Expected<StepMetrics> runStep(int64_t step);

  /// Writes parameters and AdamW moments (logical tensors: "<name>",
  /// "<name>.exp_avg", "<name>.exp_avg_sq") with the step, seed and model
  /// name, atomically. On a grid, every rank calls it (the shards are
  /// gathered to rank 0, which writes) and every rank gets rank 0's result.
  Status saveCheckpoint(const std::string &path, int64_t step) const;
  /// Restores what saveCheckpoint wrote; returns the step it was taken at.
  /// Every tensor must exist with the plan's logical shape, and the seed
  /// must be this trainer's (the batches and noise of later steps depend
  /// on it). Each rank reads the file and keeps its shards.
  Expected<int64_t> loadCheckpoint(const std::string &path);

  /// This rank's place on the plan's grid (rank 0 of a one-rank grid
  /// without communicators).
  const GridLocation &location() const { return location_; }
  bool isRankZero() const { return location_.rank() == 0; }

  std::vector<ParameterState> &parameters() { return parameters_; }
  const SyntheticTask &task() const { return *task_; }
  /// Trains on `source`'s batches instead of the synthetic task's (its
  /// batch shape must be the plan's; checked on every batch).
  void setBatchSource(std::unique_ptr<BatchSource> source) {
    source_ = std::move(source);
  }
  const plan::LoadedPlan &plan() const { return plan_; }
  const exec::Executor &executor() const { return *executor_; }
  exec::Executor &executor() { return *executor_; }
  uint64_t seed() const { return seed_; }
  /// Replaces the loss scaler's configuration (before the first step or
  /// loadCheckpoint); fails for a plan without loss scaling.
  Status setLossScalerConfig(const train::LossScalerConfig &config);
  /// The dynamic loss scaler of an fp16 plan, null otherwise.
  const train::DynamicLossScaler *lossScaler() const {
    return lossScaler_ ? &*lossScaler_ : nullptr;
  }

  /// Greedy decoding of held-out batches of the synthetic task with the
  /// current parameters: the plan's forward instructions (up to the loss)
  /// run in evaluation mode (no dropout, no gate noise; the training
  /// capacity factor, for which the plan's buffers are sized) once per
  /// generated token, the decoder re-run on the whole prefix. One process
  /// only.
  struct GreedyEval {
    int64_t sequences = 0, exact = 0; // reversed exactly, </s> included
    int64_t tokens = 0, correct = 0;  // reference tokens, matched in place
  };
  Expected<GreedyEval> evaluateGreedy(int64_t batches);

  /// How nextTokenFunction runs the model.
  enum class DecodeMode {
    /// The plan's `encode` and `decode_step` programs (moe-build-decoder:
    /// cached keys and values, one decoder position per token;
    /// IncrementalDecode.h) when it has them, else ReuseSources.
    Incremental,
    /// The training step's forward, its source-only part once per source.
    ReuseSources,
    /// The training step's whole forward for every token (the reference).
    Recompute,
  };

  /// A next-token function (moert/eval/Decode.h) over `sources` (token ids,
  /// each ending with </s>; cut to the plan's source length) backed by the
  /// plan. With the decoding programs, see DecodeMode::Incremental.
  /// Otherwise the forward instructions up to the loss run in evaluation mode
  /// on the plan's batch, B prefixes at a time. The instructions that do not
  /// depend on the target tokens (the encoder, the source padding mask,
  /// the cross-attention's key and value projections) run once per source:
  /// their results that the decoder reads are stored per source (its rows)
  /// in the first batch the source is decoded in and written back, where
  /// they would have been computed, in every later batch holding only
  /// stored sources, which then runs the decoder only (no cache of the
  /// decoder's own keys and values: it is re-run over the whole prefix).
  /// With DecodeMode::Recompute every call runs the whole forward, the
  /// reference the reuse is checked against (with token dropping in the
  /// encoder's MoE layers a source's encoding could depend on its batch
  /// mates, which then change as sentences finish). One process only; the
  /// trainer must outlive the function.
  Expected<eval::NextTokenFn>
  nextTokenFunction(std::vector<std::vector<int32_t>> sources,
                    DecodeMode mode = DecodeMode::Incremental);

  /// The teacher-forced loss of held-out pairs through the plan's
  /// `evaluate` program with the current parameters (HeldOutLoss.h);
  /// decoder inputs start with `bos` (the tokenizer's). One process only.
  Expected<HeldOutLoss>
  heldOutLoss(const std::vector<std::vector<int32_t>> &sources,
              const std::vector<std::vector<int32_t>> &targets, int32_t bos);

private:
  Trainer(plan::LoadedPlan plan, uint64_t seed)
      : plan_(std::move(plan)), seed_(seed) {}

  /// How the training step's forward runs for evaluation: no dropout or
  /// gate noise, the step's capacity factor (its buffers are sized for it).
  exec::RunContext stepEvaluationContext() const;
  /// The first moe.cross_entropy of the training step (the end of its
  /// forward part), if any.
  std::optional<size_t> stepLossInstruction() const;

  /// The logical tensor of one parameter (or moment) on rank 0 from the
  /// `local` blocks of every rank; collective over the world.
  Status gatherLogical(const ParameterState &param, bool state,
                       int32_t buffer, std::vector<float> &logical) const;

  plan::LoadedPlan plan_;
  uint64_t seed_;
  comm::GridCommunicators *grid_ = nullptr;
  GridLocation location_;
  static constexpr const char *kRefreshProgram = "refresh_params";
  std::unique_ptr<exec::Executor> executor_;
  std::unique_ptr<SyntheticTask> task_;
  std::unique_ptr<BatchSource> source_;
  std::vector<ParameterState> parameters_;
  BatchBuffers batchBuffers_;
  int32_t lossBuffer_ = -1, auxBuffer_ = -1, normBuffer_ = -1, lrBuffer_ = -1;
  std::vector<int32_t> countBuffers_;
  int32_t lossScaleBuffer_ = -1;
  std::optional<train::DynamicLossScaler> lossScaler_;
};

} // namespace runner
} // namespace moert

#endif // MOERT_RUNNER_TRAINER_H
