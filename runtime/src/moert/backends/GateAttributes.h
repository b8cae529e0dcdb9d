//===- GateAttributes.h - moe.gate's attributes as a GateConfig -*- C++ -*-===//
//
// Every backend's gate kernels read the same instruction attributes and
// derive the same random-number source; this is that one reading
// (backends/cpu/MoeKernels.cpp, backends/cuda/MoeKernels.cu).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_GATEATTRIBUTES_H
#define MOERT_BACKENDS_GATEATTRIBUTES_H

#include "moert/exec/Executor.h"
#include "moert/kernels/Gate.h"

namespace moert {

/// The gate's routing configuration from the instruction's attributes and
/// the run (training / evaluation).
Expected<GateConfig> gateConfigOf(const exec::KernelCall &call);

/// The gate's random-number source; `numTokens` counts the gate input's
/// tokens on this rank (with `shard_axes`, this rank's shard of the batch).
Expected<GateRandomness> gateRandomnessOf(const exec::KernelCall &call,
                                          int64_t numTokens);

/// Shape of a gate over input `x` [..., M] and weight [M, E].
GateShape gateShapeOf(const exec::TensorType &x,
                      const exec::TensorType &weight);

} // namespace moert

#endif // MOERT_BACKENDS_GATEATTRIBUTES_H
