//===- BuildTrainStep.cpp - AdamW training step from a gradient function --===//
//
// From `@forward_grad(params..., batch...) -> (loss, aux?, counts...,
// grads...)` builds
//   @train_step(params..., exp_avg..., exp_avg_sq..., batch..., step)
//     -> (loss, aux?, counts..., grad_norm, lr, params'..., exp_avg'...,
//         exp_avg_sq'...)
// with global-norm clipping (partial sums kept per parameter group, so a
// partitioner can reduce each over its own group), the inverse-sqrt warmup
// schedule and one AdamW update per parameter.
//
//===----------------------------------------------------------------------===//
#include "dialects/Moe/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <limits>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEBUILDTRAINSTEP
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

struct Parameter {
  unsigned argIndex;
  StringAttr name;
  Value grad; // in @forward_grad's return
  ParamGroup group;
};

struct MoeBuildTrainStep
    : mlir::moe::impl::MoeBuildTrainStepBase<MoeBuildTrainStep> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto gradFn = module.lookupSymbol<func::FuncOp>(functionName);
    if (!gradFn) {
      module.emitError() << "moe-build-train-step: no function @"
                         << functionName << " (run --moe-differentiate first)";
      return signalPassFailure();
    }
    if (module.lookupSymbol("train_step")) {
      gradFn.emitError() << "moe-build-train-step: @train_step already exists";
      return signalPassFailure();
    }
    if (failed(validateOptions(gradFn)) || failed(build(gradFn)))
      signalPassFailure();
  }

  LogicalResult validateOptions(func::FuncOp gradFn) {
    auto fail = [&](StringRef what) {
      return gradFn.emitError() << "moe-build-train-step: " << what;
    };
    // Every value must be finite: an infinite learning rate or norm bound
    // passes a "> 0" test but makes every step's update non-finite.
    auto value = [](double v) { return llvm::formatv("{0}", v).str(); };
    if (!(learningRate > 0.0 && std::isfinite(learningRate)))
      return fail("lr must be finite and > 0, found " + value(learningRate));
    if (warmupSteps < 0)
      return fail("warmup-steps must be >= 0");
    if (!(beta1 >= 0.0 && beta1 < 1.0) || !(beta2 >= 0.0 && beta2 < 1.0))
      return fail("beta1 and beta2 must be in [0, 1)");
    if (!(epsilon > 0.0 && std::isfinite(epsilon)))
      return fail("epsilon must be finite and > 0, found " + value(epsilon));
    if (!(weightDecay >= 0.0 && std::isfinite(weightDecay)))
      return fail("weight-decay must be finite and >= 0, found " +
                  value(weightDecay));
    if (!(clipNorm >= 0.0 && std::isfinite(clipNorm)))
      return fail("clip-norm must be finite and >= 0 (0 disables clipping), "
                  "found " +
                  value(clipNorm));
    return success();
  }

  LogicalResult build(func::FuncOp gradFn);
};

LogicalResult MoeBuildTrainStep::build(func::FuncOp gradFn) {
  Block &gradBody = gradFn.getBody().front();
  auto gradReturn = cast<func::ReturnOp>(gradBody.getTerminator());

  // Expert weights are the ones the expert FFNs consume.
  llvm::DenseSet<Value> expertArgs;
  gradFn.walk([&](ExpertFfnOp ffn) {
    for (Value w : {ffn.getW1(), ffn.getB1(), ffn.getW2(), ffn.getB2()})
      expertArgs.insert(w);
  });

  // Parameters (with their gradient result), batch inputs, forward results.
  llvm::StringMap<Value> gradByName;
  SmallVector<unsigned> forwardResults;
  for (unsigned i = 0, e = gradFn.getNumResults(); i < e; ++i) {
    auto role =
        gradFn.getResultAttrOfType<StringAttr>(i, MoeDialect::kRoleAttrName);
    if (role && role.getValue() == "grad") {
      auto name =
          gradFn.getResultAttrOfType<StringAttr>(i, MoeDialect::kParamAttrName);
      if (!name)
        return gradFn.emitError()
               << "result #" << i << " is a gradient without moe.param";
      gradByName[name.getValue()] = gradReturn.getOperand(i);
    } else {
      forwardResults.push_back(i);
    }
  }
  SmallVector<Parameter> params;
  SmallVector<unsigned> batchArgs;
  for (BlockArgument arg : gradBody.getArguments()) {
    unsigned i = arg.getArgNumber();
    if (auto name = gradFn.getArgAttrOfType<StringAttr>(
            i, MoeDialect::kParamAttrName)) {
      Value grad = gradByName.lookup(name.getValue());
      if (!grad)
        return gradFn.emitError() << "parameter '" << name.getValue()
                                  << "' has no gradient result";
      if (!cast<RankedTensorType>(arg.getType()).getElementType().isF32())
        return gradFn.emitError()
               << "parameter '" << name.getValue()
               << "' is not f32; low-precision parameters need fp32 master "
                  "weights, which this pass does not build yet";
      params.push_back(
          {i, name, grad,
           expertArgs.contains(arg) ? ParamGroup::expert : ParamGroup::dense});
    } else {
      batchArgs.push_back(i);
    }
  }
  if (params.empty())
    return gradFn.emitError()
           << "@" << gradFn.getName() << " has no moe.param arguments to train";

  // Signature of @train_step.
  OpBuilder builder(gradFn);
  builder.setInsertionPointAfter(gradFn);
  Location loc = gradFn.getLoc();
  MLIRContext *ctx = &getContext();
  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  auto dict = [&](ArrayRef<std::pair<StringRef, StringRef>> entries) {
    SmallVector<NamedAttribute> attrs;
    for (auto [key, value] : entries)
      attrs.push_back(builder.getNamedAttr(key, builder.getStringAttr(value)));
    return builder.getDictionaryAttr(attrs);
  };
  for (const Parameter &p : params) {
    argTypes.push_back(gradBody.getArgument(p.argIndex).getType());
    argAttrs.push_back(gradFn.getArgAttrDict(p.argIndex));
  }
  for (StringRef state : {"exp_avg", "exp_avg_sq"})
    for (const Parameter &p : params) {
      argTypes.push_back(gradBody.getArgument(p.argIndex).getType());
      argAttrs.push_back(
          dict({{MoeDialect::kOptStateAttrName, state},
                {MoeDialect::kStateOfAttrName, p.name.getValue()}}));
    }
  for (unsigned i : batchArgs) {
    argTypes.push_back(gradBody.getArgument(i).getType());
    argAttrs.push_back(gradFn.getArgAttrDict(i));
  }
  auto stepType = RankedTensorType::get({}, builder.getI64Type());
  argTypes.push_back(stepType);
  argAttrs.push_back(dict({{MoeDialect::kInputAttrName, "step"}}));

  auto trainStep = func::FuncOp::create(builder, loc, "train_step",
                                        builder.getFunctionType(argTypes, {}));
  Block *body = trainStep.addEntryBlock();
  builder.setInsertionPointToStart(body);
  unsigned numParams = params.size();
  auto paramArg = [&](unsigned k) { return body->getArgument(k); };
  auto expAvgArg = [&](unsigned k) { return body->getArgument(numParams + k); };
  auto expAvgSqArg = [&](unsigned k) {
    return body->getArgument(2 * numParams + k);
  };
  Value step = body->getArguments().back();

  // The forward and backward computation, cloned.
  IRMapping mapping;
  for (auto [k, p] : llvm::enumerate(params))
    mapping.map(gradBody.getArgument(p.argIndex), paramArg(k));
  for (auto [k, i] : llvm::enumerate(batchArgs))
    mapping.map(gradBody.getArgument(i), body->getArgument(3 * numParams + k));
  for (Operation &op : gradBody.without_terminator())
    builder.clone(op, mapping);

  // Global gradient norm: one partial sum per group.
  auto scalar = RankedTensorType::get({}, builder.getF32Type());
  Value groupSums[2] = {};
  for (const Parameter &p : params) {
    Value sq = SumSquaresOp::create(builder, loc, scalar, p.group,
                                    mapping.lookup(p.grad));
    Value &sum = groupSums[static_cast<int>(p.group)];
    sum = sum ? AddOp::create(builder, loc, sum, sq).getResult() : sq;
  }
  Value total =
      groupSums[0] && groupSums[1]
          ? AddOp::create(builder, loc, groupSums[0], groupSums[1]).getResult()
          : (groupSums[0] ? groupSums[0] : groupSums[1]);
  double maxNorm = clipNorm > 0.0 ? clipNorm.getValue()
                                  : std::numeric_limits<double>::infinity();
  auto clip = ClipByGlobalNormOp::create(builder, loc, scalar, scalar, total,
                                         builder.getF64FloatAttr(maxNorm));
  Value lr = LrScheduleOp::create(builder, loc, scalar, step,
                                  builder.getF64FloatAttr(learningRate),
                                  builder.getI64IntegerAttr(warmupSteps));

  // One AdamW update per parameter; biases and norm scales (rank 1) are not
  // decayed, as in the usual Transformer recipes.
  SmallVector<Value> newParams, newExpAvg, newExpAvgSq;
  for (auto [k, p] : llvm::enumerate(params)) {
    Value param = paramArg(k);
    bool decay = cast<RankedTensorType>(param.getType()).getRank() >= 2;
    auto update = AdamWOp::create(
        builder, loc, param.getType(), param.getType(), param.getType(),
        ParamGroupAttr::get(ctx, p.group), param, mapping.lookup(p.grad),
        expAvgArg(k), expAvgSqArg(k), lr, clip.getScale(), step,
        builder.getF64FloatAttr(beta1), builder.getF64FloatAttr(beta2),
        builder.getF64FloatAttr(epsilon),
        builder.getF64FloatAttr(decay ? weightDecay.getValue() : 0.0));
    newParams.push_back(update.getNewParam());
    newExpAvg.push_back(update.getNewExpAvg());
    newExpAvgSq.push_back(update.getNewExpAvgSq());
  }

  // Results and their annotations.
  SmallVector<Value> results;
  SmallVector<Attribute> resultAttrs;
  for (unsigned i : forwardResults) {
    results.push_back(mapping.lookup(gradReturn.getOperand(i)));
    DictionaryAttr attrs = gradFn.getResultAttrDict(i);
    resultAttrs.push_back(attrs ? attrs : builder.getDictionaryAttr({}));
  }
  results.push_back(clip.getNorm());
  resultAttrs.push_back(dict({{MoeDialect::kRoleAttrName, "metric"},
                              {MoeDialect::kNameAttrName, "grad_norm"}}));
  results.push_back(lr);
  resultAttrs.push_back(dict({{MoeDialect::kRoleAttrName, "metric"},
                              {MoeDialect::kNameAttrName, "lr"}}));
  for (auto [k, p] : llvm::enumerate(params)) {
    results.push_back(newParams[k]);
    resultAttrs.push_back(
        dict({{MoeDialect::kRoleAttrName, "new_param"},
              {MoeDialect::kParamAttrName, p.name.getValue()}}));
  }
  for (auto [state, values] :
       {std::make_pair(StringRef("exp_avg"), &newExpAvg),
        std::make_pair(StringRef("exp_avg_sq"), &newExpAvgSq)})
    for (auto [k, p] : llvm::enumerate(params)) {
      results.push_back((*values)[k]);
      resultAttrs.push_back(
          dict({{MoeDialect::kRoleAttrName, "new_state"},
                {MoeDialect::kOptStateAttrName, state},
                {MoeDialect::kStateOfAttrName, p.name.getValue()}}));
    }
  func::ReturnOp::create(builder, loc, results);

  SmallVector<Type> resultTypes;
  for (Value v : results)
    resultTypes.push_back(v.getType());
  trainStep.setFunctionType(builder.getFunctionType(argTypes, resultTypes));
  trainStep.setAllArgAttrs(ArrayRef<DictionaryAttr>(argAttrs));
  trainStep.setAllResultAttrs(resultAttrs);
  return success();
}

} // namespace
