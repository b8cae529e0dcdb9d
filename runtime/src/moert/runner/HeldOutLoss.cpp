//===- HeldOutLoss.cpp - Teacher-forced loss of held-out pairs ------------===//
#include "moert/runner/HeldOutLoss.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace moert {
namespace runner {

Expected<HeldOutLoss>
heldOutLoss(const LossBatchShape &shape,
            const std::vector<std::vector<int32_t>> &sources,
            const std::vector<std::vector<int32_t>> &targets, int32_t padId,
            int32_t bos, const BatchLossFn &lossOf) {
  if (sources.size() != targets.size())
    return invalidArgument(std::to_string(sources.size()) + " sources for " +
                           std::to_string(targets.size()) + " targets");
  const int64_t B = shape.batch, S = shape.srcLen, T = shape.tgtLen;
  if (B < 1 || S < 1 || T < 1)
    return invalidArgument("a loss batch needs rows and lengths >= 1");
  HeldOutLoss result;
  double sum = 0.0;
  for (size_t first = 0; first < sources.size();
       first += static_cast<size_t>(B)) {
    const size_t count =
        std::min<size_t>(static_cast<size_t>(B), sources.size() - first);
    std::vector<int32_t> src(static_cast<size_t>(B * S), padId),
        tgt(static_cast<size_t>(B * T), padId),
        labels(static_cast<size_t>(B * T), padId);
    int64_t tokens = 0;
    for (int64_t b = 0; b < B; ++b) {
      const bool used = static_cast<size_t>(b) < count;
      const size_t i = first + (used ? static_cast<size_t>(b) : 0);
      std::vector<int32_t> source = sources[i];
      if (source.empty() || targets[i].empty())
        return invalidArgument("pair " + std::to_string(i) +
                               " has an empty side");
      if (static_cast<int64_t>(source.size()) > S) {
        const int32_t last = source.back();
        source.resize(static_cast<size_t>(S));
        source.back() = last;
      }
      std::copy(source.begin(), source.end(), src.begin() + b * S);
      if (!used)
        continue;
      const std::vector<int32_t> &target = targets[i];
      const int64_t n =
          std::min<int64_t>(static_cast<int64_t>(target.size()), T);
      for (int64_t t = 0; t < n; ++t) {
        tgt[b * T + t] = t == 0 ? bos : target[t - 1];
        labels[b * T + t] = target[t];
        tokens += target[t] != padId;
      }
    }
    MOERT_ASSIGN_OR_RETURN(float value, lossOf(src, tgt, labels));
    if (!std::isfinite(value))
      return dataLoss("the held-out loss of pairs " + std::to_string(first) +
                      ".." + std::to_string(first + count - 1) +
                      " is not finite (" + std::to_string(value) + ")");
    sum += static_cast<double>(value) * static_cast<double>(tokens);
    result.tokens += tokens;
    result.sentences += static_cast<int64_t>(count);
  }
  result.loss =
      result.tokens > 0 ? sum / static_cast<double>(result.tokens) : 0.0;
  return result;
}

bool hasEvaluateProgram(const exec::Program &program) {
  return program.findEntryPoint("evaluate") != nullptr;
}

Expected<std::pair<LossBatchShape, BatchLossFn>>
evaluateProgramLoss(exec::Executor &executor, uint64_t seed) {
  const exec::Program &program = executor.program();
  const exec::EntryPoint *entry = program.findEntryPoint("evaluate");
  if (!entry)
    return failedPrecondition("the plan has no 'evaluate' program (compile "
                              "with --moe-training-pipeline=\"decoder=true\")");
  const int32_t src = program.bufferNamed(entry->inputs, "evaluate:src_tokens");
  const int32_t tgt = program.bufferNamed(entry->inputs, "evaluate:tgt_tokens");
  const int32_t labels = program.bufferNamed(entry->inputs, "evaluate:labels");
  const int32_t loss = program.bufferNamed(entry->outputs, "evaluate:loss");
  if (src < 0 || tgt < 0 || labels < 0 || loss < 0)
    return failedPrecondition("the 'evaluate' program lacks src_tokens, "
                              "tgt_tokens, labels or loss");
  const exec::TensorType &srcType = program.buffers[src].type;
  const exec::TensorType &tgtType = program.buffers[tgt].type;
  if (srcType.shape.size() != 2 || tgtType.shape.size() != 2 ||
      srcType.shape[0] != tgtType.shape[0] ||
      program.buffers[labels].type.shape != tgtType.shape ||
      program.buffers[loss].type.numElements() != 1 ||
      program.buffers[loss].type.dtype != exec::DType::F32)
    return failedPrecondition(
        "the 'evaluate' program's batch is " + srcType.str() + ", " +
        tgtType.str() + ", " + program.buffers[labels].type.str() +
        " with loss " + program.buffers[loss].type.str() +
        ", expected [B, S], [B, T], [B, T] and an f32 scalar");
  LossBatchShape shape{srcType.shape[0], srcType.shape[1], tgtType.shape[1]};
  BatchLossFn lossOf =
      [&executor, entry, src, tgt, labels, loss,
       seed](const std::vector<int32_t> &srcIds,
             const std::vector<int32_t> &tgtIds,
             const std::vector<int32_t> &labelIds) -> Expected<float> {
    MOERT_RETURN_IF_ERROR(
        executor.writeBuffer(src, srcIds.data(), srcIds.size() * 4));
    MOERT_RETURN_IF_ERROR(
        executor.writeBuffer(tgt, tgtIds.data(), tgtIds.size() * 4));
    MOERT_RETURN_IF_ERROR(
        executor.writeBuffer(labels, labelIds.data(), labelIds.size() * 4));
    MOERT_RETURN_IF_ERROR(
        executor.run(*entry, exec::RunContext::evaluation(seed)));
    float value = 0.0f;
    MOERT_RETURN_IF_ERROR(executor.readBuffer(loss, &value, sizeof(value)));
    return value;
  };
  return std::make_pair(shape, std::move(lossOf));
}

} // namespace runner
} // namespace moert
