//===- GateTest.cpp - Forward semantics of the MoE gate -----------------===//
//
// Most cases steer the routing exactly: with M = E and Wg = I the logits
// are the input rows, so a token whose row is 4 * onehot(a) + 2 * onehot(b)
// picks expert a first and b second.
//
//===----------------------------------------------------------------------===//
#include "moert/kernels/Gate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace moert {
namespace {

struct Routed {
  GateShape shape;
  std::vector<float> x, gateWeight;
};

/// Tokens whose choices are firsts[s] (then seconds[s], if given).
Routed steeredTokens(int64_t numExperts, const std::vector<int> &firsts,
                     const std::vector<int> &seconds = {}) {
  Routed routed;
  const int64_t S = static_cast<int64_t>(firsts.size());
  routed.shape = {S, numExperts, numExperts};
  routed.x.assign(static_cast<size_t>(S * numExperts), 0.0f);
  for (int64_t s = 0; s < S; ++s) {
    routed.x[s * numExperts + firsts[s]] = 4.0f;
    if (!seconds.empty())
      routed.x[s * numExperts + seconds[s]] = 2.0f;
  }
  routed.gateWeight.assign(static_cast<size_t>(numExperts * numExperts), 0.0f);
  for (int64_t e = 0; e < numExperts; ++e)
    routed.gateWeight[e * numExperts + e] = 1.0f;
  return routed;
}

Routed randomTokens(int64_t S, int64_t M, int64_t E, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Routed routed;
  routed.shape = {S, M, E};
  routed.x.resize(static_cast<size_t>(S * M));
  routed.gateWeight.resize(static_cast<size_t>(M * E));
  for (float &v : routed.x)
    v = normal(rng);
  for (float &v : routed.gateWeight)
    v = normal(rng);
  return routed;
}

GateConfig noRandomness(int64_t topK) {
  GateConfig config;
  config.topK = topK;
  config.minCapacity = 0;
  config.useRts = false;
  config.laterChoiceNoise = false;
  return config;
}

GateResult runGate(const GateConfig &config, const Routed &routed,
                   GateRandomness randomness = {},
                   const CapacityReducer &reducer = {}) {
  GateResult result(routed.shape, config.topK);
  Status status =
      gateForward(config, routed.shape, randomness, routed.x.data(),
                  routed.gateWeight.data(), result.outputs(), reducer);
  EXPECT_TRUE(status.ok()) << status.toString();
  return result;
}

TEST(Gate, Top1OverflowDropsExactlyTheExcess) {
  // 8 tokens, 4 experts, factor 1 -> C = 2; expert 0 gets 5, others 1 each.
  Routed routed = steeredTokens(4, {0, 1, 0, 0, 2, 0, 3, 0});
  for (bool rts : {false, true}) {
    GateConfig config = noRandomness(1);
    config.useRts = rts;
    GateResult result = runGate(config, routed, {{123, 0, 0}, 0});
    EXPECT_EQ(result.capacity, 2);
    EXPECT_EQ(result.expertCounts, (std::vector<int32_t>{5, 1, 1, 1}));
    int dropped = 0;
    std::vector<int> keptPerExpert(4, 0);
    for (int s = 0; s < 8; ++s) {
      if (result.slots[s] < 0) {
        ++dropped;
        EXPECT_EQ(result.weights[s], 0.0f);
      } else {
        ++keptPerExpert[result.experts[s]];
      }
    }
    EXPECT_EQ(dropped, 3) << "rts=" << rts;
    EXPECT_EQ(keptPerExpert, (std::vector<int>{2, 1, 1, 1}));
  }
}

TEST(Gate, WithoutRtsKeepsFirstCInTokenOrder) {
  Routed routed = steeredTokens(4, {1, 0, 2, 0, 0, 3, 0, 0});
  GateResult result = runGate(noRandomness(1), routed);
  // Expert 0's tokens are 1, 3, 4, 6, 7; C = 2 keeps 1 and 3.
  EXPECT_EQ(result.slots, (std::vector<int32_t>{0, 0, 0, 1, -1, 0, -1, -1}));
}

TEST(Gate, Top1WeightIsRawProbability) {
  Routed routed = randomTokens(16, 8, 4, 5);
  GateConfig config = noRandomness(1);
  config.capacityFactor = 4.0; // no drops
  GateResult result = runGate(config, routed);
  for (int s = 0; s < 16; ++s) {
    ASSERT_GE(result.slots[s], 0);
    const float *row = result.gates.data() + s * 4;
    EXPECT_EQ(result.experts[s], std::max_element(row, row + 4) - row);
    EXPECT_EQ(result.weights[s], row[result.experts[s]]);
    float sum = row[0] + row[1] + row[2] + row[3];
    EXPECT_NEAR(sum, 1.0f, 1e-6f);
  }
}

// RTS keeps a uniformly random subset of an overloaded expert's tokens.
// 8 tokens all pick expert 0 (with 4 experts, factor 1 -> C = 2), so each
// should survive with probability 2/8 over seeds. With 4000 seeds the
// frequency's standard deviation is sqrt(0.25 * 0.75 / 4000) = 0.0068; the
// bound 0.035 is ~5 sd (the seeds are fixed, so this is deterministic). A
// first-C policy would give 1, 1, 0, ..., far outside.
TEST(Gate, RtsKeepsUniformlyRandomSubset) {
  Routed routed = steeredTokens(4, {0, 0, 0, 0, 0, 0, 0, 0});
  GateConfig config = noRandomness(1);
  config.useRts = true;
  const int kSeeds = 4000;
  std::vector<int> keptCount(8, 0);
  std::vector<int> pairCount(64, 0);
  for (int seed = 0; seed < kSeeds; ++seed) {
    GateResult result = runGate(config, routed, {{uint64_t(seed), 9, 1}, 0});
    std::vector<int> kept;
    for (int s = 0; s < 8; ++s)
      if (result.slots[s] >= 0)
        kept.push_back(s);
    ASSERT_EQ(kept.size(), 2u);
    // Slots follow token order among the kept tokens.
    EXPECT_EQ(result.slots[kept[0]], 0);
    EXPECT_EQ(result.slots[kept[1]], 1);
    for (int s : kept)
      ++keptCount[s];
    ++pairCount[kept[0] * 8 + kept[1]];
  }
  for (int s = 0; s < 8; ++s)
    EXPECT_NEAR(keptCount[s] / double(kSeeds), 0.25, 0.035) << "token " << s;
  // Every one of the 28 pairs is about equally likely (1/28 = 0.0357, sd
  // 0.0029; bound ~5 sd): the subset is uniform, not just the marginals.
  for (int a = 0; a < 8; ++a)
    for (int b = a + 1; b < 8; ++b)
      EXPECT_NEAR(pairCount[a * 8 + b] / double(kSeeds), 1.0 / 28.0, 0.015)
          << "pair " << a << "," << b;
}

TEST(Gate, RtsDependsOnGlobalTokenId) {
  // The same tokens at another global offset draw other priorities; at the
  // same offset the same ones (determinism).
  Routed routed = steeredTokens(4, std::vector<int>(16, 0));
  GateConfig config = noRandomness(1);
  config.useRts = true;
  GateResult a = runGate(config, routed, {{5, 0, 0}, 0});
  GateResult b = runGate(config, routed, {{5, 0, 0}, 0});
  GateResult c = runGate(config, routed, {{5, 0, 0}, 1000});
  EXPECT_EQ(a.slots, b.slots);
  EXPECT_NE(a.slots, c.slots);
}

TEST(Gate, SlotsFollowTokenOrderPerExpert) {
  Routed routed = randomTokens(64, 16, 8, 11);
  GateConfig config;
  config.topK = 1;
  config.capacityFactor = 0.75; // forces drops
  config.minCapacity = 0;
  GateResult result = runGate(config, routed, {{3, 1, 2}, 0});
  std::vector<int> next(8, 0);
  for (int s = 0; s < 64; ++s) {
    if (result.slots[s] < 0)
      continue;
    EXPECT_EQ(result.slots[s], next[result.experts[s]]++) << "token " << s;
  }
  for (int e = 0; e < 8; ++e)
    EXPECT_EQ(next[e], std::min<int>(result.expertCounts[e], result.capacity));
}

TEST(Gate, Top2SecondChoiceQueuesBehindAllFirstChoices) {
  // Expert 0: first choices of tokens 0, 1, 3; second choice of token 2.
  Routed routed = steeredTokens(4, {0, 0, 1, 0, 2, 3}, {1, 2, 0, 3, 1, 1});
  GateConfig config = noRandomness(2);
  config.capacityFactor = 8.0; // C = 6: nothing dropped
  GateResult result = runGate(config, routed);
  EXPECT_EQ(result.capacity, 6);
  // Token 2's second choice (expert 0) comes after token 3's first choice.
  EXPECT_EQ(result.slots[2 * 2 + 1], 3);
  EXPECT_EQ(result.slots[3 * 2 + 0], 2);
  // Expert 1: token 2's first (slot 0), then seconds of tokens 0, 4, 5.
  EXPECT_EQ(result.slots[2 * 2 + 0], 0);
  EXPECT_EQ(result.slots[0 * 2 + 1], 1);
  EXPECT_EQ(result.slots[4 * 2 + 1], 2);
  EXPECT_EQ(result.slots[5 * 2 + 1], 3);
  // Counts include both choices.
  EXPECT_EQ(result.expertCounts, (std::vector<int32_t>{4, 4, 2, 2}));
}

TEST(Gate, Top2DroppingIsPositionalAndRenormalises) {
  Routed routed = steeredTokens(4, {0, 0, 1, 0, 2, 3}, {1, 2, 0, 3, 1, 1});
  GateConfig config = noRandomness(2);
  config.capacityFactor = 1.0; // C = ceil(6 / 4 * 2) = 3
  GateResult result = runGate(config, routed);
  ASSERT_EQ(result.capacity, 3);
  // Expert 0 has 3 first choices: token 2's second choice (slot 3) drops.
  EXPECT_EQ(result.slots[2 * 2 + 1], -1);
  EXPECT_EQ(result.weights[2 * 2 + 1], 0.0f);
  // Its first choice is the only one kept: renormalised to 1.
  EXPECT_FLOAT_EQ(result.weights[2 * 2 + 0], 1.0f);
  // Expert 1 seconds: tokens 0 (slot 1), 4 (slot 2), 5 (slot 3 -> drop).
  EXPECT_EQ(result.slots[5 * 2 + 1], -1);
  // Token 0 keeps both: w_i = g_i / (g_1 + g_2).
  const float g1 = result.gates[0 * 4 + 0], g2 = result.gates[0 * 4 + 1];
  EXPECT_FLOAT_EQ(result.weights[0], g1 / (g1 + g2));
  EXPECT_FLOAT_EQ(result.weights[1], g2 / (g1 + g2));
  EXPECT_NEAR(result.weights[0] + result.weights[1], 1.0f, 1e-6f);
}

TEST(Gate, Top2RtsAppliesToFirstChoicesOnly) {
  // Every token's first choice is expert 0 (C = ceil(8 / 4 * 1.0 * 2) = 4),
  // seconds alternate between experts 1 and 2. Across seeds, expert 0 keeps
  // a different random 4 of its 8 first choices; the second choices are
  // positional, so they are the same whatever the seed.
  Routed routed =
      steeredTokens(4, std::vector<int>(8, 0), {1, 2, 1, 2, 1, 2, 1, 2});
  GateConfig config = noRandomness(2);
  config.capacityFactor = 1.0;
  config.useRts = true;
  std::vector<std::vector<int32_t>> firstSlotPatterns;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    GateResult result = runGate(config, routed, {{seed, 0, 0}, 0});
    ASSERT_EQ(result.capacity, 4);
    std::vector<int32_t> firstSlots, secondSlots;
    int keptFirst = 0;
    for (int s = 0; s < 8; ++s) {
      firstSlots.push_back(result.slots[s * 2]);
      secondSlots.push_back(result.slots[s * 2 + 1]);
      keptFirst += result.slots[s * 2] >= 0;
    }
    EXPECT_EQ(keptFirst, 4);
    EXPECT_EQ(secondSlots, (std::vector<int32_t>{0, 0, 1, 1, 2, 2, 3, 3}));
    if (std::find(firstSlotPatterns.begin(), firstSlotPatterns.end(),
                  firstSlots) == firstSlotPatterns.end())
      firstSlotPatterns.push_back(firstSlots);
  }
  // 70 possible subsets; 20 seeds hitting only a few would not be random.
  EXPECT_GE(firstSlotPatterns.size(), 10u);
}

TEST(Gate, Top3ChoiceQueuesBehindAllEarlierChoices) {
  // Expert 2 gets: first of token 3, second of token 1, third of token 0.
  Routed routed = steeredTokens(4, {0, 0, 1, 2}, {1, 2, 0, 0});
  routed.x[0 * 4 + 2] = 1.0f; // token 0's third choice: expert 2
  routed.x[1 * 4 + 3] = 1.0f; // token 1's third: expert 3
  routed.x[2 * 4 + 3] = 1.0f;
  routed.x[3 * 4 + 3] = 1.0f;
  GateConfig config = noRandomness(3);
  config.capacityFactor = 4.0;
  GateResult result = runGate(config, routed);
  EXPECT_EQ(result.experts,
            (std::vector<int32_t>{0, 1, 2, 0, 2, 3, 1, 0, 3, 2, 0, 3}));
  EXPECT_EQ(result.slots[3 * 3 + 0], 0); // first choice
  EXPECT_EQ(result.slots[1 * 3 + 1], 1); // second choice behind it
  EXPECT_EQ(result.slots[0 * 3 + 2], 2); // third choice behind both
  float sum = 0.0f;
  for (int j = 0; j < 3; ++j)
    sum += result.weights[j];
  EXPECT_NEAR(sum, 1.0f, 1e-6f);
}

TEST(Gate, DroplessCapacityIsMaxCount) {
  Routed routed = steeredTokens(4, {0, 1, 0, 0, 2, 0, 3, 0});
  GateConfig config = noRandomness(1);
  config.dropTokens = false;
  int calls = 0;
  GateResult result = runGate(config, routed, {}, [&](int64_t local) {
    ++calls;
    EXPECT_EQ(local, 5);
    return Expected<int64_t>(local);
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result.capacity, 5);
  for (int s = 0; s < 8; ++s)
    EXPECT_GE(result.slots[s], 0);
}

TEST(Gate, DroplessUsesGroupMaximumCappedAtTokens) {
  Routed routed = steeredTokens(4, {0, 1, 0, 0, 2, 0, 3, 0});
  GateConfig config = noRandomness(1);
  config.dropTokens = false;
  // Another rank of the group needs 7 slots: everyone uses 7.
  GateResult raised = runGate(config, routed, {}, [](int64_t local) {
    return Expected<int64_t>(std::max<int64_t>(local, 7));
  });
  EXPECT_EQ(raised.capacity, 7);
  // More than S slots are never useful.
  GateResult capped = runGate(config, routed, {},
                              [](int64_t) { return Expected<int64_t>(1000); });
  EXPECT_EQ(capped.capacity, 8);
  for (int32_t slot : capped.slots)
    EXPECT_GE(slot, 0);
}

TEST(Gate, DroplessTop2CountsBothChoices) {
  Routed routed =
      steeredTokens(4, {0, 1, 0, 0, 2, 0, 3, 0}, {1, 0, 1, 1, 0, 1, 0, 1});
  GateConfig config = noRandomness(2);
  config.dropTokens = false;
  GateResult result = runGate(config, routed);
  // Expert 0: 5 first + 3 second choices; expert 1: 1 + 5.
  EXPECT_EQ(result.expertCounts, (std::vector<int32_t>{8, 6, 1, 1}));
  EXPECT_EQ(result.capacity, 8);
  for (int32_t slot : result.slots)
    EXPECT_GE(slot, 0);
}

TEST(Gate, DroplessRejectsReducerBelowLocalNeed) {
  Routed routed = steeredTokens(4, {0, 1, 0, 0, 2, 0, 3, 0});
  GateConfig config = noRandomness(1);
  config.dropTokens = false;
  GateResult result(routed.shape, 1);
  Status status = gateForward(config, routed.shape, {}, routed.x.data(),
                              routed.gateWeight.data(), result.outputs(),
                              [](int64_t) { return Expected<int64_t>(2); });
  EXPECT_EQ(status.code(), StatusCode::InvalidArgument);
  EXPECT_NE(status.message().find("largest local expert count 5"),
            std::string::npos)
      << status.message();
  Status failing = gateForward(
      config, routed.shape, {}, routed.x.data(), routed.gateWeight.data(),
      result.outputs(), [](int64_t) -> Expected<int64_t> {
        return Status(StatusCode::Unavailable, "peer lost");
      });
  EXPECT_EQ(failing.code(), StatusCode::Unavailable);
}

TEST(Gate, EvalUsesEvalCapacityFactor) {
  Routed routed = randomTokens(64, 8, 8, 2);
  GateConfig config = noRandomness(1);
  config.capacityFactor = 1.0;
  config.evalCapacityFactor = 2.0;
  EXPECT_EQ(runGate(config, routed).capacity, 8);
  config.training = false;
  EXPECT_EQ(runGate(config, routed).capacity, 16);
  config.topK = 2;
  EXPECT_EQ(runGate(config, routed).capacity, 32);
  config.minCapacity = 40;
  EXPECT_EQ(runGate(config, routed).capacity, 40);
}

TEST(Gate, AuxLossMatchesDirectComputation) {
  Routed routed = randomTokens(40, 12, 6, 8);
  for (int64_t k : {1, 2}) {
    GateConfig config = noRandomness(k);
    GateResult result = runGate(config, routed);
    std::vector<double> meanGate(6, 0.0), firstFraction(6, 0.0);
    for (int s = 0; s < 40; ++s) {
      // Recompute logits and softmax in double, independently.
      std::vector<double> logits(6, 0.0);
      for (int e = 0; e < 6; ++e)
        for (int m = 0; m < 12; ++m)
          logits[e] +=
              double(routed.x[s * 12 + m]) * routed.gateWeight[m * 6 + e];
      const double top = *std::max_element(logits.begin(), logits.end());
      double sum = 0.0;
      for (double &l : logits)
        sum += (l = std::exp(l - top));
      for (int e = 0; e < 6; ++e)
        meanGate[e] += logits[e] / sum / 40.0;
      firstFraction[std::max_element(logits.begin(), logits.end()) -
                    logits.begin()] += 1.0 / 40.0;
    }
    double aux = 0.0;
    for (int e = 0; e < 6; ++e)
      aux += meanGate[e] * firstFraction[e];
    aux *= 6;
    EXPECT_NEAR(result.auxLoss, aux, 1e-6) << "k=" << k;
    // Uniform routing gives exactly 1; this one is imbalanced: above.
    EXPECT_GT(result.auxLoss, 1.0f);
  }
}

TEST(Gate, NoiseOnlyInTraining) {
  Routed routed = randomTokens(256, 16, 8, 21);
  const GateRandomness randomness{{99, 2, 7}, 0};
  GateConfig quiet = noRandomness(2);
  quiet.capacityFactor = 8.0; // no drops: compare routing only
  quiet.training = false;
  GateResult reference = runGate(quiet, routed, randomness);
  for (GateNoise noise :
       {GateNoise::None, GateNoise::Jitter, GateNoise::RSample}) {
    GateConfig noisy = quiet;
    noisy.noise = noise;
    noisy.laterChoiceNoise = true;
    // Evaluation: every noise is off.
    GateResult eval = runGate(noisy, routed, randomness);
    EXPECT_EQ(eval.experts, reference.experts);
    EXPECT_EQ(eval.gates, reference.gates);
    // Training: the noise changes some choices.
    noisy.training = true;
    GateResult train = runGate(noisy, routed, randomness);
    EXPECT_NE(train.experts, reference.experts);
    int firstChanged = 0;
    for (int s = 0; s < 256; ++s)
      firstChanged += train.experts[s * 2] != reference.experts[s * 2];
    if (noise == GateNoise::None) {
      // Only the later-choice Gumbel noise: first choices and gates keep.
      EXPECT_EQ(firstChanged, 0);
      EXPECT_EQ(train.gates, reference.gates);
    } else if (noise == GateNoise::RSample) {
      // rsample perturbs the argmax only, never the gates.
      EXPECT_GT(firstChanged, 0);
      EXPECT_EQ(train.gates, reference.gates);
    } else {
      // Jitter scales x by at most 1 +- 1e-2: the gates move, a little.
      EXPECT_NE(train.gates, reference.gates);
      for (size_t i = 0; i < train.gates.size(); ++i)
        EXPECT_NEAR(train.gates[i], reference.gates[i], 0.05f);
    }
  }
}

TEST(Gate, NoiseIsIndependentOfPartitioning) {
  // Two processes with 32 tokens each route exactly as one with all 64.
  Routed whole = randomTokens(64, 8, 4, 3);
  GateConfig config;
  config.topK = 2;
  config.noise = GateNoise::Jitter;
  config.capacityFactor = 8.0;
  GateResult reference = runGate(config, whole, {{7, 1, 1}, 0});
  config.noise = GateNoise::RSample;
  GateResult referenceRSample = runGate(config, whole, {{7, 1, 1}, 0});
  for (int half = 0; half < 2; ++half) {
    Routed part = whole;
    part.shape.numTokens = 32;
    part.x.assign(whole.x.begin() + half * 32 * 8,
                  whole.x.begin() + (half + 1) * 32 * 8);
    for (GateNoise noise : {GateNoise::Jitter, GateNoise::RSample}) {
      config.noise = noise;
      const GateResult &full =
          noise == GateNoise::Jitter ? reference : referenceRSample;
      GateResult local = runGate(config, part, {{7, 1, 1}, half * 32});
      for (int i = 0; i < 32 * 2; ++i)
        EXPECT_EQ(local.experts[i], full.experts[half * 64 + i]);
      // BLAS may round a 32-row product differently from a 64-row one.
      for (int i = 0; i < 32 * 4; ++i)
        EXPECT_NEAR(local.gates[i], full.gates[half * 128 + i], 1e-6f);
    }
  }
}

TEST(Gate, RejectsInvalidArguments) {
  Routed routed = randomTokens(8, 4, 4, 1);
  GateResult result(routed.shape, 5);
  GateConfig config = noRandomness(5);
  Status status = gateForward(config, routed.shape, {}, routed.x.data(),
                              routed.gateWeight.data(), result.outputs());
  EXPECT_EQ(status.code(), StatusCode::InvalidArgument);
  EXPECT_NE(status.message().find("topK 5"), std::string::npos)
      << status.message();

  config = noRandomness(1);
  config.capacityFactor = 0.0;
  EXPECT_EQ(gateForward(config, routed.shape, {}, routed.x.data(),
                        routed.gateWeight.data(), result.outputs())
                .code(),
            StatusCode::InvalidArgument);

  config = noRandomness(1);
  GateShape empty = routed.shape;
  empty.numTokens = 0;
  EXPECT_EQ(gateForward(config, empty, {}, routed.x.data(),
                        routed.gateWeight.data(), result.outputs())
                .code(),
            StatusCode::InvalidArgument);
  EXPECT_EQ(gateForward(config, routed.shape, {{0, 0, 0}, -1}, routed.x.data(),
                        routed.gateWeight.data(), result.outputs())
                .code(),
            StatusCode::InvalidArgument);
}

} // namespace
} // namespace moert
