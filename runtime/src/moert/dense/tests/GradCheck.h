//===- GradCheck.h - Finite-difference gradient checks for the dense tests ===//
//
// Every backward kernel is checked against central differences of its own
// forward kernel. The scalar being differentiated is a random projection of
// the outputs, L = sum_i w_i y_i (accumulated in double), so dL/dy = w is the
// output gradient fed to the backward kernel and one check covers all
// outputs at once.
//
// Tolerances. The forward kernels compute in fp32, so a difference quotient
// with step h carries a rounding error of about eps32 * sqrt(#outputs) *
// |y| / (2h) ~ 1e-7 * 10 / 2e-2 = 5e-5 for our small shapes, and a
// truncation error h^2 / 6 * |L'''| ~ 2e-5 for the smooth kernels. The
// analytic fp32 gradient itself is accurate to ~1e-6. We therefore accept
// |analytic - numeric| <= 1e-3 + 1e-2 * |numeric|: twenty times the expected
// error, while a wrong formula (a missing term, a wrong scale) is off by far
// more than 1e-2 relative on random inputs.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_TESTS_GRADCHECK_H
#define MOERT_DENSE_TESTS_GRADCHECK_H

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace moert {
namespace dense {
namespace testing {

constexpr double kGradAbsTolerance = 1e-3;
constexpr double kGradRelTolerance = 1e-2;
constexpr float kFiniteDifferenceStep = 1e-2f;

inline std::vector<float> randomFloats(size_t count, std::mt19937 &rng,
                                       float low = -1.0f, float high = 1.0f) {
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> values(count);
  for (float &v : values)
    v = dist(rng);
  return values;
}

/// sum_i weights[i] * values[i] in double.
inline double project(const std::vector<float> &values,
                      const std::vector<float> &weights) {
  double sum = 0.0;
  for (size_t i = 0; i < values.size(); ++i)
    sum += static_cast<double>(values[i]) * weights[i];
  return sum;
}

/// Compares `analytic` with central differences of `loss` with respect to
/// every element of `parameter` (which is perturbed in place and restored).
/// The step actually taken is measured after rounding to float so that the
/// quotient is not biased by the representation of x +- h.
inline void expectGradientMatches(const std::string &name,
                                  std::vector<float> &parameter,
                                  const std::vector<float> &analytic,
                                  const std::function<double()> &loss,
                                  float step = kFiniteDifferenceStep) {
  ASSERT_EQ(parameter.size(), analytic.size()) << name;
  int failures = 0;
  for (size_t i = 0; i < parameter.size(); ++i) {
    const float original = parameter[i];
    const float plus = original + step, minus = original - step;
    parameter[i] = plus;
    const double lossPlus = loss();
    parameter[i] = minus;
    const double lossMinus = loss();
    parameter[i] = original;
    const double numeric =
        (lossPlus - lossMinus) /
        (static_cast<double>(plus) - static_cast<double>(minus));
    const double error = std::fabs(analytic[i] - numeric);
    if (error > kGradAbsTolerance + kGradRelTolerance * std::fabs(numeric)) {
      if (++failures <= 5)
        ADD_FAILURE() << name << "[" << i << "]: analytic " << analytic[i]
                      << " vs numeric " << numeric;
    }
  }
  EXPECT_EQ(failures, 0) << name << ": " << failures << " of "
                         << parameter.size() << " elements differ";
}

} // namespace testing
} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_TESTS_GRADCHECK_H
