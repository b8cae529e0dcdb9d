//===- ExpertFfnTest.cpp - Expert FFN against loops and finite differences ===//
#include "moert/train/ExpertFfn.h"

#include "moert/dense/tests/GradCheck.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

using namespace moert;
using namespace moert::train;
using moert::dense::ActivationKind;
using moert::dense::testing::expectGradientMatches;
using moert::dense::testing::project;
using moert::dense::testing::randomFloats;

namespace {

/// act(z) and act'(z) in double, from libm.
double activationValue(ActivationKind kind, double z, double *derivative) {
  const double kSqrt2OverPi = std::sqrt(2.0 / M_PI);
  switch (kind) {
  case ActivationKind::Relu:
    *derivative = z > 0.0 ? 1.0 : 0.0;
    return std::max(z, 0.0);
  case ActivationKind::Gelu: {
    const double cdf = 0.5 * (1.0 + std::erf(z / std::sqrt(2.0)));
    *derivative = cdf + z * std::exp(-0.5 * z * z) / std::sqrt(2.0 * M_PI);
    return z * cdf;
  }
  case ActivationKind::GeluTanh: {
    const double t = std::tanh(kSqrt2OverPi * (z + 0.044715 * z * z * z));
    *derivative = 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * kSqrt2OverPi *
                                        (1.0 + 3.0 * 0.044715 * z * z);
    return 0.5 * z * (1.0 + t);
  }
  case ActivationKind::Silu: {
    const double sig = 1.0 / (1.0 + std::exp(-z));
    *derivative = sig * (1.0 + z * (1.0 - sig));
    return z * sig;
  }
  }
  return 0.0;
}

struct ExpertWeights {
  std::vector<float> w1, b1, w2, b2;
};

ExpertWeights randomWeights(const ExpertFfnShape &s, std::mt19937 &rng) {
  const int64_t E = s.numExperts, M = s.modelDim, H = s.hiddenDim;
  ExpertWeights w;
  w.w1 = randomFloats(E * M * H, rng);
  w.b1 = randomFloats(E * H, rng);
  w.w2 = randomFloats(E * H * M, rng);
  w.b2 = randomFloats(E * M, rng);
  return w;
}

/// Forward and backward of the expert MLP as plain loops in double.
struct NaiveExpertFfn {
  std::vector<double> out, dx, dw1, db1, dw2, db2;

  NaiveExpertFfn(const ExpertFfnShape &s, const std::vector<float> &x,
                 const ExpertWeights &w, const std::vector<float> &dy = {}) {
    const int64_t E = s.numExperts, C = s.capacity, M = s.modelDim,
                  H = s.hiddenDim;
    out.assign(E * C * M, 0.0);
    dx.assign(E * C * M, 0.0);
    dw1.assign(E * M * H, 0.0);
    db1.assign(E * H, 0.0);
    dw2.assign(E * H * M, 0.0);
    db2.assign(E * M, 0.0);
    std::vector<double> hidden(H), derivative(H), hiddenGrad(H);
    for (int64_t e = 0; e < E; ++e)
      for (int64_t c = 0; c < C; ++c) {
        const float *xr = &x[(e * C + c) * M];
        for (int64_t h = 0; h < H; ++h) {
          double z = w.b1[e * H + h];
          for (int64_t m = 0; m < M; ++m)
            z += double(xr[m]) * w.w1[(e * M + m) * H + h];
          hidden[h] = activationValue(s.activation, z, &derivative[h]);
        }
        for (int64_t m = 0; m < M; ++m) {
          double y = w.b2[e * M + m];
          for (int64_t h = 0; h < H; ++h)
            y += hidden[h] * w.w2[(e * H + h) * M + m];
          out[(e * C + c) * M + m] = y;
        }
        if (dy.empty())
          continue;
        const float *g = &dy[(e * C + c) * M];
        for (int64_t h = 0; h < H; ++h) {
          double sum = 0.0;
          for (int64_t m = 0; m < M; ++m) {
            sum += double(g[m]) * w.w2[(e * H + h) * M + m];
            dw2[(e * H + h) * M + m] += hidden[h] * g[m];
          }
          hiddenGrad[h] = sum * derivative[h];
          db1[e * H + h] += hiddenGrad[h];
        }
        for (int64_t m = 0; m < M; ++m) {
          db2[e * M + m] += g[m];
          double sum = 0.0;
          for (int64_t h = 0; h < H; ++h) {
            sum += hiddenGrad[h] * w.w1[(e * M + m) * H + h];
            dw1[(e * M + m) * H + h] += double(xr[m]) * hiddenGrad[h];
          }
          dx[(e * C + c) * M + m] = sum;
        }
      }
  }
};

/// |actual - expected| <= tolerance * (1 + largest |expected|) for all.
void expectClose(const char *name, const std::vector<float> &actual,
                 const std::vector<double> &expected, double tolerance) {
  ASSERT_EQ(actual.size(), expected.size()) << name;
  double scale = 1.0;
  for (double v : expected)
    scale = std::max(scale, std::fabs(v));
  int failures = 0;
  for (size_t i = 0; i < actual.size(); ++i)
    if (std::fabs(actual[i] - expected[i]) > tolerance * scale &&
        ++failures <= 5)
      ADD_FAILURE() << name << "[" << i << "]: " << actual[i] << " vs "
                    << expected[i];
  EXPECT_EQ(failures, 0) << name;
}

class ExpertFfnTest : public ::testing::TestWithParam<ActivationKind> {};

TEST_P(ExpertFfnTest, ForwardMatchesLoops) {
  ExpertFfnShape s{3, 4, 5, 6, GetParam()};
  std::mt19937 rng(7);
  auto x = randomFloats(3 * 4 * 5, rng);
  ExpertWeights w = randomWeights(s, rng);
  std::vector<float> out(x.size());
  expertFfnForward(s, x.data(), w.w1.data(), w.b1.data(), w.w2.data(),
                   w.b2.data(), out.data());
  expectClose("out", out, NaiveExpertFfn(s, x, w).out, 1e-6);
}

// Larger blocks: more rows than one block of the float bias-gradient sums,
// experts spread over threads (8) or run in order (3), pre-activations
// reaching the tails of every activation.
TEST_P(ExpertFfnTest, ForwardAndBackwardMatchLoopsOnLargerBlocks) {
  for (int64_t experts : {3, 8}) {
    ExpertFfnShape s{experts, 300, 16, 24, GetParam()};
    std::mt19937 rng(static_cast<unsigned>(experts));
    auto x = randomFloats(s.numExperts * s.capacity * s.modelDim, rng, -3, 3);
    auto dy = randomFloats(x.size(), rng);
    ExpertWeights w = randomWeights(s, rng);
    std::vector<float> out(x.size()), dx(x.size()), dw1(w.w1.size()),
        db1(w.b1.size()), dw2(w.w2.size()), db2(w.b2.size());
    expertFfnForward(s, x.data(), w.w1.data(), w.b1.data(), w.w2.data(),
                     w.b2.data(), out.data());
    expertFfnBackward(s, dy.data(), x.data(), w.w1.data(), w.b1.data(),
                      w.w2.data(), dx.data(), dw1.data(), db1.data(),
                      dw2.data(), db2.data());
    NaiveExpertFfn naive(s, x, w, dy);
    SCOPED_TRACE(experts);
    expectClose("out", out, naive.out, 1e-5);
    expectClose("dx", dx, naive.dx, 1e-5);
    expectClose("dw1", dw1, naive.dw1, 1e-5);
    expectClose("db1", db1, naive.db1, 1e-5);
    expectClose("dw2", dw2, naive.dw2, 1e-5);
    expectClose("db2", db2, naive.db2, 1e-5);
  }
}

TEST_P(ExpertFfnTest, BackwardSkipsNullGradients) {
  ExpertFfnShape s{2, 5, 4, 6, GetParam()};
  std::mt19937 rng(5);
  auto x = randomFloats(2 * 5 * 4, rng), dy = randomFloats(x.size(), rng);
  ExpertWeights w = randomWeights(s, rng);
  std::vector<float> dx(x.size()), db1(w.b1.size()), dw2(w.w2.size());
  expertFfnBackward(s, dy.data(), x.data(), w.w1.data(), w.b1.data(),
                    w.w2.data(), dx.data(), nullptr, nullptr, dw2.data(),
                    nullptr);
  NaiveExpertFfn naive(s, x, w, dy);
  expectClose("dx", dx, naive.dx, 1e-6);
  expectClose("dw2", dw2, naive.dw2, 1e-6);
  expertFfnBackward(s, dy.data(), x.data(), w.w1.data(), w.b1.data(),
                    w.w2.data(), nullptr, nullptr, db1.data(), nullptr,
                    nullptr);
  expectClose("db1", db1, naive.db1, 1e-6);
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

// Every instruction-set variant of the activation passes the expert FFN
// uses (the kernels use only the widest), against libm in double, on a
// length with a vector remainder and on the tails.
TEST_P(ExpertFfnTest, EveryActivationVariantMatchesLibm) {
  std::mt19937 rng(13);
  std::vector<float> z = randomFloats(1003, rng, -15.0f, 15.0f);
  for (float special : {0.0f, -0.0f, 1e-8f, -1e-8f, 13.5f, -13.5f, 40.0f,
                        -40.0f, 100.0f, -100.0f})
    z.push_back(special);
  const std::vector<dense::Isa> &isas = dense::supportedIsas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.back(), dense::Isa::Baseline);
  for (dense::Isa isa : isas) {
    const char *variant = dense::isaName(isa);
    const dense::detail::ActivationPasses &passes =
        dense::detail::activationPasses(isa);
    std::vector<float> values = z, derivatives = z, activated(z.size());
    passes.forward(GetParam(), int64_t(z.size()), values.data(), values.data());
    passes.forwardWithDerivative(GetParam(), int64_t(z.size()),
                                 derivatives.data(), activated.data());
    for (size_t i = 0; i < z.size(); ++i) {
      double derivative;
      const double value = activationValue(GetParam(), z[i], &derivative);
      const double tolerance = 1e-6 * (1.0 + std::fabs(z[i]));
      EXPECT_NEAR(values[i], value, tolerance) << variant << " z=" << z[i];
      EXPECT_EQ(values[i], activated[i]) << variant << " z=" << z[i];
      EXPECT_NEAR(derivatives[i], derivative, tolerance)
          << variant << " z=" << z[i];
    }
  }
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

INSTANTIATE_TEST_SUITE_P(
    Activations, ExpertFfnTest,
    ::testing::Values(ActivationKind::Relu, ActivationKind::Gelu,
                      ActivationKind::GeluTanh, ActivationKind::Silu),
    [](const auto &info) {
      return std::string(dense::activationName(info.param));
    });

} // namespace
