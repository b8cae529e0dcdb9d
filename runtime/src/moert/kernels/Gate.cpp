//===- Gate.cpp - MoE gate (router) forward and backward on the CPU -----===//
#include "moert/kernels/Gate.h"

#include "moert/BlasThreads.h"
#include "moert/GateCapacity.h"

#include <cblas.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>

namespace moert {
namespace {

/// DeepSpeed clamps the top-k renormalisation denominator at the float
/// machine epsilon.
constexpr float kRenormEpsilon = FLT_EPSILON;

std::string shapeText(const GateShape &shape) {
  return "S=" + std::to_string(shape.numTokens) +
         ", M=" + std::to_string(shape.modelDim) +
         ", E=" + std::to_string(shape.numExperts);
}

Status checkConfigAndShape(const GateConfig &config, const GateShape &shape) {
  if (shape.numTokens <= 0 || shape.modelDim <= 0 || shape.numExperts <= 0)
    return invalidArgument("gate: expected positive sizes, found " +
                           shapeText(shape));
  if (config.topK < 1 || config.topK > shape.numExperts)
    return invalidArgument(
        "gate: expected 1 <= topK <= E = " + std::to_string(shape.numExperts) +
        ", found topK " + std::to_string(config.topK));
  if (!(config.capacityFactor > 0.0) || !(config.evalCapacityFactor > 0.0))
    return invalidArgument(
        "gate: expected positive capacity factors, found capacityFactor " +
        std::to_string(config.capacityFactor) + ", evalCapacityFactor " +
        std::to_string(config.evalCapacityFactor));
  if (config.minCapacity < 0)
    return invalidArgument("gate: expected minCapacity >= 0, found " +
                           std::to_string(config.minCapacity));
  if (!(config.jitterEps >= 0.0f && config.jitterEps < 1.0f))
    return invalidArgument("gate: expected jitterEps in [0, 1), found " +
                           std::to_string(config.jitterEps));
  if (config.groups < 1 || shape.numTokens % config.groups != 0)
    return invalidArgument("gate: expected groups >= 1 dividing " +
                           shapeText(shape) + ", found groups " +
                           std::to_string(config.groups));
  // BLAS takes int sizes and slots are int32.
  constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();
  if (shape.numTokens > kMaxDim || shape.modelDim > kMaxDim ||
      shape.numExperts > kMaxDim || shape.numTokens * config.topK > kMaxDim)
    return invalidArgument("gate: expected S * k, M and E below 2^31, found " +
                           shapeText(shape) +
                           ", k=" + std::to_string(config.topK));
  return Status::success();
}

Status checkRandomness(const GateShape &shape,
                       const GateRandomness &randomness) {
  constexpr int64_t kMaxElements = int64_t(1) << 56;
  const int64_t widest = std::max(shape.modelDim, shape.numExperts);
  if (randomness.firstGlobalToken < 0 ||
      randomness.firstGlobalToken + shape.numTokens > kMaxElements / widest)
    return invalidArgument(
        "gate: expected 0 <= firstGlobalToken and (firstGlobalToken + S) * "
        "max(M, E) < 2^56, found firstGlobalToken " +
        std::to_string(randomness.firstGlobalToken) + " with " +
        shapeText(shape));
  return Status::success();
}

bool jitterActive(const GateConfig &config) {
  return config.training && config.noise == GateNoise::Jitter &&
         config.jitterEps > 0.0f;
}

/// Random numbers one randomBitsRange call draws into a buffer.
constexpr int64_t kBitsPerDraw = 2048;

/// Rows of one block of the gate's GEMMs (tokens for the logits and dx,
/// rows of Wg for dWg). Each block is one single-threaded OpenBLAS call and
/// the blocks are spread over the OpenMP team, so every result depends on
/// this fixed blocking only, never on the thread count (OpenBLAS runs
/// single-threaded, see BlasThreads.h).
constexpr int64_t kGemmRows = 256;
/// dWg's blocks are shorter: Wg has only M rows, each a reduction over S.
constexpr int64_t kWeightGradRows = 32;

/// out[i] = in[i] times the multiplicative jitter of element i of x [S, M]
/// (`out` may be `in`); the same numbers in forward and backward.
void scaleByJitter(const GateConfig &config, const GateShape &shape,
                   const GateRandomness &randomness, const float *in,
                   float *out) {
  const int64_t count = shape.numTokens * shape.modelDim;
  // Element token * M + m of the jitter sub-sequence: x's elements are
  // consecutive elements of it.
  const uint64_t firstIndex = gateRandomIndex(
      GateRandomPurpose::Jitter,
      static_cast<uint64_t>(randomness.firstGlobalToken * shape.modelDim));
  const float low = 1.0f - config.jitterEps, high = 1.0f + config.jitterEps;
  const int64_t numDraws = (count + kBitsPerDraw - 1) / kBitsPerDraw;
#pragma omp parallel for schedule(static)
  for (int64_t draw = 0; draw < numDraws; ++draw) {
    uint32_t bits[kBitsPerDraw];
    const int64_t begin = draw * kBitsPerDraw;
    const int64_t length = std::min(kBitsPerDraw, count - begin);
    randomBitsRange(randomness.source, firstIndex + begin, length, bits);
    // The value of uniformRange(source, index, low, high).
    for (int64_t i = 0; i < length; ++i)
      out[begin + i] =
          in[begin + i] * (low + (high - low) * bitsToUniform(bits[i]));
  }
}

/// The gate input actually multiplied with Wg: x, or x times its jitter
/// (then held by `storage`).
const float *effectiveInput(const GateConfig &config, const GateShape &shape,
                            const GateRandomness &randomness, const float *x,
                            std::unique_ptr<float[]> &storage) {
  if (!jitterActive(config))
    return x;
  storage.reset(
      new float[static_cast<size_t>(shape.numTokens * shape.modelDim)]);
  scaleByJitter(config, shape, randomness, x, storage.get());
  return storage.get();
}

/// Index of the largest score among experts not yet taken; the lowest index
/// wins ties (as torch.argmax does).
int32_t argmaxExcluding(const float *scores, int64_t numExperts,
                        const int32_t *taken, int64_t numTaken) {
  int32_t best = -1;
  float bestScore = -std::numeric_limits<float>::infinity();
  for (int64_t e = 0; e < numExperts; ++e) {
    bool isTaken = false;
    for (int64_t j = 0; j < numTaken; ++j)
      isTaken |= taken[j] == e;
    // `best < 0` also accepts -inf/NaN scores so that a choice is always made.
    if (!isTaken && (best < 0 || scores[e] > bestScore)) {
      best = static_cast<int32_t>(e);
      bestScore = scores[e];
    }
  }
  return best;
}

/// The largest of values[0 .. n) (n >= 1, no NaN), in independent lanes:
/// the same value as a sequential max up to the sign of a zero maximum.
float largestValue(const float *values, int64_t n) {
  constexpr int64_t kLanes = 8;
  float laneMax[kLanes];
  std::fill(laneMax, laneMax + kLanes, values[0]);
  int64_t e = 0;
  for (; e + kLanes <= n; e += kLanes)
    for (int64_t lane = 0; lane < kLanes; ++lane)
      laneMax[lane] = std::max(laneMax[lane], values[e + lane]);
  for (; e < n; ++e)
    laneMax[0] = std::max(laneMax[0], values[e]);
  return *std::max_element(laneMax, laneMax + kLanes);
}

/// argmaxExcluding with nothing taken, for NaN-free scores: the lowest
/// index of the largest score.
int32_t argmaxNoNaN(const float *scores, int64_t numExperts) {
  const float largest = largestValue(scores, numExperts);
  return static_cast<int32_t>(std::find(scores, scores + numExperts, largest) -
                              scores);
}

/// Whether every value is finite (not inf, not NaN).
bool allFinite(const float *values, int64_t n) {
  uint32_t nonFinite = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, values + i, sizeof(bits));
    nonFinite |= (bits & 0x7f800000u) == 0x7f800000u;
  }
  return nonFinite == 0;
}

/// Group g of a grouped gate: tokens [g * S/G, (g + 1) * S/G), with the
/// random numbers of their global ids.
GateShape groupShape(const GateConfig &config, const GateShape &shape) {
  GateShape group = shape;
  group.numTokens = shape.numTokens / config.groups;
  return group;
}

GateRandomness groupRandomness(const GateRandomness &randomness,
                               const GateShape &group, int64_t g) {
  GateRandomness result = randomness;
  result.firstGlobalToken += g * group.numTokens;
  return result;
}

/// Bounds on Gumbel noise let a noisy argmax skip computing the noise (a
/// Philox block and two logarithms) of experts that cannot win. gumbel()
/// maps the top 23 of its 32 random bits to u in (0, 1) and returns
/// -log(-log(u)), increasing in the bits. For each value of the top
/// kGumbelBucketBits bits the tables hold bounds on gumbel() over all bits
/// with that prefix: the exact values at the smallest and largest such
/// bits, widened by a margin far above the float rounding of the two
/// logarithms (a few ulp of a result below 17). Float addition rounds
/// monotonically, so row[e] + lower <= row[e] + gumbel <= row[e] + upper for
/// every row value.
constexpr int kGumbelBucketBits = 12;

struct GumbelBounds {
  std::vector<float> lower, upper;
};

const GumbelBounds &gumbelBounds() {
  static const GumbelBounds bounds = [] {
    constexpr size_t kBuckets = size_t(1) << kGumbelBucketBits;
    constexpr float kInfinity = std::numeric_limits<float>::infinity();
    GumbelBounds table;
    table.lower.resize(kBuckets);
    table.upper.resize(kBuckets);
    // -log(-log(u)) in double precision for u exactly as gumbel() computes
    // it from `bits`.
    auto exact = [](uint32_t bits) {
      const float u = bitsToOpenUniform(bits);
      return -std::log(-std::log(static_cast<double>(u)));
    };
    auto margin = [](double g) { return 1e-3 + 1e-5 * std::fabs(g); };
    for (size_t bucket = 0; bucket < kBuckets; ++bucket) {
      const uint32_t smallestBits =
          static_cast<uint32_t>(bucket << (32 - kGumbelBucketBits));
      const uint32_t largestBits =
          static_cast<uint32_t>(((bucket + 1) << (32 - kGumbelBucketBits)) - 1);
      const double low = exact(smallestBits), high = exact(largestBits);
      table.lower[bucket] =
          std::nextafter(static_cast<float>(low - margin(low)), -kInfinity);
      table.upper[bucket] =
          std::nextafter(static_cast<float>(high + margin(high)), kInfinity);
    }
    return table;
  }();
  return bounds;
}

int64_t gumbelBucket(uint32_t bits) { return bits >> (32 - kGumbelBucketBits); }

/// The noisy scores row[e] + gumbel(source, firstIndex + e) of one token,
/// with bits[e] = randomBits(source, firstIndex + e).
struct NoisyRow {
  const float *row;
  const uint32_t *bits;
  const RandomStream *source;
  uint64_t firstIndex;

  float score(int64_t e) const {
    return row[e] + gumbel(*source, firstIndex + static_cast<uint64_t>(e));
  }
};

/// bound[e] >= noisy.score(e) for every e.
void boundNoisyScores(const NoisyRow &noisy, int64_t numExperts, float *bound) {
  const float *upper = gumbelBounds().upper.data();
  for (int64_t e = 0; e < numExperts; ++e)
    bound[e] = noisy.row[e] + upper[gumbelBucket(noisy.bits[e])];
}

/// argmaxExcluding of the noisy scores for a row of finite values, where
/// the experts taken have bound -inf and every other bound[e] >=
/// noisy.score(e). The scores are finite, so the result is the
/// lowest index of the largest score, as argmaxExcluding's. The expert with
/// the largest bound wins outright when a lower bound of its score exceeds
/// every other bound (the usual case); otherwise only experts whose bound
/// reaches the best score so far can win or tie, and only those get their
/// exact score.
int32_t noisyArgmax(const NoisyRow &noisy, const float *bound,
                    int64_t numExperts) {
  const int64_t start = argmaxNoNaN(bound, numExperts);
  const float startLower =
      noisy.row[start] + gumbelBounds().lower[gumbelBucket(noisy.bits[start])];
  bool contested = false;
  for (int64_t e = 0; e < numExperts; ++e)
    contested |= e != start && bound[e] >= startLower;
  if (!contested)
    return static_cast<int32_t>(start);

  int64_t best = start;
  float bestScore = noisy.score(start);
  for (int64_t e = 0; e < numExperts; ++e) {
    if (!(bound[e] >= bestScore) || e == start)
      continue;
    const float score = noisy.score(e);
    if (score > bestScore || (score == bestScore && e < best)) {
      best = e;
      bestScore = score;
    }
  }
  return static_cast<int32_t>(best);
}

/// Choices `first` .. k - 1 of one token by the noisy scores (the same
/// noisy scores for every one of these choices).
void chooseNoisy(const NoisyRow &noisy, bool rowFinite, int64_t numExperts,
                 int64_t first, int64_t k, int32_t *chosen, float *scratch) {
  if (!rowFinite) {
    // Rare (inf or NaN logits): every score, compared as argmaxExcluding
    // does for NaN.
    for (int64_t e = 0; e < numExperts; ++e)
      scratch[e] = noisy.score(e);
    for (int64_t j = first; j < k; ++j)
      chosen[j] = argmaxExcluding(scratch, numExperts, chosen, j);
    return;
  }
  boundNoisyScores(noisy, numExperts, scratch);
  for (int64_t j = 0; j < first; ++j)
    scratch[chosen[j]] = -std::numeric_limits<float>::infinity();
  for (int64_t j = first; j < k; ++j) {
    chosen[j] = noisyArgmax(noisy, scratch, numExperts);
    scratch[chosen[j]] = -std::numeric_limits<float>::infinity();
  }
}

/// Routing of one token from its logits `row` (then replaced by the
/// softmax probabilities): its k choices into `chosen`. `firstBits` and
/// `laterBits` hold the token's random bits of the choice noises in use,
/// `scratch` E floats.
struct TokenNoise {
  const RandomStream *source;
  const uint32_t *firstBits, *laterBits; // [E] each, null when unused
  uint64_t element;                      // token * E
};

void routeToken(int64_t numExperts, int64_t k, const TokenNoise &noise,
                float *row, int32_t *chosen, float *scratch) {
  const int64_t E = numExperts;
  const bool rowFinite = allFinite(row, E);
  // The largest logit: the first choice without noise, and the softmax's
  // shift (a zero maximum's sign changes no difference from it).
  float maxLogit = row[0];
  if (rowFinite) {
    maxLogit = largestValue(row, E);
  } else {
    for (int64_t e = 1; e < E; ++e)
      maxLogit = std::max(maxLogit, row[e]);
  }

  // First choice: argmax of the logits (plus Gumbel noise for rsample).
  if (noise.firstBits) {
    NoisyRow noisy{
        row, noise.firstBits, noise.source,
        gateRandomIndex(GateRandomPurpose::FirstChoiceNoise, noise.element)};
    chooseNoisy(noisy, rowFinite, E, 0, 1, chosen, scratch);
  } else {
    chosen[0] =
        rowFinite
            ? static_cast<int32_t>(std::find(row, row + E, maxLogit) - row)
            : argmaxExcluding(row, E, chosen, 0);
  }
  // Later choices: argmax over the remaining experts.
  if (noise.laterBits) {
    NoisyRow noisy{
        row, noise.laterBits, noise.source,
        gateRandomIndex(GateRandomPurpose::LaterChoiceNoise, noise.element)};
    chooseNoisy(noisy, rowFinite, E, 1, k, chosen, scratch);
  } else {
    for (int64_t j = 1; j < k; ++j)
      chosen[j] = argmaxExcluding(row, E, chosen, j);
  }

  // Noise-free softmax, max-subtracted for range.
  for (int64_t e = 0; e < E; ++e)
    row[e] = std::exp(row[e] - maxLogit);
  double sum = 0.0;
  for (int64_t e = 0; e < E; ++e)
    sum += row[e];
  const float inverse = static_cast<float>(1.0 / sum);
  for (int64_t e = 0; e < E; ++e)
    row[e] *= inverse;
}

/// Phase 1 for one group: logits, gates and choices of its tokens, its
/// expert counts (all choices) into `counts`; returns E times its aux loss.
double routeGroup(const GateConfig &config, const GateShape &shape,
                  const GateRandomness &randomness, const float *x,
                  const float *gateWeight, int32_t *experts, float *gates,
                  int32_t *counts) {
  const int64_t S = shape.numTokens, M = shape.modelDim, E = shape.numExperts;
  const int64_t k = config.topK;

  std::unique_ptr<float[]> jitterStorage;
  const float *input =
      effectiveInput(config, shape, randomness, x, jitterStorage);

  const bool firstChoiceNoise =
      config.training && config.noise == GateNoise::RSample;
  const bool laterChoiceNoise =
      config.training && config.laterChoiceNoise && k > 1;
  // Noise element token * E + e: a run of tokens draws one range.
  const int64_t tokensPerDraw = std::max<int64_t>(1, kBitsPerDraw / E);
  const uint64_t firstElement =
      static_cast<uint64_t>(randomness.firstGlobalToken * E);
  const int64_t numBlocks = (S + kGemmRows - 1) / kGemmRows;

  useSingleThreadedBlas();
#pragma omp parallel
  {
    std::vector<float> scratch(static_cast<size_t>(E));
    std::vector<uint32_t> firstBits, laterBits;
    if (firstChoiceNoise)
      firstBits.resize(static_cast<size_t>(tokensPerDraw * E));
    if (laterChoiceNoise)
      laterBits.resize(static_cast<size_t>(tokensPerDraw * E));
#pragma omp for schedule(static)
    for (int64_t block = 0; block < numBlocks; ++block) {
      const int64_t blockBegin = block * kGemmRows;
      const int64_t blockEnd = std::min(S, blockBegin + kGemmRows);
      // logits [rows, E] = input [rows, M] * Wg [M, E], written into
      // `gates` and turned into probabilities row by row below. Blocks
      // start at the group's first token, so a group's logits do not depend
      // on how many groups a process holds.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                  static_cast<int>(blockEnd - blockBegin), static_cast<int>(E),
                  static_cast<int>(M), 1.0f, input + blockBegin * M,
                  static_cast<int>(M), gateWeight, static_cast<int>(E), 0.0f,
                  gates + blockBegin * E, static_cast<int>(E));

      for (int64_t begin = blockBegin; begin < blockEnd;
           begin += tokensPerDraw) {
        const int64_t end = std::min(blockEnd, begin + tokensPerDraw);
        const uint64_t drawElement =
            firstElement + static_cast<uint64_t>(begin * E);
        if (firstChoiceNoise)
          randomBitsRange(
              randomness.source,
              gateRandomIndex(GateRandomPurpose::FirstChoiceNoise, drawElement),
              (end - begin) * E, firstBits.data());
        if (laterChoiceNoise)
          randomBitsRange(
              randomness.source,
              gateRandomIndex(GateRandomPurpose::LaterChoiceNoise, drawElement),
              (end - begin) * E, laterBits.data());
        for (int64_t s = begin; s < end; ++s) {
          const int64_t offset = (s - begin) * E;
          TokenNoise noise{
              &randomness.source,
              firstChoiceNoise ? firstBits.data() + offset : nullptr,
              laterChoiceNoise ? laterBits.data() + offset : nullptr,
              drawElement + static_cast<uint64_t>(offset)};
          routeToken(E, k, noise, gates + s * E, experts + s * k,
                     scratch.data());
        }
      }
    }
  }

  // Counts of all choices, and of first choices for the aux loss.
  std::vector<int64_t> firstChoiceCounts(static_cast<size_t>(E), 0);
  std::fill(counts, counts + E, 0);
  for (int64_t s = 0; s < S; ++s) {
    ++firstChoiceCounts[experts[s * k]];
    for (int64_t j = 0; j < k; ++j)
      ++counts[experts[s * k + j]];
  }

  // aux = E * sum_e mean_s(gates[:, e]) * mean_s(mask1[:, e]).
  std::vector<double> meanGate(static_cast<size_t>(E), 0.0);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t e = 0; e < E; ++e)
      meanGate[e] += gates[s * E + e];
  double aux = 0.0;
  for (int64_t e = 0; e < E; ++e)
    aux += (meanGate[e] / S) * (static_cast<double>(firstChoiceCounts[e]) / S);
  return aux * E;
}

/// The buffers of one group's tokens.
struct GroupRouting {
  const int32_t *experts; // [S, k]
  const float *gates;     // [S, E]
  int32_t *slots;         // [S, k]
  float *weights;         // [S, k]
};

/// Phase 2 for one group: its tokens take slots firstSlot .. firstSlot +
/// capacity - 1 of each expert.
void assignGroupSlots(const GateConfig &config, const GateShape &shape,
                      const GateRandomness &randomness, int64_t capacity,
                      int64_t firstSlot, const GroupRouting &group) {
  const int64_t S = shape.numTokens, E = shape.numExperts, k = config.topK;
  const int32_t *experts = group.experts;
  int32_t *slots = group.slots;

  // Tokens of each expert's first choices, in token order (counting sort).
  std::vector<int64_t> firstStart(static_cast<size_t>(E + 1), 0);
  for (int64_t s = 0; s < S; ++s)
    ++firstStart[experts[s * k] + 1];
  for (int64_t e = 0; e < E; ++e)
    firstStart[e + 1] += firstStart[e];
  std::vector<int64_t> firstTokens(static_cast<size_t>(S));
  {
    std::vector<int64_t> fill(firstStart.begin(), firstStart.end() - 1);
    for (int64_t s = 0; s < S; ++s)
      firstTokens[fill[experts[s * k]]++] = s;
  }

  // First choices: an overloaded expert keeps C of its tokens, either a
  // uniformly random subset (RTS: the C highest i.i.d. priorities) or the
  // first C; kept tokens take slots 0..C-1 in token order.
  std::vector<uint32_t> priorities;
  if (config.useRts) {
    bool overloaded = false;
    for (int64_t e = 0; e < E && !overloaded; ++e)
      overloaded = firstStart[e + 1] - firstStart[e] > capacity;
    // Element = global token id: the group's tokens draw one range.
    if (overloaded) {
      priorities.resize(static_cast<size_t>(S));
      randomBitsRange(
          randomness.source,
          gateRandomIndex(GateRandomPurpose::RtsPriority,
                          static_cast<uint64_t>(randomness.firstGlobalToken)),
          S, priorities.data());
    }
  }
  std::vector<std::pair<uint32_t, int64_t>> prioritized;
  std::vector<int64_t> kept;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t *tokens = firstTokens.data() + firstStart[e];
    const int64_t count = firstStart[e + 1] - firstStart[e];
    kept.assign(tokens, tokens + count);
    if (count > capacity) {
      if (config.useRts) {
        // Higher priority first; equal priorities (p ~ 2^-32) go to the
        // lower token id so the result is still a pure function of the ids.
        prioritized.clear();
        for (int64_t i = 0; i < count; ++i)
          prioritized.emplace_back(priorities[tokens[i]], tokens[i]);
        auto higher = [](const std::pair<uint32_t, int64_t> &a,
                         const std::pair<uint32_t, int64_t> &b) {
          return a.first != b.first ? a.first > b.first : a.second < b.second;
        };
        std::nth_element(prioritized.begin(),
                         prioritized.begin() + (capacity - 1),
                         prioritized.end(), higher);
        kept.clear();
        for (int64_t i = 0; i < capacity; ++i)
          kept.push_back(prioritized[i].second);
        std::sort(kept.begin(), kept.end());
      } else {
        kept.resize(static_cast<size_t>(capacity));
      }
      for (int64_t i = 0; i < count; ++i)
        slots[tokens[i] * k] = -1;
    }
    for (size_t slot = 0; slot < kept.size(); ++slot)
      slots[kept[slot] * k] = static_cast<int32_t>(firstSlot + slot);
  }

  // Choice j >= 1 queues behind all choices < j of its expert (counted
  // before dropping) and is dropped positionally.
  std::vector<int64_t> queued(static_cast<size_t>(E), 0);
  for (int64_t s = 0; s < S; ++s)
    ++queued[experts[s * k]];
  for (int64_t j = 1; j < k; ++j) {
    for (int64_t s = 0; s < S; ++s) {
      const int64_t position = queued[experts[s * k + j]]++;
      slots[s * k + j] =
          position < capacity ? static_cast<int32_t>(firstSlot + position) : -1;
    }
  }

  // Combine weights: the raw probability for top-1; for k >= 2 the kept
  // choices' probabilities renormalised over the kept choices.
  for (int64_t s = 0; s < S; ++s) {
    const float *row = group.gates + s * E;
    const int32_t *chosen = experts + s * k;
    const int32_t *slot = slots + s * k;
    float *weight = group.weights + s * k;
    if (k == 1) {
      weight[0] = slot[0] >= 0 ? row[chosen[0]] : 0.0f;
      continue;
    }
    float keptSum = 0.0f;
    for (int64_t j = 0; j < k; ++j)
      if (slot[j] >= 0)
        keptSum += row[chosen[j]];
    const float denominator = std::max(keptSum, kRenormEpsilon);
    for (int64_t j = 0; j < k; ++j)
      weight[j] = slot[j] >= 0 ? row[chosen[j]] / denominator : 0.0f;
  }
}

/// The largest count of any expert (all choices) within any group: the
/// per-group capacity a dropless gate needs.
int64_t largestGroupCount(const GateConfig &config, const GateShape &shape,
                          const int32_t *experts) {
  const GateShape group = groupShape(config, shape);
  const int64_t perGroup = group.numTokens * config.topK;
  std::vector<int64_t> counts(static_cast<size_t>(shape.numExperts));
  int64_t largest = 0;
  for (int64_t g = 0; g < config.groups; ++g) {
    std::fill(counts.begin(), counts.end(), 0);
    for (int64_t i = 0; i < perGroup; ++i)
      largest = std::max(largest, ++counts[experts[g * perGroup + i]]);
  }
  return largest;
}

/// dLogits of one group's S tokens given the gradients of their combine
/// weights and of the group's aux loss.
void groupLogitsGrad(const GateConfig &config, const GateShape &shape,
                     const float *gates, const int32_t *experts,
                     const int32_t *slots, const float *weightsGrad,
                     double auxLossGrad, float *logitsGrad) {
  const int64_t S = shape.numTokens, E = shape.numExperts, k = config.topK;
  // d aux / d gates[s, e] = E * mean_s(mask1[:, e]) / S (mask1 is constant).
  std::vector<float> auxGateGrad(static_cast<size_t>(E), 0.0f);
  for (int64_t s = 0; s < S; ++s)
    auxGateGrad[experts[s * k]] += 1.0f;
  for (int64_t e = 0; e < E; ++e)
    auxGateGrad[e] =
        static_cast<float>(auxLossGrad * E * auxGateGrad[e] / S / S);

#pragma omp parallel
  {
    std::vector<float> gatesGrad(static_cast<size_t>(E));
#pragma omp for schedule(static)
    for (int64_t s = 0; s < S; ++s) {
      const float *row = gates + s * E;
      const int32_t *chosen = experts + s * k;
      const int32_t *slot = slots + s * k;
      const float *weightGrad = weightsGrad + s * k;
      std::copy(auxGateGrad.begin(), auxGateGrad.end(), gatesGrad.begin());
      if (k == 1) {
        if (slot[0] >= 0)
          gatesGrad[chosen[0]] += weightGrad[0];
      } else {
        // w_j = g_j / D with D = max(sum of kept g, eps):
        // dL/dg_i = (dw_i - sum_j dw_j w_j) / D while D > eps, and
        // dw_i / eps once clamped (the clamp cuts D's dependence on g).
        float keptSum = 0.0f;
        for (int64_t j = 0; j < k; ++j)
          if (slot[j] >= 0)
            keptSum += row[chosen[j]];
        const bool clamped = keptSum < kRenormEpsilon;
        const float denominator = clamped ? kRenormEpsilon : keptSum;
        float weightedGrad = 0.0f;
        if (!clamped)
          for (int64_t j = 0; j < k; ++j)
            if (slot[j] >= 0)
              weightedGrad += weightGrad[j] * (row[chosen[j]] / denominator);
        for (int64_t j = 0; j < k; ++j)
          if (slot[j] >= 0)
            gatesGrad[chosen[j]] +=
                (weightGrad[j] - weightedGrad) / denominator;
      }
      // Softmax: dlogit_e = g_e * (dg_e - sum_e' g_e' dg_e').
      double dot = 0.0;
      for (int64_t e = 0; e < E; ++e)
        dot += static_cast<double>(row[e]) * gatesGrad[e];
      float *logitRow = logitsGrad + s * E;
      for (int64_t e = 0; e < E; ++e)
        logitRow[e] = row[e] * (gatesGrad[e] - static_cast<float>(dot));
    }
  }
}

} // namespace

GateResult::GateResult(const GateShape &shape, int64_t topK)
    : experts(
          static_cast<size_t>(std::max<int64_t>(0, shape.numTokens * topK))),
      slots(experts.size()),
      expertCounts(static_cast<size_t>(std::max<int64_t>(0, shape.numExperts))),
      weights(experts.size()), gates(static_cast<size_t>(std::max<int64_t>(
                                   0, shape.numTokens * shape.numExperts))) {}

GateOutputs GateResult::outputs() {
  GateOutputs out;
  out.experts = experts.data();
  out.slots = slots.data();
  out.weights = weights.data();
  out.gates = gates.data();
  out.expertCounts = expertCounts.data();
  out.auxLoss = &auxLoss;
  out.capacity = &capacity;
  return out;
}

Expected<int64_t> gateConfiguredCapacity(const GateConfig &config,
                                         const GateShape &shape) {
  MOERT_RETURN_IF_ERROR(checkConfigAndShape(config, shape));
  const double factor =
      config.training ? config.capacityFactor : config.evalCapacityFactor;
  const int64_t capacity = groupedExpertCapacity(
      shape.numTokens, config.groups, shape.numExperts, config.topK, factor,
      config.minCapacity, config.dropTokens);
  if (capacity < 1)
    return internalError("gate: groupedExpertCapacity rejected arguments "
                         "that passed validation (" +
                         shapeText(shape) +
                         ", groups=" + std::to_string(config.groups) + ")");
  return capacity;
}

Expected<int64_t> gateRoute(const GateConfig &config, const GateShape &shape,
                            const GateRandomness &randomness, const float *x,
                            const float *gateWeight, const GateOutputs &out) {
  MOERT_RETURN_IF_ERROR(checkConfigAndShape(config, shape));
  MOERT_RETURN_IF_ERROR(checkRandomness(shape, randomness));
  if (!x || !gateWeight || !out.experts || !out.gates || !out.expertCounts ||
      !out.auxLoss)
    return invalidArgument("gate: a required input or output buffer is null");

  const GateShape group = groupShape(config, shape);
  const int64_t Sg = group.numTokens, M = shape.modelDim, E = shape.numExperts,
                k = config.topK;
  std::vector<int32_t> groupCounts;
  if (config.groups > 1)
    groupCounts.resize(static_cast<size_t>(E));
  std::fill(out.expertCounts, out.expertCounts + E, 0);
  double auxSum = 0.0;
  int64_t largestCount = 0;
  for (int64_t g = 0; g < config.groups; ++g) {
    int32_t *counts = config.groups > 1 ? groupCounts.data() : out.expertCounts;
    auxSum += routeGroup(config, group, groupRandomness(randomness, group, g),
                         x + g * Sg * M, gateWeight, out.experts + g * Sg * k,
                         out.gates + g * Sg * E, counts);
    for (int64_t e = 0; e < E; ++e) {
      largestCount = std::max<int64_t>(largestCount, counts[e]);
      if (config.groups > 1)
        out.expertCounts[e] += counts[e];
    }
  }
  // The mean over groups: each group's aux loss weighs 1 / groups.
  *out.auxLoss =
      static_cast<float>(auxSum / static_cast<double>(config.groups));

  if (config.dropTokens) {
    MOERT_ASSIGN_OR_RETURN(int64_t total,
                           gateConfiguredCapacity(config, shape));
    return total / config.groups;
  }
  return largestCount;
}

Status gateAssignSlots(const GateConfig &config, const GateShape &shape,
                       const GateRandomness &randomness, int64_t capacity,
                       const GateOutputs &out) {
  MOERT_RETURN_IF_ERROR(checkConfigAndShape(config, shape));
  MOERT_RETURN_IF_ERROR(checkRandomness(shape, randomness));
  if (!out.experts || !out.slots || !out.weights || !out.gates || !out.capacity)
    return invalidArgument("gate: a required output buffer is null");
  const int64_t S = shape.numTokens, E = shape.numExperts, k = config.topK;

  for (int64_t i = 0; i < S * k; ++i)
    if (out.experts[i] < 0 || out.experts[i] >= E)
      return outOfRange(
          "gate: expected expert ids in [0, " + std::to_string(E) +
          "), found " + std::to_string(out.experts[i]) + " at token " +
          std::to_string(i / k) + " choice " + std::to_string(i % k));

  const GateShape group = groupShape(config, shape);
  const int64_t Sg = group.numTokens;
  if (!config.dropTokens) {
    // A MAX all-reduce can only raise the local need; more than S/G slots
    // are never used (an expert gets at most one assignment per token).
    const int64_t localNeed = largestGroupCount(config, shape, out.experts);
    capacity = std::min(capacity, Sg);
    if (capacity < localNeed)
      return invalidArgument(
          "gate: dropless capacity must cover the largest local expert "
          "count " +
          std::to_string(localNeed) +
          (config.groups > 1 ? " (of one group)" : "") + ", found capacity " +
          std::to_string(capacity) +
          " (the reducer must return the MAX over the group)");
  }
  if (capacity < 1)
    return invalidArgument("gate: expected capacity >= 1, found " +
                           std::to_string(capacity));
  // Slots of the last group end at groups * capacity; they are int32.
  if (config.groups > 1 &&
      capacity > std::numeric_limits<int32_t>::max() / config.groups)
    return invalidArgument("gate: expected groups * capacity below 2^31, "
                           "found groups " +
                           std::to_string(config.groups) + " x capacity " +
                           std::to_string(capacity));

  for (int64_t g = 0; g < config.groups; ++g) {
    GroupRouting routing{out.experts + g * Sg * k, out.gates + g * Sg * E,
                         out.slots + g * Sg * k, out.weights + g * Sg * k};
    assignGroupSlots(config, group, groupRandomness(randomness, group, g),
                     capacity, g * capacity, routing);
  }
  *out.capacity = config.groups * capacity;
  return Status::success();
}

Status gateForward(const GateConfig &config, const GateShape &shape,
                   const GateRandomness &randomness, const float *x,
                   const float *gateWeight, const GateOutputs &out,
                   const CapacityReducer &reduceDroplessCapacity) {
  MOERT_ASSIGN_OR_RETURN(int64_t capacity, gateRoute(config, shape, randomness,
                                                     x, gateWeight, out));
  if (!config.dropTokens && reduceDroplessCapacity) {
    MOERT_ASSIGN_OR_RETURN(capacity, reduceDroplessCapacity(capacity));
  }
  MOERT_RETURN_IF_ERROR(
      gateAssignSlots(config, shape, randomness, capacity, out));
  return Status::success();
}

Status gateBackward(const GateConfig &config, const GateShape &shape,
                    const GateRandomness &randomness, const float *x,
                    const float *gateWeight, const GateSavedState &saved,
                    const float *weightsGrad, float auxLossGrad, float *xGrad,
                    float *gateWeightGrad) {
  MOERT_RETURN_IF_ERROR(checkConfigAndShape(config, shape));
  MOERT_RETURN_IF_ERROR(checkRandomness(shape, randomness));
  if (!x || !gateWeight || !saved.gates || !saved.experts || !saved.slots ||
      !weightsGrad)
    return invalidArgument("gate backward: a required input is null");
  const int64_t S = shape.numTokens, M = shape.modelDim, E = shape.numExperts;
  const int64_t k = config.topK;
  for (int64_t i = 0; i < S * k; ++i)
    if (saved.experts[i] < 0 || saved.experts[i] >= E || saved.slots[i] < -1)
      return outOfRange("gate backward: expected expert ids in [0, " +
                        std::to_string(E) + ") and slots >= -1, found expert " +
                        std::to_string(saved.experts[i]) + ", slot " +
                        std::to_string(saved.slots[i]) + " at token " +
                        std::to_string(i / k) + " choice " +
                        std::to_string(i % k));
  if (!xGrad && !gateWeightGrad)
    return Status::success();

  // dLogits [S, E] through the combine weights and the softmax, group by
  // group (each group's aux loss enters the mean with weight 1 / groups).
  std::unique_ptr<float[]> logitsGrad(new float[static_cast<size_t>(S * E)]);
  const GateShape group = groupShape(config, shape);
  const int64_t Sg = group.numTokens;
  const double groupAuxLossGrad =
      static_cast<double>(auxLossGrad) / static_cast<double>(config.groups);
  for (int64_t g = 0; g < config.groups; ++g)
    groupLogitsGrad(config, group, saved.gates + g * Sg * E,
                    saved.experts + g * Sg * k, saved.slots + g * Sg * k,
                    weightsGrad + g * Sg * k, groupAuxLossGrad,
                    logitsGrad.get() + g * Sg * E);

  useSingleThreadedBlas();
  if (gateWeightGrad) {
    std::unique_ptr<float[]> jitterStorage;
    const float *input =
        effectiveInput(config, shape, randomness, x, jitterStorage);
    // dWg [M, E] = input^T [M, S] * dLogits [S, E], by blocks of Wg's rows.
    const int64_t numBlocks = (M + kWeightGradRows - 1) / kWeightGradRows;
#pragma omp parallel for schedule(static)
    for (int64_t block = 0; block < numBlocks; ++block) {
      const int64_t begin = block * kWeightGradRows;
      const int64_t rows = std::min(M, begin + kWeightGradRows) - begin;
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
                  static_cast<int>(rows), static_cast<int>(E),
                  static_cast<int>(S), 1.0f, input + begin, static_cast<int>(M),
                  logitsGrad.get(), static_cast<int>(E), 0.0f,
                  gateWeightGrad + begin * E, static_cast<int>(E));
    }
  }
  if (xGrad) {
    // dx [S, M] = dLogits [S, E] * Wg^T [E, M], times the jitter if any.
    const int64_t numBlocks = (S + kGemmRows - 1) / kGemmRows;
#pragma omp parallel for schedule(static)
    for (int64_t block = 0; block < numBlocks; ++block) {
      const int64_t begin = block * kGemmRows;
      const int64_t rows = std::min(S, begin + kGemmRows) - begin;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                  static_cast<int>(rows), static_cast<int>(M),
                  static_cast<int>(E), 1.0f, logitsGrad.get() + begin * E,
                  static_cast<int>(E), gateWeight, static_cast<int>(E), 0.0f,
                  xGrad + begin * M, static_cast<int>(M));
    }
    if (jitterActive(config))
      scaleByJitter(config, shape, randomness, xGrad, xGrad);
  }
  return Status::success();
}

} // namespace moert
