//===- MultitaskSource.h - Multilingual MT + denoising batches -*- C++ -*-===//
//
// The training batches of the paper's multitask multilingual setup, from an
// encoded corpus (moe-data corpus / spm / encode):
//   - every row picks a language with probability proportional to
//     n_l^(1/T) (temperature sampling over the languages' training pairs,
//     T = 5 by default), then a task:
//       MT English->X:  source <2xx> en </s>,  target x </s>
//       MT X->English:  source <2en> x </s>,   target en </s>
//       denoising (DAE) of the X side:  source <dae> <2xx> noised(x) </s>,
//                                       target x </s>
//     where noised() masks ~35 % of the tokens in spans of Poisson(3.5)
//     length, each span replaced by one <mask> (mBART's text infilling);
//   - decoder inputs are <s> + target[:-1]; sequences longer than the
//     plan's lengths are cut (the source keeps its </s>); pads are 0 and
//     the loss ignores them.
// A batch is a pure function of (seed, step): every rank builds the same
// global batch and writes its shard.
//
// Length buckets (createBuckets; LengthBuckets.h has the rules): one source
// for plans of several shapes. Each training pair belongs to the smallest
// bucket that holds its rows uncut; every step picks a bucket (a pure
// function of (seed, step)), and its rows pick a language with probability
// proportional to p_lang * (the language's pairs in the bucket) / (its
// pairs), then a pair of that language in the bucket, then the task as
// above: within a bucket, every pair keeps the weight it has with one
// shape.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DATA_MULTITASKSOURCE_H
#define MOERT_DATA_MULTITASKSOURCE_H

#include "moert/data/LengthBuckets.h"
#include "moert/data/Tokenizer.h"
#include "moert/runner/BatchSource.h"

#include <memory>
#include <string>
#include <vector>

namespace moert {
namespace data {

struct MultitaskOptions {
  double temperature = 5.0;
  /// Shares of the rows: English->X, X->English, denoising (normalized).
  double toTarget = 0.4, toEnglish = 0.4, denoising = 0.2;
  double maskRatio = 0.35;
  double spanLambda = 3.5;
};

class MultitaskSource final : public runner::BatchSource {
public:
  /// Loads <corpusDir>/train.<lang>.ids for every language of
  /// languages.tsv and the special piece ids of <corpusDir>/spm.model.
  /// `shape` is the plan's batch (batch size, lengths, vocabulary, pad).
  static Expected<std::unique_ptr<MultitaskSource>>
  create(const std::string &corpusDir, const runner::SyntheticTaskConfig &shape,
         const MultitaskOptions &options = {});

  /// Length buckets: `shapes` are the plans' batches (nesting, see
  /// LengthBuckets.h; same vocabulary and pad id), bucket b of the source
  /// the plan of shapes[b].
  static Expected<std::unique_ptr<MultitaskSource>>
  createBuckets(const std::string &corpusDir,
                const std::vector<runner::SyntheticTaskConfig> &shapes,
                const MultitaskOptions &options = {});

  Expected<runner::SeqBatch> batch(uint64_t seed, int64_t step) override;
  std::string describe() const override;

  size_t numBuckets() const override {
    return buckets_.empty() ? 1 : buckets_.size();
  }
  size_t bucketAt(uint64_t seed, int64_t step) const override;
  Expected<runner::SeqBatch> bucketBatch(size_t bucket, uint64_t seed,
                                         int64_t step) override;

  /// Length buckets: per bucket, its training pairs, their target tokens
  /// (</s> included) and its probability per step.
  struct BucketPool {
    int64_t pairs = 0, targetTokens = 0;
    double probability = 0;
  };
  std::vector<BucketPool> bucketPools() const;

  /// The sampling probability of each language (for reports and tests).
  const std::vector<double> &languageProbabilities() const {
    return probabilities_;
  }
  const std::vector<std::string> &languages() const { return languages_; }

private:
  MultitaskSource() = default;
  /// The row of `pair` (language `l`) at row `b` of `batch`, of shape `c`:
  /// draws the task and the denoising noise from `rng`.
  struct RowSampler;
  void writeRow(RowSampler &sampler, size_t l, const EncodedPair &pair,
                const runner::SyntheticTaskConfig &c, int64_t b,
                runner::SeqBatch &batch) const;

  runner::SyntheticTaskConfig shape_;
  /// Length buckets (empty for one shape): the shapes, per bucket and
  /// language the pairs' indices in pairs_, the languages' probabilities
  /// within each bucket and the buckets' per step.
  std::vector<runner::SyntheticTaskConfig> buckets_;
  std::vector<std::vector<std::vector<uint32_t>>> pools_;
  std::vector<std::vector<double>> bucketLanguageProbabilities_;
  std::vector<double> bucketProbabilities_;
  MultitaskOptions options_;
  std::vector<std::string> languages_;
  std::vector<std::vector<EncodedPair>> pairs_;
  std::vector<double> probabilities_;
  std::vector<int32_t> languageTags_;
  int32_t englishTag_ = -1, daeTag_ = -1, maskId_ = -1, bos_ = 2, eos_ = 3;
  int64_t vocabulary_ = 0;
};

} // namespace data
} // namespace moert

#endif // MOERT_DATA_MULTITASKSOURCE_H
