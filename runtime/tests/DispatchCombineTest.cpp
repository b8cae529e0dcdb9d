//===- DispatchCombineTest.cpp - Token dispatch/combine and gradients ---===//
//
// The backward kernels are checked against central differences of the
// forward kernels: both are linear (dispatch in x; combine in the buffer and
// in the weights separately), so the quotient is exact up to fp32 rounding
// of L = sum(R * output) (~1e-6 for these sizes) and the tolerance 1e-3 is
// generous while any wrong index or missing factor is off by O(1).
//
//===----------------------------------------------------------------------===//
#include "moert/kernels/DispatchCombine.h"
#include "moert/kernels/Gate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace moert {
namespace {

std::vector<float> randomVector(size_t count, std::mt19937 &rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(count);
  for (float &v : values)
    v = normal(rng);
  return values;
}

double project(const std::vector<float> &values,
               const std::vector<float> &weights) {
  double sum = 0.0;
  for (size_t i = 0; i < values.size(); ++i)
    sum += static_cast<double>(values[i]) * weights[i];
  return sum;
}

/// A real top-2 routing with drops, from the gate.
struct Fixture {
  DispatchShape shape;
  GateResult gate;
  std::vector<float> x;

  Fixture() : gate(GateShape{10, 6, 4}, 2) {
    std::mt19937 rng(17);
    const GateShape gateShape{10, 6, 4};
    x = randomVector(60, rng);
    std::vector<float> wg = randomVector(24, rng);
    GateConfig config;
    config.topK = 2;
    config.capacityFactor = 0.8; // C = ceil(10 / 4 * 0.8 * 2) = 4
    config.minCapacity = 0;
    EXPECT_TRUE(gateForward(config, gateShape, {{5, 1, 0}, 0}, x.data(),
                            wg.data(), gate.outputs())
                    .ok());
    shape = {10, 6, 4, 2, gate.capacity};
  }
  TokenRouting routing() const {
    return {gate.experts.data(), gate.slots.data()};
  }
};

TEST(Dispatch, CopiesEachKeptChoiceOnceAndZeroesTheRest) {
  Fixture f;
  ASSERT_EQ(f.shape.capacity, 4);
  int dropped = 0;
  for (int32_t slot : f.gate.slots)
    dropped += slot < 0;
  ASSERT_GT(dropped, 0) << "fixture should exercise drops";
  std::vector<float> buffer(4 * 4 * 6, 123.0f);
  ASSERT_TRUE(
      dispatchTokens(f.shape, f.routing(), f.x.data(), buffer.data()).ok());
  std::vector<bool> used(16, false);
  for (int s = 0; s < 10; ++s)
    for (int j = 0; j < 2; ++j) {
      const int slot = f.gate.slots[s * 2 + j];
      if (slot < 0)
        continue;
      const int cell = f.gate.experts[s * 2 + j] * 4 + slot;
      used[cell] = true;
      for (int m = 0; m < 6; ++m)
        EXPECT_EQ(buffer[cell * 6 + m], f.x[s * 6 + m]);
    }
  for (int cell = 0; cell < 16; ++cell) {
    if (used[cell])
      continue;
    for (int m = 0; m < 6; ++m)
      EXPECT_EQ(buffer[cell * 6 + m], 0.0f) << "unused slot " << cell;
  }
}

TEST(Combine, WeightedSumOfKeptChoices) {
  Fixture f;
  std::mt19937 rng(3);
  std::vector<float> buffer = randomVector(4 * 4 * 6, rng), y(60, 7.0f);
  ASSERT_TRUE(combineTokens(f.shape, f.routing(), f.gate.weights.data(),
                            buffer.data(), y.data())
                  .ok());
  for (int s = 0; s < 10; ++s)
    for (int m = 0; m < 6; ++m) {
      double expected = 0.0;
      for (int j = 0; j < 2; ++j) {
        const int slot = f.gate.slots[s * 2 + j];
        if (slot >= 0)
          expected += f.gate.weights[s * 2 + j] *
                      buffer[(f.gate.experts[s * 2 + j] * 4 + slot) * 6 + m];
      }
      EXPECT_NEAR(y[s * 6 + m], expected, 1e-6);
    }
}

TEST(Combine, DispatchThenCombineOfIdentityExperts) {
  // With identity experts, y = x * (sum of kept weights): x for tokens with
  // a kept choice (top-2 weights renormalise to 1), zero for fully dropped.
  Fixture f;
  std::vector<float> buffer(4 * 4 * 6), y(60);
  ASSERT_TRUE(
      dispatchTokens(f.shape, f.routing(), f.x.data(), buffer.data()).ok());
  ASSERT_TRUE(combineTokens(f.shape, f.routing(), f.gate.weights.data(),
                            buffer.data(), y.data())
                  .ok());
  for (int s = 0; s < 10; ++s) {
    const bool anyKept =
        f.gate.slots[s * 2] >= 0 || f.gate.slots[s * 2 + 1] >= 0;
    for (int m = 0; m < 6; ++m)
      EXPECT_NEAR(y[s * 6 + m], anyKept ? f.x[s * 6 + m] : 0.0f, 1e-5);
  }
}

TEST(Dispatch, BackwardMatchesFiniteDifferences) {
  Fixture f;
  std::mt19937 rng(4);
  const std::vector<float> projection = randomVector(4 * 4 * 6, rng);
  std::vector<float> xGrad(60);
  ASSERT_TRUE(dispatchTokensBackward(f.shape, f.routing(), projection.data(),
                                     xGrad.data())
                  .ok());
  std::vector<float> x = f.x, buffer(4 * 4 * 6);
  auto loss = [&]() {
    EXPECT_TRUE(
        dispatchTokens(f.shape, f.routing(), x.data(), buffer.data()).ok());
    return project(buffer, projection);
  };
  for (size_t i = 0; i < x.size(); ++i) {
    const float original = x[i];
    x[i] = original + 0.01f;
    const double plus = loss();
    x[i] = original - 0.01f;
    const double minus = loss();
    x[i] = original;
    EXPECT_NEAR(xGrad[i], (plus - minus) / 0.02, 1e-3) << i;
  }
}

TEST(Combine, BackwardMatchesFiniteDifferences) {
  Fixture f;
  std::mt19937 rng(5);
  std::vector<float> buffer = randomVector(4 * 4 * 6, rng);
  std::vector<float> weights = f.gate.weights;
  const std::vector<float> projection = randomVector(60, rng);
  std::vector<float> bufferGrad(4 * 4 * 6), weightsGrad(20);
  ASSERT_TRUE(combineTokensBackward(f.shape, f.routing(), weights.data(),
                                    buffer.data(), projection.data(),
                                    bufferGrad.data(), weightsGrad.data())
                  .ok());
  std::vector<float> y(60);
  auto loss = [&]() {
    EXPECT_TRUE(combineTokens(f.shape, f.routing(), weights.data(),
                              buffer.data(), y.data())
                    .ok());
    return project(y, projection);
  };
  auto check = [&](const char *name, std::vector<float> &parameter,
                   const std::vector<float> &analytic) {
    for (size_t i = 0; i < parameter.size(); ++i) {
      const float original = parameter[i];
      parameter[i] = original + 0.01f;
      const double plus = loss();
      parameter[i] = original - 0.01f;
      const double minus = loss();
      parameter[i] = original;
      EXPECT_NEAR(analytic[i], (plus - minus) / 0.02, 1e-3)
          << name << "[" << i << "]";
    }
  };
  check("dbuffer", buffer, bufferGrad);
  check("dweights", weights, weightsGrad);
  // Dropped choices get exactly zero weight gradient.
  for (int i = 0; i < 20; ++i) {
    if (f.gate.slots[i] < 0) {
      EXPECT_EQ(weightsGrad[i], 0.0f);
    }
  }
}

TEST(DispatchCombine, RejectsBadRoutingWithoutWriting) {
  Fixture f;
  std::vector<float> buffer(4 * 4 * 6, 5.0f);
  std::vector<int32_t> slots = f.gate.slots;
  // Find two kept choices of one expert and make them collide.
  int first = -1, second = -1;
  for (int i = 0; i < 20 && second < 0; ++i)
    for (int j = i + 1; j < 20; ++j)
      if (slots[i] >= 0 && slots[j] >= 0 &&
          f.gate.experts[i] == f.gate.experts[j]) {
        first = i;
        second = j;
        break;
      }
  ASSERT_GE(second, 0);
  slots[second] = slots[first];
  Status status = dispatchTokens(f.shape, {f.gate.experts.data(), slots.data()},
                                 f.x.data(), buffer.data());
  EXPECT_EQ(status.code(), StatusCode::InvalidArgument);
  EXPECT_NE(status.message().find("used once"), std::string::npos)
      << status.message();
  for (float v : buffer)
    ASSERT_EQ(v, 5.0f) << "nothing may be written on failure";

  slots = f.gate.slots;
  slots[first] = 4; // C = 4
  status = combineTokens(f.shape, {f.gate.experts.data(), slots.data()},
                         f.gate.weights.data(), buffer.data(), buffer.data());
  EXPECT_EQ(status.code(), StatusCode::OutOfRange);
  EXPECT_NE(status.message().find("found 4 at token"), std::string::npos)
      << status.message();

  std::vector<int32_t> experts = f.gate.experts;
  experts[first] = -2;
  status =
      dispatchTokensBackward(f.shape, {experts.data(), f.gate.slots.data()},
                             buffer.data(), buffer.data());
  EXPECT_EQ(status.code(), StatusCode::OutOfRange);
}

TEST(Dispatch, LargerBufferThanGateCapacity) {
  // A dropless gate may write into a buffer sized for the static bound.
  Fixture f;
  DispatchShape wide = f.shape;
  wide.capacity = 10;
  std::vector<float> buffer(4 * 10 * 6, 1.0f), y(60);
  ASSERT_TRUE(
      dispatchTokens(wide, f.routing(), f.x.data(), buffer.data()).ok());
  ASSERT_TRUE(combineTokens(wide, f.routing(), f.gate.weights.data(),
                            buffer.data(), y.data())
                  .ok());
  for (int e = 0; e < 4; ++e)
    for (int c = f.shape.capacity; c < 10; ++c)
      EXPECT_EQ(buffer[(e * 10 + c) * 6], 0.0f);
}

} // namespace
} // namespace moert

namespace moert {
namespace {

TEST(DispatchCombine, LargeBatchRoundTripUsesEverySlotOnce) {
  // Big enough for the threaded loops to split work; the gate's routing
  // must be a valid assignment (checkRouting) filling min(count, C) slots
  // per expert, and identity experts must give back the kept tokens.
  const GateShape gateShape{4096, 32, 16};
  std::mt19937 rng(99);
  std::vector<float> x = randomVector(4096 * 32, rng);
  std::vector<float> wg = randomVector(32 * 16, rng);
  GateConfig config;
  config.topK = 2;
  config.capacityFactor = 1.0;
  config.noise = GateNoise::RSample;
  GateResult gate(gateShape, 2);
  ASSERT_TRUE(gateForward(config, gateShape, {{1, 2, 3}, 50000}, x.data(),
                          wg.data(), gate.outputs())
                  .ok());
  const DispatchShape shape{4096, 32, 16, 2, gate.capacity};
  const TokenRouting routing{gate.experts.data(), gate.slots.data()};
  ASSERT_TRUE(checkRouting(shape, routing).ok());
  std::vector<int64_t> filled(16, 0);
  for (size_t i = 0; i < gate.slots.size(); ++i)
    filled[gate.experts[i]] += gate.slots[i] >= 0;
  for (int e = 0; e < 16; ++e)
    EXPECT_EQ(filled[e],
              std::min<int64_t>(gate.expertCounts[e], gate.capacity));

  std::vector<float> buffer(16 * gate.capacity * 32), y(4096 * 32);
  ASSERT_TRUE(dispatchTokens(shape, routing, x.data(), buffer.data()).ok());
  ASSERT_TRUE(combineTokens(shape, routing, gate.weights.data(), buffer.data(),
                            y.data())
                  .ok());
  for (int64_t s = 0; s < 4096; ++s) {
    const float keptWeight =
        gate.weights[s * 2] + gate.weights[s * 2 + 1]; // 1 or 0
    for (int64_t m = 0; m < 32; ++m)
      ASSERT_NEAR(y[s * 32 + m], keptWeight * x[s * 32 + m], 1e-5f);
  }
}

} // namespace
} // namespace moert
