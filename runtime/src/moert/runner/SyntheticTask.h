//===- SyntheticTask.h - A learnable sequence-to-sequence task ------------===//
//
// Until the multilingual corpus exists, the trainer learns to reverse token
// sequences: the source is a random sequence of content tokens of random
// length (padded), the target is the same tokens in reverse order followed
// by EOS. Every batch is a pure function of (seed, step), so a resumed run
// sees exactly the batches an uninterrupted run would.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_SYNTHETICTASK_H
#define MOERT_RUNNER_SYNTHETICTASK_H

#include "moert/Status.h"

#include <cstdint>
#include <vector>

namespace moert {
namespace runner {

struct SyntheticTaskConfig {
  int64_t batchSize = 0, srcLen = 0, tgtLen = 0, vocabSize = 0;
  int32_t padId = 0;
  /// Distinct content tokens used (a smaller alphabet learns faster);
  /// 0 means every id above the special ones.
  int64_t alphabet = 0;
};

struct SeqBatch {
  std::vector<int32_t> srcTokens; // [B, srcLen]
  std::vector<int32_t> tgtTokens; // [B, tgtLen]: BOS + target[:-1]
  std::vector<int32_t> labels;    // [B, tgtLen]: target, pad-ignored
  int64_t targetTokens = 0;       // non-pad labels
  int64_t sourceTokens = 0;       // non-pad source tokens (0: not counted)
};

class SyntheticTask {
public:
  /// Checks the configuration: room for pad, BOS, EOS and at least two
  /// content tokens, target long enough for the reversed source + EOS.
  static Expected<SyntheticTask> create(const SyntheticTaskConfig &config);

  SeqBatch batch(uint64_t seed, int64_t step) const;
  const SyntheticTaskConfig &config() const { return config_; }
  int32_t bosId() const { return bos_; }
  int32_t eosId() const { return eos_; }

private:
  explicit SyntheticTask(const SyntheticTaskConfig &config);
  SyntheticTaskConfig config_;
  int32_t bos_, eos_, firstContent_;
  int64_t alphabet_;
};

} // namespace runner
} // namespace moert

#endif // MOERT_RUNNER_SYNTHETICTASK_H
