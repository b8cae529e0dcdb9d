//===- Initializers.h - Deterministic parameter initialization ------------===//
//
// Every parameter is drawn from the run's seed and the parameter's name, per
// logical element: element i of "encoder.layers.0.ffn.fc1.weight" has the
// same initial value on one rank or on a shard of any grid, so a run's
// starting point does not depend on how it is partitioned.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_INITIALIZERS_H
#define MOERT_RUNNER_INITIALIZERS_H

#include <cstdint>
#include <string>
#include <vector>

namespace moert {
namespace runner {

enum class InitKind { Zeros, Ones, Normal, Uniform, XavierUniform };

/// 32-bit FNV-1a of `name`: the random stream of a parameter.
uint32_t parameterStream(const std::string &name);

/// Fills `values` (the logical tensor of `shape`, row-major) with the
/// initializer: Normal is N(0, scale^2), Uniform U(-scale, scale),
/// XavierUniform U(-a, a) with a = scale * sqrt(6 / (fan_in + fan_out)) over
/// the last two dimensions (fan_in = shape[-2], fan_out = shape[-1]; a
/// rank-1 tensor uses its length for both).
void initializeParameter(InitKind kind, double scale, uint64_t seed,
                         const std::string &name,
                         const std::vector<int64_t> &shape, float *values);

} // namespace runner
} // namespace moert

#endif // MOERT_RUNNER_INITIALIZERS_H
