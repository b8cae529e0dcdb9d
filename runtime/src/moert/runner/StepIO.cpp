//===- StepIO.cpp - Feeding a plan's batch inputs, reading its outputs ----===//
#include "moert/runner/StepIO.h"

#include <cstring>

namespace moert {
namespace runner {

namespace fb = plan::fb;

int32_t batchInputBuffer(const fb::Plan &plan, const std::string &name) {
  if (plan.batch_inputs())
    for (const fb::BatchInput *input : *plan.batch_inputs())
      if (input->name()->str() == name)
        return input->buffer();
  return -1;
}

Expected<BatchBuffers> findBatchBuffers(const fb::Plan &plan) {
  BatchBuffers buffers;
  buffers.src = batchInputBuffer(plan, "src_tokens");
  buffers.tgt = batchInputBuffer(plan, "tgt_tokens");
  buffers.labels = batchInputBuffer(plan, "labels");
  buffers.step = batchInputBuffer(plan, "step");
  for (auto [name, id] :
       {std::pair<const char *, int32_t>{"src_tokens", buffers.src},
        {"tgt_tokens", buffers.tgt},
        {"labels", buffers.labels}})
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
  const exec::TensorType &src = p.buffers[batch.src].type;
  const exec::TensorType &tgt = p.buffers[batch.tgt].type;
  const exec::TensorType &labels = p.buffers[batch.labels].type;
  for (const exec::TensorType *type : {&src, &tgt, &labels})
    if (type->dtype != exec::DType::I32)
      return invalidArgument("batch inputs must be i32; found " + type->str());
  if (src.shape.size() != 2 || labels.shape.size() != 2 ||
      src.shape[0] != labels.shape[0] || tgt.shape != labels.shape)
    return invalidArgument("batch inputs must be [batch, length] with one "
                           "batch size and tgt_tokens shaped like labels; "
                           "found src_tokens " +
                           src.str() + ", tgt_tokens " + tgt.str() +
                           " and labels " + labels.str());
  task.batchSize = src.shape[0];
  task.srcLen = src.shape[1];
  task.tgtLen = labels.shape[1];
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
                               uint64_t seed) {
  if (!plan.parameters())
    return Status::success();
  const exec::Program &program = executor.program();
  for (const fb::Parameter *param : *plan.parameters()) {
    std::string name = param->name()->str();
    int32_t id = param->buffer();
    if (id < 0 || static_cast<size_t>(id) >= program.buffers.size())
      return invalidArgument("parameter '" + name +
                             "' has no buffer in the plan");
    std::vector<int64_t> shape;
    if (param->shape())
      shape.assign(param->shape()->begin(), param->shape()->end());
    const exec::TensorType &type = program.buffers[id].type;
    int64_t elements = 1;
    for (int64_t d : shape)
      elements *= d;
    if (type.dtype != exec::DType::F32 || type.numElements() != elements)
      return invalidArgument(
          "parameter '" + name + "': buffer " + std::to_string(id) + " is " +
          type.str() + ", expected f32 with the logical shape's " +
          std::to_string(elements) + " elements (single-rank plans only)");
    initializeParameter(initKindOf(param->init()), param->init_scale(), seed,
                        name, shape,
                        static_cast<float *>(executor.bufferData(id)));
  }
  return Status::success();
}

Status writeBatch(exec::Executor &executor, const BatchBuffers &buffers,
                  const SeqBatch &batch, int64_t step) {
  const exec::Program &program = executor.program();
  auto write = [&](const char *what, int32_t id,
                   const std::vector<int32_t> &values) -> Status {
    const exec::TensorType &type = program.buffers[id].type;
    if (type.dtype != exec::DType::I32 ||
        type.numElements() != static_cast<int64_t>(values.size()))
      return invalidArgument(std::string("batch input '") + what + "' is " +
                             type.str() + ", the batch has " +
                             std::to_string(values.size()) + " i32 values");
    std::memcpy(executor.bufferData(id), values.data(),
                values.size() * sizeof(int32_t));
    return Status::success();
  };
  MOERT_RETURN_IF_ERROR(write("src_tokens", buffers.src, batch.srcTokens));
  MOERT_RETURN_IF_ERROR(write("tgt_tokens", buffers.tgt, batch.tgtTokens));
  MOERT_RETURN_IF_ERROR(write("labels", buffers.labels, batch.labels));
  if (buffers.step >= 0) {
    const exec::TensorType &type = program.buffers[buffers.step].type;
    if (type.numElements() != 1)
      return invalidArgument("batch input 'step' must be a scalar, found " +
                             type.str());
    if (type.dtype == exec::DType::I64)
      *static_cast<int64_t *>(executor.bufferData(buffers.step)) = step;
    else if (type.dtype == exec::DType::I32)
      *static_cast<int32_t *>(executor.bufferData(buffers.step)) =
          static_cast<int32_t>(step);
    else
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
