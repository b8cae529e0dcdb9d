//===- DenseMath.h - Per-element math of the CUDA dense kernels -*- C++ -*-===//
//
// What a CUDA dense kernel computes for one element, written once for the
// host and the GPU (MOERT_HOST_DEVICE) so the CPU tests
// (backends/cuda/tests/DenseMathTest.cpp) check the code the GPU runs
// against the CPU kernels of moert/dense:
//   - the dropout mask of one Philox block: bit-identical to
//     dense::dropoutForward (same counter layout as moert::randomBits);
//   - the sinusoidal position encoding: computed in double like
//     dense::sinusoidalPositions;
//   - the activations and their derivatives. The CPU uses its own
//     vectorizable exp/erf (dense/VectorMath.h); here the CUDA math library
//     (erfc, exp, tanh, all within 2 ulp), so the two agree to a few 1e-7,
//     not bit for bit. The formulas (relu'(0) = 0, the guarded gelu_tanh
//     derivative far out) are the CPU's.
// Element-wise products and sums that the CPU rounds one operation at a
// time are written so nvcc cannot contract them into an FMA (mulRn/addRn),
// where the CPU results are meant to be reproduced bit for bit.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_DENSEMATH_H
#define MOERT_BACKENDS_CUDA_DENSEMATH_H

#include "moert/HostDevice.h"
#include "moert/Random.h"

#include <cmath>
#include <cstdint>

namespace moert {
namespace cuda {
namespace dense_math {

/// a * b and a + b rounded once each: never fused into an FMA by nvcc (whose
/// default contracts a * b + c); plain operators on the host, whose build
/// (x86-64 baseline, no FMA) rounds each operation anyway.
MOERT_HOST_DEVICE inline float mulRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
MOERT_HOST_DEVICE inline float addRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
MOERT_HOST_DEVICE inline float subRn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

//===----------------------------------------------------------------------===//
// Dropout
//===----------------------------------------------------------------------===//

/// The smallest 32-bit value a kept element's random bits reach:
/// ceil(rate * 2^32), as dense/Dropout.cpp (keep iff bits * 2^-32 >= rate).
/// 2^32 or more keeps nothing.
inline uint64_t dropoutKeepThreshold(double rate) {
  const double clamped = rate < 0.0 ? 0.0 : (rate > 1.0 ? 1.0 : rate);
  return static_cast<uint64_t>(std::ceil(clamped * 4294967296.0));
}

/// One dropout launch: `count` contiguous local elements whose logical
/// indices start at `logicalOffset` (the shard's first element).
struct DropoutBlockParams {
  RandomStream source;
  uint32_t keepFrom = 0; // keep iff bits >= keepFrom (< 2^32 here)
  float keptScale = 1.0f;
  uint64_t logicalOffset = 0;
  int64_t count = 0;
};

/// Philox block `block` serves logical elements 4 block .. 4 block + 3
/// (moert::randomBits: lane index % 4 of block index / 4). Applies the mask
/// to those of them that are local, out = bits >= keepFrom ? in * scale :
/// +0.0f (a dropped NaN or inf becomes +0 too, as on the CPU). `out` may
/// alias `in` exactly.
MOERT_HOST_DEVICE inline void dropoutPhiloxBlock(const DropoutBlockParams &p,
                                                 uint64_t block,
                                                 const float *in, float *out) {
  const PhiloxCounter bits = philox4x32x10(
      {static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
       p.source.stream, p.source.step},
      {static_cast<uint32_t>(p.source.seed),
       static_cast<uint32_t>(p.source.seed >> 32)});
  const uint64_t end = p.logicalOffset + static_cast<uint64_t>(p.count);
  for (int lane = 0; lane < 4; ++lane) {
    const uint64_t logical = block * 4 + static_cast<uint64_t>(lane);
    if (logical < p.logicalOffset || logical >= end)
      continue;
    const uint64_t local = logical - p.logicalOffset;
    const float scaled = mulRn(in[local], p.keptScale);
    out[local] = bits[lane] >= p.keepFrom ? scaled : 0.0f;
  }
}

/// The Philox blocks covering [logicalOffset, logicalOffset + count).
MOERT_HOST_DEVICE inline uint64_t
dropoutFirstBlock(const DropoutBlockParams &p) {
  return p.logicalOffset / 4;
}
MOERT_HOST_DEVICE inline uint64_t
dropoutBlockCount(const DropoutBlockParams &p) {
  if (p.count <= 0)
    return 0;
  const uint64_t last =
      (p.logicalOffset + static_cast<uint64_t>(p.count) - 1) / 4;
  return last - p.logicalOffset / 4 + 1;
}

//===----------------------------------------------------------------------===//
// Embedding
//===----------------------------------------------------------------------===//

/// pe[s, d] of the fixed sinusoidal encoding: columns 2i and 2i + 1 share
/// the frequency 1 / 10000^(2i / M); computed in double, then rounded (as
/// dense::sinusoidalPositions).
MOERT_HOST_DEVICE inline float sinusoidalPosition(int64_t s, int64_t d,
                                                  int64_t modelDim) {
  const int64_t evenIndex = d - (d % 2);
  const double angle =
      static_cast<double>(s) /
      ::pow(10000.0, static_cast<double>(evenIndex) / modelDim);
  return static_cast<float>(d % 2 == 0 ? ::sin(angle) : ::cos(angle));
}

//===----------------------------------------------------------------------===//
// Activations (dense::ActivationKind order)
//===----------------------------------------------------------------------===//

enum ActivationCode : int { kRelu = 0, kGelu = 1, kGeluTanh = 2, kSilu = 3 };

/// Phi(z), the standard normal CDF, through erfc (accurate in both tails).
MOERT_HOST_DEVICE inline float normalCdf(float z) {
  return 0.5f * ::erfcf(-z * 0.70710678118654752f);
}
/// phi(z) = exp(-z^2 / 2) / sqrt(2 pi).
MOERT_HOST_DEVICE inline float normalPdf(float z) {
  return ::expf(-0.5f * z * z) * 0.39894228040143268f;
}

constexpr float kGeluTanhSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluTanhCubic = 0.044715f;

MOERT_HOST_DEVICE inline float geluTanhInner(float z) {
  return ::tanhf(kGeluTanhSqrt2OverPi * (z + kGeluTanhCubic * z * z * z));
}

template <int Kind> MOERT_HOST_DEVICE inline float activationValue(float z) {
  if (Kind == kRelu)
    return z > 0.0f ? z : 0.0f;
  if (Kind == kGelu)
    return z * normalCdf(z);
  if (Kind == kGeluTanh)
    return 0.5f * z * (1.0f + geluTanhInner(z));
  // silu: z sigmoid(z)
  return z / (1.0f + ::expf(-z));
}

template <int Kind>
MOERT_HOST_DEVICE inline float activationDerivative(float z) {
  if (Kind == kRelu)
    return z > 0.0f ? 1.0f : 0.0f; // relu'(0) = 0, as PyTorch
  if (Kind == kGelu)
    return normalCdf(z) + z * normalPdf(z);
  if (Kind == kGeluTanh) {
    const float t = geluTanhInner(z);
    const float innerGrad =
        kGeluTanhSqrt2OverPi * (1.0f + 3.0f * kGeluTanhCubic * z * z);
    const float sech2 = 1.0f - t * t;
    // Far out sech^2 is 0 while z^2 may overflow: 0, not 0 * inf.
    const float curve = sech2 == 0.0f ? 0.0f : 0.5f * z * sech2 * innerGrad;
    return 0.5f * (1.0f + t) + curve;
  }
  const float s = 1.0f / (1.0f + ::expf(-z));
  return s * (1.0f + z * (1.0f - s));
}

} // namespace dense_math
} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_DENSEMATH_H
