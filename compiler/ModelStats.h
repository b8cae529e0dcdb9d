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

/// Matrix-product FLOPs of one execution of a function, from the tensor
/// types it holds (the local shapes of a partitioned step): 2*M*N*K per
/// product. Counted: moe.linear (x W), moe.attention (q k^T and p v per
/// head), moe.expert_ffn (two products per expert), moe.gate (the router
/// logits x Wg), and their gradient ops with two products per forward
/// product (input and weight gradients; for attention dV, dP, dQ, dK).
/// Recomputation inside backward kernels, causal masking, softmax, norms,
/// element-wise ops, dispatch/combine (index moves) and the optimizer are
/// not counted.
struct MatmulFlops {
  int64_t linear = 0;    // linear + linear_grad
  int64_t attention = 0; // attention + attention_grad
  int64_t experts = 0;   // expert_ffn + expert_ffn_grad
  int64_t gates = 0;     // gate + gate_grad
  int64_t forward = 0;   // the forward ops of the four kinds above
  int64_t backward = 0;  // their gradient ops
  int64_t total() const { return forward + backward; }
};

MatmulFlops computeMatmulFlops(func::FuncOp func);

} // namespace mlir::moe

#endif // MOE_COMPILER_MODELSTATS_H
