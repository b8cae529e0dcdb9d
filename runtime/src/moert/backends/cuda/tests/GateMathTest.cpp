//===- GateMathTest.cpp - The CUDA gate's thread code against the CPU gate -===//
//
// Runs GateMath.h on the CPU in the arrangement of the CUDA gate's kernels
// (one call per token, per (group, expert), per token again) and compares
// with the CPU gate (moert/kernels/Gate.h): routing (experts, slots, expert
// counts) must be identical, values equal to rounding. Logits come from a
// plain double-accumulated GEMM here, as they come from cuBLAS on the GPU:
// the random inputs keep the best two scores of every token far apart
// compared to the rounding differences between GEMMs.
//
//===----------------------------------------------------------------------===//
#include "moert/backends/cuda/GateMath.h"

#include "moert/kernels/Gate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace moert {
namespace cuda {
namespace {

namespace gm = gate_math;

std::vector<float> randomValues(size_t count, uint32_t seed, float scale) {
  std::mt19937 engine(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(count);
  for (float &v : values)
    v = normal(engine);
  return values;
}

struct Emulated {
  std::vector<int32_t> experts, slots, counts;
  std::vector<float> weights, gates;
  float aux = 0.0f;
  int64_t capacity = 0; // per group
};

/// The CUDA gate's forward pass, kernel by kernel, on the CPU.
Emulated emulateForward(const gm::GateParams &p, const GateConfig &config,
                        const GateShape &shape, const std::vector<float> &x,
                        const std::vector<float> &wg) {
  const int64_t S = shape.numTokens, M = shape.modelDim, E = shape.numExperts,
                k = config.topK, G = config.groups, Sg = p.groupTokens;
  const int64_t chunks = gm::gateChunks(p);
  std::vector<float> input(x.size());
  for (int64_t i = 0; i < S * M; ++i)
    input[i] = p.jitter ? gm::jittered(p, i, x[i]) : x[i];
  Emulated out;
  out.gates.assign(static_cast<size_t>(S * E), 0.0f);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t e = 0; e < E; ++e) {
      double sum = 0.0;
      for (int64_t m = 0; m < M; ++m)
        sum += static_cast<double>(input[s * M + m]) * wg[m * E + e];
      out.gates[s * E + e] = static_cast<float>(sum);
    }
  out.experts.assign(static_cast<size_t>(S * k), -1);
  for (int64_t s = 0; s < S; ++s) // kernel: one thread per token
    gm::routeToken(p, s, out.gates.data() + s * E, out.experts.data() + s * k);
  // kernels: per (group, expert, chunk) counts, per (group, expert) scans,
  // per (group, expert, chunk) first-choice lists.
  std::vector<gm::ChunkCounts> counts(static_cast<size_t>(G * E * chunks));
  std::vector<gm::ExpertGroupStats> stats(static_cast<size_t>(G * E));
  auto countAll = [&](const uint8_t *kept) {
    for (int64_t g = 0; g < G; ++g)
      for (int32_t e = 0; e < E; ++e)
        for (int64_t c = 0; c < chunks; ++c)
          counts[(g * E + e) * chunks + c] = gm::countChunk(
              p, g, e, c, out.experts.data(), out.gates.data(), kept);
    for (int64_t pair = 0; pair < G * E; ++pair)
      stats[pair] = gm::scanChunks(p, counts.data() + pair * chunks, chunks);
  };
  countAll(nullptr);
  std::vector<int32_t> firstTokens(static_cast<size_t>(G * E * Sg), -1);
  for (int64_t g = 0; g < G; ++g)
    for (int32_t e = 0; e < E; ++e)
      for (int64_t c = 0; c < chunks; ++c)
        gm::listFirstChoices(p, g, e, c, out.experts.data(),
                             counts[(g * E + e) * chunks + c],
                             firstTokens.data() + (g * E + e) * Sg);
  // kernel: one thread for the totals
  double auxSum = 0.0;
  int64_t largest = 0;
  out.counts.assign(static_cast<size_t>(E), 0);
  for (int64_t g = 0; g < G; ++g) {
    auxSum += gm::groupAuxLoss(p, stats.data() + g * E);
    for (int64_t e = 0; e < E; ++e) {
      out.counts[e] += stats[g * E + e].allCount;
      largest = std::max<int64_t>(largest, stats[g * E + e].allCount);
    }
  }
  out.aux = static_cast<float>(auxSum / static_cast<double>(G));
  out.capacity = config.dropTokens
                     ? *gateConfiguredCapacity(config, shape) / G
                     : std::min(largest, Sg);
  std::vector<uint8_t> kept(static_cast<size_t>(S), 0);
  std::vector<uint32_t> priority(static_cast<size_t>(S));
  if (config.useRts) {
    for (int64_t s = 0; s < S; ++s) // kernel: one thread per token
      priority[s] = gm::rtsPriority(p, s / Sg, s % Sg);
    for (int64_t s = 0; s < S; ++s) { // kernel: one thread per token
      const int64_t g = s / Sg, e = out.experts[s * k];
      kept[s] = gm::keptByRts(s % Sg,
                              firstTokens.data() + (g * E + e) * Sg,
                              stats[g * E + e].firstCount,
                              priority.data() + g * Sg, out.capacity);
    }
    countAll(kept.data()); // the kept first choices' prefixes
  }
  out.slots.assign(static_cast<size_t>(S * k), -2);
  for (int64_t g = 0; g < G; ++g) // kernel: per (group, expert, chunk)
    for (int32_t e = 0; e < E; ++e)
      for (int64_t c = 0; c < chunks; ++c)
        gm::assignChunkSlots(p, g, e, c, out.experts.data(),
                             config.useRts ? kept.data() : nullptr,
                             counts[(g * E + e) * chunks + c],
                             stats[g * E + e], out.capacity,
                             out.slots.data());
  out.weights.assign(static_cast<size_t>(S * k), -1.0f);
  for (int64_t s = 0; s < S; ++s) // kernel: one thread per token
    gm::combineWeights(p, out.gates.data() + s * E, out.experts.data() + s * k,
                       out.slots.data() + s * k, out.weights.data() + s * k);
  return out;
}

struct Config {
  GateNoise noise;
  int64_t topK, groups;
  bool rts, drop;
  double capacityFactor;
  int64_t chunkTokens; // the counting chunk (small: several per group)
};

std::string describe(const Config &c) {
  const char *noise = c.noise == GateNoise::None     ? "none"
                      : c.noise == GateNoise::Jitter ? "jitter"
                                                     : "rsample";
  return std::string(noise) + " top" + std::to_string(c.topK) + " groups " +
         std::to_string(c.groups) + (c.rts ? " rts" : " in-order") +
         (c.drop ? " dropping" : " dropless") + " factor " +
         std::to_string(c.capacityFactor) + " chunk " +
         std::to_string(c.chunkTokens);
}

class GateMathTest : public ::testing::TestWithParam<Config> {};

TEST_P(GateMathTest, RoutesAndDifferentiatesLikeTheCpuGate) {
  const Config c = GetParam();
  SCOPED_TRACE(describe(c));
  GateConfig config;
  config.topK = c.topK;
  config.groups = c.groups;
  config.useRts = c.rts;
  config.dropTokens = c.drop;
  config.noise = c.noise;
  config.capacityFactor = c.capacityFactor;
  config.minCapacity = 1;
  config.training = true;
  GateShape shape;
  shape.numTokens = 96;
  shape.modelDim = 12;
  shape.numExperts = 6;
  GateRandomness randomness;
  randomness.source = {1234, 7, 3};
  randomness.firstGlobalToken = 192; // a rank's shard of a larger batch
  const int64_t S = shape.numTokens, M = shape.modelDim, E = shape.numExperts,
                k = c.topK;
  const std::vector<float> x =
      randomValues(static_cast<size_t>(S * M), 41, 1.0f);
  // Large gate weights: logits of order 10, far apart next to GEMM rounding.
  const std::vector<float> wg =
      randomValues(static_cast<size_t>(M * E), 42, 3.0f);

  GateResult expected(shape, k);
  GateOutputs out = expected.outputs();
  ASSERT_TRUE(
      gateForward(config, shape, randomness, x.data(), wg.data(), out).ok());
  gm::GateParams p = gm::gateParams(config, shape, randomness);
  p.chunkTokens = c.chunkTokens;
  const Emulated actual = emulateForward(p, config, shape, x, wg);

  EXPECT_EQ(expected.experts, actual.experts);
  EXPECT_EQ(expected.slots, actual.slots);
  EXPECT_EQ(expected.expertCounts, actual.counts);
  EXPECT_EQ(expected.capacity, c.groups * actual.capacity);
  ASSERT_EQ(expected.weights.size(), actual.weights.size());
  for (size_t i = 0; i < expected.weights.size(); ++i)
    EXPECT_NEAR(expected.weights[i], actual.weights[i], 1e-5) << i;
  EXPECT_NEAR(expected.auxLoss, actual.aux, 1e-5 * (1 + expected.auxLoss));
  // The case must exercise dropping where the capacity is tight.
  if (c.drop && c.capacityFactor < 1.0)
    EXPECT_NE(std::count(actual.slots.begin(), actual.slots.end(), -1), 0);

  // Backward: the logits' gradient per token, then the two GEMMs.
  const std::vector<float> weightsGrad =
      randomValues(static_cast<size_t>(S * k), 43, 1.0f);
  const float auxGrad = 0.7f;
  std::vector<float> dx(static_cast<size_t>(S * M)), dwg(wg.size());
  GateSavedState saved;
  saved.gates = expected.gates.data();
  saved.experts = expected.experts.data();
  saved.slots = expected.slots.data();
  ASSERT_TRUE(gateBackward(config, shape, randomness, x.data(), wg.data(),
                           saved, weightsGrad.data(), auxGrad, dx.data(),
                           dwg.data())
                  .ok());
  const int64_t Sg = p.groupTokens;
  std::vector<int32_t> firstCounts(static_cast<size_t>(c.groups * E));
  const int64_t chunks = gm::gateChunks(p);
  for (int64_t g = 0; g < c.groups; ++g)
    for (int32_t e = 0; e < E; ++e) {
      std::vector<gm::ChunkCounts> counts(static_cast<size_t>(chunks));
      for (int64_t chunk = 0; chunk < chunks; ++chunk)
        counts[chunk] = gm::countChunk(p, g, e, chunk, actual.experts.data(),
                                       nullptr, nullptr);
      firstCounts[g * E + e] =
          gm::scanChunks(p, counts.data(), chunks).firstCount;
    }
  std::vector<float> logitsGrad(static_cast<size_t>(S * E));
  const double groupAuxGrad = static_cast<double>(auxGrad) / c.groups;
  for (int64_t s = 0; s < S; ++s)
    gm::logitsGradRow(p, groupAuxGrad, firstCounts.data() + (s / Sg) * E,
                      actual.gates.data() + s * E,
                      actual.experts.data() + s * k,
                      actual.slots.data() + s * k, weightsGrad.data() + s * k,
                      logitsGrad.data() + s * E);
  std::vector<float> input(x.size());
  for (int64_t i = 0; i < S * M; ++i)
    input[i] = p.jitter ? gm::jittered(p, i, x[i]) : x[i];
  for (int64_t m = 0; m < M; ++m)
    for (int64_t e = 0; e < E; ++e) {
      double sum = 0.0;
      for (int64_t s = 0; s < S; ++s)
        sum += static_cast<double>(input[s * M + m]) * logitsGrad[s * E + e];
      EXPECT_NEAR(dwg[m * E + e], sum, 1e-4 * (1 + std::fabs(sum)))
          << "dWg " << m << "," << e;
    }
  for (int64_t s = 0; s < S; ++s)
    for (int64_t m = 0; m < M; ++m) {
      double sum = 0.0;
      for (int64_t e = 0; e < E; ++e)
        sum += static_cast<double>(logitsGrad[s * E + e]) * wg[m * E + e];
      float value = static_cast<float>(sum);
      if (p.jitter)
        value = gm::jittered(p, s * M + m, value);
      EXPECT_NEAR(dx[s * M + m], value, 1e-4 * (1 + std::fabs(value)))
          << "dx " << s << "," << m;
    }
}

INSTANTIATE_TEST_SUITE_P(
    Configs, GateMathTest,
    ::testing::Values(Config{GateNoise::None, 1, 1, true, true, 1.0, 256},
                      Config{GateNoise::None, 1, 1, true, true, 0.5, 7},
                      Config{GateNoise::None, 1, 1, false, true, 0.5, 10},
                      Config{GateNoise::RSample, 1, 2, true, true, 0.75, 5},
                      Config{GateNoise::Jitter, 2, 1, true, true, 0.6, 13},
                      Config{GateNoise::None, 2, 2, true, true, 0.5, 256},
                      Config{GateNoise::None, 2, 2, true, true, 0.5, 3},
                      Config{GateNoise::None, 2, 3, false, true, 0.8, 4},
                      Config{GateNoise::None, 2, 1, true, false, 1.0, 9},
                      Config{GateNoise::RSample, 3, 2, true, false, 1.0, 8}));

} // namespace
} // namespace cuda
} // namespace moert
