//===- BuildDecoder.cpp - @encode, @decode_step, @evaluate from @forward --===//
//
// Incremental decoding as the compiler's output rather than the runtime's
// guess: the target-dependent ops of the training forward function are
// re-emitted for one new target position per sequence, their causal
// self-attentions reading the keys and values of the earlier positions from
// caches; the target-independent ops (the encoder) become a function of
// their own, run once per source. See the pass description in Passes.td.
//
//===----------------------------------------------------------------------===//
#include "dialects/Moe/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEBUILDDECODER
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// A function under construction: a detached block whose arguments are
/// added on demand, with their argument attributes.
struct FunctionBuilder {
  explicit FunctionBuilder(MLIRContext *ctx) : builder(ctx) {
    block = new Block();
    builder.setInsertionPointToEnd(block);
  }
  ~FunctionBuilder() { delete block; }

  Value addArgument(Type type, Location loc, DictionaryAttr attrs) {
    argAttrs.push_back(attrs);
    return block->addArgument(type, loc);
  }
  void addResult(Value value, DictionaryAttr attrs) {
    results.push_back(value);
    resultAttrs.push_back(attrs);
  }
  /// Removes ops whose results are unused and arguments nothing reads
  /// (argument attributes follow).
  void eraseDeadCode() {
    llvm::DenseSet<Value> returned(results.begin(), results.end());
    bool changed = true;
    while (changed) {
      changed = false;
      for (Operation &op : llvm::make_early_inc_range(llvm::reverse(*block)))
        if (isOpTriviallyDead(&op) &&
            llvm::none_of(op.getResults(),
                          [&](Value v) { return returned.count(v); })) {
          op.erase();
          changed = true;
        }
    }
    for (int i = static_cast<int>(block->getNumArguments()) - 1; i >= 0; --i) {
      BlockArgument arg = block->getArgument(i);
      if (arg.use_empty() && !returned.count(arg)) {
        block->eraseArgument(i);
        argAttrs.erase(argAttrs.begin() + i);
      }
    }
  }
  /// Moves the block into a new function `name` at the end of `module`.
  func::FuncOp finish(ModuleOp module, StringRef name, Location loc) {
    OpBuilder b(module.getContext());
    b.setInsertionPointToEnd(block);
    func::ReturnOp::create(b, loc, results);
    SmallVector<Type> resultTypes;
    for (Value v : results)
      resultTypes.push_back(v.getType());
    b.setInsertionPointToEnd(module.getBody());
    auto type = b.getFunctionType(block->getArgumentTypes(), resultTypes);
    auto func = func::FuncOp::create(b, loc, name, type);
    func.getBody().push_back(block);
    block = nullptr;
    func.setAllArgAttrs(argAttrs);
    func.setAllResultAttrs(resultAttrs);
    return func;
  }

  OpBuilder builder;
  Block *block;
  SmallVector<DictionaryAttr> argAttrs, resultAttrs;
  SmallVector<Value> results;
};

/// `op` in an inference function, in evaluation mode: a dropout becomes its
/// input; any other op is cloned through `map` with its result types passed
/// through `retype` and, for a MoE layer, the evaluation capacity factor.
void emitInEvaluationMode(OpBuilder &b, Operation &op, IRMapping &map,
                          llvm::function_ref<Type(Type)> retype) {
  if (auto dropout = dyn_cast<DropoutOp>(op)) {
    map.map(dropout.getResult(), map.lookup(dropout.getInput()));
    return;
  }
  Operation *clone = b.clone(op, map);
  for (auto [before, after] : llvm::zip(op.getResults(), clone->getResults()))
    after.setType(retype(before.getType()));
  if (auto layer = dyn_cast<MoeLayerOp>(clone))
    layer.setEval(true);
}

struct MoeBuildDecoder : mlir::moe::impl::MoeBuildDecoderBase<MoeBuildDecoder> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto forward = module.lookupSymbol<func::FuncOp>(functionName);
    if (!forward) {
      module.emitError() << "moe-build-decoder: no function @" << functionName;
      return signalPassFailure();
    }
    for (StringRef name : {"encode", "decode_step", "evaluate"})
      if (module.lookupSymbol(name)) {
        forward.emitError()
            << "moe-build-decoder: @" << name << " already exists";
        return signalPassFailure();
      }
    if (failed(build(module, forward)))
      signalPassFailure();
  }

  LogicalResult build(ModuleOp module, func::FuncOp forward);
};

StringAttr inputName(func::FuncOp func, unsigned i) {
  return func.getArgAttrOfType<StringAttr>(i, MoeDialect::kInputAttrName);
}

LogicalResult MoeBuildDecoder::build(ModuleOp module, func::FuncOp forward) {
  MLIRContext *ctx = &getContext();
  auto fail = [&](Operation *where, const Twine &message) {
    return where->emitError() << "moe-build-decoder: " << message;
  };
  if (!forward.getBody().hasOneBlock())
    return fail(forward, "the forward function must have a single block");
  Block &body = forward.getBody().front();
  BlockArgument src, tgt;
  for (BlockArgument arg : body.getArguments()) {
    StringAttr name = inputName(forward, arg.getArgNumber());
    if (name && name.getValue() == "src_tokens")
      src = arg;
    if (name && name.getValue() == "tgt_tokens")
      tgt = arg;
  }
  if (!src || !tgt)
    return fail(forward, "needs an encoder-decoder: inputs 'src_tokens' and "
                         "'tgt_tokens' of @" +
                             functionName);
  auto tgtType = cast<RankedTensorType>(tgt.getType());
  auto srcType = cast<RankedTensorType>(src.getType());
  if (tgtType.getRank() != 2 || srcType.getRank() != 2 ||
      tgtType.getDimSize(0) != srcType.getDimSize(0))
    return fail(forward, "expects 'src_tokens' and 'tgt_tokens' of shapes "
                         "[B, S] and [B, T]");
  const int64_t trainBatch = tgtType.getDimSize(0);
  const int64_t tgtLen = tgtType.getDimSize(1);
  if (batch < 0)
    return fail(forward, "batch must be >= 0 (0: the training batch), found " +
                             Twine(batch));
  const int64_t decodeBatch = batch == 0 ? trainBatch : batch;

  // The shapes of the inference functions: the batch dimension becomes
  // `decodeBatch`, and target positions (dimension 1 of a target-dependent
  // tensor) one.
  auto rewrite = [&](Type type, bool perTarget) -> Type {
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!tensor || tensor.getRank() < 2)
      return type;
    SmallVector<int64_t> shape(tensor.getShape());
    if (shape[0] == trainBatch)
      shape[0] = decodeBatch;
    if (perTarget && shape[1] == tgtLen)
      shape[1] = 1;
    return tensor.clone(shape);
  };

  // Target-dependent values: everything computed from the target tokens.
  llvm::DenseSet<Value> tainted = {tgt};
  for (Operation &op : body.without_terminator())
    if (llvm::any_of(op.getOperands(),
                     [&](Value v) { return tainted.count(v); }))
      tainted.insert(op.getResults().begin(), op.getResults().end());

  auto i1 = IntegerType::get(ctx, 1), i32 = IntegerType::get(ctx, 32);
  Location loc = forward.getLoc();
  FunctionBuilder encode(ctx), decode(ctx);
  IRMapping encodeMap, decodeMap;
  auto named = [&](StringRef attr, StringRef value) {
    return DictionaryAttr::get(ctx,
                               {NamedAttribute(StringAttr::get(ctx, attr),
                                               StringAttr::get(ctx, value))});
  };
  Value tokens =
      decode.addArgument(RankedTensorType::get({decodeBatch, 1}, i32), loc,
                         named(MoeDialect::kInputAttrName, "tokens"));
  Value position =
      decode.addArgument(RankedTensorType::get({}, i32), loc,
                         named(MoeDialect::kInputAttrName, "position"));
  Value selfMask =
      decode.addArgument(RankedTensorType::get({decodeBatch, tgtLen}, i1), loc,
                         named(MoeDialect::kInputAttrName, "self_mask"));

  // Parameters, on demand, in each function.
  auto parameterIn = [&](FunctionBuilder &fn, IRMapping &map,
                         BlockArgument arg) -> Value {
    if (Value mapped = map.lookupOrNull(arg))
      return mapped;
    Value copy = fn.addArgument(arg.getType(), arg.getLoc(),
                                forward.getArgAttrDict(arg.getArgNumber()));
    map.map(arg, copy);
    return copy;
  };
  // A value of @forward as seen from @decode_step: a parameter, a result of
  // a target-dependent op, or a state computed by @encode.
  unsigned numStates = 0;
  llvm::DenseMap<Value, Value> stateOrigin; // state argument -> @forward value
  auto decodeOperand = [&](Operation *user, Value v) -> FailureOr<Value> {
    if (Value mapped = decodeMap.lookupOrNull(v))
      return mapped;
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      if (forward.getArgAttr(arg.getArgNumber(), MoeDialect::kParamAttrName))
        return parameterIn(decode, decodeMap, arg);
      return fail(user, "reads input #" + Twine(arg.getArgNumber()) + " of @" +
                            functionName +
                            ", which incremental decoding does not provide");
    }
    std::string name = "state." + std::to_string(numStates++);
    Value state = decode.addArgument(rewrite(v.getType(), false), v.getLoc(),
                                     named(MoeDialect::kInputAttrName, name));
    decodeMap.map(v, state);
    stateOrigin[state] = v;
    return state;
  };

  Value logits;
  SmallVector<std::pair<Value, Value>> newRows; // (keys, values) per layer
  SmallVector<Operation *> encoderOps;
  for (Operation &op : body.without_terminator()) {
    bool perTarget = llvm::any_of(op.getOperands(),
                                  [&](Value v) { return tainted.count(v); });
    if (!perTarget) {
      encoderOps.push_back(&op);
      continue;
    }
    OpBuilder &b = decode.builder;
    auto operand = [&](Value v) { return decodeOperand(&op, v); };
    if (auto mask = dyn_cast<PaddingMaskOp>(op)) {
      // The target's padding mask: keys of the self-attentions, replaced
      // by the mask of the positions decoded so far.
      if (mask.getTokens() != tgt)
        return fail(&op, "masks a value computed from the target tokens");
      for (Operation *use : mask.getResult().getUsers()) {
        auto attention = dyn_cast<AttentionOp>(use);
        if (!attention || !attention.getCausal() ||
            attention.getKeyMask() != mask.getResult())
          return fail(use, "reads the target's padding mask other than as "
                           "the key mask of a causal self-attention");
      }
      decodeMap.map(mask.getResult(), selfMask);
      continue;
    }
    if (auto embedding = dyn_cast<EmbeddingOp>(op)) {
      if (embedding.getTokens() != tgt)
        return fail(&op, "embeds a value computed from the target tokens");
      FailureOr<Value> table = operand(embedding.getTable());
      if (failed(table))
        return failure();
      Value positions;
      if (Value p = embedding.getPositions()) {
        FailureOr<Value> mapped = operand(p);
        if (failed(mapped))
          return failure();
        positions = *mapped;
      }
      auto at = EmbeddingAtOp::create(
          b, op.getLoc(), rewrite(embedding.getType(), true), tokens, *table,
          positions, position, embedding.getPosition(), embedding.getScaled());
      decodeMap.map(embedding.getResult(), at.getResult());
      continue;
    }
    if (auto dropout = dyn_cast<DropoutOp>(op)) {
      FailureOr<Value> input = operand(dropout.getInput());
      if (failed(input))
        return failure();
      decodeMap.map(dropout.getResult(), *input);
      continue;
    }
    if (auto loss = dyn_cast<CrossEntropyOp>(op)) {
      if (logits)
        return fail(&op, "a second loss: the decoder must have one output "
                         "layer");
      FailureOr<Value> mapped = operand(loss.getLogits());
      if (failed(mapped))
        return failure();
      logits = *mapped;
      continue;
    }
    if (auto attention = dyn_cast<AttentionOp>(op)) {
      bool keysPerTarget = tainted.count(attention.getKey()) ||
                           tainted.count(attention.getValue());
      if (!attention.getCausal() && keysPerTarget)
        return fail(&op, "attends over target positions without causal "
                         "masking: the decoder cannot run one position at "
                         "a time");
      if (attention.getCausal()) {
        if (!tainted.count(attention.getQuery()) ||
            !tainted.count(attention.getKey()) ||
            !tainted.count(attention.getValue()))
          return fail(&op, "a causal attention whose query, key and value "
                           "are not all computed from the target");
        FailureOr<Value> q = operand(attention.getQuery());
        FailureOr<Value> k = operand(attention.getKey());
        FailureOr<Value> v = operand(attention.getValue());
        if (failed(q) || failed(k) || failed(v))
          return failure();
        auto keyType = cast<RankedTensorType>(attention.getKey().getType());
        auto cacheType =
            RankedTensorType::get({decodeBatch, tgtLen, keyType.getDimSize(2)},
                                  keyType.getElementType());
        std::string layer = std::to_string(newRows.size());
        Value cacheK = decode.addArgument(
            cacheType, op.getLoc(),
            named(MoeDialect::kInputAttrName, "cache.k." + layer));
        Value cacheV = decode.addArgument(
            cacheType, op.getLoc(),
            named(MoeDialect::kInputAttrName, "cache.v." + layer));
        Value keys = CacheUpdateOp::create(b, op.getLoc(), cacheType, cacheK,
                                           *k, position);
        Value values = CacheUpdateOp::create(b, op.getLoc(), cacheType, cacheV,
                                             *v, position);
        Operation *clone = b.clone(op, decodeMap);
        clone->setOperand(1, keys);
        clone->setOperand(2, values);
        if (clone->getNumOperands() == 4)
          clone->setOperand(3, selfMask);
        else
          clone->insertOperands(3, selfMask);
        auto cloned = cast<AttentionOp>(clone);
        cloned.setCausal(false);
        cloned.getResult().setType(
            cast<RankedTensorType>(rewrite(attention.getType(), true)));
        decodeMap.map(attention.getResult(), cloned.getResult());
        newRows.push_back({*k, *v});
        continue;
      }
    }
    if (!isa<LinearOp, LayerNormOp, ActivationOp, AddOp, MoeLayerOp,
             AttentionOp>(op))
      return fail(&op, "'" + op.getName().getStringRef() +
                           "' computed from the target tokens has no "
                           "one-position form for incremental decoding");
    for (Value v : op.getOperands())
      if (failed(operand(v)))
        return failure();
    emitInEvaluationMode(b, op, decodeMap,
                         [&](Type type) { return rewrite(type, true); });
  }
  if (!logits)
    return fail(forward, "no moe.cross_entropy: nothing gives the decoder's "
                         "logits");
  decode.addResult(logits, named(MoeDialect::kNameAttrName, "logits"));
  for (auto [index, rows] : llvm::enumerate(newRows)) {
    std::string layer = std::to_string(index);
    decode.addResult(rows.first,
                     named(MoeDialect::kNameAttrName, "key_rows." + layer));
    decode.addResult(rows.second,
                     named(MoeDialect::kNameAttrName, "value_rows." + layer));
  }
  decode.eraseDeadCode();

  // @encode: the target-independent ops, computing the states @decode_step
  // still reads.
  Value srcIn = encode.addArgument(rewrite(src.getType(), false), src.getLoc(),
                                   forward.getArgAttrDict(src.getArgNumber()));
  encodeMap.map(src, srcIn);
  for (Operation *op : encoderOps) {
    for (Value v : op->getOperands()) {
      if (encodeMap.contains(v))
        continue;
      auto arg = cast<BlockArgument>(v); // ops come in order
      if (!forward.getArgAttr(arg.getArgNumber(), MoeDialect::kParamAttrName))
        return fail(op, "reads input #" + Twine(arg.getArgNumber()) +
                            ", which the encoder does not get");
      parameterIn(encode, encodeMap, arg);
    }
    emitInEvaluationMode(encode.builder, *op, encodeMap,
                         [&](Type type) { return rewrite(type, false); });
  }
  // The states @decode_step kept (in the order of its arguments).
  for (auto [index, attrs] : llvm::enumerate(decode.argAttrs)) {
    auto name = attrs.getAs<StringAttr>(MoeDialect::kInputAttrName);
    if (!name || !name.getValue().starts_with("state."))
      continue;
    Value original = stateOrigin.lookup(decode.block->getArgument(index));
    encode.addResult(encodeMap.lookup(original),
                     named(MoeDialect::kNameAttrName, name.getValue()));
  }
  encode.eraseDeadCode();

  // @evaluate: the forward and its loss in evaluation mode (teacher
  // forcing on held-out batches).
  FunctionBuilder evaluate(ctx);
  IRMapping evaluateMap;
  for (BlockArgument arg : body.getArguments())
    evaluateMap.map(
        arg, evaluate.addArgument(arg.getType(), arg.getLoc(),
                                  forward.getArgAttrDict(arg.getArgNumber())));
  for (Operation &op : body.without_terminator())
    emitInEvaluationMode(evaluate.builder, op, evaluateMap,
                         [](Type type) { return type; });
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  for (auto [index, value] : llvm::enumerate(ret.getOperands())) {
    auto role = forward.getResultAttrOfType<StringAttr>(
        index, MoeDialect::kRoleAttrName);
    if (role && role.getValue() == "loss")
      evaluate.addResult(evaluateMap.lookup(value),
                         named(MoeDialect::kNameAttrName, "loss"));
  }
  if (evaluate.results.size() != 1)
    return fail(forward, "expects one result with moe.role = \"loss\", found " +
                             Twine(evaluate.results.size()));
  evaluate.eraseDeadCode();

  func::FuncOp encodeFn = encode.finish(module, "encode", loc);
  func::FuncOp decodeFn = decode.finish(module, "decode_step", loc);
  func::FuncOp evaluateFn = evaluate.finish(module, "evaluate", loc);
  if (failed(verify(encodeFn)) || failed(verify(decodeFn)) ||
      failed(verify(evaluateFn)))
    return failure();
  return success();
}

} // namespace
