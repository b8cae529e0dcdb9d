//===- ModelBuilder.h - Build a moe-dialect model from a configuration ----===//
#ifndef MOE_COMPILER_MODELBUILDER_H
#define MOE_COMPILER_MODELBUILDER_H

#include "compiler/ModelConfig.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace mlir::moe {

/// Builds `func.func @forward(params..., src_tokens, tgt_tokens, labels) ->
/// (loss, aux_loss, expert_counts...)` for a pre-norm encoder-decoder
/// Transformer whose FFN layers are MoE layers where the configuration says
/// so. Parameters are named like checkpoints name them
/// (`encoder.layers.0.self_attn.q.weight`), in a fixed order, so the output
/// is deterministic.
OwningOpRef<ModuleOp> buildModel(MLIRContext &context,
                                 const ModelConfig &config);

} // namespace mlir::moe

#endif // MOE_COMPILER_MODELBUILDER_H
