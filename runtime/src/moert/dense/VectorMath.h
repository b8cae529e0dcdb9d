//===- VectorMath.h - Branch-free exp / normal CDF for vectorized loops ---===//
//
// The activations, the softmax of cross-entropy and the expert FFN apply exp
// or erf to every element of large blocks. Through libm (erff, expf) that
// costs more than the GEMMs around them: libm calls are scalar and stop the
// loop from vectorizing. These versions use only +, *, /, selects and
// integer bit operations on float, so a loop calling them compiles to SIMD
// code (SSE2 on the x86-64 baseline; IsaVariants.h builds AVX2+FMA and
// AVX-512 copies of the loops that matter). Callers compile with
// -fno-trapping-math: otherwise GCC keeps the selects as branches and
// vectorizes nothing.
//
// Accuracy (checked against libm over dense grids in VectorMathTest.cpp):
// - exp: relative error below 3e-7 on [-87, 88]; 0 below -87.3 and +inf
//   above 88.37, where the exact result would be denormal or overflow.
// - normal CDF Phi(x): absolute error below 3e-7 everywhere (the exact-erf
//   GELU uses Phi, so GELU is within 3e-7 |x| of x Phi(x) with libm's erf);
//   it is 0 or 1 exactly where |x| > 13.
//
// All functions are always inlined so a caller compiled for a wider ISA
// gets the wide code (a non-inlined copy would be baseline code).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_VECTORMATH_H
#define MOERT_DENSE_VECTORMATH_H

#include "moert/dense/IsaVariants.h"

#include <cstdint>
#include <cstring>
#include <limits>

namespace moert {
namespace dense {
namespace vmath {

/// e^x. Range reduction x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two
/// so n ln2 is exact), e^r by its Taylor polynomial to degree 7 (truncation
/// below 5e-9 relative), and 2^n built in the exponent bits.
MOERT_ALWAYS_INLINE float exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2High =
      0.693359375f; // 8 significant bits: n*kLn2High exact
  constexpr float kLn2Low = -2.12194440e-4f;
  // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
  constexpr float kRoundingShift = 12582912.0f;
  // 2^-126 is the smallest normal float; 127.5 * ln2 rounds n up to 128.
  constexpr float kLowest = -87.33654475f;
  constexpr float kHighest = 88.3762626647949f;
  const float clamped = x < kLowest ? kLowest : (x > kHighest ? kHighest : x);
  const float n = (clamped * kLog2e + kRoundingShift) - kRoundingShift;
  const float r = (clamped - n * kLn2High) - n * kLn2Low;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127)
                        << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  const float result = p * scale;
  const float outside =
      x < kLowest ? 0.0f : std::numeric_limits<float>::infinity();
  const bool inRange = x >= kLowest && x <= kHighest;
  // NaN fails both comparisons above: pass it through.
  return inRange ? result : (x != x ? x : outside);
}

/// The standard normal density and distribution at x.
struct NormalAt {
  float pdf; // exp(-x^2 / 2) / sqrt(2 pi)
  float cdf; // Phi(x) = (1 + erf(x / sqrt 2)) / 2
};

/// Phi(-|x|) = erfc(z) / 2 with z = |x| / sqrt 2, written as
///   erfc(z) = t exp(-z^2) Q(t),  t = 1 / (1 + z / 2),
/// where Q(t) = erfc(z) exp(z^2) / t is smooth on t in [0, 1] (Q(1) = 1,
/// Q(0) = 1 / (2 sqrt pi)). Q is our least-squares fit of degree 10 on
/// Chebyshev nodes (relative error 1.2e-8), so one exp serves both the
/// density and the tail.
MOERT_ALWAYS_INLINE NormalAt normalAt(float x) {
  constexpr float kInvSqrt2 = 0.70710678118654752f;
  constexpr float kInvSqrtPi = 0.56418958354775628f;
  const float z = (x < 0.0f ? -x : x) * kInvSqrt2;
  const float t = 1.0f / (1.0f + 0.5f * z);
  float q = 0.043195433357327395f;
  q = q * t - 0.23473359328810672f;
  q = q * t + 0.4936949327986965f;
  q = q * t - 0.4549739893730641f;
  q = q * t + 0.13217704525607968f;
  q = q * t - 0.05921135814515319f;
  q = q * t + 0.09346243445843858f;
  q = q * t + 0.17531597581174574f;
  q = q * t + 0.24688457471658565f;
  q = q * t + 0.28209375380830337f;
  q = q * t + 0.28209479518888503f;
  const float gauss = vmath::exp(-z * z);  // exp(-x^2 / 2)
  const float tail = 0.5f * t * gauss * q; // Phi(-|x|)
  return {gauss * (kInvSqrtPi * kInvSqrt2), x < 0.0f ? tail : 1.0f - tail};
}

/// 1 / (1 + e^-x); exact limits 0 and 1 far out (e^-x is 0 or +inf there).
MOERT_ALWAYS_INLINE float sigmoid(float x) {
  return 1.0f / (1.0f + vmath::exp(-x));
}

/// tanh(x) = 1 - 2 / (e^2x + 1): absolute error below 3e-7, exactly +-1
/// far out.
MOERT_ALWAYS_INLINE float tanh(float x) {
  return 1.0f - 2.0f / (vmath::exp(2.0f * x) + 1.0f);
}

/// Interleaved partial sums for float reductions that vectorize and still
/// add in a fixed order whatever the vector width: element i of a run goes
/// to lanes[i % kSumLanes]. Feed a run in pieces whose lengths are multiples
/// of kSumLanes (the last may be shorter), then add the lanes with sumLanes.
constexpr int64_t kSumLanes = 16;

MOERT_ALWAYS_INLINE void addToLanes(int64_t count, const float *values,
                                    float *lanes) {
  int64_t i = 0;
  for (; i + kSumLanes <= count; i += kSumLanes)
    for (int64_t lane = 0; lane < kSumLanes; ++lane)
      lanes[lane] += values[i + lane];
  for (int64_t lane = 0; i < count; ++i, ++lane)
    lanes[lane] += values[i];
}

/// The lanes added in a fixed tree.
MOERT_ALWAYS_INLINE float sumLanes(float *lanes) {
  for (int64_t width = kSumLanes / 2; width > 0; width /= 2)
    for (int64_t lane = 0; lane < width; ++lane)
      lanes[lane] += lanes[lane + width];
  return lanes[0];
}

} // namespace vmath
} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_VECTORMATH_H
