//===- GateMath.h - Per-thread code of the CUDA gate -------------*- C++ -*-===//
//
// The CUDA gate (MoeKernels.cu) computes the logits with cuBLAS and routes
// with the functions below, each run by one GPU thread: per token (choices,
// softmax, combine weights, the logits' gradient), per (group, expert)
// (counts, the gate sum of the aux loss, slots in token order), per token
// again for Random Token Selection. They are plain functions compiled for
// the host and the GPU (MOERT_HOST_DEVICE), so tests/GateMathTest.cpp runs
// them on the CPU in the GPU's arrangement against the CPU gate
// (moert/kernels/Gate.h), whose semantics they follow step by step:
//   - choices: argmax with the lowest index on ties, over the logits or the
//     logits plus Gumbel noise keyed by the global token id (the CPU's
//     bounds that skip computing most noise are only a shortcut to the same
//     argmax, so every noisy score is computed here);
//   - softmax max-subtracted, summed in double, scaled by the float inverse;
//   - first choices of an overloaded expert: the C highest RTS priorities
//     (ties to the lower token), or the first C tokens; kept tokens take
//     slots in token order; later choices queue behind all earlier choices
//     of their expert and are dropped positionally;
//   - weights renormalised over kept choices for k >= 2;
//   - the aux loss E sum_e mean(gates[:, e]) mean(mask1[:, e]) per group,
//     the mean over groups.
// Routing (experts, slots, counts) is the CPU's wherever the logits are the
// same; the logits come from another GEMM (cuBLAS vs OpenBLAS), so a token
// whose two best scores are within rounding of each other may be routed
// differently. Float operations whose rounding matters are written with
// mulRn/addRn/subRn (no FMA contraction on the GPU).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_GATEMATH_H
#define MOERT_BACKENDS_CUDA_GATEMATH_H

#include "moert/Half.h"
#include "moert/HostDevice.h"
#include "moert/Random.h"
#include "moert/backends/cuda/DenseMath.h"
#include "moert/kernels/Gate.h"

#include <cfloat>
#include <cmath>
#include <cstdint>

namespace moert {
namespace cuda {
namespace gate_math {

using dense_math::addRn;
using dense_math::mulRn;
using dense_math::subRn;

/// Tokens per counting chunk (see countChunk), and the device gate's
/// largest top-k (counts per choice are kept per chunk).
constexpr int64_t kGateChunk = 256;
constexpr int64_t kGateMaxTopK = 8;

/// Everything a gate thread needs to know about the call.
struct GateParams {
  RandomStream source;
  int64_t firstGlobalToken; // global id of local token 0
  int64_t numTokens;        // S (all groups)
  int64_t groupTokens;      // S / groups
  int64_t groups, numExperts, topK, modelDim;
  bool firstChoiceNoise; // rsample in training
  bool laterChoiceNoise; // Gumbel noise for choices >= 1 in training, k > 1
  bool jitter;           // multiplicative jitter of x in training
  bool useRts, dropTokens;
  float jitterLow, jitterHigh;
  int64_t chunkTokens; // tokens per counting chunk (kGateChunk)
};

/// The parameters of a call with `config` over `shape`.
inline GateParams gateParams(const GateConfig &config, const GateShape &shape,
                             const GateRandomness &randomness) {
  GateParams p{};
  p.source = randomness.source;
  p.firstGlobalToken = randomness.firstGlobalToken;
  p.numTokens = shape.numTokens;
  p.groups = config.groups;
  p.groupTokens = config.groups > 0 ? shape.numTokens / config.groups : 0;
  p.numExperts = shape.numExperts;
  p.topK = config.topK;
  p.modelDim = shape.modelDim;
  p.firstChoiceNoise = config.training && config.noise == GateNoise::RSample;
  p.laterChoiceNoise =
      config.training && config.laterChoiceNoise && config.topK > 1;
  p.jitter = config.training && config.noise == GateNoise::Jitter &&
             config.jitterEps > 0.0f;
  p.useRts = config.useRts;
  p.dropTokens = config.dropTokens;
  p.jitterLow = 1.0f - config.jitterEps;
  p.jitterHigh = 1.0f + config.jitterEps;
  p.chunkTokens = kGateChunk;
  return p;
}

/// Element i of x [S, M] times its jitter (the CPU's scaleByJitter).
MOERT_HOST_DEVICE inline float jittered(const GateParams &p, int64_t i,
                                        float x) {
  const uint64_t index = gateRandomIndex(
      GateRandomPurpose::Jitter,
      static_cast<uint64_t>(p.firstGlobalToken * p.modelDim + i));
  const float u = bitsToUniform(randomBits(p.source, index));
  const float factor =
      addRn(p.jitterLow, mulRn(subRn(p.jitterHigh, p.jitterLow), u));
  return mulRn(x, factor);
}

/// The score of expert e for local token s: the logit, plus Gumbel noise
/// of `purpose` when `noisy`.
MOERT_HOST_DEVICE inline float choiceScore(const GateParams &p,
                                           const float *row, int64_t s,
                                           int64_t e, bool noisy,
                                           GateRandomPurpose purpose) {
  if (!noisy)
    return row[e];
  const uint64_t element = static_cast<uint64_t>(
      (p.firstGlobalToken + s) * p.numExperts + e);
  return row[e] + gumbel(p.source, gateRandomIndex(purpose, element));
}

/// The highest score among experts not in chosen[0 .. numChosen), the
/// lowest index on ties; -inf and NaN scores still yield a choice (the
/// CPU's argmaxExcluding).
MOERT_HOST_DEVICE inline int32_t chooseExpert(const GateParams &p,
                                              const float *row, int64_t s,
                                              bool noisy,
                                              GateRandomPurpose purpose,
                                              const int32_t *chosen,
                                              int64_t numChosen) {
  int32_t best = -1;
  float bestScore = 0.0f;
  for (int64_t e = 0; e < p.numExperts; ++e) {
    bool taken = false;
    for (int64_t j = 0; j < numChosen; ++j)
      taken |= chosen[j] == e;
    if (taken)
      continue;
    const float score = choiceScore(p, row, s, e, noisy, purpose);
    if (best < 0 || score > bestScore) {
      best = static_cast<int32_t>(e);
      bestScore = score;
    }
  }
  return best;
}

/// Routes local token s: its k choices into `chosen`, and its logits `row`
/// [E] replaced by the softmax probabilities.
MOERT_HOST_DEVICE inline void routeToken(const GateParams &p, int64_t s,
                                         float *row, int32_t *chosen) {
  const int64_t E = p.numExperts;
  chosen[0] = chooseExpert(p, row, s, p.firstChoiceNoise,
                           GateRandomPurpose::FirstChoiceNoise, chosen, 0);
  for (int64_t j = 1; j < p.topK; ++j)
    chosen[j] = chooseExpert(p, row, s, p.laterChoiceNoise,
                             GateRandomPurpose::LaterChoiceNoise, chosen, j);
  float maxLogit = row[0];
  for (int64_t e = 1; e < E; ++e)
    maxLogit = maxLogit < row[e] ? row[e] : maxLogit;
  for (int64_t e = 0; e < E; ++e)
    row[e] = std::exp(subRn(row[e], maxLogit));
  double sum = 0.0;
  for (int64_t e = 0; e < E; ++e)
    sum += row[e];
  const float inverse = static_cast<float>(1.0 / sum);
  for (int64_t e = 0; e < E; ++e)
    row[e] = mulRn(row[e], inverse);
}

/// Counting and slot assignment run over chunks of a group's tokens: one
/// thread per (group, expert, chunk) counts, one per (group, expert) scans
/// the chunks' counts in order, one per (group, expert, chunk) assigns, so
/// no thread walks a whole group. Every count is exact, so the slots are
/// those of the CPU's walk over the group in token order.
MOERT_HOST_DEVICE inline int64_t gateChunks(const GateParams &p) {
  return (p.groupTokens + p.chunkTokens - 1) / p.chunkTokens;
}

/// What chunk c of group g holds for expert e, or (as an exclusive scan)
/// what the chunks before it hold: tokens whose choice j is e, first
/// choices kept by Random Token Selection, and sum_s gates[s, e] (double).
struct ChunkCounts {
  int32_t choice[kGateMaxTopK];
  int32_t kept;
  double gateSum;
};

MOERT_HOST_DEVICE inline ChunkCounts
countChunk(const GateParams &p, int64_t g, int32_t e, int64_t chunk,
           const int32_t *experts, const float *gates,
           const uint8_t *keptFirst) {
  ChunkCounts counts{};
  const int64_t k = p.topK, E = p.numExperts;
  const int64_t begin = g * p.groupTokens + chunk * p.chunkTokens;
  const int64_t end = begin + p.chunkTokens < (g + 1) * p.groupTokens
                          ? begin + p.chunkTokens
                          : (g + 1) * p.groupTokens;
  for (int64_t s = begin; s < end; ++s) {
    for (int64_t j = 0; j < k; ++j)
      counts.choice[j] += experts[s * k + j] == e;
    if (keptFirst)
      counts.kept += experts[s * k] == e && keptFirst[s] != 0;
    if (gates)
      counts.gateSum += gates[s * E + e];
  }
  return counts;
}

/// Per (group, expert): the totals over the group's chunks, the count of
/// first choices (RTS's candidates) and of all choices, and sum_s
/// gates[s, e].
struct ExpertGroupStats {
  int32_t firstCount, allCount;
  int32_t choiceTotal[kGateMaxTopK];
  double gateSum;
};

/// Replaces counts[0 .. chunks) of one (group, expert) by their exclusive
/// prefix sums (chunk order) and returns the totals.
MOERT_HOST_DEVICE inline ExpertGroupStats scanChunks(const GateParams &p,
                                                     ChunkCounts *counts,
                                                     int64_t chunks) {
  ExpertGroupStats stats{};
  ChunkCounts running{};
  for (int64_t c = 0; c < chunks; ++c) {
    const ChunkCounts here = counts[c];
    counts[c] = running;
    for (int64_t j = 0; j < p.topK; ++j)
      running.choice[j] += here.choice[j];
    running.kept += here.kept;
    running.gateSum += here.gateSum;
  }
  stats.firstCount = running.choice[0];
  for (int64_t j = 0; j < p.topK; ++j) {
    stats.choiceTotal[j] = running.choice[j];
    stats.allCount += running.choice[j];
  }
  stats.gateSum = running.gateSum;
  return stats;
}

/// Writes chunk c's tokens whose first choice is e (group-local ids) at
/// their places in the expert's first-choice list (token order), given the
/// chunk's exclusive prefix `before`.
MOERT_HOST_DEVICE inline void listFirstChoices(const GateParams &p, int64_t g,
                                               int32_t e, int64_t chunk,
                                               const int32_t *experts,
                                               const ChunkCounts &before,
                                               int32_t *firstTokens) {
  const int64_t k = p.topK, first = g * p.groupTokens;
  const int64_t begin = first + chunk * p.chunkTokens;
  const int64_t end = begin + p.chunkTokens < first + p.groupTokens
                          ? begin + p.chunkTokens
                          : first + p.groupTokens;
  int32_t position = before.choice[0];
  for (int64_t s = begin; s < end; ++s)
    if (experts[s * k] == e)
      firstTokens[position++] = static_cast<int32_t>(s - first);
}

/// Slots of chunk c's choices of expert e (per-group capacity `capacity`,
/// the group's slots starting at g * capacity): first choices in token
/// order among the kept ones (`keptFirst` for RTS; the first `capacity`
/// otherwise), each later choice j behind all choices < j of e (counted
/// before dropping), dropped positionally. `before`: the chunk's exclusive
/// prefix, counted with `keptFirst`.
MOERT_HOST_DEVICE inline void assignChunkSlots(
    const GateParams &p, int64_t g, int32_t e, int64_t chunk,
    const int32_t *experts, const uint8_t *keptFirst,
    const ChunkCounts &before, const ExpertGroupStats &stats,
    int64_t capacity, int32_t *slots) {
  const int64_t k = p.topK, first = g * p.groupTokens;
  const int64_t firstSlot = g * capacity;
  const int64_t begin = first + chunk * p.chunkTokens;
  const int64_t end = begin + p.chunkTokens < first + p.groupTokens
                          ? begin + p.chunkTokens
                          : first + p.groupTokens;
  int64_t kept = before.kept, position = before.choice[0];
  for (int64_t s = begin; s < end; ++s) {
    if (experts[s * k] != e)
      continue;
    if (keptFirst)
      slots[s * k] =
          keptFirst[s] ? static_cast<int32_t>(firstSlot + kept++) : -1;
    else
      slots[s * k] = position < capacity
                         ? static_cast<int32_t>(firstSlot + position)
                         : -1;
    ++position;
  }
  int64_t queued = stats.firstCount;
  for (int64_t j = 1; j < k; ++j) {
    int64_t at = queued + before.choice[j];
    for (int64_t s = begin; s < end; ++s) {
      if (experts[s * k + j] != e)
        continue;
      slots[s * k + j] =
          at < capacity ? static_cast<int32_t>(firstSlot + at) : -1;
      ++at;
    }
    queued += stats.choiceTotal[j];
  }
}

/// E times the aux loss of group g from its stats [E] (the CPU's order).
MOERT_HOST_DEVICE inline double groupAuxLoss(const GateParams &p,
                                             const ExpertGroupStats *stats) {
  const double S = static_cast<double>(p.groupTokens);
  double aux = 0.0;
  for (int64_t e = 0; e < p.numExperts; ++e)
    aux += (stats[e].gateSum / S) * (static_cast<double>(stats[e].firstCount) / S);
  return aux * static_cast<double>(p.numExperts);
}

/// The RTS priority of local token `local` of group g (32 random bits of
/// its global id).
MOERT_HOST_DEVICE inline uint32_t rtsPriority(const GateParams &p, int64_t g,
                                              int64_t local) {
  return randomBits(
      p.source,
      gateRandomIndex(GateRandomPurpose::RtsPriority,
                      static_cast<uint64_t>(p.firstGlobalToken +
                                            g * p.groupTokens + local)));
}

/// Whether the first choice of group-local token `local` survives Random
/// Token Selection at per-group capacity `capacity`, given its expert's
/// first-choice tokens (`tokens`, `count` of them, in token order) and the
/// group's priorities: its rank by (priority descending, token ascending)
/// is below the capacity.
MOERT_HOST_DEVICE inline bool keptByRts(int64_t local, const int32_t *tokens,
                                        int64_t count, const uint32_t *priority,
                                        int64_t capacity) {
  if (count <= capacity)
    return true;
  const uint32_t mine = priority[local];
  int64_t higher = 0;
  for (int64_t i = 0; i < count && higher < capacity; ++i) {
    const int64_t other = tokens[i];
    higher += priority[other] > mine || (priority[other] == mine && other < local);
  }
  return higher < capacity;
}

/// The combine weights of one token from its gates row [E].
MOERT_HOST_DEVICE inline void combineWeights(const GateParams &p,
                                             const float *row,
                                             const int32_t *chosen,
                                             const int32_t *slot,
                                             float *weight) {
  const int64_t k = p.topK;
  if (k == 1) {
    weight[0] = slot[0] >= 0 ? row[chosen[0]] : 0.0f;
    return;
  }
  float keptSum = 0.0f;
  for (int64_t j = 0; j < k; ++j)
    if (slot[j] >= 0)
      keptSum = addRn(keptSum, row[chosen[j]]);
  const float denominator = keptSum < FLT_EPSILON ? FLT_EPSILON : keptSum;
  for (int64_t j = 0; j < k; ++j)
    weight[j] = slot[j] >= 0 ? row[chosen[j]] / denominator : 0.0f;
}

/// d aux / d gates[s, e] of a token of a group whose expert e has
/// `firstCount` first choices, for the gradient `groupAuxLossGrad` of that
/// group's aux loss (the CPU's order).
MOERT_HOST_DEVICE inline float auxGateGrad(const GateParams &p,
                                           double groupAuxLossGrad,
                                           int32_t firstCount) {
  const double S = static_cast<double>(p.groupTokens);
  return static_cast<float>(groupAuxLossGrad *
                            static_cast<double>(p.numExperts) *
                            static_cast<double>(static_cast<float>(firstCount)) /
                            S / S);
}

/// dL/dgates[s, e] of one token: the aux term plus the kept choice of e.
MOERT_HOST_DEVICE inline float gatesGrad(const GateParams &p, int64_t e,
                                         float auxGrad, const int32_t *chosen,
                                         const int32_t *slot,
                                         const float *weightGrad,
                                         float denominator,
                                         float weightedGrad) {
  float grad = auxGrad;
  for (int64_t j = 0; j < p.topK; ++j) {
    if (chosen[j] != e || slot[j] < 0)
      continue;
    if (p.topK == 1)
      grad = addRn(grad, weightGrad[0]);
    else
      grad = addRn(grad, subRn(weightGrad[j], weightedGrad) / denominator);
  }
  return grad;
}

/// The logits' gradient row [E] of one token (softmax, top-k
/// renormalisation, aux loss); `firstCounts` [E] are its group's.
MOERT_HOST_DEVICE inline void logitsGradRow(const GateParams &p,
                                            double groupAuxLossGrad,
                                            const int32_t *firstCounts,
                                            const float *row,
                                            const int32_t *chosen,
                                            const int32_t *slot,
                                            const float *weightGrad,
                                            float *logitGrad) {
  const int64_t k = p.topK, E = p.numExperts;
  float keptSum = 0.0f;
  bool clamped = false;
  float denominator = 1.0f, weightedGrad = 0.0f;
  if (k > 1) {
    for (int64_t j = 0; j < k; ++j)
      if (slot[j] >= 0)
        keptSum = addRn(keptSum, row[chosen[j]]);
    clamped = keptSum < FLT_EPSILON;
    denominator = clamped ? FLT_EPSILON : keptSum;
    if (!clamped)
      for (int64_t j = 0; j < k; ++j)
        if (slot[j] >= 0)
          weightedGrad = addRn(
              weightedGrad, mulRn(weightGrad[j], row[chosen[j]] / denominator));
  }
  double dot = 0.0;
  for (int64_t e = 0; e < E; ++e) {
    const float grad =
        gatesGrad(p, e, auxGateGrad(p, groupAuxLossGrad, firstCounts[e]),
                  chosen, slot, weightGrad, denominator, weightedGrad);
    dot += static_cast<double>(row[e]) * grad;
  }
  const float dotF = static_cast<float>(dot);
  for (int64_t e = 0; e < E; ++e) {
    const float grad =
        gatesGrad(p, e, auxGateGrad(p, groupAuxLossGrad, firstCounts[e]),
                  chosen, slot, weightGrad, denominator, weightedGrad);
    logitGrad[e] = mulRn(row[e], subRn(grad, dotF));
  }
}

} // namespace gate_math
} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_GATEMATH_H
