//===- InitAll.cpp - Registration shared by every compiler tool -----------===//
#include "compiler/InitAll.h"
#include "compiler/Pipelines.h"

#include "dialects/Moe/MoeDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/Extensions/InlinerExtension.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/Transforms/Passes.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

void mlir::moe::registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<mlir::moe::MoeDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect, mlir::tensor::TensorDialect,
                  mlir::shard::ShardDialect>();
  mlir::func::registerInlinerExtension(registry);
}

void mlir::moe::registerAllPasses() {
  mlir::moe::registerMoePasses();
  mlir::moe::registerPipelines();
  // Generic cleanups and the upstream partitioning passes the pipelines use.
  mlir::registerTransformsPasses();
  mlir::shard::registerShardPasses();
}
