//===- ExpertFfnTest.cpp - Expert FFN against loops and finite differences ===//
#include "moert/train/ExpertFfn.h"

#include "moert/dense/tests/GradCheck.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace moert;
using namespace moert::train;
using moert::dense::ActivationKind;
using moert::dense::testing::expectGradientMatches;
using moert::dense::testing::project;
using moert::dense::testing::randomFloats;

namespace {

/// The expert MLP written as plain loops in double.
std::vector<float>
naiveForward(const ExpertFfnShape &s, const std::vector<float> &x,
             const std::vector<float> &w1, const std::vector<float> &b1,
             const std::vector<float> &w2, const std::vector<float> &b2) {
  const int64_t E = s.numExperts, C = s.capacity, M = s.modelDim,
                H = s.hiddenDim;
  std::vector<float> out(E * C * M);
  for (int64_t e = 0; e < E; ++e)
    for (int64_t c = 0; c < C; ++c) {
      std::vector<double> hidden(H);
      for (int64_t h = 0; h < H; ++h) {
        double z = b1[e * H + h];
        for (int64_t m = 0; m < M; ++m)
          z += double(x[(e * C + c) * M + m]) * w1[(e * M + m) * H + h];
        hidden[h] = s.activation == ActivationKind::Relu
                        ? std::max(z, 0.0)
                        : 0.5 * z * (1.0 + std::erf(z / std::sqrt(2.0)));
      }
      for (int64_t m = 0; m < M; ++m) {
        double y = b2[e * M + m];
        for (int64_t h = 0; h < H; ++h)
          y += hidden[h] * w2[(e * H + h) * M + m];
        out[(e * C + c) * M + m] = float(y);
      }
    }
  return out;
}

class ExpertFfnTest : public ::testing::TestWithParam<ActivationKind> {};

TEST_P(ExpertFfnTest, ForwardMatchesLoops) {
  ExpertFfnShape s{3, 4, 5, 6, GetParam()};
  std::mt19937 rng(7);
  auto x = randomFloats(3 * 4 * 5, rng), w1 = randomFloats(3 * 5 * 6, rng),
       b1 = randomFloats(3 * 6, rng), w2 = randomFloats(3 * 6 * 5, rng),
       b2 = randomFloats(3 * 5, rng);
  std::vector<float> out(x.size());
  expertFfnForward(s, x.data(), w1.data(), b1.data(), w2.data(), b2.data(),
                   out.data());
  std::vector<float> expected = naiveForward(s, x, w1, b1, w2, b2);
  for (size_t i = 0; i < out.size(); ++i)
    EXPECT_NEAR(out[i], expected[i], 1e-5) << i;
}

TEST_P(ExpertFfnTest, BackwardMatchesFiniteDifferences) {
  ExpertFfnShape s{2, 3, 4, 5, GetParam()};
  std::mt19937 rng(11);
  auto x = randomFloats(2 * 3 * 4, rng), w1 = randomFloats(2 * 4 * 5, rng),
       b1 = randomFloats(2 * 5, rng), w2 = randomFloats(2 * 5 * 4, rng),
       b2 = randomFloats(2 * 4, rng), projection = randomFloats(x.size(), rng);
  std::vector<float> dx(x.size()), dw1(w1.size()), db1(b1.size()),
      dw2(w2.size()), db2(b2.size());
  expertFfnBackward(s, projection.data(), x.data(), w1.data(), b1.data(),
                    w2.data(), dx.data(), dw1.data(), db1.data(), dw2.data(),
                    db2.data());
  auto loss = [&] {
    std::vector<float> out(x.size());
    expertFfnForward(s, x.data(), w1.data(), b1.data(), w2.data(), b2.data(),
                     out.data());
    return project(out, projection);
  };
  // ReLU kinks: keep the perturbation small so no pre-activation crosses 0.
  float step = GetParam() == ActivationKind::Relu ? 1e-3f : 1e-2f;
  expectGradientMatches("input", x, dx, loss, step);
  expectGradientMatches("w1", w1, dw1, loss, step);
  expectGradientMatches("b1", b1, db1, loss, step);
  expectGradientMatches("w2", w2, dw2, loss, step);
  expectGradientMatches("b2", b2, db2, loss, step);
}

TEST(ExpertFfn, ExpertsAreIndependent) {
  // Changing expert 1's weights must not change expert 0's output.
  ExpertFfnShape s{2, 2, 3, 4, ActivationKind::Gelu};
  std::mt19937 rng(3);
  auto x = randomFloats(12, rng), w1 = randomFloats(24, rng),
       b1 = randomFloats(8, rng), w2 = randomFloats(24, rng),
       b2 = randomFloats(6, rng);
  std::vector<float> before(12), after(12);
  expertFfnForward(s, x.data(), w1.data(), b1.data(), w2.data(), b2.data(),
                   before.data());
  for (int i = 12; i < 24; ++i)
    w1[i] += 1.0f;
  expertFfnForward(s, x.data(), w1.data(), b1.data(), w2.data(), b2.data(),
                   after.data());
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(before[i], after[i]);
  bool changed = false;
  for (int i = 6; i < 12; ++i)
    changed |= before[i] != after[i];
  EXPECT_TRUE(changed);
}

INSTANTIATE_TEST_SUITE_P(Activations, ExpertFfnTest,
                         ::testing::Values(ActivationKind::Relu,
                                           ActivationKind::Gelu),
                         [](const auto &info) {
                           return std::string(
                               dense::activationName(info.param));
                         });

} // namespace
