//===- GateBackwardTest.cpp - Gate gradients vs finite differences ------===//
//
// L(x, Wg) = sum_{s,j} R[s,j] * weights[s,j] + a * auxLoss with fixed random
// R and a, so that dL/dweights = R and dL/daux = a are what gateBackward
// receives. Each element of x and Wg is perturbed by +-h and the central
// difference compared with the analytic gradient. The routing (experts and
// slots) is a step function of the inputs; the check asserts that no
// perturbation changes it, so the difference quotient measures the smooth
// part only, which is what the backward pass differentiates.
//
// Tolerance: the forward runs in fp32, so L carries a rounding error of a
// few 1e-7 (its terms are O(1)); divided by 2h = 4e-3 that is ~1e-4 in the
// quotient. Truncation error h^2/6 * L''' is ~1e-6. We accept
// |analytic - numeric| <= 1e-3 + 1e-2 |numeric|, ten times the expected
// error; a missing term (e.g. the renormalisation or aux contribution) is
// off by O(0.1).
//
//===----------------------------------------------------------------------===//
#include "moert/kernels/Gate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace moert {
namespace {

constexpr float kStep = 2e-3f;
constexpr double kAbsTolerance = 1e-3;
constexpr double kRelTolerance = 1e-2;

struct GradCase {
  GateConfig config;
  GateShape shape;
  GateRandomness randomness{{1234, 5, 6}, 100};
  unsigned dataSeed = 1;
};

void checkGateGradients(const GradCase &gradCase) {
  const GateConfig &config = gradCase.config;
  const GateShape &shape = gradCase.shape;
  const int64_t S = shape.numTokens, M = shape.modelDim, E = shape.numExperts;
  const int64_t k = config.topK;
  std::mt19937 rng(gradCase.dataSeed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(S * M), gateWeight(M * E), weightsGrad(S * k);
  for (float &v : x)
    v = normal(rng);
  for (float &v : gateWeight)
    v = normal(rng);
  for (float &v : weightsGrad)
    v = normal(rng);
  const float auxGrad = 0.7f;

  GateResult base(shape, k);
  ASSERT_TRUE(gateForward(config, shape, gradCase.randomness, x.data(),
                          gateWeight.data(), base.outputs())
                  .ok());
  auto loss = [&]() {
    GateResult result(shape, k);
    Status status = gateForward(config, shape, gradCase.randomness, x.data(),
                                gateWeight.data(), result.outputs());
    EXPECT_TRUE(status.ok());
    // The quotient is only meaningful if the routing stayed put.
    EXPECT_EQ(result.experts, base.experts) << "perturbation changed routing";
    EXPECT_EQ(result.slots, base.slots) << "perturbation changed slots";
    double value = auxGrad * static_cast<double>(result.auxLoss);
    for (int64_t i = 0; i < S * k; ++i)
      value += static_cast<double>(weightsGrad[i]) * result.weights[i];
    return value;
  };

  std::vector<float> xGrad(S * M), gateWeightGrad(M * E);
  GateSavedState saved{base.gates.data(), base.experts.data(),
                       base.slots.data()};
  Status status = gateBackward(config, shape, gradCase.randomness, x.data(),
                               gateWeight.data(), saved, weightsGrad.data(),
                               auxGrad, xGrad.data(), gateWeightGrad.data());
  ASSERT_TRUE(status.ok()) << status.toString();

  auto compare = [&](const char *name, std::vector<float> &parameter,
                     const std::vector<float> &analytic) {
    double largest = 0.0;
    for (size_t i = 0; i < parameter.size(); ++i) {
      const float original = parameter[i];
      const float plus = original + kStep, minus = original - kStep;
      parameter[i] = plus;
      const double lossPlus = loss();
      parameter[i] = minus;
      const double lossMinus = loss();
      parameter[i] = original;
      const double numeric =
          (lossPlus - lossMinus) / (static_cast<double>(plus) - minus);
      largest = std::max(largest, std::fabs(numeric));
      EXPECT_NEAR(analytic[i], numeric,
                  kAbsTolerance + kRelTolerance * std::fabs(numeric))
          << name << "[" << i << "]";
    }
    // Guard against a vacuous check (all-zero gradients).
    EXPECT_GT(largest, 1e-2) << name;
  };
  compare("dx", x, xGrad);
  compare("dWg", gateWeight, gateWeightGrad);
}

GradCase makeCase(int64_t topK, double capacityFactor, GateNoise noise,
                  unsigned dataSeed) {
  GradCase gradCase;
  gradCase.config.topK = topK;
  gradCase.config.capacityFactor = capacityFactor;
  gradCase.config.minCapacity = 0;
  gradCase.config.noise = noise;
  gradCase.shape = {12, 5, 4};
  gradCase.dataSeed = dataSeed;
  return gradCase;
}

TEST(GateBackward, Top1WithRtsDropsMatchesFiniteDifferences) {
  GradCase gradCase = makeCase(1, 0.7, GateNoise::None, 3);
  checkGateGradients(gradCase);
}

TEST(GateBackward, Top1JitterMatchesFiniteDifferences) {
  GradCase gradCase = makeCase(1, 2.0, GateNoise::Jitter, 4);
  gradCase.config.jitterEps = 0.1f; // large, so a wrong dx scaling shows
  checkGateGradients(gradCase);
}

TEST(GateBackward, Top2WithDropsMatchesFiniteDifferences) {
  // C = ceil(12 / 4 * 0.5 * 2) = 3: some tokens keep one choice, some none.
  GradCase gradCase = makeCase(2, 0.5, GateNoise::RSample, 5);
  checkGateGradients(gradCase);
}

TEST(GateBackward, Top2NoDropsJitterMatchesFiniteDifferences) {
  GradCase gradCase = makeCase(2, 4.0, GateNoise::Jitter, 6);
  checkGateGradients(gradCase);
}

TEST(GateBackward, Top3MatchesFiniteDifferences) {
  GradCase gradCase = makeCase(3, 0.8, GateNoise::None, 7);
  checkGateGradients(gradCase);
}

TEST(GateBackward, GroupedTop1RtsMatchesFiniteDifferences) {
  // 3 groups of 4 tokens, each with ceil(4 / 4 * 0.7) = 1 slot per expert:
  // per-group RTS drops, per-group aux losses averaged.
  GradCase gradCase = makeCase(1, 0.7, GateNoise::Jitter, 10);
  gradCase.config.groups = 3;
  gradCase.config.jitterEps = 0.1f;
  checkGateGradients(gradCase);
}

TEST(GateBackward, GroupedTop2WithDropsMatchesFiniteDifferences) {
  // 2 groups of 6 tokens: C = ceil(6 / 4 * 0.5 * 2) = 2 per group.
  GradCase gradCase = makeCase(2, 0.5, GateNoise::RSample, 11);
  gradCase.config.groups = 2;
  checkGateGradients(gradCase);
}

TEST(GateBackward, AuxLossOnlyGradient) {
  // With dL/dweights = 0 the gradient is the aux loss's alone: for each
  // token, dlogits = a * E / S^2 * g * (f - <g, f>) with f the first-choice
  // counts; checked against that closed form.
  GradCase gradCase = makeCase(1, 4.0, GateNoise::None, 8);
  const GateShape shape = gradCase.shape;
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(12 * 5), wg(5 * 4);
  for (float &v : x)
    v = normal(rng);
  for (float &v : wg)
    v = normal(rng);
  GateResult result(shape, 1);
  ASSERT_TRUE(gateForward(gradCase.config, shape, gradCase.randomness, x.data(),
                          wg.data(), result.outputs())
                  .ok());
  std::vector<float> zeros(12, 0.0f), wgGrad(5 * 4);
  ASSERT_TRUE(gateBackward(gradCase.config, shape, gradCase.randomness,
                           x.data(), wg.data(),
                           {result.gates.data(), result.experts.data(),
                            result.slots.data()},
                           zeros.data(), 2.0f, nullptr, wgGrad.data())
                  .ok());
  std::vector<double> counts(4, 0.0);
  for (int s = 0; s < 12; ++s)
    counts[result.experts[s]] += 1.0;
  std::vector<double> expected(5 * 4, 0.0);
  for (int s = 0; s < 12; ++s) {
    const float *g = result.gates.data() + s * 4;
    double dot = 0.0;
    for (int e = 0; e < 4; ++e)
      dot += g[e] * counts[e];
    for (int e = 0; e < 4; ++e) {
      const double logitGrad =
          2.0 * 4 / (12.0 * 12.0) * g[e] * (counts[e] - dot);
      for (int m = 0; m < 5; ++m)
        expected[m * 4 + e] += x[s * 5 + m] * logitGrad;
    }
  }
  for (int i = 0; i < 20; ++i)
    EXPECT_NEAR(wgGrad[i], expected[i], 1e-6) << i;
}

TEST(GateBackward, RejectsCorruptRouting) {
  GradCase gradCase = makeCase(1, 1.0, GateNoise::None, 9);
  std::vector<float> x(12 * 5, 0.1f), wg(5 * 4, 0.1f), gates(12 * 4, 0.25f);
  std::vector<int32_t> experts(12, 0), slots(12, 0);
  experts[7] = 4; // E = 4
  std::vector<float> weightsGrad(12, 1.0f), xGrad(12 * 5);
  Status status = gateBackward(gradCase.config, gradCase.shape,
                               gradCase.randomness, x.data(), wg.data(),
                               {gates.data(), experts.data(), slots.data()},
                               weightsGrad.data(), 0.0f, xGrad.data(), nullptr);
  EXPECT_EQ(status.code(), StatusCode::OutOfRange);
  EXPECT_NE(status.message().find("token 7"), std::string::npos)
      << status.message();
}

} // namespace
} // namespace moert
