//===- InitAll.h - Registration shared by every compiler tool -------------===//
#ifndef MOE_COMPILER_INITALL_H
#define MOE_COMPILER_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace mlir::moe {
/// Adds the moe dialect and the upstream dialects a model or a training plan
/// uses (func, arith, tensor, shard, ...) to `registry`.
void registerAllDialects(DialectRegistry &registry);
/// Registers the moe passes and pipelines, and the upstream passes the
/// pipelines use, with the global pass registry.
void registerAllPasses();
} // namespace mlir::moe

#endif // MOE_COMPILER_INITALL_H
