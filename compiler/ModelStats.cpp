//===- ModelStats.cpp - Parameter statistics of a moe-dialect model -------===//
#include "compiler/ModelStats.h"

#include "dialects/Moe/MoeOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseSet.h"

using namespace mlir;
using namespace mlir::moe;

ParamStats mlir::moe::computeParamStats(func::FuncOp func) {
  ParamStats stats;
  llvm::DenseSet<Value> expertWeights;
  // Expert weights of one layer, and its (E, k) for the active fraction.
  SmallVector<std::tuple<SmallVector<Value>, int64_t, int64_t>> layers;
  func.walk([&](Operation *op) {
    if (auto layer = dyn_cast<MoeLayerOp>(op)) {
      layers.push_back(
          {{layer.getW1(), layer.getB1(), layer.getW2(), layer.getB2()},
           layer.getNumExperts(),
           layer.getConfig().getTopK()});
    } else if (auto ffn = dyn_cast<ExpertFfnOp>(op)) {
      int64_t topK = 1;
      if (auto gate = ffn.getInput().getDefiningOp<DispatchOp>())
        if (auto router = gate.getIndices().getDefiningOp<GateOp>())
          topK = router.getConfig().getTopK();
      int64_t experts =
          cast<RankedTensorType>(ffn.getInput().getType()).getShape()[0];
      layers.push_back({{ffn.getW1(), ffn.getB1(), ffn.getW2(), ffn.getB2()},
                        experts,
                        topK});
    }
  });

  auto elements = [](Value value) {
    return cast<RankedTensorType>(value.getType()).getNumElements();
  };
  double activeExpert = 0.0;
  for (auto &[weights, experts, topK] : layers) {
    ++stats.moeLayers;
    stats.numExperts = std::max(stats.numExperts, experts);
    stats.topK = std::max(stats.topK, topK);
    for (Value w : weights) {
      if (!isa<BlockArgument>(w) || !expertWeights.insert(w).second)
        continue;
      activeExpert += static_cast<double>(elements(w)) *
                      static_cast<double>(topK) / static_cast<double>(experts);
    }
  }

  for (BlockArgument arg : func.getArguments()) {
    if (!func.getArgAttr(arg.getArgNumber(), MoeDialect::kParamAttrName))
      continue;
    ++stats.numParams;
    int64_t count = elements(arg);
    stats.totalElements += count;
    if (expertWeights.contains(arg))
      stats.expertElements += count;
    else
      stats.denseElements += count;
  }
  stats.activeElements =
      static_cast<double>(stats.denseElements) + activeExpert;
  return stats;
}
