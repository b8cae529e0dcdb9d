//===- Passes.h - Passes over the moe dialect -----------------------------===//
#ifndef MOE_PASSES_PASSES_H
#define MOE_PASSES_PASSES_H

#include "mlir/Pass/Pass.h"

namespace mlir::moe {
class MoeDialect;

/// The `compute` option of moe-mixed-precision (and `precision` of
/// moe-training-pipeline): the input precision of GEMMs.
enum class ComputePrecision { fp32, bf16, fp16 };
/// What moe-offload keeps in host memory: nothing, the AdamW moments, or
/// the moments and fp32 master weights with 16-bit device copies.
enum class OffloadMode { none, optimizer, params };

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"
} // namespace mlir::moe

#endif // MOE_PASSES_PASSES_H
