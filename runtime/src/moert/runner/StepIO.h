//===- StepIO.h - Feeding a plan's batch inputs, reading its outputs ------===//
//
// The pieces every driver of a compiled step needs, whatever the step is
// (a @train_step with the optimizer, or a @forward_grad that only returns
// the loss and the gradients): the batch-input buffers by name, the
// synthetic task shaped after them (vocabulary and pad id from the loss),
// the plan's initializer kinds, and the buffers the compiler named
// "output:*".
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_STEPIO_H
#define MOERT_RUNNER_STEPIO_H

#include "moert/exec/Executor.h"
#include "moert/plan/Plan.h"
#include "moert/runner/Initializers.h"
#include "moert/runner/Sharding.h"
#include "moert/runner/SyntheticTask.h"

#include <string>
#include <vector>

namespace moert {
namespace runner {

/// A batch input of the plan: its persistent buffer (this rank's block),
/// logical shape and shard spec.
struct BatchInputPlace {
  int32_t buffer = -1;
  std::vector<int64_t> shape;
  ShardSpec sharding;
};

/// The batch inputs of a training step (buffer -1 where the plan has none).
struct BatchBuffers {
  BatchInputPlace src, tgt, labels;
  int32_t step = -1;
};

/// The buffer of the batch input `name`, or -1.
int32_t batchInputBuffer(const plan::fb::Plan &plan, const std::string &name);

/// Finds src_tokens, tgt_tokens, labels (required) and step (optional).
Expected<BatchBuffers> findBatchBuffers(const plan::fb::Plan &plan);

/// The synthetic task's configuration for `program`: batch size and lengths
/// from the logical shapes of src_tokens and labels ([B, len] each),
/// vocabulary from the last dimension of the cross_entropy logits, pad id
/// from its ignore_index.
Expected<SyntheticTaskConfig> syntheticTaskConfig(const exec::Program &program,
                                                  const BatchBuffers &batch,
                                                  int64_t alphabet);

/// The runner's initializer for a plan parameter's init kind.
InitKind initKindOf(plan::fb::InitKind kind);

/// Draws every parameter of the plan (the logical tensor, seed and name
/// keyed, so every grid starts from the same values) and copies the block
/// the rank at `location` holds into its buffer. Null `location`: rank 0
/// of the plan's grid (a single-rank plan holds everything).
Status initializeAllParameters(const plan::fb::Plan &plan,
                               exec::Executor &executor, uint64_t seed,
                               const GridLocation *location = nullptr);

/// Copies this rank's block of the logical `batch` into the batch buffers
/// (per the batch inputs' shard specs) and `step` into the step buffer
/// (when the plan has one; i64 or i32), checking the sizes. Null
/// `location`: rank 0 of the plan's grid.
Status writeBatch(exec::Executor &executor, const BatchBuffers &buffers,
                  const SeqBatch &batch, int64_t step,
                  const GridLocation *location = nullptr);

/// Ids of the buffers whose name starts with `prefix`, in id order.
std::vector<int32_t> buffersWithPrefix(const exec::Program &program,
                                       const std::string &prefix);

} // namespace runner
} // namespace moert

#endif // MOERT_RUNNER_STEPIO_H
