//===- LengthBuckets.cpp - Which bucket a sentence goes to ----------------===//
#include "moert/data/LengthBuckets.h"

#include <algorithm>

namespace moert {
namespace data {

Status checkBucketOrder(const std::vector<BucketShape> &buckets) {
  if (buckets.empty())
    return invalidArgument("no length buckets");
  for (size_t b = 1; b < buckets.size(); ++b) {
    const BucketShape &prev = buckets[b - 1], &cur = buckets[b];
    const bool nests = cur.srcLen >= prev.srcLen && cur.tgtLen >= prev.tgtLen &&
                       (cur.srcLen > prev.srcLen || cur.tgtLen > prev.tgtLen);
    if (!nests)
      return invalidArgument(
          "length bucket " + std::to_string(b) + " has source/target lengths " +
          std::to_string(cur.srcLen) + "/" + std::to_string(cur.tgtLen) +
          ", expected both at least bucket " + std::to_string(b - 1) + "'s " +
          std::to_string(prev.srcLen) + "/" + std::to_string(prev.tgtLen) +
          " and one longer (give the plans from the shortest to the longest)");
  }
  return Status::success();
}

std::pair<int64_t, int64_t> rowLengths(const EncodedPair &pair) {
  const int64_t en = static_cast<int64_t>(pair.source.size());
  const int64_t x = static_cast<int64_t>(pair.target.size());
  return {std::max(en + 2, x + 3), std::max(en, x) + 1};
}

size_t assignBucket(int64_t srcLen, int64_t tgtLen,
                    const std::vector<BucketShape> &buckets) {
  for (size_t b = 0; b < buckets.size(); ++b)
    if (srcLen <= buckets[b].srcLen && tgtLen <= buckets[b].tgtLen)
      return b;
  return buckets.empty() ? 0 : buckets.size() - 1;
}

std::vector<double>
bucketProbabilities(const std::vector<double> &weights,
                    const std::vector<BucketShape> &buckets) {
  std::vector<double> p(buckets.size(), 0.0);
  double total = 0.0;
  for (size_t b = 0; b < buckets.size() && b < weights.size(); ++b) {
    p[b] = weights[b] / static_cast<double>(buckets[b].batchSize);
    total += p[b];
  }
  if (total > 0)
    for (double &value : p)
      value /= total;
  return p;
}

double bucketUniform(uint64_t seed, int64_t step) {
  // SplitMix64 of a key mixing both (a stream apart from the rows' RNG).
  uint64_t z = seed * 0xD1B54A32D192ED03ull +
               static_cast<uint64_t>(step) * 0x9E3779B97F4A7C15ull +
               0x6A09E667F3BCC909ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

size_t pickBucket(const std::vector<double> &probabilities, uint64_t seed,
                  int64_t step) {
  const double u = bucketUniform(seed, step);
  double cumulative = 0.0;
  size_t last = 0;
  for (size_t b = 0; b < probabilities.size(); ++b) {
    if (probabilities[b] <= 0)
      continue;
    last = b;
    cumulative += probabilities[b];
    if (u < cumulative)
      return b;
  }
  return last; // rounding: the last bucket with a chance
}

} // namespace data
} // namespace moert
