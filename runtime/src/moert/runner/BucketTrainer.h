//===- BucketTrainer.h - Training on length buckets ------------*- C++ -*-===//
//
// Batches by token count on static shapes (bucket_by_sequence_length): the
// same model compiled at several (batch size, source length, target length)
// with about the same tokens per batch, one plan per bucket. The plans share
// one copy of the persistent state: before anything runs, every plan must
// lay out the same parameters and AdamW moments (names, types, kinds,
// offsets, sharding) on the same grid with the same training
// configuration, and none of its other persistent buffers (batch inputs,
// program inputs) may overlap that state; then the first plan's trainer
// allocates one arena, persistent region and host region large enough for
// every plan, and each other plan's executor runs over them
// (exec::Executor::createSharing). Sharing the arena is safe: the plans run
// one at a time, each run completes (collectives included) before the next
// starts, and nothing in the arena lives across steps.
//
// Every step the batch source (BatchSource::bucketAt, a pure function of
// (seed, step), so every rank picks the same bucket and a resumed run the
// same buckets) chooses the bucket; that bucket's trainer writes its batch
// and runs. Checkpoints, evaluation and everything else that reads or
// writes parameters go through the first trainer: the state is one.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_BUCKETTRAINER_H
#define MOERT_RUNNER_BUCKETTRAINER_H

#include "moert/runner/Trainer.h"

#include <memory>
#include <string>
#include <vector>

namespace moert {
namespace runner {

/// A plan and the file it came from (for error messages).
struct PlanFile {
  std::string path;
  plan::LoadedPlan plan;
};

/// Whether `other` can share `first`'s persistent state (see above):
/// an error naming `other`'s file, the field or buffer, and what was
/// expected and found. `firstProgram` / `otherProgram` are the programs the
/// trainers run (trainerProgram: offloading moves the moments).
Status checkSharedState(const PlanFile &first,
                        const exec::Program &firstProgram,
                        const PlanFile &other,
                        const exec::Program &otherProgram);

class BucketTrainer {
public:
  /// Checks every plan against the first (checkSharedState; plans with
  /// dynamic loss scaling are refused: the scaler's state is per trainer),
  /// then makes the trainers, the first allocating the shared regions. The
  /// arguments are Trainer::create's.
  static Expected<std::unique_ptr<BucketTrainer>>
  create(std::vector<PlanFile> plans, uint64_t seed, int64_t alphabet,
         comm::GridCommunicators *grid, hal::Device *device,
         bool offloadOptimizerState);

  size_t numBuckets() const { return trainers_.size(); }
  /// The trainer of bucket `b`; bucket 0's owns the shared regions and is
  /// the one to initialize, save, load and evaluate with.
  Trainer &bucket(size_t b) { return *trainers_[b]; }
  const Trainer &bucket(size_t b) const { return *trainers_[b]; }
  Trainer &main() { return *trainers_.front(); }
  const std::string &planPath(size_t b) const { return paths_[b]; }

  /// The source of every bucket's batches: it must have one bucket per
  /// plan, in plan order, of the plans' shapes (checked on every batch).
  Status setBatchSource(std::unique_ptr<BatchSource> source);
  /// Runs step `step` in the bucket the source picks for it.
  Expected<StepMetrics> runStep(int64_t step);

private:
  BucketTrainer() = default;
  std::vector<std::string> paths_;
  std::unique_ptr<BatchSource> source_;
  /// Destroyed in reverse order: the trainers sharing the first one's
  /// regions go before it.
  std::vector<std::unique_ptr<Trainer>> trainers_;
};

} // namespace runner
} // namespace moert

#endif // MOERT_RUNNER_BUCKETTRAINER_H
