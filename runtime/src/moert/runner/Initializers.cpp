//===- Initializers.cpp - Deterministic parameter initialization ----------===//
#include "moert/runner/Initializers.h"

#include "moert/Random.h"

#include <cmath>

namespace moert {
namespace runner {

namespace {
// Parameter initialization uses a step value no training step reaches, so
// its numbers never coincide with dropout or gate noise of the same stream.
constexpr uint32_t kInitStep = 0xFFFFFFFFu;
} // namespace

uint32_t parameterStream(const std::string &name) {
  uint32_t hash = 2166136261u;
  for (unsigned char c : name) {
    hash ^= c;
    hash *= 16777619u;
  }
  return hash;
}

void initializeParameter(InitKind kind, double scale, uint64_t seed,
                         const std::string &name,
                         const std::vector<int64_t> &shape, float *values) {
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  RandomStream source{seed, parameterStream(name), kInitStep};
  switch (kind) {
  case InitKind::Zeros:
  case InitKind::Ones:
    for (int64_t i = 0; i < count; ++i)
      values[i] = kind == InitKind::Ones ? 1.0f : 0.0f;
    return;
  case InitKind::Normal:
    // Box-Muller on two independent uniforms per element (indices 2i and
    // 2i + 1), so element i depends on i only.
    for (int64_t i = 0; i < count; ++i) {
      double u1 = uniform01(source, 2 * static_cast<uint64_t>(i));
      double u2 = uniform01(source, 2 * static_cast<uint64_t>(i) + 1);
      double radius = std::sqrt(-2.0 * std::log(1.0 - u1));
      values[i] =
          static_cast<float>(scale * radius * std::cos(2.0 * M_PI * u2));
    }
    return;
  case InitKind::Uniform:
  case InitKind::XavierUniform: {
    double bound = scale;
    if (kind == InitKind::XavierUniform) {
      double fanIn =
          shape.size() >= 2 ? double(shape[shape.size() - 2]) : double(count);
      double fanOut = shape.empty() ? 1.0 : double(shape.back());
      bound = scale * std::sqrt(6.0 / (fanIn + fanOut));
    }
    for (int64_t i = 0; i < count; ++i)
      values[i] = static_cast<float>(
          bound * (2.0 * uniform01(source, static_cast<uint64_t>(i)) - 1.0));
    return;
  }
  }
}

} // namespace runner
} // namespace moert
