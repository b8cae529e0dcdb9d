//===- Differentiate.cpp - Reverse-mode differentiation of model functions ===//
//
// From `@f(params..., batch...) -> (loss, aux_loss?, metrics...)` builds
// `@f_grad(params..., batch...) -> (loss, aux_loss?, metrics..., grads...)`:
// the forward body followed by its backward graph, built op by op through
// DifferentiableOpInterface. The differentiated objective is
// `loss + aux_loss_coef * aux_loss`; one gradient per `moe.param` argument is
// returned, in argument order, tagged with the parameter's name.
//
//===----------------------------------------------------------------------===//
#include "dialects/Moe/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseMap.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEDIFFERENTIATE
#include "passes/Passes.h.inc"
} // namespace mlir::moe

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

namespace {

bool isDifferentiableType(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  return tensor && isa<FloatType>(tensor.getElementType());
}

Value splat(OpBuilder &builder, Location loc, Type type, double value) {
  auto tensor = cast<RankedTensorType>(type);
  return arith::ConstantOp::create(
      builder, loc, tensor,
      DenseElementsAttr::get(
          tensor, builder.getFloatAttr(tensor.getElementType(), value)));
}

/// Gradients accumulated per value: a value used several times (a residual
/// stream, a tied embedding) gets the sum of the gradients of its uses.
class GradientMap {
public:
  GradientMap(OpBuilder &builder) : builder(builder) {}

  void accumulate(Value value, Value grad, Location loc) {
    if (!grad || !isDifferentiableType(value.getType()))
      return;
    Value &slot = grads[value];
    slot = slot ? AddOp::create(builder, loc, slot, grad).getResult() : grad;
  }
  Value lookup(Value value) const { return grads.lookup(value); }

private:
  OpBuilder &builder;
  llvm::DenseMap<Value, Value> grads;
};

struct MoeDifferentiate
    : mlir::moe::impl::MoeDifferentiateBase<MoeDifferentiate> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>(functionName);
    if (!forward) {
      module.emitError() << "moe-differentiate: no function @" << functionName
                         << " to differentiate";
      return signalPassFailure();
    }
    if (!std::isfinite(auxLossCoef.getValue())) {
      module.emitError() << "moe-differentiate: aux-loss-coef must be finite, "
                            "found "
                         << auxLossCoef.getValue();
      return signalPassFailure();
    }
    std::string gradName = functionName + "_grad";
    if (module.lookupSymbol(gradName)) {
      forward.emitError() << "moe-differentiate: @" << gradName
                          << " already exists";
      return signalPassFailure();
    }
    if (failed(differentiate(forward, gradName)))
      signalPassFailure();
  }

  LogicalResult differentiate(func::FuncOp forward, StringRef gradName);
};

LogicalResult MoeDifferentiate::differentiate(func::FuncOp forward,
                                              StringRef gradName) {
  if (!forward.getBody().hasOneBlock())
    return forward.emitError()
           << "moe-differentiate expects a single-block function";

  // Which results seed the backward pass, and with what weight.
  SmallVector<std::pair<unsigned, double>> seeds;
  for (unsigned i = 0, e = forward.getNumResults(); i < e; ++i) {
    auto role =
        forward.getResultAttrOfType<StringAttr>(i, MoeDialect::kRoleAttrName);
    if (!role)
      continue;
    if (role.getValue() == "loss")
      seeds.push_back({i, 1.0});
    else if (role.getValue() == "aux_loss" && auxLossCoef != 0.0)
      seeds.push_back({i, auxLossCoef});
  }
  if (llvm::none_of(seeds, [&](auto seed) { return seed.second == 1.0; }))
    return forward.emitError() << "moe-differentiate: @" << forward.getName()
                               << " has no result with moe.role = \"loss\"";
  WalkResult composite = forward.walk([](MoeLayerOp op) {
    op.emitOpError() << "must be expanded before differentiation (run "
                        "--moe-expand-moe-layer first)";
    return WalkResult::interrupt();
  });
  if (composite.wasInterrupted())
    return failure();

  // The gradient function starts as a clone of the forward function.
  OpBuilder builder(forward);
  builder.setInsertionPointAfter(forward);
  auto grad = cast<func::FuncOp>(builder.clone(*forward));
  grad.setSymName(gradName);
  Block &body = grad.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  builder.setInsertionPoint(ret);
  Location loc = ret.getLoc();

  GradientMap grads(builder);
  for (auto [index, weight] : seeds) {
    Value result = ret.getOperand(index);
    grads.accumulate(result, splat(builder, loc, result.getType(), weight),
                     loc);
  }

  // Reverse walk over the forward ops (a snapshot: backward ops are inserted
  // into the same block, after them).
  SmallVector<Operation *> forwardOps;
  for (Operation &op : body.without_terminator())
    forwardOps.push_back(&op);
  for (Operation *op : llvm::reverse(forwardOps)) {
    SmallVector<Value> resultGrads;
    bool any = false;
    for (Value result : op->getResults()) {
      resultGrads.push_back(grads.lookup(result));
      any |= static_cast<bool>(resultGrads.back());
    }
    if (!any)
      continue;
    auto differentiable = dyn_cast<DifferentiableOpInterface>(op);
    if (!differentiable)
      return op->emitOpError()
             << "is on the path to the loss but has no gradient rule "
                "(DifferentiableOpInterface)";
    SmallVector<Value> operandGrads;
    if (failed(
            differentiable.buildGradients(builder, resultGrads, operandGrads)))
      return failure();
    if (operandGrads.size() != op->getNumOperands())
      return op->emitOpError()
             << "gradient rule returned " << operandGrads.size()
             << " gradients for " << op->getNumOperands() << " operands";
    for (auto [operand, operandGrad] :
         llvm::zip(op->getOperands(), operandGrads))
      grads.accumulate(operand, operandGrad, op->getLoc());
  }

  // Results: the forward results, then one gradient per parameter.
  SmallVector<Value> results(ret.getOperands());
  SmallVector<Attribute> resultAttrs;
  for (unsigned i = 0, e = forward.getNumResults(); i < e; ++i)
    resultAttrs.push_back(forward.getResultAttrDict(i)
                              ? Attribute(forward.getResultAttrDict(i))
                              : builder.getDictionaryAttr({}));
  for (BlockArgument arg : body.getArguments()) {
    auto name = grad.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                  MoeDialect::kParamAttrName);
    if (!name)
      continue;
    Value argGrad = grads.lookup(arg);
    // A parameter the loss does not depend on has a zero gradient.
    if (!argGrad)
      argGrad = splat(builder, loc, arg.getType(), 0.0);
    results.push_back(argGrad);
    resultAttrs.push_back(builder.getDictionaryAttr(
        {builder.getNamedAttr(MoeDialect::kRoleAttrName,
                              builder.getStringAttr("grad")),
         builder.getNamedAttr(MoeDialect::kParamAttrName, name)}));
  }
  func::ReturnOp::create(builder, loc, results);
  ret.erase();
  SmallVector<Type> resultTypes;
  for (Value v : results)
    resultTypes.push_back(v.getType());
  grad.setFunctionType(
      builder.getFunctionType(body.getArgumentTypes(), resultTypes));
  grad.setAllResultAttrs(resultAttrs);
  return success();
}

} // namespace
