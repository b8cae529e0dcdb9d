//===- SyntheticTask.cpp - A learnable sequence-to-sequence task ----------===//
#include "moert/runner/SyntheticTask.h"

#include "moert/Random.h"

#include <algorithm>

namespace moert {
namespace runner {

namespace {
// The data stream of the Philox generator; distinct from parameter streams
// (name hashes) only in practice, and from dropout/gate streams (small ids).
constexpr uint32_t kDataStream = 0xD47A0001u;
} // namespace

SyntheticTask::SyntheticTask(const SyntheticTaskConfig &config)
    : config_(config) {
  // Special ids follow the pad id (wrapping below the vocabulary size).
  auto special = [&](int offset) {
    return static_cast<int32_t>((config.padId + offset) % config.vocabSize);
  };
  bos_ = special(1);
  eos_ = special(2);
  firstContent_ = special(3);
  int64_t available = config.vocabSize - 3;
  alphabet_ =
      config.alphabet > 0 ? std::min(config.alphabet, available) : available;
}

Expected<SyntheticTask> SyntheticTask::create(const SyntheticTaskConfig &c) {
  if (c.batchSize < 1 || c.srcLen < 2 || c.tgtLen < 2)
    return invalidArgument("synthetic task: batch size >= 1 and sequence "
                           "lengths >= 2 expected, found batch " +
                           std::to_string(c.batchSize) + ", source length " +
                           std::to_string(c.srcLen) + ", target length " +
                           std::to_string(c.tgtLen));
  if (c.vocabSize < 5)
    return invalidArgument("synthetic task: a vocabulary of at least 5 ids "
                           "(pad, BOS, EOS and two content tokens) expected, "
                           "found " +
                           std::to_string(c.vocabSize));
  if (c.padId < 0 || c.padId >= c.vocabSize)
    return invalidArgument("synthetic task: pad id " + std::to_string(c.padId) +
                           " outside the vocabulary");
  return SyntheticTask(c);
}

SeqBatch SyntheticTask::batch(uint64_t seed, int64_t step) const {
  const SyntheticTaskConfig &c = config_;
  SeqBatch batch;
  batch.srcTokens.assign(c.batchSize * c.srcLen, c.padId);
  batch.tgtTokens.assign(c.batchSize * c.tgtLen, c.padId);
  batch.labels.assign(c.batchSize * c.tgtLen, c.padId);
  RandomStream source{seed, kDataStream, static_cast<uint32_t>(step)};
  // Longest source whose reversal plus EOS fits the target.
  int64_t maxLen = std::min(c.srcLen, c.tgtLen - 1);
  int64_t minLen = std::max<int64_t>(1, maxLen / 2);
  uint64_t draw = 0;
  for (int64_t b = 0; b < c.batchSize; ++b) {
    int64_t span = maxLen - minLen + 1;
    int64_t len = minLen + static_cast<int64_t>(randomBits(source, draw++) %
                                                static_cast<uint64_t>(span));
    std::vector<int32_t> content(len);
    for (int64_t i = 0; i < len; ++i)
      // Content ids follow EOS and wrap below the vocabulary size, so they
      // never collide with pad, BOS or EOS whatever the pad id.
      content[i] = static_cast<int32_t>(
          (firstContent_ +
           static_cast<int64_t>(randomBits(source, draw++) %
                                static_cast<uint64_t>(alphabet_))) %
          c.vocabSize);
    for (int64_t i = 0; i < len; ++i)
      batch.srcTokens[b * c.srcLen + i] = content[i];
    // Target: reversed content, then EOS; decoder input is shifted right.
    std::vector<int32_t> target(content.rbegin(), content.rend());
    target.push_back(eos_);
    for (size_t i = 0; i < target.size(); ++i) {
      batch.labels[b * c.tgtLen + i] = target[i];
      batch.tgtTokens[b * c.tgtLen + i] = i == 0 ? bos_ : target[i - 1];
    }
    batch.targetTokens += static_cast<int64_t>(target.size());
  }
  return batch;
}

} // namespace runner
} // namespace moert
