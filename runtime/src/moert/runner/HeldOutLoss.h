//===- HeldOutLoss.h - Teacher-forced loss of held-out pairs -*- C++ -*-===//
//
// The validation loss of translation pairs: the model's loss (label
// smoothing included) of predicting each target from its source with the
// reference prefix as decoder input, B pairs at a time, averaged over all
// target tokens. The batches are built here; what computes a batch's loss
// is the caller's: moe-build-decoder's `evaluate` program (the training
// forward in evaluation mode: no dropout, MoE layers with the evaluation
// capacity factor), or the training step's forward up to its loss
// (Trainer::heldOutLoss, for plans without `evaluate`).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_HELDOUTLOSS_H
#define MOERT_RUNNER_HELDOUTLOSS_H

#include "moert/exec/Executor.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace moert {
namespace runner {

struct HeldOutLoss {
  double loss = 0.0; // per target token (</s> included)
  int64_t tokens = 0, sentences = 0;
};

/// The batch a loss function takes: rows, source and target lengths.
struct LossBatchShape {
  int64_t batch = 0, srcLen = 0, tgtLen = 0;
};

/// The mean loss over the target tokens of one batch ([B, S] source ids,
/// [B, T] decoder inputs and labels; labels equal to the pad id count
/// for nothing).
using BatchLossFn = std::function<Expected<float>(
    const std::vector<int32_t> &src, const std::vector<int32_t> &tgt,
    const std::vector<int32_t> &labels)>;

/// The loss of predicting `targets[i]` (token ids ending with </s>) from
/// `sources[i]` (ending with </s>): decoder inputs <s> + target[:-1]; both
/// sides cut to the batch's lengths as training cuts them (the source
/// keeps its </s>). Rows beyond the last pair repeat the batch's first
/// source with every label ignored.
Expected<HeldOutLoss>
heldOutLoss(const LossBatchShape &shape,
            const std::vector<std::vector<int32_t>> &sources,
            const std::vector<std::vector<int32_t>> &targets, int32_t padId,
            int32_t bos, const BatchLossFn &lossOf);

/// True when `program` has the `evaluate` entry point.
bool hasEvaluateProgram(const exec::Program &program);

/// The batch shape and loss function of `executor`'s `evaluate` program
/// (checked). The executor must outlive the function and run nothing else
/// while it runs.
Expected<std::pair<LossBatchShape, BatchLossFn>>
evaluateProgramLoss(exec::Executor &executor, uint64_t seed);

} // namespace runner
} // namespace moert

#endif // MOERT_RUNNER_HELDOUTLOSS_H
