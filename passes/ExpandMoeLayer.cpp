//===- ExpandMoeLayer.cpp - moe.moe_layer -> gate/dispatch/ffn/combine ----===//
//
// The composite MoE layer is convenient to write; the expanded form is what
// differentiation, partitioning and fusion work on, so every later stage sees
// the four routing stages with static buffer shapes.
//
//===----------------------------------------------------------------------===//
#include "dialects/Moe/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEEXPANDMOELAYER
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

struct ExpandMoeLayerPattern : OpRewritePattern<MoeLayerOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MoeLayerOp op,
                                PatternRewriter &rewriter) const override {
    auto inputType = cast<RankedTensorType>(op.getInput().getType());
    ArrayRef<int64_t> tokenDims = inputType.getShape().drop_back();
    int64_t modelDim = inputType.getShape().back();
    int64_t numExperts = op.getNumExperts();
    GatingAttr config = op.getConfig();
    // Slots per expert over all gating groups: groups * the capacity of one
    // group of tokens / groups tokens. Group g fills slots
    // [g * Cg, (g + 1) * Cg), so one [E, capacity, M] buffer serves them all
    // and dispatch/combine need not know about groups.
    int64_t capacity = op.inferCapacity();
    if (capacity < 1)
      return rewriter.notifyMatchFailure(op, "no expert capacity exists");

    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    SmallVector<int64_t> perChoice(tokenDims.begin(), tokenDims.end());
    perChoice.push_back(config.getTopK());
    auto i32 = IntegerType::get(ctx, 32);
    auto routingType = RankedTensorType::get(perChoice, i32);
    auto weightsType = RankedTensorType::get(perChoice, Float32Type::get(ctx));
    auto bufferType = RankedTensorType::get({numExperts, capacity, modelDim},
                                            inputType.getElementType());

    auto gate = GateOp::create(rewriter, loc, routingType, routingType,
                               weightsType, op.getExpertCounts().getType(),
                               op.getAuxLoss().getType(), op.getInput(),
                               op.getGateWeight(), config,
                               rewriter.getI64IntegerAttr(capacity),
                               op.getStreamAttr(), op.getEvalAttr());
    auto dispatch = DispatchOp::create(rewriter, loc, bufferType, op.getInput(),
                                       gate.getIndices(), gate.getLocations());
    auto experts = ExpertFfnOp::create(
        rewriter, loc, bufferType, op.getActivationAttr(), dispatch.getResult(),
        op.getW1(), op.getB1(), op.getW2(), op.getB2());
    auto combine = CombineOp::create(rewriter, loc, inputType,
                                     experts.getResult(), gate.getIndices(),
                                     gate.getLocations(), gate.getWeights());
    rewriter.replaceOp(
        op, {combine.getResult(), gate.getExpertCounts(), gate.getAuxLoss()});
    return success();
  }
};

struct MoeExpandMoeLayer
    : mlir::moe::impl::MoeExpandMoeLayerBase<MoeExpandMoeLayer> {
  void runOnOperation() override {
    // The verifier guarantees a capacity for every valid moe_layer; report the
    // op should an invalid one reach the pass anyway.
    WalkResult invalid = getOperation()->walk([](MoeLayerOp op) {
      if (op.inferCapacity() < 1) {
        InFlightDiagnostic diag = op.emitOpError()
                                  << "admits no expert capacity for "
                                  << op.getNumTokens() << " tokens";
        if (op.getConfig().getGroups() > 1)
          diag << " in " << op.getConfig().getGroups() << " groups";
        diag << " and " << op.getNumExperts() << " experts";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (invalid.wasInterrupted())
      return signalPassFailure();

    RewritePatternSet patterns(&getContext());
    patterns.add<ExpandMoeLayerPattern>(&getContext());
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
