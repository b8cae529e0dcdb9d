//===- MixedPrecision.cpp - bf16/fp16 compute and fp16 loss scaling -------===//
//
// Mixed precision as the large-model recipes do it (DeepSpeed, Megatron):
// the matrix products run on bf16/fp16 inputs with fp32 accumulation, while
// everything whose precision decides stability stays fp32: master weights
// and AdamW moments, the router (its GEMM, softmax and top-k: a bf16 router
// flips routing decisions), the loss, layer norms, the optimizer.
//
// The choice is an attribute of each GEMM op, `compute_type`, holding the
// input element type; tensor types are unchanged, so every pass, the memory
// plan and the checkpoints keep seeing fp32 tensors, and a backend decides
// how to honour the attribute (cuBLAS bf16 GEMMs on the GPU, rounding of
// the inputs on the CPU).
//
// fp16 also needs loss scaling: its gradients underflow below 2^-24. The
// step gets a `loss_scale` input that multiplies the loss gradient seeds;
// the gradients are unscaled where they are consumed (the global norm and
// AdamW's gradient factor), which costs two scalar divisions instead of a
// pass over every gradient.
//
//===----------------------------------------------------------------------===//
#include "dialects/Moe/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEMIXEDPRECISION
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr StringLiteral kComputeTypeAttr = "compute_type";
constexpr StringLiteral kLossScaleInput = "loss_scale";

/// The ops whose inputs may be reduced-precision: the matrix products.
bool isGemmOp(Operation *op) {
  return isa<LinearOp, LinearGradOp, AttentionOp, AttentionGradOp, ExpertFfnOp,
             ExpertFfnGradOp>(op);
}

bool isComputeElementType(Type type) {
  return type.isF32() || type.isBF16() || type.isF16();
}

struct MoeMixedPrecision
    : mlir::moe::impl::MoeMixedPrecisionBase<MoeMixedPrecision> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(verifyExistingMarks(module)))
      return signalPassFailure();
    MLIRContext *ctx = &getContext();
    Type element = compute == ComputePrecision::bf16
                       ? Type(BFloat16Type::get(ctx))
                       : Type(Float16Type::get(ctx));
    module.walk([&](Operation *op) {
      if (!isGemmOp(op))
        return;
      if (compute == ComputePrecision::fp32)
        op->removeAttr(kComputeTypeAttr);
      else
        op->setAttr(kComputeTypeAttr, TypeAttr::get(element));
    });
    if (compute != ComputePrecision::fp16)
      return;
    if (auto step = module.lookupSymbol<func::FuncOp>("train_step"))
      if (failed(addLossScaling(step)))
        signalPassFailure();
  }

  /// Marks already present must be on GEMM ops and name a float type the
  /// backends know.
  LogicalResult verifyExistingMarks(ModuleOp module) {
    WalkResult result =
        module.walk([&](Operation *op) {
          Attribute attr = op->getAttr(kComputeTypeAttr);
          if (!attr)
            return WalkResult::advance();
          if (!isGemmOp(op)) {
            op->emitOpError()
                << "has a compute_type, but only moe.linear, moe.attention, "
                   "moe.expert_ffn and their gradient ops run in reduced "
                   "precision (the router, the loss, norms and the optimizer "
                   "stay fp32)";
            return WalkResult::interrupt();
          }
          auto type = dyn_cast<TypeAttr>(attr);
          if (!type || !isComputeElementType(type.getValue())) {
            op->emitOpError()
                << "compute_type must be f32, bf16 or f16, found " << attr;
            return WalkResult::interrupt();
          }
          return WalkResult::advance();
        });
    return failure(result.wasInterrupted());
  }

  LogicalResult addLossScaling(func::FuncOp step);
};

LogicalResult MoeMixedPrecision::addLossScaling(func::FuncOp step) {
  auto fail = [&](const Twine &what) {
    return step.emitError() << "moe-mixed-precision: " << what;
  };
  if (!step.getBody().hasOneBlock())
    return fail("@train_step must be a single block");
  for (unsigned i = 0, e = step.getNumArguments(); i < e; ++i)
    if (auto input =
            step.getArgAttrOfType<StringAttr>(i, MoeDialect::kInputAttrName);
        input && input.getValue() == kLossScaleInput)
      return success(); // already scaled (the pass ran before)

  SmallVector<ClipByGlobalNormOp> clips;
  SmallVector<CrossEntropyGradOp> lossGrads;
  SmallVector<GateGradOp> gateGrads;
  step.walk([&](Operation *op) {
    if (auto clip = dyn_cast<ClipByGlobalNormOp>(op))
      clips.push_back(clip);
    else if (auto grad = dyn_cast<CrossEntropyGradOp>(op))
      lossGrads.push_back(grad);
    else if (auto grad = dyn_cast<GateGradOp>(op))
      gateGrads.push_back(grad);
  });
  if (clips.size() != 1)
    return fail("fp16 loss scaling needs exactly one moe.clip_by_global_norm "
                "in @train_step (built by moe-build-train-step), found ")
           << clips.size();
  if (lossGrads.empty())
    return fail("fp16 loss scaling found no moe.cross_entropy_grad to seed "
                "with the loss scale");

  // The scale: a scalar input of the step, written by the trainer.
  OpBuilder builder(step.getContext());
  Location loc = step.getLoc();
  auto scalar = RankedTensorType::get({}, builder.getF32Type());
  unsigned index = step.getNumArguments();
  if (failed(step.insertArgument(index, scalar,
                                 builder.getDictionaryAttr(builder.getNamedAttr(
                                     MoeDialect::kInputAttrName,
                                     builder.getStringAttr(kLossScaleInput))),
                                 loc)))
    return fail("cannot add the loss_scale argument");
  Value scale = step.getArgument(index);

  // Seeds: d(scale * objective) = scale * d(objective).
  auto scaled = [&](Operation *user, Value seed) -> Value {
    builder.setInsertionPoint(user);
    return arith::MulFOp::create(builder, user->getLoc(), seed, scale);
  };
  for (CrossEntropyGradOp grad : lossGrads)
    grad.getLossGradMutable().assign(scaled(grad, grad.getLossGrad()));
  for (GateGradOp grad : gateGrads)
    grad.getAuxLossGradMutable().assign(scaled(grad, grad.getAuxLossGrad()));

  // Unscaling: the sum of squares of the scaled gradients is scale^2 times
  // the true one (divided twice: scale^2 may not fit in fp32), and every
  // consumer of the clipping factor applies it to scaled gradients.
  ClipByGlobalNormOp clip = clips.front();
  builder.setInsertionPoint(clip);
  Value sum = clip.getSumSquares();
  Value once = arith::DivFOp::create(builder, clip.getLoc(), sum, scale);
  Value twice = arith::DivFOp::create(builder, clip.getLoc(), once, scale);
  clip.getSumSquaresMutable().assign(twice);
  builder.setInsertionPointAfter(clip);
  auto unscale =
      arith::DivFOp::create(builder, clip.getLoc(), clip.getScale(), scale);
  clip.getScale().replaceAllUsesExcept(unscale.getResult(), unscale);
  return success();
}

} // namespace
