//===- LengthBuckets.h - Which bucket a sentence goes to -------*- C++ -*-===//
//
// Batches by token count on static shapes (runner/BucketTrainer.h): plans
// of one model at several (batch size, source length, target length), each
// about the same number of tokens. The rules, kept here as pure functions so
// that they can be tested exactly:
//
//   - the buckets nest: in plan order, source and target lengths never
//     decrease and at least one grows;
//   - a training pair goes to the smallest bucket that holds every row the
//     multitask data makes of it uncut (rowLengths: English->X, X->English
//     and denoising of X); pairs longer than the largest bucket go to it
//     and are cut there, as with one shape;
//   - each step picks bucket b with probability proportional to
//     W_b / B_b, where W_b is the bucket's sampling weight (its pairs, each
//     weighted as the single-shape sampler draws it: p_lang / n_lang with
//     the temperature-sampled language probabilities) and B_b its batch
//     size: then every pair is drawn, per step, at the rate it had with one
//     shape, whatever its bucket;
//   - the choice is a pure function of (seed, step) (pickBucket), so every
//     rank picks the same bucket and a resumed run the buckets an
//     uninterrupted run would.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DATA_LENGTHBUCKETS_H
#define MOERT_DATA_LENGTHBUCKETS_H

#include "moert/Status.h"
#include "moert/data/Tokenizer.h"

#include <cstdint>
#include <utility>
#include <vector>

namespace moert {
namespace data {

struct BucketShape {
  int64_t batchSize = 0, srcLen = 0, tgtLen = 0;
};

/// Checks that the buckets nest (see above); the error names the first
/// bucket (0-based) that does not.
Status checkBucketOrder(const std::vector<BucketShape> &buckets);

/// The source and target tokens every row the multitask data makes of
/// `pair` (source: English, target: X) fits in uncut: source
/// max(|en| + 2, |x| + 3) (a tag and </s>; denoising has two tags and at
/// most |x| tokens of noised text), target max(|en|, |x|) + 1 (</s>).
std::pair<int64_t, int64_t> rowLengths(const EncodedPair &pair);

/// The smallest bucket holding a row of `srcLen` / `tgtLen` tokens; the
/// last bucket when none does.
size_t assignBucket(int64_t srcLen, int64_t tgtLen,
                    const std::vector<BucketShape> &buckets);

/// The probability of each bucket per step: W_b / B_b normalized, where
/// `weights[b]` is W_b (0 for an empty bucket).
std::vector<double>
bucketProbabilities(const std::vector<double> &weights,
                    const std::vector<BucketShape> &buckets);

/// The bucket of step `step`: the first b whose cumulative probability
/// exceeds a uniform number keyed by (seed, step) (SplitMix64, 53 bits),
/// skipping buckets of probability 0.
size_t pickBucket(const std::vector<double> &probabilities, uint64_t seed,
                  int64_t step);

/// That uniform number in [0, 1).
double bucketUniform(uint64_t seed, int64_t step);

} // namespace data
} // namespace moert

#endif // MOERT_DATA_LENGTHBUCKETS_H
