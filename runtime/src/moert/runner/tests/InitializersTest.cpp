//===- InitializersTest.cpp - Name-keyed deterministic initialization -----===//
#include "moert/runner/Initializers.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using namespace moert::runner;

namespace {

std::vector<float> draw(InitKind kind, double scale, uint64_t seed,
                        const std::string &name, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  std::vector<float> values(n);
  initializeParameter(kind, scale, seed, name, shape, values.data());
  return values;
}

TEST(Initializers, ConstantKinds) {
  for (float v : draw(InitKind::Zeros, 1.0, 1, "b", {7}))
    EXPECT_EQ(v, 0.0f);
  for (float v : draw(InitKind::Ones, 1.0, 1, "g", {7}))
    EXPECT_EQ(v, 1.0f);
}

TEST(Initializers, NormalHasTheRequestedMoments) {
  std::vector<float> v = draw(InitKind::Normal, 0.02, 3, "w", {256, 256});
  double mean = 0, sq = 0;
  for (float x : v) {
    mean += x;
    sq += double(x) * x;
  }
  mean /= v.size();
  double stddev = std::sqrt(sq / v.size() - mean * mean);
  // 65536 samples: the standard error of the mean is 0.02/256 ~ 8e-5.
  EXPECT_NEAR(mean, 0.0, 5e-4);
  EXPECT_NEAR(stddev, 0.02, 5e-4);
}

TEST(Initializers, UniformAndXavierStayInTheirBounds) {
  for (float x : draw(InitKind::Uniform, 0.5, 3, "u", {1000}))
    EXPECT_LE(std::fabs(x), 0.5f);
  double bound = std::sqrt(6.0 / (64 + 32));
  std::vector<float> v = draw(InitKind::XavierUniform, 1.0, 3, "x", {64, 32});
  float largest = 0;
  for (float x : v) {
    EXPECT_LE(std::fabs(x), bound);
    largest = std::max(largest, std::fabs(x));
  }
  EXPECT_GT(largest, 0.9 * bound); // the range is used, not a smaller one
}

TEST(Initializers, DependOnSeedNameAndElementOnly) {
  auto a = draw(InitKind::Normal, 1.0, 7, "encoder.w", {4, 8});
  EXPECT_EQ(a, draw(InitKind::Normal, 1.0, 7, "encoder.w", {4, 8}));
  EXPECT_NE(a, draw(InitKind::Normal, 1.0, 8, "encoder.w", {4, 8}));
  EXPECT_NE(a, draw(InitKind::Normal, 1.0, 7, "decoder.w", {4, 8}));
  // Element i does not depend on the shape: a reshaped (or sharded) view of
  // the same logical tensor starts from the same values.
  EXPECT_EQ(a, draw(InitKind::Normal, 1.0, 7, "encoder.w", {32}));
}

} // namespace
