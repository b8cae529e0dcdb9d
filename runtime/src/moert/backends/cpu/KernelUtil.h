//===- KernelUtil.h - Shapes and enums shared by the CPU adapters -*- C++ -*-=//
#ifndef MOERT_BACKENDS_CPU_KERNELUTIL_H
#define MOERT_BACKENDS_CPU_KERNELUTIL_H

#include "moert/Half.h"
#include "moert/dense/Activation.h"
#include "moert/exec/Executor.h"

namespace moert {
namespace cpu {

using exec::DType;
using exec::GroupPosition;
using exec::Instruction;
using exec::Program;
using exec::KernelCall;
using exec::TensorType;

/// Product of all but the last dimension (the rows of a [..., N] tensor).
inline int64_t leadingElements(const TensorType &type) {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < type.shape.size(); ++i)
    rows *= type.shape[i];
  return rows;
}
inline int64_t lastDim(const TensorType &type) {
  return type.shape.empty() ? 1 : type.shape.back();
}

inline Expected<dense::ActivationKind>
activationKind(const KernelCall &call,
                                               const std::string &name) {
  // Plans spell enums as the dialect does ("gelu"); numbers are accepted
  // too (the dialect's enum values).
  if (Expected<std::string> spelled = call.stringAttr(name); spelled.ok()) {
    static const char *const kNames[] = {"relu", "gelu", "gelu_tanh", "silu"};
    for (int kind = 0; kind < 4; ++kind)
      if (*spelled == kNames[kind])
        return static_cast<dense::ActivationKind>(kind);
    return invalidArgument("activation '" + *spelled +
                           "' is not relu, gelu, gelu_tanh or silu");
  }
  MOERT_ASSIGN_OR_RETURN(int64_t kind, call.intAttr(name));
  if (kind < 0 || kind > 3)
    return invalidArgument("activation kind " + std::to_string(kind) +
                           " is not one of relu(0), gelu(1), gelu_tanh(2), "
                           "silu(3)");
  return static_cast<dense::ActivationKind>(kind);
}

/// The instruction's `compute_type` (what moe-mixed-precision chose for a
/// GEMM op: the CPU emulates it by rounding the GEMM inputs); f32 when
/// absent.
inline Expected<ComputeType> computeType(const KernelCall &call) {
  if (!call.hasAttr("compute_type"))
    return ComputeType::F32;
  MOERT_ASSIGN_OR_RETURN(std::string name, call.stringAttr("compute_type"));
  ComputeType type = ComputeType::F32;
  if (!parseComputeType(name.c_str(), type))
    return invalidArgument("compute_type '" + name +
                           "' is not f32, bf16 or f16");
  return type;
}

} // namespace cpu
} // namespace moert

#endif // MOERT_BACKENDS_CPU_KERNELUTIL_H
