//===- BatchSource.h - Where the trainer's batches come from ---*- C++ -*-===//
//
// The trainer draws the global batch of every step from a source (each
// rank then writes its shard): by default the synthetic reversal task,
// or a data source such as the multilingual multitask one
// (moert/data/MultitaskSource.h). A source must be deterministic in
// (seed, step), so that every rank builds the same global batch and a
// resumed run sees the batches it would have seen.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_BATCHSOURCE_H
#define MOERT_RUNNER_BATCHSOURCE_H

#include "moert/Status.h"
#include "moert/runner/SyntheticTask.h"

#include <string>

namespace moert {
namespace runner {

class BatchSource {
public:
  virtual ~BatchSource() = default;
  /// The global batch of training step `step`: [B, srcLen] source tokens,
  /// [B, tgtLen] decoder inputs and labels (pad-filled).
  virtual Expected<SeqBatch> batch(uint64_t seed, int64_t step) = 0;
  /// One line for the log.
  virtual std::string describe() const = 0;

  /// Length buckets (BucketTrainer.h): a source made for several batch
  /// shapes picks one per step, a pure function of (seed, step), and makes
  /// that bucket's global batch. A source of one shape has one bucket.
  virtual size_t numBuckets() const { return 1; }
  virtual size_t bucketAt(uint64_t seed, int64_t step) const {
    (void)seed;
    (void)step;
    return 0;
  }
  virtual Expected<SeqBatch> bucketBatch(size_t bucket, uint64_t seed,
                                         int64_t step) {
    (void)bucket;
    return batch(seed, step);
  }
};

} // namespace runner
} // namespace moert

#endif // MOERT_RUNNER_BATCHSOURCE_H
