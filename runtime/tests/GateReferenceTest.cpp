//===- GateReferenceTest.cpp - The gate against a direct reference -------===//
//
// The gate draws its random numbers in bulk, bounds the Gumbel noise so as
// to compute it for few experts, takes maxima in independent lanes and runs
// its GEMMs in fixed row blocks spread over the OpenMP team. These cases
// compare it, on inputs large enough for many blocks, draws and threads,
// with a direct reference that computes every random number on its own
// (gumbel, uniformRange, randomBits per element) and takes sequential
// argmaxes and softmaxes, and check that no result depends on the thread
// count.
//
// With M = E and Wg = I the logits are exactly the input rows, whatever the
// GEMM's blocking, so the reference sees the gate's logits.
//
//===----------------------------------------------------------------------===//
#include "moert/kernels/Gate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace moert {
namespace {

struct Inputs {
  GateShape shape;
  std::vector<float> x, gateWeight;
};

/// S tokens of E logits: coarse values (ties between experts), some rows
/// all equal, and a few rows with an infinite entry (which the identity
/// product turns into NaN and inf logits).
Inputs identityInputs(int64_t S, int64_t E, unsigned seed) {
  Inputs in;
  in.shape = {S, E, E};
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  in.x.resize(static_cast<size_t>(S * E));
  for (float &v : in.x)
    v = std::round(normal(rng) * 8.0f) / 8.0f;
  for (int64_t s = 7; s < S; s += 97)
    std::fill(in.x.begin() + s * E, in.x.begin() + (s + 1) * E, 0.5f);
  for (int64_t s = 11; s < S; s += 401)
    in.x[s * E + (s % E)] = std::numeric_limits<float>::infinity();
  in.gateWeight.assign(static_cast<size_t>(E * E), 0.0f);
  for (int64_t e = 0; e < E; ++e)
    in.gateWeight[e * E + e] = 1.0f;
  return in;
}

Inputs randomInputs(int64_t S, int64_t M, int64_t E, unsigned seed) {
  Inputs in;
  in.shape = {S, M, E};
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  in.x.resize(static_cast<size_t>(S * M));
  in.gateWeight.resize(static_cast<size_t>(M * E));
  for (float &v : in.x)
    v = normal(rng);
  for (float &v : in.gateWeight)
    v = normal(rng) / std::sqrt(static_cast<float>(M));
  return in;
}

/// The lowest index of the largest score among experts not taken; a NaN
/// score wins only as the first candidate (the gate's documented rule).
int32_t referenceArgmax(const std::vector<float> &scores,
                        const std::vector<int32_t> &taken) {
  int32_t best = -1;
  for (int32_t e = 0; e < static_cast<int32_t>(scores.size()); ++e) {
    if (std::find(taken.begin(), taken.end(), e) != taken.end())
      continue;
    if (best < 0 || scores[e] > scores[best])
      best = e;
  }
  return best;
}

struct ReferenceRouting {
  std::vector<int32_t> experts; // [S, k]
  std::vector<float> gates;     // [S, E]
};

/// x Wg by the definition (exactly the rows of x for Wg = I, NaN where
/// 0 * inf meets a row's infinity).
std::vector<float> naiveLogits(const Inputs &in) {
  const int64_t S = in.shape.numTokens, M = in.shape.modelDim,
                E = in.shape.numExperts;
  std::vector<float> logits(static_cast<size_t>(S * E));
  for (int64_t s = 0; s < S; ++s)
    for (int64_t e = 0; e < E; ++e) {
      float sum = 0.0f;
      for (int64_t m = 0; m < M; ++m)
        sum += in.x[s * M + m] * in.gateWeight[m * E + e];
      logits[s * E + e] = sum;
    }
  return logits;
}

/// Choices and softmax of every token from its logits, each random number
/// computed on its own.
ReferenceRouting referenceRoute(const GateConfig &config,
                                const GateShape &shape,
                                const GateRandomness &randomness,
                                const std::vector<float> &logits) {
  const int64_t S = shape.numTokens, E = shape.numExperts, k = config.topK;
  const bool firstNoise = config.training && config.noise == GateNoise::RSample;
  const bool laterNoise = config.training && config.laterChoiceNoise && k > 1;
  ReferenceRouting ref;
  ref.experts.resize(static_cast<size_t>(S * k));
  ref.gates.resize(static_cast<size_t>(S * E));
  std::vector<float> scores(static_cast<size_t>(E));
  for (int64_t s = 0; s < S; ++s) {
    const float *row = logits.data() + s * E;
    const uint64_t element =
        static_cast<uint64_t>(randomness.firstGlobalToken + s) * E;
    std::vector<int32_t> taken;
    for (int64_t e = 0; e < E; ++e)
      scores[e] =
          row[e] +
          (firstNoise
               ? gumbel(randomness.source,
                        gateRandomIndex(GateRandomPurpose::FirstChoiceNoise,
                                        element + e))
               : 0.0f);
    taken.push_back(referenceArgmax(scores, taken));
    for (int64_t e = 0; e < E; ++e)
      scores[e] =
          row[e] +
          (laterNoise
               ? gumbel(randomness.source,
                        gateRandomIndex(GateRandomPurpose::LaterChoiceNoise,
                                        element + e))
               : 0.0f);
    for (int64_t j = 1; j < k; ++j)
      taken.push_back(referenceArgmax(scores, taken));
    std::copy(taken.begin(), taken.end(), ref.experts.begin() + s * k);

    float maxLogit = row[0];
    for (int64_t e = 1; e < E; ++e)
      maxLogit = std::max(maxLogit, row[e]);
    float *gate = ref.gates.data() + s * E;
    double sum = 0.0;
    for (int64_t e = 0; e < E; ++e) {
      gate[e] = std::exp(row[e] - maxLogit);
      sum += gate[e];
    }
    const float inverse = static_cast<float>(1.0 / sum);
    for (int64_t e = 0; e < E; ++e)
      gate[e] *= inverse;
  }
  return ref;
}

/// Bitwise equality, any NaN equal to any NaN.
bool sameFloats(const std::vector<float> &a, const std::vector<float> &b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(std::isnan(a[i]) && std::isnan(b[i])) &&
        std::memcmp(&a[i], &b[i], sizeof(float)) != 0)
      return false;
  return true;
}

GateResult forward(const GateConfig &config, const Inputs &in,
                   const GateRandomness &randomness) {
  GateResult result(in.shape, config.topK);
  Status status = gateForward(config, in.shape, randomness, in.x.data(),
                              in.gateWeight.data(), result.outputs());
  EXPECT_TRUE(status.ok()) << status.toString();
  return result;
}

TEST(GateReference, ChoicesAndGatesMatchPerElementReference) {
  const GateRandomness randomness{{77, 4, 9}, 12345};
  for (int64_t E : {6, 64, 130}) {
    // 3000 tokens: 12 GEMM blocks, the last one partial.
    Inputs in = identityInputs(3000, E, static_cast<unsigned>(E));
    const std::vector<float> logits = naiveLogits(in);
    for (int64_t k : {1, 2, 3}) {
      for (GateNoise noise : {GateNoise::None, GateNoise::RSample}) {
        for (int64_t groups : {1, 3}) {
          GateConfig config;
          config.topK = k;
          config.noise = noise;
          config.groups = groups;
          config.dropTokens = false;
          SCOPED_TRACE("E=" + std::to_string(E) + " k=" + std::to_string(k) +
                       " rsample=" + std::to_string(noise != GateNoise::None) +
                       " groups=" + std::to_string(groups));
          GateResult result = forward(config, in, randomness);
          ReferenceRouting ref =
              referenceRoute(config, in.shape, randomness, logits);
          EXPECT_EQ(result.experts, ref.experts);
          EXPECT_TRUE(sameFloats(result.gates, ref.gates));
        }
      }
    }
  }
}

TEST(GateReference, RtsKeepsHighestPriorities) {
  // Top-1 with a small capacity: every expert is overloaded in every group.
  Inputs in = identityInputs(3000, 8, 3);
  const GateRandomness randomness{{5, 1, 2}, 777};
  for (int64_t groups : {1, 3}) {
    GateConfig config;
    config.topK = 1;
    config.capacityFactor = 0.5;
    config.laterChoiceNoise = false;
    config.groups = groups;
    GateResult result = forward(config, in, randomness);
    const int64_t Sg = 3000 / groups, capacity = result.capacity / groups;
    ASSERT_GT(capacity, 0);
    for (int64_t g = 0; g < groups; ++g) {
      for (int32_t e = 0; e < 8; ++e) {
        // (priority, token) of the group's tokens routed to e.
        std::vector<std::pair<uint32_t, int64_t>> routed;
        for (int64_t s = g * Sg; s < (g + 1) * Sg; ++s)
          if (result.experts[s] == e)
            routed.emplace_back(
                randomBits(
                    randomness.source,
                    gateRandomIndex(GateRandomPurpose::RtsPriority,
                                    static_cast<uint64_t>(
                                        randomness.firstGlobalToken + s))),
                s);
        ASSERT_GT(static_cast<int64_t>(routed.size()), capacity);
        std::sort(routed.begin(), routed.end(),
                  [](const auto &a, const auto &b) {
                    return a.first != b.first ? a.first > b.first
                                              : a.second < b.second;
                  });
        std::vector<int64_t> kept;
        for (int64_t i = 0; i < capacity; ++i)
          kept.push_back(routed[i].second);
        std::sort(kept.begin(), kept.end());
        std::vector<int32_t> expected(routed.size(), -1), found;
        for (const auto &[priority, s] : routed) {
          auto at = std::find(kept.begin(), kept.end(), s);
          found.push_back(result.slots[s]);
          expected[found.size() - 1] =
              at == kept.end()
                  ? -1
                  : static_cast<int32_t>(g * capacity + (at - kept.begin()));
        }
        EXPECT_EQ(found, expected) << "group " << g << " expert " << e;
      }
    }
  }
}

TEST(GateReference, JitterScalesInputAndInputGradient) {
  // The jittered gate equals the plain gate on x * jitter (computed here
  // element by element), and its dx is the plain dx times the jitter.
  Inputs in = randomInputs(3000, 40, 16, 8);
  const GateRandomness randomness{{31, 2, 3}, 4096};
  GateConfig jittered;
  jittered.topK = 2;
  jittered.noise = GateNoise::Jitter;
  jittered.laterChoiceNoise = false;
  GateConfig plain = jittered;
  plain.noise = GateNoise::None;
  const int64_t S = in.shape.numTokens, M = in.shape.modelDim;
  const float low = 1.0f - jittered.jitterEps, high = 1.0f + jittered.jitterEps;
  std::vector<float> jitter(static_cast<size_t>(S * M));
  for (int64_t i = 0; i < S * M; ++i)
    jitter[i] =
        uniformRange(randomness.source,
                     gateRandomIndex(GateRandomPurpose::Jitter,
                                     static_cast<uint64_t>(
                                         randomness.firstGlobalToken * M + i)),
                     low, high);
  Inputs scaled = in;
  for (int64_t i = 0; i < S * M; ++i)
    scaled.x[i] = in.x[i] * jitter[i];

  GateResult a = forward(jittered, in, randomness);
  GateResult b = forward(plain, scaled, randomness);
  EXPECT_EQ(a.experts, b.experts);
  EXPECT_EQ(a.slots, b.slots);
  EXPECT_EQ(a.gates, b.gates);
  EXPECT_EQ(a.weights, b.weights);

  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> weightsGrad(static_cast<size_t>(S * 2));
  for (float &v : weightsGrad)
    v = normal(rng);
  std::vector<float> dxA(S * M), dxB(S * M), dwA(M * 16), dwB(M * 16);
  GateSavedState savedA{a.gates.data(), a.experts.data(), a.slots.data()};
  GateSavedState savedB{b.gates.data(), b.experts.data(), b.slots.data()};
  ASSERT_TRUE(gateBackward(jittered, in.shape, randomness, in.x.data(),
                           in.gateWeight.data(), savedA, weightsGrad.data(),
                           0.1f, dxA.data(), dwA.data())
                  .ok());
  ASSERT_TRUE(gateBackward(plain, scaled.shape, randomness, scaled.x.data(),
                           scaled.gateWeight.data(), savedB, weightsGrad.data(),
                           0.1f, dxB.data(), dwB.data())
                  .ok());
  EXPECT_EQ(dwA, dwB);
  for (int64_t i = 0; i < S * M; ++i)
    ASSERT_EQ(dxA[i], dxB[i] * jitter[i]) << "element " << i;
}

#ifdef _OPENMP
TEST(GateReference, ResultsDoNotDependOnThreadCount) {
  Inputs in = randomInputs(3000, 96, 40, 4);
  const GateRandomness randomness{{9, 3, 1}, 1000};
  for (GateNoise noise : {GateNoise::RSample, GateNoise::Jitter}) {
    GateConfig config;
    config.topK = 2;
    config.noise = noise;
    config.groups = 3;
    std::vector<float> weightsGrad(static_cast<size_t>(3000 * 2));
    std::mt19937 rng(6);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float &v : weightsGrad)
      v = normal(rng);
    struct Run {
      GateResult forward;
      std::vector<float> dx, dw;
    };
    std::vector<Run> runs;
    const int savedThreads = omp_get_max_threads();
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      Run run{forward(config, in, randomness), std::vector<float>(3000 * 96),
              std::vector<float>(96 * 40)};
      GateSavedState saved{run.forward.gates.data(), run.forward.experts.data(),
                           run.forward.slots.data()};
      EXPECT_TRUE(gateBackward(config, in.shape, randomness, in.x.data(),
                               in.gateWeight.data(), saved, weightsGrad.data(),
                               0.1f, run.dx.data(), run.dw.data())
                      .ok());
      runs.push_back(std::move(run));
    }
    omp_set_num_threads(savedThreads);
    for (size_t i = 1; i < runs.size(); ++i) {
      EXPECT_EQ(runs[i].forward.experts, runs[0].forward.experts);
      EXPECT_EQ(runs[i].forward.slots, runs[0].forward.slots);
      EXPECT_EQ(runs[i].forward.gates, runs[0].forward.gates);
      EXPECT_EQ(runs[i].forward.weights, runs[0].forward.weights);
      EXPECT_EQ(runs[i].forward.auxLoss, runs[0].forward.auxLoss);
      EXPECT_EQ(runs[i].dx, runs[0].dx);
      EXPECT_EQ(runs[i].dw, runs[0].dw);
    }
  }
}
#endif

} // namespace
} // namespace moert
