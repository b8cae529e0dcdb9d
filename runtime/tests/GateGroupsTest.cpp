//===- GateGroupsTest.cpp - Gating groups (GShard's G dimension) ----------===//
//
// A gate with G groups must be exactly G independent gates over the G
// contiguous slices of its tokens (each with the random numbers of its
// global token ids), whose slots are shifted by g * Cg; counts add up and
// the aux loss is their mean. The reference here is literally that: G calls
// of the same kernel with groups = 1 on the slices.
//
//===----------------------------------------------------------------------===//
#include "moert/kernels/Gate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace moert {
namespace {

struct Inputs {
  GateShape shape;
  std::vector<float> x, gateWeight;
};

/// Random tokens; the first tokens of every group lean towards expert 0 so
/// that each group overflows it (and RTS/dropping is exercised per group).
Inputs skewedTokens(int64_t S, int64_t M, int64_t E, int64_t groups,
                    unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Inputs in;
  in.shape = {S, M, E};
  in.x.resize(static_cast<size_t>(S * M));
  in.gateWeight.resize(static_cast<size_t>(M * E));
  for (float &v : in.x)
    v = normal(rng);
  for (float &v : in.gateWeight)
    v = normal(rng);
  const int64_t perGroup = S / groups;
  for (int64_t s = 0; s < S; ++s)
    if (s % perGroup < perGroup / 2)
      for (int64_t m = 0; m < M; ++m)
        in.x[s * M + m] += 1.5f * in.gateWeight[m * E + 0];
  return in;
}

GateResult forward(const GateConfig &config, const GateShape &shape,
                   const GateRandomness &randomness, const float *x,
                   const float *gateWeight,
                   const CapacityReducer &reducer = {}) {
  GateResult result(shape, config.topK);
  Status status = gateForward(config, shape, randomness, x, gateWeight,
                              result.outputs(), reducer);
  EXPECT_TRUE(status.ok()) << status.toString();
  return result;
}

/// The grouped gate against G separate ungrouped gates on the slices.
/// `droplessCapacity` (dropless gates only) is the per-group capacity the
/// separate gates are forced to: the grouped gate's MAX over its groups.
void expectGroupedEqualsSeparate(const GateConfig &grouped, const Inputs &in,
                                 const GateRandomness &randomness) {
  const int64_t G = grouped.groups, S = in.shape.numTokens;
  const int64_t M = in.shape.modelDim, E = in.shape.numExperts;
  const int64_t k = grouped.topK, Sg = S / G;
  GateResult whole =
      forward(grouped, in.shape, randomness, in.x.data(), in.gateWeight.data());
  ASSERT_EQ(whole.capacity % G, 0);
  const int64_t Cg = whole.capacity / G;

  GateConfig single = grouped;
  single.groups = 1;
  GateShape part = in.shape;
  part.numTokens = Sg;
  std::vector<int32_t> countSum(static_cast<size_t>(E), 0);
  double auxSum = 0.0;
  int dropped = 0;
  for (int64_t g = 0; g < G; ++g) {
    GateRandomness sliceRandomness = randomness;
    sliceRandomness.firstGlobalToken += g * Sg;
    // A dropless slice uses the capacity of the fullest group, like the
    // grouped gate (a MAX over the groups, as over an expert-parallel group).
    CapacityReducer useGroupMax = [&](int64_t local) -> Expected<int64_t> {
      EXPECT_LE(local, Cg);
      return Cg;
    };
    GateResult slice =
        forward(single, part, sliceRandomness, in.x.data() + g * Sg * M,
                in.gateWeight.data(),
                grouped.dropTokens ? CapacityReducer() : useGroupMax);
    EXPECT_EQ(slice.capacity, Cg) << "group " << g;
    for (int64_t i = 0; i < Sg * k; ++i) {
      const int64_t at = g * Sg * k + i;
      EXPECT_EQ(whole.experts[at], slice.experts[i]) << "group " << g;
      const int32_t shifted =
          slice.slots[i] < 0 ? -1
                             : static_cast<int32_t>(g * Cg) + slice.slots[i];
      EXPECT_EQ(whole.slots[at], shifted) << "group " << g << " entry " << i;
      EXPECT_EQ(whole.weights[at], slice.weights[i]) << "group " << g;
      dropped += slice.slots[i] < 0;
    }
    for (int64_t i = 0; i < Sg * E; ++i)
      EXPECT_EQ(whole.gates[g * Sg * E + i], slice.gates[i]) << "group " << g;
    for (int64_t e = 0; e < E; ++e)
      countSum[e] += slice.expertCounts[e];
    auxSum += slice.auxLoss;
  }
  EXPECT_EQ(whole.expertCounts, countSum);
  // The grouped mean is taken in double; the separate results are floats.
  EXPECT_NEAR(whole.auxLoss, auxSum / G, 1e-6 * std::max(1.0, auxSum / G));
  if (grouped.dropTokens)
    EXPECT_GT(dropped, 0) << "the case drops nothing";
  else
    EXPECT_EQ(dropped, 0) << "a dropless gate dropped a token";
}

GateConfig baseConfig(int64_t topK, int64_t groups) {
  GateConfig config;
  config.topK = topK;
  config.groups = groups;
  config.minCapacity = 0;
  return config;
}

TEST(GateGroups, Top1RtsRSampleEqualsSeparateGates) {
  GateConfig config = baseConfig(1, 4);
  config.capacityFactor = 0.75;
  config.noise = GateNoise::RSample;
  Inputs in = skewedTokens(48, 6, 4, 4, 1);
  expectGroupedEqualsSeparate(config, in, {{17, 3, 5}, 40});
}

TEST(GateGroups, Top2JitterSecondSamplingEqualsSeparateGates) {
  GateConfig config = baseConfig(2, 3);
  config.capacityFactor = 0.6;
  config.noise = GateNoise::Jitter;
  config.jitterEps = 0.1f;
  Inputs in = skewedTokens(36, 5, 4, 3, 2);
  expectGroupedEqualsSeparate(config, in, {{3, 1, 2}, 0});
}

TEST(GateGroups, Top3WithoutRtsMinCapacityEqualsSeparateGates) {
  GateConfig config = baseConfig(3, 2);
  config.capacityFactor = 0.5;
  config.minCapacity = 5; // lifts each group's ceil(10/5*0.5*3) = 3 to 5
  config.useRts = false;
  config.laterChoiceNoise = false;
  Inputs in = skewedTokens(20, 4, 5, 2, 3);
  GateResult result =
      forward(config, in.shape, {}, in.x.data(), in.gateWeight.data());
  EXPECT_EQ(result.capacity, 2 * 5);
  expectGroupedEqualsSeparate(config, in, {});
}

TEST(GateGroups, EvalModeEqualsSeparateGates) {
  GateConfig config = baseConfig(2, 4);
  config.capacityFactor = 4.0;
  config.evalCapacityFactor = 0.5;
  config.training = false;
  Inputs in = skewedTokens(32, 4, 4, 4, 4);
  GateResult result = forward(config, in.shape, {{8, 0, 1}, 0}, in.x.data(),
                              in.gateWeight.data());
  // 4 groups of 8 tokens: ceil(8 / 4 * 0.5 * 2) = 2 slots each.
  EXPECT_EQ(result.capacity, 4 * 2);
  expectGroupedEqualsSeparate(config, in, {{8, 0, 1}, 0});
}

TEST(GateGroups, DroplessUsesLargestGroupCount) {
  GateConfig config = baseConfig(2, 4);
  config.dropTokens = false;
  config.noise = GateNoise::Jitter;
  Inputs in = skewedTokens(40, 5, 4, 4, 5);
  const GateRandomness randomness{{21, 2, 3}, 0};

  // The per-group need: the largest count of one expert within one group.
  GateResult unreduced =
      forward(config, in.shape, randomness, in.x.data(), in.gateWeight.data());
  int64_t largest = 0;
  for (int64_t g = 0; g < 4; ++g) {
    std::vector<int64_t> counts(4, 0);
    for (int64_t i = 0; i < 10 * 2; ++i)
      largest = std::max(largest, ++counts[unreduced.experts[g * 20 + i]]);
  }
  // The sum over groups is larger than any one group's need.
  EXPECT_GT(*std::max_element(unreduced.expertCounts.begin(),
                              unreduced.expertCounts.end()),
            largest);
  int calls = 0;
  GateResult result = forward(config, in.shape, randomness, in.x.data(),
                              in.gateWeight.data(), [&](int64_t local) {
                                ++calls;
                                EXPECT_EQ(local, largest);
                                return Expected<int64_t>(local);
                              });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result.capacity, 4 * largest);
  expectGroupedEqualsSeparate(config, in, randomness);

  // A larger MAX from other ranks raises every group's capacity; more than
  // S/G slots per group are never used.
  GateResult raised =
      forward(config, in.shape, randomness, in.x.data(), in.gateWeight.data(),
              [](int64_t) { return Expected<int64_t>(1000); });
  EXPECT_EQ(raised.capacity, 4 * 10);
  // Below the need is an error naming the group's count.
  GateResult low(in.shape, 2);
  Status status = gateForward(
      config, in.shape, randomness, in.x.data(), in.gateWeight.data(),
      low.outputs(), [&](int64_t) { return Expected<int64_t>(largest - 1); });
  EXPECT_EQ(status.code(), StatusCode::InvalidArgument);
  EXPECT_NE(status.message().find("largest local expert count " +
                                  std::to_string(largest) + " (of one group)"),
            std::string::npos)
      << status.message();
}

TEST(GateGroups, OneGroupIsTheUngroupedGate) {
  GateConfig config = baseConfig(2, 1);
  config.capacityFactor = 0.5;
  config.noise = GateNoise::RSample;
  Inputs in = skewedTokens(24, 4, 4, 1, 6);
  GateConfig defaulted;
  defaulted.topK = 2;
  defaulted.capacityFactor = 0.5;
  defaulted.minCapacity = 0;
  defaulted.noise = GateNoise::RSample;
  GateResult a = forward(config, in.shape, {{1, 1, 1}, 0}, in.x.data(),
                         in.gateWeight.data());
  GateResult b = forward(defaulted, in.shape, {{1, 1, 1}, 0}, in.x.data(),
                         in.gateWeight.data());
  EXPECT_EQ(a.slots, b.slots);
  EXPECT_EQ(a.weights, b.weights);
  EXPECT_EQ(a.auxLoss, b.auxLoss);
}

TEST(GateGroups, ProcessHoldingSomeGroupsRoutesThemAsTheWholeBatch) {
  // 4 groups of 12 tokens; a process holding groups 2 and 3 (tokens 24..47,
  // firstGlobalToken 24) computes what the whole-batch gate computes for
  // them, slots relative to its own two groups.
  GateConfig config = baseConfig(2, 4);
  config.capacityFactor = 0.6;
  config.noise = GateNoise::RSample;
  Inputs in = skewedTokens(48, 6, 4, 4, 7);
  const GateRandomness randomness{{99, 4, 2}, 0};
  GateResult whole =
      forward(config, in.shape, randomness, in.x.data(), in.gateWeight.data());
  const int64_t Cg = whole.capacity / 4;

  GateConfig half = config;
  half.groups = 2;
  GateShape shape = in.shape;
  shape.numTokens = 24;
  GateResult local = forward(half, shape, {randomness.source, 24},
                             in.x.data() + 24 * 6, in.gateWeight.data());
  EXPECT_EQ(local.capacity, 2 * Cg);
  for (int64_t i = 0; i < 24 * 2; ++i) {
    EXPECT_EQ(local.experts[i], whole.experts[48 + i]);
    const int32_t slot = whole.slots[48 + i];
    EXPECT_EQ(local.slots[i],
              slot < 0 ? -1 : slot - static_cast<int32_t>(2 * Cg));
    EXPECT_EQ(local.weights[i], whole.weights[48 + i]);
  }
}

TEST(GateGroups, BackwardEqualsSumOfSeparateGates) {
  // L = sum R * weights + a * aux: the grouped aux is the mean over groups,
  // so each separate gate receives a / G as its aux gradient.
  for (int64_t k : {1, 2}) {
    GateConfig config = baseConfig(k, 3);
    config.capacityFactor = 0.6;
    config.noise = GateNoise::Jitter;
    config.jitterEps = 0.1f;
    Inputs in = skewedTokens(30, 5, 4, 3, 8 + static_cast<unsigned>(k));
    const GateRandomness randomness{{5, 6, 7}, 12};
    const int64_t S = 30, M = 5, E = 4, G = 3, Sg = 10;
    std::mt19937 rng(40);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> weightsGrad(S * k);
    for (float &v : weightsGrad)
      v = normal(rng);
    const float auxGrad = 0.9f;

    GateResult whole = forward(config, in.shape, randomness, in.x.data(),
                               in.gateWeight.data());
    std::vector<float> xGrad(S * M), wgGrad(M * E);
    ASSERT_TRUE(
        gateBackward(
            config, in.shape, randomness, in.x.data(), in.gateWeight.data(),
            {whole.gates.data(), whole.experts.data(), whole.slots.data()},
            weightsGrad.data(), auxGrad, xGrad.data(), wgGrad.data())
            .ok());

    GateConfig single = config;
    single.groups = 1;
    GateShape part = in.shape;
    part.numTokens = Sg;
    std::vector<double> wgSum(M * E, 0.0);
    double largest = 0.0;
    for (int64_t g = 0; g < G; ++g) {
      GateRandomness sliceRandomness = randomness;
      sliceRandomness.firstGlobalToken += g * Sg;
      const float *x = in.x.data() + g * Sg * M;
      GateResult slice =
          forward(single, part, sliceRandomness, x, in.gateWeight.data());
      std::vector<float> sliceXGrad(Sg * M), sliceWgGrad(M * E);
      ASSERT_TRUE(gateBackward(single, part, sliceRandomness, x,
                               in.gateWeight.data(),
                               {slice.gates.data(), slice.experts.data(),
                                slice.slots.data()},
                               weightsGrad.data() + g * Sg * k, auxGrad / G,
                               sliceXGrad.data(), sliceWgGrad.data())
                      .ok());
      for (int64_t i = 0; i < Sg * M; ++i) {
        EXPECT_NEAR(xGrad[g * Sg * M + i], sliceXGrad[i],
                    1e-6 * (1.0 + std::fabs(sliceXGrad[i])))
            << "k=" << k << " group " << g << " dx[" << i << "]";
        largest = std::max(largest, std::fabs(double(sliceXGrad[i])));
      }
      for (int64_t i = 0; i < M * E; ++i)
        wgSum[i] += sliceWgGrad[i];
    }
    for (int64_t i = 0; i < M * E; ++i)
      EXPECT_NEAR(wgGrad[i], wgSum[i], 1e-5 * (1.0 + std::fabs(wgSum[i])))
          << "k=" << k << " dWg[" << i << "]";
    EXPECT_GT(largest, 1e-2) << "vacuous: all-zero gradients";
  }
}

TEST(GateGroups, RejectsGroupsThatDoNotDivideTheTokens) {
  Inputs in = skewedTokens(30, 4, 4, 1, 9);
  for (int64_t groups : {4, 0, -1}) {
    GateConfig config = baseConfig(1, groups);
    GateResult result(in.shape, 1);
    Status status = gateForward(config, in.shape, {}, in.x.data(),
                                in.gateWeight.data(), result.outputs());
    EXPECT_EQ(status.code(), StatusCode::InvalidArgument) << groups;
    EXPECT_NE(status.message().find("found groups " + std::to_string(groups)),
              std::string::npos)
        << status.message();
    EXPECT_NE(status.message().find("S=30"), std::string::npos)
        << status.message();
  }
  GateConfig config = baseConfig(1, 4);
  EXPECT_EQ(gateConfiguredCapacity(config, in.shape).status().code(),
            StatusCode::InvalidArgument);
  config.groups = 5; // 6 tokens per group, ceil(6 / 4) = 2 slots each
  Expected<int64_t> capacity = gateConfiguredCapacity(config, in.shape);
  ASSERT_TRUE(capacity.ok());
  EXPECT_EQ(*capacity, 5 * 2);
}

} // namespace
} // namespace moert
