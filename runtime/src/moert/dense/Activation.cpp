//===- Activation.cpp - Pointwise nonlinearities --------------------------===//
//
// Scalar formulas in float, one switch outside the loop so each loop body is
// a simple vectorisable function.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/Activation.h"

#include <cmath>

namespace moert {
namespace dense {

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f; // 1 / sqrt(2 pi)
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluTanhCubic = 0.044715f;
constexpr int64_t kParallelThreshold = 1 << 15;

// Written as 1 / (1 + exp(-x)) for x >= 0 and exp(x) / (1 + exp(x)) below so
// that exp never overflows.
inline float sigmoid(float x) {
  if (x >= 0.0f)
    return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}

inline float gelu(float x) {
  return 0.5f * x * (1.0f + std::erf(x * kInvSqrt2));
}

inline float geluGrad(float x) {
  const float cdf = 0.5f * (1.0f + std::erf(x * kInvSqrt2));
  const float pdf = kInvSqrt2Pi * std::exp(-0.5f * x * x);
  return cdf + x * pdf;
}

inline float geluTanh(float x) {
  const float inner = kSqrt2OverPi * (x + kGeluTanhCubic * x * x * x);
  return 0.5f * x * (1.0f + std::tanh(inner));
}

inline float geluTanhGrad(float x) {
  const float inner = kSqrt2OverPi * (x + kGeluTanhCubic * x * x * x);
  const float t = std::tanh(inner);
  const float innerGrad = kSqrt2OverPi * (1.0f + 3.0f * kGeluTanhCubic * x * x);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * innerGrad;
}

inline float silu(float x) { return x * sigmoid(x); }

inline float siluGrad(float x) {
  const float s = sigmoid(x);
  return s * (1.0f + x * (1.0f - s));
}

template <typename Fn>
void mapForward(int64_t count, const float *input, float *output, Fn fn) {
#pragma omp parallel for schedule(static) if (count > kParallelThreshold)
  for (int64_t i = 0; i < count; ++i)
    output[i] = fn(input[i]);
}

template <typename Fn>
void mapBackward(int64_t count, const float *outputGrad, const float *input,
                 float *inputGrad, Fn derivative) {
#pragma omp parallel for schedule(static) if (count > kParallelThreshold)
  for (int64_t i = 0; i < count; ++i)
    inputGrad[i] = outputGrad[i] * derivative(input[i]);
}

} // namespace

const char *activationName(ActivationKind kind) {
  switch (kind) {
  case ActivationKind::Relu:
    return "relu";
  case ActivationKind::Gelu:
    return "gelu";
  case ActivationKind::GeluTanh:
    return "gelu_tanh";
  case ActivationKind::Silu:
    return "silu";
  }
  return "unknown";
}

void activationForward(ActivationKind kind, int64_t count, const float *input,
                       float *output) {
  switch (kind) {
  case ActivationKind::Relu:
    return mapForward(count, input, output,
                      [](float x) { return x > 0.0f ? x : 0.0f; });
  case ActivationKind::Gelu:
    return mapForward(count, input, output, gelu);
  case ActivationKind::GeluTanh:
    return mapForward(count, input, output, geluTanh);
  case ActivationKind::Silu:
    return mapForward(count, input, output, silu);
  }
}

void activationBackward(ActivationKind kind, int64_t count,
                        const float *outputGrad, const float *input,
                        float *inputGrad) {
  switch (kind) {
  case ActivationKind::Relu:
    return mapBackward(count, outputGrad, input, inputGrad,
                       [](float x) { return x > 0.0f ? 1.0f : 0.0f; });
  case ActivationKind::Gelu:
    return mapBackward(count, outputGrad, input, inputGrad, geluGrad);
  case ActivationKind::GeluTanh:
    return mapBackward(count, outputGrad, input, inputGrad, geluTanhGrad);
  case ActivationKind::Silu:
    return mapBackward(count, outputGrad, input, inputGrad, siluGrad);
  }
}

} // namespace dense
} // namespace moert
