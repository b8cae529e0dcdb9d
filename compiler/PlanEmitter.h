//===- PlanEmitter.h - @train_step -> FlatBuffers execution plan ----------===//
#ifndef MOE_COMPILER_PLANEMITTER_H
#define MOE_COMPILER_PLANEMITTER_H

#include "mlir/Support/LLVM.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir {
class ModuleOp;
} // namespace mlir

namespace mlir::moe {

struct PlanEmitterOptions {
  std::string function = "train_step";
  uint64_t seed = 0;
  int64_t alignment = 64;
  /// GPU architectures (10 * major + minor) to generate the MoE
  /// data-movement kernels for (compiler/KernelCodegen.h); empty: none.
  std::vector<int> gpuKernels;
};

/// Serializes the training step of `module` into plan bytes: one persistent
/// buffer per argument (parameters with their initializers, AdamW moments,
/// batch inputs, the step), arena buffers from the static memory plan,
/// one instruction per op (AdamW updating parameters and moments in place),
/// splat constants as `fill` instructions. Errors are emitted on the ops.
FailureOr<std::vector<uint8_t>>
emitTrainingPlan(ModuleOp module, const PlanEmitterOptions &options);

} // namespace mlir::moe

#endif // MOE_COMPILER_PLANEMITTER_H
