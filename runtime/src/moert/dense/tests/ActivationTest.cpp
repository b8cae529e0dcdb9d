//===- ActivationTest.cpp - Nonlinearities and their derivatives ----------===//
#include "moert/dense/Activation.h"

#include "GradCheck.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moert {
namespace dense {
namespace {

using testing::expectGradientMatches;
using testing::project;
using testing::randomFloats;

class ActivationTest : public ::testing::TestWithParam<ActivationKind> {};

TEST_P(ActivationTest, GradientMatchesFiniteDifferences) {
  const ActivationKind kind = GetParam();
  std::mt19937 rng(7);
  auto x = randomFloats(40, rng, -4.0f, 4.0f);
  // relu has a kink at 0: keep every point at least two steps away from it.
  for (float &v : x)
    if (std::fabs(v) < 0.05f)
      v = 0.5f;
  const auto outputGrad = randomFloats(x.size(), rng);
  auto loss = [&] {
    std::vector<float> y(x.size());
    activationForward(kind, static_cast<int64_t>(x.size()), x.data(), y.data());
    return project(y, outputGrad);
  };
  std::vector<float> dx(x.size());
  activationBackward(kind, static_cast<int64_t>(x.size()), outputGrad.data(),
                     x.data(), dx.data());
  expectGradientMatches(activationName(kind), x, dx, loss);
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, ActivationTest,
    ::testing::Values(ActivationKind::Relu, ActivationKind::Gelu,
                      ActivationKind::GeluTanh, ActivationKind::Silu),
    [](const auto &info) { return std::string(activationName(info.param)); });

TEST(Activation, KnownValues) {
  const std::vector<float> x = {-2.0f, -0.5f, 0.0f, 1.0f, 3.0f, -30.0f, 30.0f};
  std::vector<float> y(x.size());
  auto eval = [&](ActivationKind kind) {
    activationForward(kind, static_cast<int64_t>(x.size()), x.data(), y.data());
    return y;
  };
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    const double exactGelu = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    const double tanhGelu =
        0.5 * v *
        (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    const double silu = v / (1.0 + std::exp(-v));
    EXPECT_NEAR(eval(ActivationKind::Relu)[i], std::max(v, 0.0), 1e-7);
    EXPECT_NEAR(eval(ActivationKind::Gelu)[i], exactGelu, 1e-6);
    EXPECT_NEAR(eval(ActivationKind::GeluTanh)[i], tanhGelu, 1e-6);
    EXPECT_NEAR(eval(ActivationKind::Silu)[i], silu, 1e-6);
  }
  // Large |x| must not overflow the sigmoid.
  std::vector<float> dx(x.size());
  const std::vector<float> ones(x.size(), 1.0f);
  activationBackward(ActivationKind::Silu, static_cast<int64_t>(x.size()),
                     ones.data(), x.data(), dx.data());
  for (float v : dx)
    EXPECT_TRUE(std::isfinite(v));
  EXPECT_NEAR(dx[5], 0.0f, 1e-9);
  EXPECT_NEAR(dx[6], 1.0f, 1e-6);
}

/// act(x) and act'(x) in double, from libm.
double libmActivation(ActivationKind kind, double x, double *derivative) {
  const double kSqrt2OverPi = std::sqrt(2.0 / M_PI);
  switch (kind) {
  case ActivationKind::Relu:
    *derivative = x > 0.0 ? 1.0 : 0.0;
    return std::max(x, 0.0);
  case ActivationKind::Gelu: {
    const double cdf = 0.5 * std::erfc(-x / std::sqrt(2.0));
    *derivative = cdf + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
    return x * cdf;
  }
  case ActivationKind::GeluTanh: {
    const double t = std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x));
    *derivative = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kSqrt2OverPi *
                                        (1.0 + 3.0 * 0.044715 * x * x);
    return 0.5 * x * (1.0 + t);
  }
  case ActivationKind::Silu: {
    const double s = 1.0 / (1.0 + std::exp(-x));
    *derivative = s * (1.0 + x * (1.0 - s));
    return x * s;
  }
  }
  return 0.0;
}

std::vector<float> testPoints() {
  std::mt19937 rng(21);
  // 4099: a vector remainder for every width.
  std::vector<float> x = randomFloats(4099, rng, -12.0f, 12.0f);
  for (float special : {0.0f, -0.0f, 1e-30f, -1e-30f, 13.5f, -13.5f, 40.0f,
                        -40.0f, 88.5f, -88.5f, 1e30f, -1e30f})
    x.push_back(special);
  return x;
}

// Every instruction-set variant the CPU runs: against libm in double (the
// documented bound), and against the baseline variant (they differ only by
// FMA contraction).
TEST_P(ActivationTest, EveryIsaVariantMatchesLibmAndBaseline) {
  const ActivationKind kind = GetParam();
  const std::vector<float> x = testPoints();
  const int64_t n = static_cast<int64_t>(x.size());
  std::mt19937 rng(5);
  const std::vector<float> dy = randomFloats(x.size(), rng);
  ASSERT_EQ(supportedIsas().back(), Isa::Baseline);
  std::vector<float> baseY(x.size()), baseDx(x.size());
  const detail::ActivationPasses &base =
      detail::activationPasses(Isa::Baseline);
  base.forward(kind, n, x.data(), baseY.data());
  base.backward(kind, n, dy.data(), x.data(), baseDx.data());
  for (Isa isa : supportedIsas()) {
    const detail::ActivationPasses &passes = detail::activationPasses(isa);
    std::vector<float> y(x.size()), dx(x.size()), z = x, a(x.size());
    passes.forward(kind, n, x.data(), y.data());
    passes.backward(kind, n, dy.data(), x.data(), dx.data());
    passes.forwardWithDerivative(kind, n, z.data(), a.data());
    for (size_t i = 0; i < x.size(); ++i) {
      double derivative;
      const double value = libmActivation(kind, x[i], &derivative);
      const double bound = 1e-6 * (1.0 + std::fabs(x[i]));
      const char *name = isaName(isa);
      EXPECT_NEAR(y[i], value, bound) << name << " x=" << x[i];
      EXPECT_NEAR(dx[i], dy[i] * derivative, bound) << name << " x=" << x[i];
      EXPECT_EQ(a[i], y[i]) << name << " x=" << x[i];
      EXPECT_NEAR(z[i] * dy[i], dx[i], 1e-7 * (1.0 + std::fabs(x[i])))
          << name << " x=" << x[i];
      EXPECT_NEAR(y[i], baseY[i], 4e-7 * (1.0 + std::fabs(x[i])))
          << name << " x=" << x[i];
      EXPECT_NEAR(dx[i], baseDx[i], 4e-7 * (1.0 + std::fabs(x[i])))
          << name << " x=" << x[i];
    }
  }
}

// Large counts run on several threads: same bits as one pass of the same
// variant, also in place.
TEST_P(ActivationTest, ParallelPassesMatchOneSerialPass) {
  const ActivationKind kind = GetParam();
  std::mt19937 rng(8);
  const int64_t n = (1 << 18) + 7; // above every kind's threshold
  const std::vector<float> x = randomFloats(n, rng, -6.0f, 6.0f);
  const std::vector<float> dy = randomFloats(n, rng);
  const detail::ActivationPasses &passes = detail::activationPasses();
  std::vector<float> serialY(n), serialDx(n);
  passes.forward(kind, n, x.data(), serialY.data());
  passes.backward(kind, n, dy.data(), x.data(), serialDx.data());
  std::vector<float> y = x, dx = dy;
  activationForward(kind, n, y.data(), y.data());
  activationBackward(kind, n, dx.data(), x.data(), dx.data());
  EXPECT_EQ(y, serialY);
  EXPECT_EQ(dx, serialDx);
}

} // namespace
} // namespace dense
} // namespace moert
