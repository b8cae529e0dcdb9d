//===- StepIO.cpp - Feeding a plan's batch inputs, reading its outputs ----===//
#include "moert/runner/StepIO.h"

#include <cstring>

namespace moert {
namespace runner {

namespace fb = plan::fb;

namespace {

const fb::BatchInput *findBatchInput(const fb::Plan &plan,
                                     const std::string &name) {
  if (plan.batch_inputs())
    for (const fb::BatchInput *input : *plan.batch_inputs())
      if (input->name()->str() == name)
        return input;
  return nullptr;
}

BatchInputPlace batchInputPlace(const fb::Plan &plan, const std::string &name) {
  BatchInputPlace place;
  if (const fb::BatchInput *input = findBatchInput(plan, name)) {
    place.buffer = input->buffer();
    if (input->shape())
      place.shape.assign(input->shape()->begin(), input->shape()->end());
    place.sharding = shardSpecOf(input->sharding());
  }
  return place;
}

/// The location a caller that gave none means: rank 0 of the plan's grid.
GridLocation locationOrFirst(const fb::Plan &plan,
                             const GridLocation *location) {
  return location ? *location : GridLocation::ofRank(gridShapeOf(plan), 0);
}

} // namespace

int32_t batchInputBuffer(const fb::Plan &plan, const std::string &name) {
  const fb::BatchInput *input = findBatchInput(plan, name);
  return input ? input->buffer() : -1;
}

Expected<BatchBuffers> findBatchBuffers(const fb::Plan &plan) {
  BatchBuffers buffers;
  buffers.src = batchInputPlace(plan, "src_tokens");
  buffers.tgt = batchInputPlace(plan, "tgt_tokens");
  buffers.labels = batchInputPlace(plan, "labels");
  buffers.step = batchInputBuffer(plan, "step");
  for (auto [name, id] :
       {std::pair<const char *, int32_t>{"src_tokens", buffers.src.buffer},
        {"tgt_tokens", buffers.tgt.buffer},
        {"labels", buffers.labels.buffer}})
    if (id < 0)
      return invalidArgument(std::string("the plan has no batch input '") +
                             name +
                             "' (expected an encoder-decoder step with "
                             "src_tokens, tgt_tokens and labels)");
  return buffers;
}

Expected<SyntheticTaskConfig> syntheticTaskConfig(const exec::Program &p,
                                                  const BatchBuffers &batch,
                                                  int64_t alphabet) {
  SyntheticTaskConfig task;
  // The task draws the logical (global) batch; each rank takes its block.
  for (const BatchInputPlace *input : {&batch.src, &batch.tgt, &batch.labels})
    if (p.buffers[input->buffer].type.dtype != exec::DType::I32)
      return invalidArgument("batch inputs must be i32; found " +
                             p.buffers[input->buffer].type.str());
  const std::vector<int64_t> &src = batch.src.shape;
  const std::vector<int64_t> &tgt = batch.tgt.shape;
  const std::vector<int64_t> &labels = batch.labels.shape;
  if (src.size() != 2 || labels.size() != 2 || src[0] != labels[0] ||
      tgt != labels)
    return invalidArgument("batch inputs must be [batch, length] with one "
                           "batch size and tgt_tokens shaped like labels; "
                           "found src_tokens " +
                           plan::formatShape(src) + ", tgt_tokens " +
                           plan::formatShape(tgt) + " and labels " +
                           plan::formatShape(labels));
  task.batchSize = src[0];
  task.srcLen = src[1];
  task.tgtLen = labels[1];
  task.alphabet = alphabet;
  bool found = false;
  for (const exec::Instruction &inst : p.instructions)
    if (inst.kernel == "moe.cross_entropy" && !inst.operands.empty()) {
      found = true;
      task.vocabSize = p.buffers[inst.operands[0]].type.shape.back();
      if (auto it = inst.attrs.find("ignore_index"); it != inst.attrs.end())
        if (const int64_t *pad = std::get_if<int64_t>(&it->second))
          task.padId = static_cast<int32_t>(*pad);
    }
  if (!found)
    return invalidArgument("the plan has no moe.cross_entropy instruction "
                           "to take the vocabulary and pad id from");
  return task;
}

InitKind initKindOf(fb::InitKind kind) {
  switch (kind) {
  case fb::InitKind::zeros:
    return InitKind::Zeros;
  case fb::InitKind::ones:
    return InitKind::Ones;
  case fb::InitKind::normal:
    return InitKind::Normal;
  case fb::InitKind::uniform:
    return InitKind::Uniform;
  case fb::InitKind::xavier_uniform:
    return InitKind::XavierUniform;
  }
  return InitKind::Zeros;
}

Status initializeAllParameters(const fb::Plan &plan, exec::Executor &executor,
                               uint64_t seed, const GridLocation *location) {
  if (!plan.parameters())
    return Status::success();
  GridLocation here = locationOrFirst(plan, location);
  const exec::Program &program = executor.program();
  std::vector<float> logical;
  for (const fb::Parameter *param : *plan.parameters()) {
    std::string name = param->name()->str();
    int32_t id = param->buffer();
    if (id < 0 || static_cast<size_t>(id) >= program.buffers.size())
      return invalidArgument("parameter '" + name +
                             "' has no buffer in the plan");
    std::vector<int64_t> shape;
    if (param->shape())
      shape.assign(param->shape()->begin(), param->shape()->end());
    Expected<exec::TensorBlock> block =
        shardBlock(here, shape, shardSpecOf(param->sharding()));
    if (!block.ok())
      return block.takeStatus().withContext("parameter '" + name + "'");
    const exec::TensorType &type = program.buffers[id].type;
    if (type.dtype != exec::DType::F32 || type.shape != block->extent)
      return invalidArgument(
          "parameter '" + name + "': buffer " + std::to_string(id) + " is " +
          type.str() + ", expected f32 of the shard shape " +
          plan::formatShape(block->extent) + " (logical shape " +
          plan::formatShape(shape) + ")");
    int64_t elements = 1;
    for (int64_t d : shape)
      elements *= d;
    logical.resize(static_cast<size_t>(elements));
    initializeParameter(initKindOf(param->init()), param->init_scale(), seed,
                        name, shape, logical.data());
    std::vector<float> local(static_cast<size_t>(block->numElements()));
    exec::copyBlockOut(logical.data(), shape, sizeof(float), *block,
                       local.data());
    MOERT_RETURN_IF_ERROR(
        executor.writeBuffer(id, local.data(), local.size() * sizeof(float))
            .withContext("parameter '" + name + "'"));
  }
  return Status::success();
}

Status writeBatch(exec::Executor &executor, const BatchBuffers &buffers,
                  const SeqBatch &batch, int64_t step,
                  const GridLocation *location) {
  const exec::Program &program = executor.program();
  GridLocation here =
      location ? *location : GridLocation::ofRank(program.gridShape, 0);
  auto write = [&](const char *what, const BatchInputPlace &input,
                   const std::vector<int32_t> &values) -> Status {
    const exec::TensorType &type = program.buffers[input.buffer].type;
    int64_t logicalElements = 1;
    for (int64_t d : input.shape)
      logicalElements *= d;
    if (logicalElements != static_cast<int64_t>(values.size()))
      return invalidArgument(
          std::string("batch input '") + what + "' is logically " +
          plan::formatShape(input.shape) + ", the batch has " +
          std::to_string(values.size()) + " values");
    Expected<exec::TensorBlock> block =
        shardBlock(here, input.shape, input.sharding);
    if (!block.ok())
      return block.takeStatus().withContext(std::string("batch input '") +
                                            what + "'");
    if (type.dtype != exec::DType::I32 || type.shape != block->extent)
      return invalidArgument(std::string("batch input '") + what + "' is " +
                             type.str() + ", expected i32 of the shard shape " +
                             plan::formatShape(block->extent));
    std::vector<int32_t> local(static_cast<size_t>(block->numElements()));
    exec::copyBlockOut(values.data(), input.shape, sizeof(int32_t), *block,
                       local.data());
    return executor.writeBuffer(input.buffer, local.data(),
                                local.size() * sizeof(int32_t));
  };
  MOERT_RETURN_IF_ERROR(write("src_tokens", buffers.src, batch.srcTokens));
  MOERT_RETURN_IF_ERROR(write("tgt_tokens", buffers.tgt, batch.tgtTokens));
  MOERT_RETURN_IF_ERROR(write("labels", buffers.labels, batch.labels));
  if (buffers.step >= 0) {
    const exec::TensorType &type = program.buffers[buffers.step].type;
    if (type.numElements() != 1)
      return invalidArgument("batch input 'step' must be a scalar, found " +
                             type.str());
    if (type.dtype == exec::DType::I64) {
      MOERT_RETURN_IF_ERROR(
          executor.writeBuffer(buffers.step, &step, sizeof(step)));
    } else if (type.dtype == exec::DType::I32) {
      int32_t narrow = static_cast<int32_t>(step);
      MOERT_RETURN_IF_ERROR(
          executor.writeBuffer(buffers.step, &narrow, sizeof(narrow)));
    } else
      return invalidArgument("batch input 'step' must be i64 or i32, found " +
                             type.str());
  }
  return Status::success();
}

std::vector<int32_t> buffersWithPrefix(const exec::Program &program,
                                       const std::string &prefix) {
  std::vector<int32_t> ids;
  for (size_t id = 0; id < program.buffers.size(); ++id)
    if (program.buffers[id].name.rfind(prefix, 0) == 0)
      ids.push_back(static_cast<int32_t>(id));
  return ids;
}

} // namespace runner
} // namespace moert
