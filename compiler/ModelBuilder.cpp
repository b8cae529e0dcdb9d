//===- ModelBuilder.cpp - Build a moe-dialect model from a configuration --===//
#include "compiler/ModelBuilder.h"

#include "dialects/Moe/MoeOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

namespace {

class ModelBuilder {
public:
  ModelBuilder(MLIRContext &context, const ModelConfig &config)
      : ctx(&context), config(config), builder(&context),
        loc(NameLoc::get(StringAttr::get(&context, config.name))),
        f32(Float32Type::get(&context)), i32(IntegerType::get(&context, 32)) {}

  OwningOpRef<ModuleOp> build();

private:
  /// Declares a parameter argument (inserted before the batch inputs).
  Value param(const std::string &name, ArrayRef<int64_t> shape,
              moe::InitKind init, double scale = 1.0) {
    Type type = RankedTensorType::get(shape, f32);
    BlockArgument arg = body->insertArgument(numParams, type, loc);
    NamedAttrList attrs;
    attrs.append(moe::MoeDialect::kParamAttrName, builder.getStringAttr(name));
    attrs.append(moe::MoeDialect::kInitAttrName,
                 moe::InitAttr::get(ctx, init, llvm::APFloat(scale)));
    argAttrs.insert(argAttrs.begin() + numParams, attrs.getDictionary(ctx));
    ++numParams;
    return arg;
  }
  /// A projection matrix (the last two dimensions are fan-in x fan-out).
  Value weight(const std::string &name, ArrayRef<int64_t> shape) {
    if (config.init == "small_normal")
      return param(name, shape, moe::InitKind::normal, kWeightStd);
    return param(name, shape, moe::InitKind::xavier_uniform, 1.0);
  }
  Value zeros(const std::string &name, ArrayRef<int64_t> shape) {
    return param(name, shape, moe::InitKind::zeros);
  }
  Value ones(const std::string &name, ArrayRef<int64_t> shape) {
    return param(name, shape, moe::InitKind::ones);
  }
  Value input(StringRef name, ArrayRef<int64_t> shape) {
    BlockArgument arg =
        body->addArgument(RankedTensorType::get(shape, i32), loc);
    NamedAttrList attrs;
    attrs.append(moe::MoeDialect::kInputAttrName, builder.getStringAttr(name));
    argAttrs.push_back(attrs.getDictionary(ctx));
    return arg;
  }

  Type activationType(int64_t seqLen, int64_t width) {
    return RankedTensorType::get({config.batchSize, seqLen, width}, f32);
  }
  Value dropout(Value x) {
    if (config.dropout == 0.0)
      return x;
    return moe::DropoutOp::create(builder, loc, x.getType(), x,
                                  builder.getF64FloatAttr(config.dropout),
                                  builder.getI64IntegerAttr(nextStream++));
  }
  Value layerNorm(const std::string &prefix, Value x) {
    // Parameters are declared in separate statements: argument evaluation
    // order is unspecified, and the argument order must be deterministic.
    int64_t m = config.modelDim;
    Value scale = ones(prefix + ".weight", {m});
    Value bias = zeros(prefix + ".bias", {m});
    return moe::LayerNormOp::create(
        builder, loc, x.getType(), x, scale, bias,
        builder.getF64FloatAttr(config.layerNormEps));
  }
  Value linear(const std::string &prefix, Value x, int64_t out) {
    auto type = cast<RankedTensorType>(x.getType());
    int64_t in = type.getShape().back();
    SmallVector<int64_t> shape(type.getShape());
    shape.back() = out;
    Value w = weight(prefix + ".weight", {in, out});
    Value bias = zeros(prefix + ".bias", {out});
    return moe::LinearOp::create(builder, loc,
                                 RankedTensorType::get(shape, f32), x, w, bias,
                                 /*transpose_weight=*/false);
  }
  Value attention(const std::string &prefix, Value queryIn, Value keyValueIn,
                  Value keyMask, bool causal);
  Value feedForward(const std::string &prefix, int64_t layer, Value x,
                    int64_t seqLen);
  Value embed(Value tokens, Value table, Value positions);
  Value encoder(Value srcTokens, Value table, Value positions, Value srcMask);
  Value decoder(Value tgtTokens, Value table, Value positions, Value srcMask,
                Value memory);

  static constexpr double kWeightStd = 0.02;

  MLIRContext *ctx;
  const ModelConfig &config;
  OpBuilder builder;
  Location loc;
  Type f32, i32;
  Block *body = nullptr;
  unsigned numParams = 0;
  SmallVector<DictionaryAttr> argAttrs;
  int64_t nextStream = 0;
  SmallVector<Value> auxLosses, expertCounts;
};

Value ModelBuilder::attention(const std::string &prefix, Value queryIn,
                              Value keyValueIn, Value keyMask, bool causal) {
  int64_t m = config.modelDim;
  Value q = linear(prefix + ".q", queryIn, m);
  Value k = linear(prefix + ".k", keyValueIn, m);
  Value v = linear(prefix + ".v", keyValueIn, m);
  Value o =
      moe::AttentionOp::create(builder, loc, q.getType(), q, k, v, keyMask,
                               builder.getI64IntegerAttr(config.numHeads),
                               causal ? builder.getUnitAttr() : UnitAttr());
  return dropout(linear(prefix + ".out", o, m));
}

Value ModelBuilder::feedForward(const std::string &prefix, int64_t layer,
                                Value x, int64_t seqLen) {
  int64_t m = config.modelDim;
  auto activation = *moe::symbolizeActivationKind(config.activation);
  if (!config.isMoeLayer(layer)) {
    Value h = linear(prefix + ".fc1", x, config.ffnHidden);
    h = moe::ActivationOp::create(builder, loc, activation, h);
    return dropout(linear(prefix + ".fc2", h, m));
  }
  int64_t e = config.numExperts, hidden = config.expertHiddenDim();
  const GatingConfig &g = config.gating;
  auto gating = moe::GatingAttr::get(
      ctx, g.topK, llvm::APFloat(g.capacityFactor),
      llvm::APFloat(g.evalCapacityFactor), g.minCapacity, g.dropTokens,
      g.useRts, *moe::symbolizeNoisePolicy(g.noise), llvm::APFloat(g.jitterEps),
      g.secondSampling, g.groups);
  // The router as DeepSpeed's and fairseq's TopKGate build it: a
  // bias-free torch.nn.Linear with its default U(-1/sqrt(m), 1/sqrt(m)).
  Value gate = config.init == "small_normal"
                   ? weight(prefix + ".gate.weight", {m, e})
                   : param(prefix + ".gate.weight", {m, e},
                           moe::InitKind::uniform,
                           1.0 / std::sqrt(static_cast<double>(m)));
  Value w1 = weight(prefix + ".experts.fc1.weight", {e, m, hidden});
  Value b1 = zeros(prefix + ".experts.fc1.bias", {e, hidden});
  Value w2 = weight(prefix + ".experts.fc2.weight", {e, hidden, m});
  Value b2 = zeros(prefix + ".experts.fc2.bias", {e, m});
  auto layerOp = moe::MoeLayerOp::create(
      builder, loc, x.getType(), RankedTensorType::get({e}, i32),
      RankedTensorType::get({}, f32),
      moe::ActivationKindAttr::get(ctx, activation), x, gate, w1, b1, w2, b2,
      gating, builder.getI64IntegerAttr(nextStream++), UnitAttr());
  expertCounts.push_back(layerOp.getExpertCounts());
  auxLosses.push_back(layerOp.getAuxLoss());
  return dropout(layerOp.getResult());
}

Value ModelBuilder::embed(Value tokens, Value table, Value positions) {
  auto tokenType = cast<RankedTensorType>(tokens.getType());
  Type type = activationType(tokenType.getShape()[1], config.modelDim);
  auto kind = *moe::symbolizePositionKind(config.position);
  Value h = moe::EmbeddingOp::create(
      builder, loc, type, tokens, table, positions,
      moe::PositionKindAttr::get(ctx, kind), builder.getUnitAttr());
  return dropout(h);
}

Value ModelBuilder::encoder(Value srcTokens, Value table, Value positions,
                            Value srcMask) {
  Value h = embed(srcTokens, table, positions);
  for (int64_t layer = 0; layer < config.encoderLayers; ++layer) {
    std::string prefix = "encoder.layers." + std::to_string(layer);
    Value a = layerNorm(prefix + ".self_attn_norm", h);
    h = moe::AddOp::create(builder, loc, h,
                           attention(prefix + ".self_attn", a, a, srcMask,
                                     /*causal=*/false));
    Value f = layerNorm(prefix + ".ffn_norm", h);
    h = moe::AddOp::create(
        builder, loc, h, feedForward(prefix + ".ffn", layer, f, config.srcLen));
  }
  return layerNorm("encoder.final_norm", h);
}

Value ModelBuilder::decoder(Value tgtTokens, Value table, Value positions,
                            Value srcMask, Value memory) {
  auto maskType = RankedTensorType::get({config.batchSize, config.tgtLen},
                                        builder.getI1Type());
  Value tgtMask =
      moe::PaddingMaskOp::create(builder, loc, maskType, tgtTokens,
                                 builder.getI64IntegerAttr(config.padId));
  Value h = embed(tgtTokens, table, positions);
  // Decoder layers continue the layer numbering of the MoE placement so
  // "every other layer" holds across the whole stack.
  for (int64_t layer = 0; layer < config.decoderLayers; ++layer) {
    std::string prefix = "decoder.layers." + std::to_string(layer);
    Value a = layerNorm(prefix + ".self_attn_norm", h);
    h = moe::AddOp::create(builder, loc, h,
                           attention(prefix + ".self_attn", a, a, tgtMask,
                                     /*causal=*/true));
    Value c = layerNorm(prefix + ".cross_attn_norm", h);
    h = moe::AddOp::create(builder, loc, h,
                           attention(prefix + ".cross_attn", c, memory, srcMask,
                                     /*causal=*/false));
    Value f = layerNorm(prefix + ".ffn_norm", h);
    h = moe::AddOp::create(
        builder, loc, h, feedForward(prefix + ".ffn", layer, f, config.tgtLen));
  }
  return layerNorm("decoder.final_norm", h);
}

OwningOpRef<ModuleOp> ModelBuilder::build() {
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  (*module)->setAttr("moe.model", builder.getStringAttr(config.name));
  builder.setInsertionPointToEnd(module->getBody());
  auto func = func::FuncOp::create(builder, loc, "forward",
                                   builder.getFunctionType({}, {}));
  body = func.addEntryBlock();
  builder.setInsertionPointToStart(body);

  int64_t b = config.batchSize, m = config.modelDim, v = config.vocabSize;
  Value srcTokens = input("src_tokens", {b, config.srcLen});
  Value tgtTokens = input("tgt_tokens", {b, config.tgtLen});
  Value labels = input("labels", {b, config.tgtLen});

  Value table = param("embed.weight", {v, m}, moe::InitKind::normal,
                      1.0 / std::sqrt(static_cast<double>(m)));
  Value positions;
  if (config.position == "learned") {
    int64_t maxLen = config.maxPositions > 0
                         ? config.maxPositions
                         : std::max(config.srcLen, config.tgtLen);
    positions = param("embed.positions", {maxLen, m}, moe::InitKind::normal,
                      1.0 / std::sqrt(static_cast<double>(m)));
  }
  auto srcMaskType =
      RankedTensorType::get({b, config.srcLen}, builder.getI1Type());
  Value srcMask =
      moe::PaddingMaskOp::create(builder, loc, srcMaskType, srcTokens,
                                 builder.getI64IntegerAttr(config.padId));

  Value memory = encoder(srcTokens, table, positions, srcMask);
  Value h = decoder(tgtTokens, table, positions, srcMask, memory);

  auto logitsType = RankedTensorType::get({b, config.tgtLen, v}, f32);
  Value logits;
  if (config.tieEmbeddings) {
    logits = moe::LinearOp::create(builder, loc, logitsType, h, table, Value(),
                                   /*transpose_weight=*/true);
  } else {
    Value output = weight("output.weight", {m, v});
    logits = moe::LinearOp::create(builder, loc, logitsType, h, output, Value(),
                                   /*transpose_weight=*/false);
  }
  Value loss = moe::CrossEntropyOp::create(
      builder, loc, RankedTensorType::get({}, f32), logits, labels,
      builder.getF64FloatAttr(config.labelSmoothing),
      builder.getI64IntegerAttr(config.padId));

  SmallVector<Value> results = {loss};
  SmallVector<StringRef> roles = {"loss"};
  if (!auxLosses.empty()) {
    Value aux = auxLosses.front();
    for (Value next : ArrayRef(auxLosses).drop_front())
      aux = moe::AddOp::create(builder, loc, aux, next);
    results.push_back(aux);
    roles.push_back("aux_loss");
  }
  for (Value counts : expertCounts) {
    results.push_back(counts);
    roles.push_back("expert_counts");
  }
  func::ReturnOp::create(builder, loc, results);

  SmallVector<Type> resultTypes;
  SmallVector<Attribute> resultAttrs;
  for (auto [value, role] : llvm::zip(results, roles)) {
    resultTypes.push_back(value.getType());
    resultAttrs.push_back(builder.getDictionaryAttr(builder.getNamedAttr(
        moe::MoeDialect::kRoleAttrName, builder.getStringAttr(role))));
  }
  func.setFunctionType(
      builder.getFunctionType(body->getArgumentTypes(), resultTypes));
  func.setAllArgAttrs(ArrayRef<DictionaryAttr>(argAttrs));
  func.setAllResultAttrs(resultAttrs);
  return module;
}

} // namespace

OwningOpRef<ModuleOp> mlir::moe::buildModel(MLIRContext &context,
                                            const ModelConfig &config) {
  context.loadDialect<moe::MoeDialect, func::FuncDialect>();
  return ModelBuilder(context, config).build();
}
