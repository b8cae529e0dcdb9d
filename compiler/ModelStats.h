//===- ModelStats.h - Parameter statistics of a moe-dialect model ---------===//
#ifndef MOE_COMPILER_MODELSTATS_H
#define MOE_COMPILER_MODELSTATS_H

#include <cstdint>

namespace mlir {
class Operation;
namespace func {
class FuncOp;
} // namespace func
} // namespace mlir

namespace mlir::moe {

/// Parameter counts of one model function. Expert parameters are the
/// arguments consumed as expert weights by moe.moe_layer / moe.expert_ffn;
/// everything else carrying `moe.param` is dense (the gate included).
struct ParamStats {
  int64_t numParams = 0;      // parameter tensors
  int64_t totalElements = 0;  // all parameter elements
  int64_t expertElements = 0; // elements of expert weights
  int64_t denseElements = 0;  // elements of every other parameter
  int64_t moeLayers = 0;      // MoE layers (composite or expanded)
  int64_t numExperts = 0;     // experts per MoE layer (largest found)
  int64_t topK = 0;           // choices per token (largest found)
  /// Parameters a token uses in one forward pass: dense + top_k / E of the
  /// expert parameters.
  double activeElements = 0.0;
};

ParamStats computeParamStats(func::FuncOp func);

} // namespace mlir::moe

#endif // MOE_COMPILER_MODELSTATS_H
