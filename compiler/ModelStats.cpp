//===- ModelStats.cpp - Parameter and FLOP statistics of moe-dialect IR ---===//
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

MatmulFlops mlir::moe::computeMatmulFlops(func::FuncOp func) {
  MatmulFlops flops;
  auto shape = [](Value value) {
    return cast<RankedTensorType>(value.getType()).getShape();
  };
  auto elements = [](Value value) {
    return cast<RankedTensorType>(value.getType()).getNumElements();
  };
  auto add = [&](int64_t &kind, int64_t forwardFlops, bool gradient) {
    // A gradient op computes two products per forward product.
    int64_t amount = gradient ? 2 * forwardFlops : forwardFlops;
    kind += amount;
    (gradient ? flops.backward : flops.forward) += amount;
  };
  // [..., K] x [K, N]: 2 * (tokens) * K * N.
  auto linearFlops = [&](Value input, Value output) {
    int64_t k = shape(input).back();
    int64_t n = shape(output).back();
    return 2 * (elements(input) / std::max<int64_t>(k, 1)) * k * n;
  };
  // Per batch row and head: q k^T and p v, each 2 * Sq * Sk * (D / heads);
  // summed over heads: 4 * B * Sq * Sk * D.
  auto attentionFlops = [&](Value query, Value key) {
    ArrayRef<int64_t> q = shape(query);
    int64_t sq = q[q.size() - 2], d = q.back();
    int64_t sk = shape(key)[shape(key).size() - 2];
    int64_t batch = elements(query) / std::max<int64_t>(sq * d, 1);
    return 4 * batch * sq * sk * d;
  };
  // [E, C, M] x [E, M, H] and back: 4 * E * C * M * H.
  auto expertFlops = [&](Value input, Value w1) {
    ArrayRef<int64_t> x = shape(input);
    return 4 * x[0] * x[1] * x[2] * shape(w1).back();
  };
  // [S, M] x [M, E].
  auto gateFlops = [&](Value input, Value weight) {
    int64_t m = shape(weight)[0], e = shape(weight)[1];
    return 2 * (elements(input) / std::max<int64_t>(m, 1)) * m * e;
  };
  func.walk([&](Operation *op) {
    if (auto linear = dyn_cast<LinearOp>(op))
      add(flops.linear, linearFlops(linear.getInput(), linear.getResult()),
          false);
    else if (auto grad = dyn_cast<LinearGradOp>(op))
      add(flops.linear, linearFlops(grad.getInput(), grad.getResultGrad()),
          true);
    else if (auto attention = dyn_cast<AttentionOp>(op))
      add(flops.attention,
          attentionFlops(attention.getQuery(), attention.getKey()), false);
    else if (auto grad = dyn_cast<AttentionGradOp>(op))
      add(flops.attention, attentionFlops(grad.getQuery(), grad.getKey()),
          true);
    else if (auto ffn = dyn_cast<ExpertFfnOp>(op))
      add(flops.experts, expertFlops(ffn.getInput(), ffn.getW1()), false);
    else if (auto grad = dyn_cast<ExpertFfnGradOp>(op))
      add(flops.experts, expertFlops(grad.getInput(), grad.getW1()), true);
    else if (auto gate = dyn_cast<GateOp>(op))
      add(flops.gates, gateFlops(gate.getInput(), gate.getWeight()), false);
    else if (auto grad = dyn_cast<GateGradOp>(op))
      add(flops.gates, gateFlops(grad.getInput(), grad.getWeight()), true);
  });
  return flops;
}
