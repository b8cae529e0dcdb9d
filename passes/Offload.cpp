//===- Offload.cpp - E+Z-Offload: host master weights and moments ---------===//
//
// ZeRO-Offload's placement (Ren et al., 2021), as DeepSpeed-MoE's
// E+Z-Offload uses it: the fp32 state AdamW needs (master weights, two
// moments: 12 bytes per parameter) lives in host memory and is updated
// there, while the device keeps 16-bit parameters for the forward and
// backward passes (2 bytes per parameter instead of 4 + 8).
//
// The pass rewrites the partitioned @train_step; the placement is visible
// in the IR (`moe.placement = "host"` arguments, `moe.device_copy`
// arguments and results, `moe.convert` ops) and in the plan (host buffers,
// bf16/f16 buffers, the `refresh_params` program).
//
// Which parameters get a 16-bit copy: those whose every use besides the
// optimizer is the weight of a matrix product (moe.linear, moe.expert_ffn
// and their gradients). A GEMM with `compute_type` bf16 rounds its fp32
// weight to bf16 anyway, so reading the bf16 copy changes no bit of the
// step when the copy's type is the GEMM's compute type. Parameters read
// elsewhere (router, embeddings, norms, biases) keep their fp32 value on
// the device as the master: rounding them would change the step.
//
//===----------------------------------------------------------------------===//
#include "dialects/Moe/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

#include "llvm/ADT/BitVector.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEOFFLOAD
#define GEN_PASS_DEF_MOESTREAMGRADIENTS
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr StringLiteral kHost = "host";
constexpr StringLiteral kRefreshFunction = "refresh_params";
constexpr StringLiteral kDecodingFunctions[] = {"encode", "decode_step",
                                                "evaluate"};

/// Whether `use` is the weight operand of a matrix product whose compute
/// type, when already chosen, is `half`.
bool isGemmWeight(OpOperand &use, Type half) {
  Operation *op = use.getOwner();
  if (auto marked = op->getAttrOfType<TypeAttr>("compute_type");
      marked && marked.getValue() != half)
    return false;
  unsigned i = use.getOperandNumber();
  if (auto linear = dyn_cast<LinearOp>(op))
    return i == linear.getWeightMutable().getOperandNumber();
  if (auto grad = dyn_cast<LinearGradOp>(op))
    return i == grad.getWeightMutable().getOperandNumber();
  if (auto ffn = dyn_cast<ExpertFfnOp>(op))
    return i == ffn.getW1Mutable().getOperandNumber() ||
           i == ffn.getW2Mutable().getOperandNumber();
  if (auto grad = dyn_cast<ExpertFfnGradOp>(op))
    return i == grad.getW1Mutable().getOperandNumber() ||
           i == grad.getW2Mutable().getOperandNumber();
  return false;
}

/// The argument attributes of `fn`, one dictionary per argument (empty
/// where it has none), to edit here and write back once with
/// setAllArgAttrs: setting them an argument at a time (setArgAttr,
/// insertArgument) interns a new array of all of them each time, which is
/// quadratic in the arguments of a deep model's step (gigabytes of a
/// context for a few thousand parameters).
SmallVector<DictionaryAttr> argAttrDicts(func::FuncOp fn) {
  SmallVector<DictionaryAttr> dicts;
  for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i) {
    DictionaryAttr dict = fn.getArgAttrDict(i);
    dicts.push_back(dict ? dict : DictionaryAttr::get(fn.getContext()));
  }
  return dicts;
}

/// `dicts[index]` with `name` set to `value`.
void setAttr(SmallVectorImpl<DictionaryAttr> &dicts, unsigned index,
             StringRef name, Attribute value) {
  NamedAttrList attrs(dicts[index]);
  attrs.set(name, value);
  dicts[index] = attrs.getDictionary(value.getContext());
}

/// One parameter that gets a 16-bit device copy.
struct Candidate {
  BlockArgument param;           // the fp32 parameter as partitioned
  AdamWOp update;                // its AdamW
  shard::AllSliceOp slice;       // ZeRO: the cut of `param` AdamW reads
  SmallVector<Operation *> back; // ZeRO: new shard -> ... -> whole value
  unsigned resultIndex = 0;      // the step result of the new parameter
  StringAttr name;
};

struct MoeOffload : mlir::moe::impl::MoeOffloadBase<MoeOffload> {
  using Base::Base;

  void runOnOperation() override {
    if (mode == OffloadMode::none)
      return;
    ModuleOp module = getOperation();
    auto step = module.lookupSymbol<func::FuncOp>("train_step");
    if (!step) {
      module.emitError() << "moe-offload: expected @train_step (run "
                            "moe-build-train-step first)";
      return signalPassFailure();
    }
    if (!step.getBody().hasOneBlock()) {
      step.emitError() << "moe-offload: @train_step must be a single block";
      return signalPassFailure();
    }
    if (module.lookupSymbol(kRefreshFunction))
      return; // already offloaded
    Builder b(&getContext());
    // The moments (both modes).
    SmallVector<DictionaryAttr> argAttrs = argAttrDicts(step);
    for (unsigned i = 0, e = argAttrs.size(); i < e; ++i)
      if (argAttrs[i].get(MoeDialect::kOptStateAttrName))
        setAttr(argAttrs, i, MoeDialect::kPlacementAttrName,
                b.getStringAttr(kHost));
    step.setAllArgAttrs(argAttrs);
    if (mode != OffloadMode::params)
      return;
    if (deviceType == ComputePrecision::fp32) {
      module.emitError()
          << "moe-offload: mode=params keeps 16-bit parameter copies on the "
             "device, expected device-type=bf16 or fp16 (the pipeline takes "
             "it from precision=bf16|fp16), found fp32";
      return signalPassFailure();
    }
    for (StringRef name : kDecodingFunctions)
      if (auto fn = module.lookupSymbol<func::FuncOp>(name)) {
        fn.emitError()
            << "moe-offload: mode=params keeps master weights in host memory, "
               "where @"
            << name
            << " cannot read them; compile the decoding plan without offload "
               "(it loads the same checkpoints)";
        return signalPassFailure();
      }
    SmallVector<Candidate> candidates =
        findCandidates(step, halfType(&getContext()));
    if (failed(rewrite(step, candidates)))
      return signalPassFailure();
  }

  Type halfType(MLIRContext *ctx) {
    return deviceType == ComputePrecision::fp16 ? Type(Float16Type::get(ctx))
                                                : Type(BFloat16Type::get(ctx));
  }
  SmallVector<Candidate> findCandidates(func::FuncOp step, Type half);
  LogicalResult rewrite(func::FuncOp step, ArrayRef<Candidate> candidates);
};

SmallVector<Candidate> MoeOffload::findCandidates(func::FuncOp step,
                                                  Type half) {
  auto ret = cast<func::ReturnOp>(step.getBody().front().getTerminator());
  // The step result of each updated parameter, by name.
  llvm::DenseMap<StringAttr, unsigned> newParamResult;
  for (unsigned i = 0, e = ret.getNumOperands(); i < e; ++i) {
    auto role =
        step.getResultAttrOfType<StringAttr>(i, MoeDialect::kRoleAttrName);
    auto name =
        step.getResultAttrOfType<StringAttr>(i, MoeDialect::kParamAttrName);
    if (role && name && role.getValue() == "new_param")
      newParamResult[name] = i;
  }
  SmallVector<Candidate> found;
  step.walk([&](AdamWOp update) {
    Candidate c;
    c.update = update;
    Value param = update.getParam();
    if (auto slice = param.getDefiningOp<shard::AllSliceOp>()) {
      c.slice = slice;
      param = slice.getInput();
    }
    auto arg = dyn_cast<BlockArgument>(param);
    if (!arg || arg.getOwner()->getParentOp() != step)
      return;
    c.param = arg;
    c.name = step.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                               MoeDialect::kParamAttrName);
    if (!c.name || !newParamResult.count(c.name))
      return;
    c.resultIndex = newParamResult[c.name];
    // Every other use: a GEMM weight.
    for (OpOperand &use : arg.getUses()) {
      Operation *user = use.getOwner();
      if (user == update.getOperation() ||
          (c.slice && user == c.slice.getOperation()))
        continue;
      if (!isGemmWeight(use, half))
        return;
    }
    if (c.slice && !c.slice->hasOneUse())
      return;
    // The way back to the returned value: nothing under ZeRO-0, the
    // all-gathers of the shard otherwise; each a single use.
    Value value = update.getNewParam();
    Value returned = ret.getOperand(c.resultIndex);
    while (value != returned) {
      if (!value.hasOneUse())
        return;
      Operation *next = *value.getUsers().begin();
      if (!isa<shard::AllGatherOp>(next))
        return;
      c.back.push_back(next);
      value = next->getResult(0);
    }
    if (!value.hasOneUse() || (c.slice == nullptr) != c.back.empty())
      return;
    found.push_back(c);
  });
  return found;
}

/// `type` with element type `element`.
RankedTensorType withElement(Type type, Type element) {
  auto ranked = cast<RankedTensorType>(type);
  return RankedTensorType::get(ranked.getShape(), element);
}

LogicalResult MoeOffload::rewrite(func::FuncOp step,
                                  ArrayRef<Candidate> candidates) {
  MLIRContext *ctx = &getContext();
  OpBuilder b(ctx);
  Type half = halfType(ctx);
  Block &body = step.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  Location loc = step.getLoc();
  // New arguments are appended to the block and their attributes here; the
  // function's type and attributes are written once at the end.
  SmallVector<DictionaryAttr> argAttrs = argAttrDicts(step);
  SmallVector<Value> newResults;

  // The ZeRO state sharding of a parameter: its moments'.
  llvm::DenseMap<StringAttr, Attribute> stateSharding;
  for (DictionaryAttr attrs : argAttrs)
    if (auto of = attrs.getAs<StringAttr>(MoeDialect::kStateOfAttrName))
      if (Attribute s = attrs.get(MoeDialect::kShardingAttrName))
        stateSharding[of] = s;

  // @refresh_params(masters...) -> copies..., built alongside.
  SmallVector<Type> refreshInputs, refreshResults;
  SmallVector<DictionaryAttr> refreshInputAttrs, refreshResultAttrs;
  // Per input: the step's 16-bit all-gathers the refresh repeats (ZeRO).
  SmallVector<SmallVector<Operation *>> refreshGathers;

  SmallVector<DictionaryAttr> resultAttrList;
  for (unsigned i = 0, e = step.getNumResults(); i < e; ++i)
    resultAttrList.push_back(step.getResultAttrDict(i)
                                 ? step.getResultAttrDict(i)
                                 : DictionaryAttr::get(ctx));
  llvm::BitVector erase(body.getNumArguments());
  for (Candidate c : candidates) {
    unsigned argIndex = c.param.getArgNumber();
    NamedAttrList paramAttrs(argAttrs[argIndex]);
    Attribute sharding = paramAttrs.get(MoeDialect::kShardingAttrName);
    Type copyType = withElement(c.param.getType(), half);

    // The 16-bit device copy.
    NamedAttrList copyAttrs;
    copyAttrs.set(MoeDialect::kDeviceCopyAttrName, c.name);
    if (sharding)
      copyAttrs.set(MoeDialect::kShardingAttrName, sharding);
    Value copy = body.addArgument(copyType, loc);
    argAttrs.push_back(copyAttrs.getDictionary(ctx));
    erase.resize(body.getNumArguments());

    // Each GEMM reads an fp32 view of the copy, made just before it.
    SmallVector<OpOperand *> gemmUses;
    for (OpOperand &use : c.param.getUses())
      if (isGemmWeight(use, half))
        gemmUses.push_back(&use);
    for (OpOperand *use : gemmUses) {
      b.setInsertionPoint(use->getOwner());
      use->set(ConvertOp::create(b, use->getOwner()->getLoc(),
                                 c.param.getType(), copy));
    }

    // The master: the parameter itself, or (ZeRO) its shard as a new
    // argument replacing the all-slice.
    Value master = c.param;
    Attribute masterSharding = sharding;
    if (c.slice) {
      NamedAttrList masterAttrs(paramAttrs);
      masterSharding = stateSharding.lookup(c.name);
      if (!masterSharding)
        return c.update.emitError()
               << "moe-offload: parameter '" << c.name.getValue()
               << "' is cut for ZeRO but has no optimizer state to take the "
                  "shard's sharding from";
      masterAttrs.set(MoeDialect::kShardingAttrName, masterSharding);
      masterAttrs.set(MoeDialect::kPlacementAttrName, b.getStringAttr(kHost));
      master = body.addArgument(c.slice.getType(), loc);
      argAttrs.push_back(masterAttrs.getDictionary(ctx));
      erase.resize(body.getNumArguments());
      c.slice.getResult().replaceAllUsesWith(master);
      c.slice->erase();
      erase.set(argIndex);
    } else {
      setAttr(argAttrs, argIndex, MoeDialect::kPlacementAttrName,
              b.getStringAttr(kHost));
    }

    // After the update: round, (ZeRO) gather in 16 bits, return as the
    // copy's new value; the master's result is the updated shard.
    b.setInsertionPointAfter(c.update);
    Value updated = c.update.getNewParam();
    Value rounded = ConvertOp::create(
        b, c.update.getLoc(), withElement(updated.getType(), half), updated);
    Value whole = rounded;
    IRMapping mapping;
    SmallVector<Operation *> gathers;
    for (Operation *gather : c.back) {
      mapping.map(gather->getOperand(0), whole);
      Operation *clone = b.clone(*gather, mapping);
      clone->getResult(0).setType(
          withElement(gather->getResult(0).getType(), half));
      whole = clone->getResult(0);
      gathers.push_back(clone);
    }
    ret->setOperand(c.resultIndex, updated);
    if (c.slice) {
      NamedAttrList attrs(resultAttrList[c.resultIndex]);
      attrs.set(MoeDialect::kShardingAttrName, masterSharding);
      resultAttrList[c.resultIndex] = attrs.getDictionary(ctx);
    }
    for (Operation *gather : llvm::reverse(c.back))
      gather->erase();
    newResults.push_back(whole);
    NamedAttrList resultAttrs(copyAttrs);
    resultAttrs.set(MoeDialect::kRoleAttrName,
                    b.getStringAttr("new_device_copy"));
    resultAttrList.push_back(resultAttrs.getDictionary(ctx));

    // Its part of @refresh_params.
    NamedAttrList inputAttrs;
    inputAttrs.set(MoeDialect::kParamAttrName, c.name);
    if (masterSharding)
      inputAttrs.set(MoeDialect::kShardingAttrName, masterSharding);
    refreshInputs.push_back(master.getType());
    refreshInputAttrs.push_back(inputAttrs.getDictionary(ctx));
    refreshResults.push_back(copyType);
    refreshResultAttrs.push_back(copyAttrs.getDictionary(ctx));
    refreshGathers.push_back(std::move(gathers));
  }
  ret->insertOperands(ret.getNumOperands(), newResults);
  step.setType(
      FunctionType::get(ctx, body.getArgumentTypes(), ret.getOperandTypes()));
  step.setAllArgAttrs(argAttrs);
  if (erase.any() && failed(step.eraseArguments(erase)))
    return step.emitError() << "moe-offload: cannot remove the replaced "
                               "parameter arguments";
  step.setType(
      FunctionType::get(ctx, body.getArgumentTypes(), ret.getOperandTypes()));
  step.setAllResultAttrs(resultAttrList);
  if (candidates.empty())
    return success();

  // @refresh_params: the copies from the masters, as the step makes them.
  b.setInsertionPointAfter(step);
  auto fn = func::FuncOp::create(
      b, loc, kRefreshFunction,
      FunctionType::get(ctx, refreshInputs, refreshResults));
  fn.setAllArgAttrs(refreshInputAttrs);
  fn.setAllResultAttrs(refreshResultAttrs);
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  SmallVector<Value> copies;
  for (auto [index, gathers] : llvm::enumerate(refreshGathers)) {
    Value value =
        ConvertOp::create(b, loc, withElement(refreshInputs[index], half),
                          entry->getArgument(index));
    IRMapping mapping;
    for (Operation *gather : gathers) {
      mapping.map(gather->getOperand(0), value);
      value = b.clone(*gather, mapping)->getResult(0);
    }
    copies.push_back(value);
  }
  func::ReturnOp::create(b, loc, copies);
  return success();
}

//===----------------------------------------------------------------------===//
// moe-stream-gradients
//===----------------------------------------------------------------------===//

struct MoeStreamGradients
    : mlir::moe::impl::MoeStreamGradientsBase<MoeStreamGradients> {
  using Base::Base;

  void runOnOperation() override {
    auto step = getOperation().lookupSymbol<func::FuncOp>("train_step");
    if (!step || !step.getBody().hasOneBlock())
      return; // nothing to stream (moe-offload reports a missing step)
    MLIRContext *ctx = &getContext();
    Block &body = step.getBody().front();
    auto onHost = [&](Value v) {
      auto arg = dyn_cast<BlockArgument>(v);
      if (!arg || arg.getOwner() != &body)
        return false;
      auto placement = step.getArgAttrOfType<StringAttr>(
          arg.getArgNumber(), MoeDialect::kPlacementAttrName);
      return placement && placement.getValue() == kHost;
    };
    // The parameter name of each update, from its moment's moe.state_of.
    auto nameOf = [&](AdamWOp update) -> StringAttr {
      auto arg = cast<BlockArgument>(update.getExpAvg());
      return step.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                               MoeDialect::kStateOfAttrName);
    };
    SmallVector<AdamWOp> updates;
    step.walk([&](AdamWOp update) {
      if (onHost(update.getExpAvg()) && onHost(update.getExpAvgSq()) &&
          !isa<BlockArgument>(update.getGrad()) && nameOf(update))
        updates.push_back(update);
    });
    OpBuilder b(ctx);
    // The gradient buffers are appended to the block and their attributes
    // here; the function's type and attributes are written once at the end.
    SmallVector<DictionaryAttr> argAttrs = argAttrDicts(step);
    for (AdamWOp update : updates) {
      Value grad = update.getGrad();
      // Only the norm's sums of squares and this update read it.
      SmallVector<SumSquaresOp> sums;
      bool streamable = true;
      for (Operation *user : grad.getUsers()) {
        if (auto sum = dyn_cast<SumSquaresOp>(user))
          sums.push_back(sum);
        else if (user != update.getOperation())
          streamable = false;
      }
      if (!streamable)
        continue;
      Operation *last = grad.getDefiningOp();
      for (SumSquaresOp sum : sums) {
        sum->moveAfter(last);
        last = sum;
      }
      NamedAttrList attrs;
      attrs.set(MoeDialect::kGradBufferAttrName, nameOf(update));
      attrs.set(MoeDialect::kPlacementAttrName, b.getStringAttr(kHost));
      Value buffer = body.addArgument(grad.getType(), step.getLoc());
      argAttrs.push_back(attrs.getDictionary(ctx));
      b.setInsertionPointAfter(last);
      auto copy =
          ToHostOp::create(b, update.getLoc(), grad.getType(), grad, buffer);
      update.getGradMutable().assign(copy.getResult());
    }
    if (argAttrs.size() == step.getNumArguments())
      return; // nothing streamed
    step.setType(
        FunctionType::get(ctx, body.getArgumentTypes(), step.getResultTypes()));
    step.setAllArgAttrs(argAttrs);
  }
};

} // namespace
