//===- ActivationTest.cpp - Nonlinearities and their derivatives ----------===//
#include "moert/dense/Activation.h"

#include "GradCheck.h"

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

} // namespace
} // namespace dense
} // namespace moert
