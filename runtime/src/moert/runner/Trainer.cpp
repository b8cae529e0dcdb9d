//===- Trainer.cpp - Runs a compiled training plan step by step -----------===//
#include "moert/runner/Trainer.h"

#include "moert/checkpoint/Safetensors.h"
#include "moert/runner/IncrementalDecode.h"
#include "moert/runner/PlanProgram.h"
#include "moert/runner/StepIO.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <sstream>

namespace moert {
namespace runner {

namespace fb = plan::fb;

namespace {

/// after - before, per collective kind.
comm::CommStats statsSince(const comm::CommStats &before,
                           const comm::CommStats &after) {
  comm::CommStats delta;
  for (int kind = 0; kind < comm::kNumCollectiveKinds; ++kind) {
    delta.calls[kind] = after.calls[kind] - before.calls[kind];
    delta.bytesSent[kind] = after.bytesSent[kind] - before.bytesSent[kind];
  }
  return delta;
}

/// The loss scaler's state as checkpoint metadata ("moert.loss_scaler").
constexpr const char *kLossScalerKey = "moert.loss_scaler";

std::string formatScalerState(const train::LossScalerState &s) {
  std::ostringstream out;
  out.precision(17);
  out << "scale=" << s.scale << " iteration=" << s.iteration
      << " last_overflow=" << s.lastOverflowIteration
      << " hysteresis_left=" << s.hysteresisLeft
      << " skipped=" << s.skippedSteps;
  return out.str();
}

Expected<train::LossScalerState> parseScalerState(const std::string &text) {
  train::LossScalerState s;
  std::istringstream in(text);
  std::string field;
  int seen = 0;
  while (in >> field) {
    size_t eq = field.find('=');
    std::string key = field.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : field.substr(eq + 1);
    char *end = nullptr;
    errno = 0;
    if (key == "scale") {
      s.scale = std::strtod(value.c_str(), &end);
    } else {
      long long number = std::strtoll(value.c_str(), &end, 10);
      if (key == "iteration")
        s.iteration = number;
      else if (key == "last_overflow")
        s.lastOverflowIteration = number;
      else if (key == "hysteresis_left")
        s.hysteresisLeft = number;
      else if (key == "skipped")
        s.skippedSteps = number;
      else
        end = nullptr;
    }
    if (value.empty() || !end || *end != '\0' || errno != 0)
      return invalidArgument(std::string("checkpoint metadata ") +
                             kLossScalerKey + ": cannot read '" + field +
                             "' (expected scale=, iteration=, last_overflow=, "
                             "hysteresis_left=, skipped= with numbers)");
    ++seen;
  }
  if (seen != 5)
    return invalidArgument(std::string("checkpoint metadata ") +
                           kLossScalerKey + " has " + std::to_string(seen) +
                           " fields, expected 5: '" + text + "'");
  return s;
}

} // namespace

int64_t ParameterState::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

Expected<exec::Program> trainerProgram(const fb::Plan &plan,
                                       bool offloadOptimizerState) {
  MOERT_ASSIGN_OR_RETURN(exec::Program program, programFromPlan(plan));
  if (offloadOptimizerState) {
    MOERT_ASSIGN_OR_RETURN(
        int64_t moved,
        exec::offloadOptimizerState(
            program, std::max<int64_t>(plan.arena_alignment(), 1)));
    (void)moved;
  }
  return program;
}

Expected<std::unique_ptr<Trainer>>
Trainer::create(plan::LoadedPlan loaded, uint64_t seed, int64_t alphabet,
                comm::GridCommunicators *grid, hal::Device *device,
                bool offloadOptimizerState, const TrainerMemory &memory) {
  std::unique_ptr<Trainer> trainer(new Trainer(std::move(loaded), seed));
  const fb::Plan &plan = trainer->plan_.plan();
  std::vector<int64_t> gridShape = gridShapeOf(plan);
  int64_t ranks = plan::numRanks(*plan.grid());
  if (grid) {
    if (grid->gridShape() != gridShape)
      return failedPrecondition(
          "the communicators are laid out on a grid of shape " +
          plan::formatShape(grid->gridShape()) + ", the plan's grid is " +
          describeGrid(plan));
    trainer->location_.shape = gridShape;
    trainer->location_.coords = grid->coords();
  } else {
    if (ranks != 1)
      return failedPrecondition(
          "the plan is partitioned for " + std::to_string(ranks) +
          " ranks (grid " + describeGrid(plan) + "); run it with mpirun -np " +
          std::to_string(ranks));
    trainer->location_ = GridLocation::ofRank(gridShape, 0);
  }
  trainer->grid_ = grid;

  MOERT_ASSIGN_OR_RETURN(exec::Program program,
                         trainerProgram(plan, offloadOptimizerState));
  // Length buckets (BucketTrainer.h): one set of regions for every plan.
  program.arenaBytes = std::max(program.arenaBytes, memory.arenaBytes);
  program.persistentBytes =
      std::max(program.persistentBytes, memory.persistentBytes);
  if (memory.shareWith) {
    MOERT_ASSIGN_OR_RETURN(
        trainer->executor_,
        exec::Executor::createSharing(std::move(program),
                                      *memory.shareWith->executor_));
  } else if (device) {
    MOERT_ASSIGN_OR_RETURN(trainer->executor_,
                           exec::Executor::create(std::move(program), *device));
  } else {
    MOERT_ASSIGN_OR_RETURN(trainer->executor_,
                           exec::Executor::create(std::move(program)));
  }
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

  // fp16 plans: dynamic loss scaling (moe-mixed-precision).
  trainer->lossScaleBuffer_ = batchInputBuffer(plan, "loss_scale");
  if (trainer->lossScaleBuffer_ >= 0) {
    const exec::TensorType &type = p.buffers[trainer->lossScaleBuffer_].type;
    if (type.dtype != exec::DType::F32 || type.numElements() != 1)
      return invalidArgument("batch input 'loss_scale' must be an f32 "
                             "scalar, found " +
                             type.str());
    if (trainer->normBuffer_ < 0)
      return invalidArgument("the plan has a 'loss_scale' input but no "
                             "'output:grad_norm' to detect overflows with");
    MOERT_ASSIGN_OR_RETURN(train::DynamicLossScaler scaler,
                           train::DynamicLossScaler::create({}));
    trainer->lossScaler_.emplace(std::move(scaler));
  }

  // Parameters and their moments: this rank's blocks of the logical tensors.
  if (plan.parameters())
    for (const fb::Parameter *param : *plan.parameters()) {
      ParameterState state;
      state.name = param->name()->str();
      state.shape.assign(param->shape()->begin(), param->shape()->end());
      state.sharding = shardSpecOf(param->sharding());
      state.stateSharding = shardSpecOf(param->state_sharding());
      if (state.stateSharding.empty())
        state.stateSharding = state.sharding;
      std::string where = "parameter '" + state.name + "'";
      Expected<exec::TensorBlock> valueBlock =
          shardBlock(trainer->location_, state.shape, state.sharding);
      if (!valueBlock.ok())
        return valueBlock.takeStatus().withContext(where);
      Expected<exec::TensorBlock> stateBlock =
          shardBlock(trainer->location_, state.shape, state.stateSharding);
      if (!stateBlock.ok())
        return stateBlock.takeStatus().withContext(where + " (state)");
      state.valueBlock = std::move(*valueBlock);
      state.stateBlock = std::move(*stateBlock);
      auto data = [&](int32_t id, const exec::TensorBlock &block,
                      const char *role) -> Expected<int32_t> {
        if (id < 0)
          return int32_t{-1};
        const exec::TensorType &type = p.buffers[id].type;
        if (type.dtype != exec::DType::F32 || type.shape != block.extent)
          return invalidArgument(where + ": " + role + " buffer " +
                                 std::to_string(id) + " is " + type.str() +
                                 ", expected f32 of the shard shape " +
                                 plan::formatShape(block.extent));
        return id;
      };
      MOERT_ASSIGN_OR_RETURN(state.value,
                             data(param->buffer(), state.valueBlock, "its"));
      MOERT_ASSIGN_OR_RETURN(state.expAvg, data(param->exp_avg_buffer(),
                                                state.stateBlock, "exp_avg"));
      MOERT_ASSIGN_OR_RETURN(
          state.expAvgSq,
          data(param->exp_avg_sq_buffer(), state.stateBlock, "exp_avg_sq"));
      if (state.value < 0)
        return invalidArgument(where + " has no buffer in the plan");
      if ((state.expAvg < 0) != (state.expAvgSq < 0))
        return invalidArgument(where + " has one AdamW moment buffer, "
                                       "expected both or neither");
      trainer->parameters_.push_back(std::move(state));
    }

  // The synthetic task takes its shapes from the logical batch inputs and
  // the vocabulary and pad id from the loss.
  MOERT_ASSIGN_OR_RETURN(
      SyntheticTaskConfig task,
      syntheticTaskConfig(p, trainer->batchBuffers_, alphabet));
  MOERT_ASSIGN_OR_RETURN(SyntheticTask made, SyntheticTask::create(task));
  trainer->task_ = std::make_unique<SyntheticTask>(std::move(made));
  return std::move(trainer);
}

Status Trainer::setLossScalerConfig(const train::LossScalerConfig &config) {
  if (!lossScaler_)
    return failedPrecondition(
        "the plan has no loss scaling (only plans compiled with "
        "precision=fp16 have a 'loss_scale' input)");
  MOERT_ASSIGN_OR_RETURN(train::DynamicLossScaler scaler,
                         train::DynamicLossScaler::create(config));
  lossScaler_.emplace(std::move(scaler));
  return Status::success();
}

Status Trainer::initializeParameters() {
  MOERT_RETURN_IF_ERROR(
      initializeAllParameters(plan_.plan(), *executor_, seed_, &location_));
  for (ParameterState &state : parameters_) {
    if (!state.hasMoments())
      continue;
    std::vector<float> zeros(
        static_cast<size_t>(state.stateBlock.numElements()), 0.0f);
    for (int32_t buffer : {state.expAvg, state.expAvgSq})
      MOERT_RETURN_IF_ERROR(executor_->writeBuffer(
          buffer, zeros.data(), zeros.size() * sizeof(float)));
  }
  return refreshDeviceCopies();
}

Status Trainer::refreshDeviceCopies() {
  const exec::EntryPoint *refresh =
      executor_->program().findEntryPoint(kRefreshProgram);
  if (!refresh)
    return Status::success();
  exec::RunContext context = exec::RunContext::evaluation(seed_);
  context.grid = grid_;
  return executor_->run(*refresh, context)
      .withContext("refreshing the 16-bit device copies of the parameters");
}

Expected<StepMetrics> Trainer::runStep(int64_t step) {
  auto start = std::chrono::steady_clock::now();
  SeqBatch batch;
  if (source_) {
    MOERT_ASSIGN_OR_RETURN(batch, source_->batch(seed_, step));
    const SyntheticTaskConfig &shape = task_->config();
    if (batch.srcTokens.size() !=
            static_cast<size_t>(shape.batchSize * shape.srcLen) ||
        batch.tgtTokens.size() !=
            static_cast<size_t>(shape.batchSize * shape.tgtLen) ||
        batch.labels.size() != batch.tgtTokens.size())
      return internalError("the batch source made a batch of " +
                           std::to_string(batch.srcTokens.size()) + " / " +
                           std::to_string(batch.tgtTokens.size()) +
                           " tokens, the plan takes [" +
                           std::to_string(shape.batchSize) + ", " +
                           std::to_string(shape.srcLen) + "] / [" +
                           std::to_string(shape.batchSize) + ", " +
                           std::to_string(shape.tgtLen) + "]");
  } else {
    batch = task_->batch(seed_, step);
  }
  // With loss scaling, the plan's step input counts the applied steps: a
  // skipped step advances neither the schedule nor AdamW's bias correction.
  int64_t optimizerStep =
      lossScaler_ ? step - lossScaler_->state().skippedSteps : step;
  MOERT_RETURN_IF_ERROR(
      writeBatch(*executor_, batchBuffers_, batch, optimizerStep, &location_));
  if (lossScaler_) {
    float scale = static_cast<float>(lossScaler_->scale());
    MOERT_RETURN_IF_ERROR(
        executor_->writeBuffer(lossScaleBuffer_, &scale, sizeof(scale)));
  }

  exec::RunContext context;
  context.seed = seed_;
  context.step = static_cast<uint32_t>(step);
  context.training = true;
  context.grid = grid_;
  comm::CommStats before = grid_ ? grid_->totalStats() : comm::CommStats();
  MOERT_RETURN_IF_ERROR(executor_->run(context).withContext(
      "training step " + std::to_string(step)));

  StepMetrics metrics;
  metrics.step = step;
  if (grid_)
    metrics.comm = statsSince(before, grid_->totalStats());
  // Reading the scalars waits for the step's work on the device.
  auto scalar = [&](int32_t buffer, float &value) -> Status {
    value = 0.0f;
    return buffer < 0 ? Status::success()
                      : executor_->readBuffer(buffer, &value, sizeof(value));
  };
  MOERT_RETURN_IF_ERROR(scalar(lossBuffer_, metrics.loss));
  MOERT_RETURN_IF_ERROR(scalar(auxBuffer_, metrics.auxLoss));
  MOERT_RETURN_IF_ERROR(scalar(normBuffer_, metrics.gradNorm));
  MOERT_RETURN_IF_ERROR(scalar(lrBuffer_, metrics.learningRate));
  if (lossScaler_) {
    // The plan's norm is already reduced over the grid; the MAX over the
    // world makes every rank take the same decision regardless.
    auto anyRank = [&](bool local) -> Expected<bool> {
      if (!grid_ || grid_->worldSize() <= 1)
        return local;
      int32_t flag = local ? 1 : 0;
      MOERT_RETURN_IF_ERROR(grid_->world().allReduce(
          &flag, 1, comm::ElementType::I32, comm::ReduceOp::Max));
      return flag != 0;
    };
    Expected<train::LossScaleDecision> decision =
        lossScaler_->update(!std::isfinite(metrics.gradNorm), anyRank);
    if (!decision.ok())
      return decision.takeStatus().withContext("training step " +
                                               std::to_string(step));
    metrics.lossScale = decision->scaleUsed;
    metrics.skipped = decision->overflow;
  }
  metrics.targetTokens = batch.targetTokens;
  metrics.sourceTokens = batch.sourceTokens;
  for (int32_t buffer : countBuffers_) {
    int64_t n = executor_->program().buffers[buffer].type.numElements();
    std::vector<int32_t> counts(static_cast<size_t>(n));
    MOERT_RETURN_IF_ERROR(executor_->readBuffer(
        buffer, counts.data(), counts.size() * sizeof(int32_t)));
    metrics.expertCounts.push_back(std::move(counts));
  }
  metrics.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return metrics;
}

Status Trainer::gatherLogical(const ParameterState &param, bool state,
                              int32_t buffer,
                              std::vector<float> &logical) const {
  const ShardSpec &spec = state ? param.stateSharding : param.sharding;
  const exec::TensorBlock &block = state ? param.stateBlock : param.valueBlock;
  std::vector<float> localCopy(static_cast<size_t>(block.numElements()));
  MOERT_RETURN_IF_ERROR(executor_->readBuffer(
      buffer, localCopy.data(), localCopy.size() * sizeof(float)));
  const float *local = localCopy.data();
  if (!grid_ || isReplicated(location_.shape, spec)) {
    // Every rank holds the whole tensor; rank 0's copy is the checkpoint's.
    if (isRankZero())
      logical.assign(local, local + param.numElements());
    return Status::success();
  }
  // Every rank contributes its block (in world-rank order); rank 0 places
  // each at that rank's coordinates. Replicas of a block write the same
  // bytes, since the plan's collectives keep replicas identical.
  comm::Communicator &world = grid_->world();
  int64_t count = block.numElements();
  std::vector<float> shards(static_cast<size_t>(count * world.size()));
  MOERT_RETURN_IF_ERROR(
      world.allGather(local, shards.data(), count, comm::ElementType::F32));
  if (!isRankZero())
    return Status::success();
  logical.resize(static_cast<size_t>(param.numElements()));
  return assembleShards(location_.shape, param.shape, spec, sizeof(float),
                        shards.data(), logical.data());
}

namespace {
/// A checkpoint with non-finite values would replace the last good one (and
/// resume to garbage): refuse to write it, naming the first bad tensor.
Status checkFinite(const std::string &name, const std::vector<float> &values,
                   const std::string &consequence) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isfinite(values[i]))
      continue;
    size_t count = 0;
    for (float value : values)
      count += std::isfinite(value) ? 0 : 1;
    return failedPrecondition(
        "tensor '" + name + "' has " + std::to_string(count) + " of " +
        std::to_string(values.size()) + " values non-finite (the first at " +
        "element " + std::to_string(i) + " is " +
        (std::isnan(values[i]) ? "nan" : values[i] > 0 ? "inf" : "-inf") +
        "); " + consequence);
  }
  return Status::success();
}
} // namespace

Status Trainer::saveCheckpoint(const std::string &path, int64_t step) const {
  // Gathering is collective: every rank walks the same tensors in the same
  // order; only rank 0 keeps the logical tensors and writes.
  checkpoint::CheckpointWriter writer;
  std::vector<std::vector<float>> logical;
  logical.reserve(parameters_.size() * 3);
  Status status;
  for (const ParameterState &p : parameters_) {
    struct Tensor {
      const char *suffix;
      int32_t buffer;
      bool state;
    };
    for (const Tensor &tensor :
         {Tensor{"", p.value, false}, Tensor{".exp_avg", p.expAvg, true},
          Tensor{".exp_avg_sq", p.expAvgSq, true}}) {
      if (tensor.buffer < 0)
        continue;
      logical.emplace_back();
      MOERT_RETURN_IF_ERROR(
          gatherLogical(p, tensor.state, tensor.buffer, logical.back()));
      if (isRankZero() && status.ok())
        status = checkFinite(p.name + tensor.suffix, logical.back(),
                             "not writing a non-finite checkpoint to '" +
                                 path + "' (an earlier checkpoint there is "
                                        "kept)");
      if (isRankZero() && status.ok())
        status = writer.addF32(p.name + tensor.suffix, p.shape,
                               logical.back().data());
    }
  }
  if (isRankZero()) {
    writer.setStep(step);
    if (status.ok())
      status = writer.setMetadata("moert.seed", std::to_string(seed_));
    if (status.ok() && lossScaler_)
      status = writer.setMetadata(kLossScalerKey,
                                  formatScalerState(lossScaler_->state()));
    const fb::Plan &plan = plan_.plan();
    if (status.ok())
      status = writer.setMetadata(
          "moert.model", plan.model_name() ? plan.model_name()->str() : "");
    if (status.ok())
      status = writer.write(path);
    if (!status.ok())
      status.withContext("writing checkpoint '" + path + "'");
  }
  // Every rank learns whether rank 0 wrote the file, so that all of them
  // stop (or go on) together.
  if (grid_ && grid_->worldSize() > 1) {
    int32_t failed = status.ok() ? 0 : 1;
    MOERT_RETURN_IF_ERROR(grid_->world().allReduce(
        &failed, 1, comm::ElementType::I32, comm::ReduceOp::Max));
    if (failed && status.ok())
      return Status(StatusCode::Unavailable,
                    "rank 0 could not write checkpoint '" + path + "'");
  }
  return status;
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
  // A checkpoint of another model is refused by name before any tensor is
  // compared (a checkpoint without the key predates it and is compared by
  // tensors only).
  auto model = file.metadata().find("moert.model");
  const fb::Plan &planView = plan_.plan();
  std::string planModel =
      planView.model_name() ? planView.model_name()->str() : "";
  if (model != file.metadata().end() && model->second != planModel)
    return invalidArgument("checkpoint '" + path + "' is of model '" +
                           model->second + "', the plan is of model '" +
                           planModel + "'");
  MOERT_ASSIGN_OR_RETURN(int64_t step, file.step());
  // The loss scaler continues where it was (a checkpoint without one, e.g.
  // of an fp32 run, starts a fresh scaler).
  std::optional<train::DynamicLossScaler> scaler = lossScaler_;
  if (scaler) {
    MOERT_ASSIGN_OR_RETURN(train::DynamicLossScaler fresh,
                           train::DynamicLossScaler::create(scaler->config()));
    scaler.emplace(std::move(fresh));
    auto saved = file.metadata().find(kLossScalerKey);
    if (saved != file.metadata().end()) {
      MOERT_ASSIGN_OR_RETURN(train::LossScalerState state,
                             parseScalerState(saved->second));
      MOERT_RETURN_IF_ERROR(
          scaler->restore(state).withContext("checkpoint '" + path + "'"));
    }
  }
  // Read every shard before writing anything: a bad checkpoint leaves the
  // trainer's state untouched.
  std::vector<std::vector<float>> shards;
  for (const ParameterState &p : parameters_) {
    for (const char *suffix : {"", ".exp_avg", ".exp_avg_sq"}) {
      bool state = suffix[0] != '\0';
      if (state && !p.hasMoments())
        continue;
      MOERT_ASSIGN_OR_RETURN(
          checkpoint::TensorView view,
          file.tensor(p.name + suffix, checkpoint::DType::F32, p.shape));
      const exec::TensorBlock &block = state ? p.stateBlock : p.valueBlock;
      std::vector<float> shard(static_cast<size_t>(block.numElements()));
      exec::copyBlockOut(view.data, p.shape, sizeof(float), block,
                         shard.data());
      MOERT_RETURN_IF_ERROR(checkFinite(
          p.name + suffix, shard,
          "checkpoint '" + path + "' cannot be resumed from"));
      shards.push_back(std::move(shard));
    }
  }
  size_t next = 0;
  for (ParameterState &p : parameters_) {
    for (int32_t target : {p.value, p.expAvg, p.expAvgSq}) {
      if (target < 0)
        continue;
      MOERT_RETURN_IF_ERROR(executor_->writeBuffer(
          target, shards[next].data(), shards[next].size() * sizeof(float)));
      ++next;
    }
  }
  if (scaler)
    lossScaler_ = std::move(scaler);
  MOERT_RETURN_IF_ERROR(refreshDeviceCopies());
  return step;
}

Expected<eval::NextTokenFn>
Trainer::nextTokenFunction(std::vector<std::vector<int32_t>> sources,
                           DecodeMode mode) {
  if (grid_ && grid_->worldSize() > 1)
    return unimplemented("decoding runs in one process (compile the model "
                         "without --moe-partition to evaluate a checkpoint "
                         "of a partitioned run)");
  const exec::Program &program = executor_->program();
  // The forward part of the step: everything up to the first loss.
  const std::optional<size_t> lossIndex = stepLossInstruction();
  if (!lossIndex)
    return failedPrecondition("the plan has no moe.cross_entropy: nothing "
                              "gives the decoder's logits");
  const size_t lossAt = *lossIndex;
  const int32_t logitsId = program.instructions[lossAt].operands[0];
  const exec::TensorType &logitsType = program.buffers[logitsId].type;
  const SyntheticTaskConfig c = task_->config();
  if (logitsType.shape.size() != 3 || logitsType.shape[0] != c.batchSize ||
      logitsType.shape[1] != c.tgtLen)
    return failedPrecondition("the logits are " + logitsType.str() +
                              ", expected [batch, target length, vocabulary]");
  const int64_t vocab = logitsType.shape[2];
  for (size_t s = 0; s < sources.size(); ++s) {
    if (sources[s].empty())
      return invalidArgument("source " + std::to_string(s) + " is empty");
    for (int32_t id : sources[s])
      if (id < 0 || id >= vocab)
        return invalidArgument(
            "source " + std::to_string(s) + " has token " + std::to_string(id) +
            ", outside the vocabulary of " + std::to_string(vocab));
    // Cut to the plan's source length, keeping the last token (</s>).
    if (static_cast<int64_t>(sources[s].size()) > c.srcLen) {
      const int32_t last = sources[s].back();
      sources[s].resize(static_cast<size_t>(c.srcLen));
      sources[s].back() = last;
    }
  }
  if (mode == DecodeMode::Incremental && hasIncrementalDecoder(program))
    return incrementalNextTokenFunction(*executor_, std::move(sources), c.padId,
                                        seed_);
  const bool recomputeSources = mode == DecodeMode::Recompute;
  // Which forward instructions depend on the target tokens (the decoder
  // and what follows it); the others depend on the sources and parameters
  // only and give the same results for the same sources. `kept[i]`: the
  // results of source-only instruction i that a target-dependent one reads.
  std::vector<bool> dependsOnTarget(lossAt + 1, false);
  std::vector<std::vector<int32_t>> kept(lossAt + 1);
  {
    std::set<int32_t> tainted = {batchBuffers_.tgt.buffer,
                                 batchBuffers_.labels.buffer};
    for (size_t i = 0; i <= lossAt; ++i) {
      const exec::Instruction &inst = program.instructions[i];
      for (int32_t operand : inst.operands)
        if (tainted.count(operand))
          dependsOnTarget[i] = true;
      if (dependsOnTarget[i])
        tainted.insert(inst.results.begin(), inst.results.end());
    }
    std::map<int32_t, size_t> producer;
    for (size_t i = 0; i <= lossAt; ++i)
      for (int32_t result : program.instructions[i].results)
        producer[result] = i;
    std::set<int32_t> seen;
    for (size_t i = 0; i <= lossAt; ++i) {
      if (!dependsOnTarget[i])
        continue;
      for (int32_t operand : program.instructions[i].operands) {
        auto it = producer.find(operand);
        if (it != producer.end() && !dependsOnTarget[it->second] &&
            seen.insert(operand).second)
          kept[it->second].push_back(operand);
      }
    }
  }
  // Each source is encoded once, in the first batch it is decoded in: the
  // kept results are stored per source (their rows of the batch: every
  // kept buffer must be batch-major, its first dimension the batch), and
  // later batches write them back instead of running the source-only
  // instructions again. A plan whose kept buffers are not batch-major
  // recomputes everything.
  bool batchMajor = true;
  for (const std::vector<int32_t> &results : kept)
    for (int32_t buffer : results) {
      const exec::TensorType &type = program.buffers[buffer].type;
      if (type.shape.empty() || type.shape[0] != c.batchSize)
        batchMajor = false;
    }
  const bool reuse = batchMajor && !recomputeSources;
  // Per source: per kept buffer, the bytes of its rows.
  using Encoding = std::map<int32_t, std::vector<uint8_t>>;
  auto encoded = std::make_shared<std::map<int64_t, Encoding>>();
  auto logits = std::make_shared<std::vector<float>>(
      static_cast<size_t>(logitsType.numElements()));
  return eval::NextTokenFn(
      [this, sources = std::move(sources), logits, lossAt, logitsId, vocab, c,
       dependsOnTarget, kept, encoded,
       reuse](const std::vector<int64_t> &rows,
              const std::vector<std::vector<int32_t>> &prefixes)
          -> Expected<std::vector<std::vector<float>>> {
        std::vector<std::vector<float>> out;
        out.reserve(rows.size());
        // The plan's batch is fixed: rows go through it B at a time; unused
        // rows repeat the chunk's first row (a real sentence, so that the
        // gates see tokens like those of training rather than all pads).
        for (size_t first = 0; first < rows.size();
             first += static_cast<size_t>(c.batchSize)) {
          const size_t count = std::min<size_t>(
              static_cast<size_t>(c.batchSize), rows.size() - first);
          SeqBatch input;
          input.srcTokens.assign(static_cast<size_t>(c.batchSize * c.srcLen),
                                 c.padId);
          input.tgtTokens.assign(static_cast<size_t>(c.batchSize * c.tgtLen),
                                 c.padId);
          input.labels.assign(static_cast<size_t>(c.batchSize * c.tgtLen),
                              c.padId);
          std::vector<int64_t> batchSources;
          for (int64_t b = 0; b < c.batchSize; ++b) {
            const size_t i =
                first +
                (static_cast<size_t>(b) < count ? static_cast<size_t>(b) : 0);
            if (rows[i] < 0 || rows[i] >= static_cast<int64_t>(sources.size()))
              return invalidArgument("decoding asked for source " +
                                     std::to_string(rows[i]) + " of " +
                                     std::to_string(sources.size()));
            batchSources.push_back(rows[i]);
            const std::vector<int32_t> &source = sources[rows[i]];
            std::copy(source.begin(), source.end(),
                      input.srcTokens.begin() + b * c.srcLen);
            const std::vector<int32_t> &prefix = prefixes[i];
            for (size_t t = 0;
                 t < prefix.size() && static_cast<int64_t>(t) < c.tgtLen; ++t)
              input.tgtTokens[b * c.tgtLen + t] = prefix[t];
          }
          MOERT_RETURN_IF_ERROR(
              writeBatch(*executor_, batchBuffers_, input, 1, &location_));
          const exec::RunContext context = stepEvaluationContext();
          bool allEncoded = reuse;
          for (int64_t source : batchSources)
            allEncoded = allEncoded && encoded->count(source) > 0;
          // Kept buffer `buffer` from the stored rows of every source of
          // the batch (rows of sources not stored yet are left as computed,
          // and stored).
          auto restoreRows = [&](int32_t buffer, bool computed) -> Status {
            const int64_t bytes =
                executor_->program().buffers[buffer].type.byteSize();
            const size_t rowBytes = static_cast<size_t>(bytes / c.batchSize);
            std::vector<uint8_t> whole(static_cast<size_t>(bytes));
            if (computed)
              MOERT_RETURN_IF_ERROR(
                  executor_->readBuffer(buffer, whole.data(), whole.size()));
            bool changed = !computed;
            for (size_t b = 0; b < batchSources.size(); ++b) {
              uint8_t *row = whole.data() + b * rowBytes;
              Encoding &encoding = (*encoded)[batchSources[b]];
              auto stored = encoding.find(buffer);
              if (stored == encoding.end()) {
                encoding[buffer].assign(row, row + rowBytes);
              } else {
                std::copy(stored->second.begin(), stored->second.end(), row);
                changed = true;
              }
            }
            if (changed)
              MOERT_RETURN_IF_ERROR(
                  executor_->writeBuffer(buffer, whole.data(), whole.size()));
            return Status::success();
          };
          for (size_t i = 0; i <= lossAt; ++i) {
            if (allEncoded && !dependsOnTarget[i]) {
              // Written where the instruction would have computed it, so
              // the plan's buffer lifetimes hold as in a full run.
              for (int32_t buffer : kept[i])
                MOERT_RETURN_IF_ERROR(restoreRows(buffer, false));
              continue;
            }
            MOERT_RETURN_IF_ERROR(executor_->runInstruction(i, context));
            if (reuse)
              for (int32_t buffer : kept[i])
                MOERT_RETURN_IF_ERROR(restoreRows(buffer, true));
          }
          MOERT_RETURN_IF_ERROR(executor_->readBuffer(
              logitsId, logits->data(), logits->size() * sizeof(float)));
          for (size_t b = 0; b < count; ++b) {
            // The prediction after the prefix's last token; a prefix as
            // long as the plan's target has no room for another token.
            const int64_t position = std::min<int64_t>(
                static_cast<int64_t>(prefixes[first + b].size()) - 1,
                c.tgtLen - 1);
            out.push_back(eval::logSoftmax(
                logits->data() +
                    (static_cast<int64_t>(b) * c.tgtLen + position) * vocab,
                vocab));
          }
        }
        return out;
      });
}

exec::RunContext Trainer::stepEvaluationContext() const {
  exec::RunContext context = exec::RunContext::evaluation(seed_);
  context.trainingCapacity = true; // the step's buffers hold its capacity
  return context;
}

std::optional<size_t> Trainer::stepLossInstruction() const {
  const exec::Program &program = executor_->program();
  for (size_t i = 0; i < program.stepEnd(); ++i)
    if (program.instructions[i].kernel == "moe.cross_entropy")
      return i;
  return std::nullopt;
}

Expected<HeldOutLoss>
Trainer::heldOutLoss(const std::vector<std::vector<int32_t>> &sources,
                     const std::vector<std::vector<int32_t>> &targets,
                     int32_t bos) {
  if (grid_ && grid_->worldSize() > 1)
    return unimplemented("the held-out loss runs in one process (compile the "
                         "model without --moe-partition)");
  const int32_t padId = task_->config().padId;
  if (hasEvaluateProgram(executor_->program())) {
    MOERT_ASSIGN_OR_RETURN(auto evaluate,
                           evaluateProgramLoss(*executor_, seed_));
    return runner::heldOutLoss(evaluate.first, sources, targets, padId, bos,
                               evaluate.second);
  }
  // Without `evaluate`: the training step's forward up to its loss, in
  // evaluation mode with the step's capacity (for which its buffers are
  // sized).
  const std::optional<size_t> lossIndex = stepLossInstruction();
  if (!lossIndex || lossBuffer_ < 0)
    return failedPrecondition("the plan's step has no moe.cross_entropy");
  const size_t lossAt = *lossIndex;
  const int32_t lossId = executor_->program().instructions[lossAt].results[0];
  const SyntheticTaskConfig c = task_->config();
  BatchLossFn stepLoss =
      [&](const std::vector<int32_t> &src, const std::vector<int32_t> &tgt,
          const std::vector<int32_t> &labels) -> Expected<float> {
    SeqBatch batch;
    batch.srcTokens = src;
    batch.tgtTokens = tgt;
    batch.labels = labels;
    MOERT_RETURN_IF_ERROR(
        writeBatch(*executor_, batchBuffers_, batch, 1, &location_));
    const exec::RunContext context = stepEvaluationContext();
    for (size_t i = 0; i <= lossAt; ++i)
      MOERT_RETURN_IF_ERROR(executor_->runInstruction(i, context));
    float value = 0.0f;
    MOERT_RETURN_IF_ERROR(executor_->readBuffer(lossId, &value, sizeof(value)));
    return value;
  };
  return runner::heldOutLoss({c.batchSize, c.srcLen, c.tgtLen}, sources,
                             targets, padId, bos, stepLoss);
}

Expected<Trainer::GreedyEval> Trainer::evaluateGreedy(int64_t batches) {
  const SyntheticTaskConfig &c = task_->config();
  GreedyEval result;
  for (int64_t k = 0; k < batches; ++k) {
    // Held out: batches of steps no training run reaches.
    SeqBatch batch = task_->batch(seed_ ^ 0x5EEDull, 1000000000 + k);
    std::vector<std::vector<int32_t>> sources(static_cast<size_t>(c.batchSize));
    for (int64_t b = 0; b < c.batchSize; ++b)
      sources[b].assign(batch.srcTokens.begin() + b * c.srcLen,
                        batch.srcTokens.begin() + (b + 1) * c.srcLen);
    MOERT_ASSIGN_OR_RETURN(eval::NextTokenFn next,
                           nextTokenFunction(std::move(sources)));
    eval::DecodeOptions options;
    options.bos = task_->bosId();
    options.eos = task_->eosId();
    options.maxLength = c.tgtLen;
    MOERT_ASSIGN_OR_RETURN(std::vector<std::vector<int32_t>> decoded,
                           eval::greedyDecode(c.batchSize, next, options));
    for (int64_t b = 0; b < c.batchSize; ++b) {
      std::vector<int32_t> reference;
      for (int64_t t = 0; t < c.tgtLen; ++t) {
        const int32_t label = batch.labels[b * c.tgtLen + t];
        if (label == c.padId || label == task_->eosId())
          break;
        reference.push_back(label);
      }
      ++result.sequences;
      result.exact += decoded[b] == reference;
      result.tokens += static_cast<int64_t>(reference.size());
      for (size_t t = 0; t < reference.size() && t < decoded[b].size(); ++t)
        result.correct += decoded[b][t] == reference[t];
    }
  }
  return result;
}

} // namespace runner
} // namespace moert
