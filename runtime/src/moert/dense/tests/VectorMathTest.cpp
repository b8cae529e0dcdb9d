//===- VectorMathTest.cpp - Branch-free exp / normal CDF against libm -----===//
#include "moert/dense/VectorMath.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace moert::dense;

namespace {

// Every float in [low, high] at a step of about `step` (dense enough to hit
// every range-reduction interval many times).
template <typename F> void forGrid(double low, double high, double step, F f) {
  for (double x = low; x <= high; x += step)
    f(static_cast<float>(x));
}

TEST(VectorMath, ExpRelativeError) {
  double worst = 0.0;
  forGrid(-87.0, 88.0, 1.3e-4, [&](float x) {
    const double exact = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(vmath::exp(x) - exact) / exact);
  });
  EXPECT_LT(worst, 3e-7);
}

TEST(VectorMath, ExpLimits) {
  EXPECT_EQ(vmath::exp(0.0f), 1.0f);
  EXPECT_EQ(vmath::exp(-90.0f), 0.0f);
  EXPECT_EQ(vmath::exp(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(vmath::exp(89.0f), std::numeric_limits<float>::infinity());
  EXPECT_EQ(vmath::exp(std::numeric_limits<float>::infinity()),
            std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(vmath::exp(std::nanf(""))));
  EXPECT_GT(vmath::exp(88.3f), 1e38f);
  EXPECT_GT(vmath::exp(-87.3f), 0.0f);
}

TEST(VectorMath, NormalCdfAndPdfAbsoluteError) {
  double worstCdf = 0.0, worstPdf = 0.0;
  forGrid(-20.0, 20.0, 3.7e-5, [&](float x) {
    const double xd = x;
    const double cdf = 0.5 * std::erfc(-xd / std::sqrt(2.0));
    const double pdf = std::exp(-0.5 * xd * xd) / std::sqrt(2.0 * M_PI);
    const vmath::NormalAt n = vmath::normalAt(x);
    worstCdf = std::max(worstCdf, std::fabs(n.cdf - cdf));
    worstPdf = std::max(worstPdf, std::fabs(n.pdf - pdf));
  });
  EXPECT_LT(worstCdf, 3e-7);
  EXPECT_LT(worstPdf, 1e-7);
}

TEST(VectorMath, NormalTailsAreExact) {
  EXPECT_EQ(vmath::normalAt(-14.0f).cdf, 0.0f);
  EXPECT_EQ(vmath::normalAt(14.0f).cdf, 1.0f);
  EXPECT_EQ(vmath::normalAt(-std::numeric_limits<float>::infinity()).cdf, 0.0f);
  EXPECT_EQ(vmath::normalAt(std::numeric_limits<float>::infinity()).cdf, 1.0f);
  EXPECT_EQ(vmath::normalAt(0.0f).cdf, 0.5f);
  // Far left the tail keeps its relative accuracy (no 1 - x cancellation).
  const double exact = 0.5 * std::erfc(6.0 / std::sqrt(2.0));
  EXPECT_NEAR(vmath::normalAt(-6.0f).cdf / exact, 1.0, 1e-5);
}

TEST(VectorMath, TanhAndSigmoidAbsoluteError) {
  double worstTanh = 0.0, worstSigmoid = 0.0;
  forGrid(-30.0, 30.0, 5.3e-5, [&](float x) {
    worstTanh =
        std::max(worstTanh,
                 std::fabs(vmath::tanh(x) - std::tanh(static_cast<double>(x))));
    worstSigmoid =
        std::max(worstSigmoid,
                 std::fabs(vmath::sigmoid(x) -
                           1.0 / (1.0 + std::exp(-static_cast<double>(x)))));
  });
  EXPECT_LT(worstTanh, 3e-7);
  EXPECT_LT(worstSigmoid, 2e-7);
  EXPECT_EQ(vmath::tanh(100.0f), 1.0f);
  EXPECT_EQ(vmath::tanh(-100.0f), -1.0f);
  EXPECT_EQ(vmath::sigmoid(-100.0f), 0.0f);
  EXPECT_EQ(vmath::sigmoid(100.0f), 1.0f);
}

} // namespace
