//===- PlanEmitter.cpp - @train_step -> FlatBuffers execution plan --------===//
//
// The last stage of the pipeline: every value of @train_step becomes a
// buffer of the plan and every op an instruction, named after the op, with
// its attributes converted to typed plan attributes (enums in their dialect
// spelling, #moe.gating flattened into its fields). The arena layout is the
// static memory plan; AdamW results alias the persistent buffers of the
// parameters and moments they update.
//
//===----------------------------------------------------------------------===//
#include "compiler/PlanEmitter.h"
#include "compiler/KernelCodegen.h"

#include "compiler/MemoryPlan.h"
#include "dialects/Moe/MoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "moert/plan/PlanWriter.h"
#include "llvm/ADT/DenseMap.h"

using namespace mlir;
using namespace mlir::moe;
namespace fb = moert::plan::fb;

namespace {

FailureOr<fb::DType> planDType(Operation *where, Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || !tensor.hasStaticShape()) {
    where->emitError() << "the plan needs statically shaped tensors, found "
                       << type;
    return failure();
  }
  if (!boundedTensorBytes(tensor)) {
    where->emitError() << "tensor " << type
                       << " is too large: its byte size overflows int64 or "
                          "exceeds 2^48 bytes (256 TiB)";
    return failure();
  }
  Type element = tensor.getElementType();
  if (element.isF32())
    return fb::DType::f32;
  if (element.isBF16())
    return fb::DType::bf16;
  if (element.isF16())
    return fb::DType::f16;
  if (element.isInteger(1))
    return fb::DType::i1;
  if (element.isInteger(32))
    return fb::DType::i32;
  if (element.isInteger(64))
    return fb::DType::i64;
  where->emitError() << "element type " << element << " has no plan equivalent";
  return failure();
}

std::vector<int64_t> shapeOf(Type type) {
  ArrayRef<int64_t> shape = cast<RankedTensorType>(type).getShape();
  return std::vector<int64_t>(shape.begin(), shape.end());
}

/// The plan opcode of a dialect op: its name without the "moe." prefix.
FailureOr<fb::Opcode> opcodeOf(Operation *op) {
  StringRef name = op->getName().getStringRef();
  if (name.consume_front("moe.")) {
    const char *const *names = fb::EnumNamesOpcode();
    for (fb::Opcode code : fb::EnumValuesOpcode())
      if (name == names[static_cast<int>(code)])
        return code;
  }
  op->emitOpError() << "has no instruction in the execution plan";
  return failure();
}

/// Converts the attributes of `op` into plan attributes.
LogicalResult convertAttributes(Operation *op,
                                moert::plan::InstructionEditor &editor) {
  for (NamedAttribute named : op->getAttrDictionary()) {
    std::string name = named.getName().str();
    Attribute attr = named.getValue();
    // Enum attributes are integer attributes whose classes cannot be told
    // apart by value (activation 1 and position 1 are both valid), so they
    // are recognized by their name in the dialect.
    auto integerValue = [&]() -> std::optional<uint32_t> {
      if (auto integer = dyn_cast<IntegerAttr>(attr))
        return static_cast<uint32_t>(integer.getValue().getZExtValue());
      return std::nullopt;
    };
    if ((name == "kind" || name == "activation") && integerValue()) {
      std::optional<ActivationKind> kind =
          symbolizeActivationKind(*integerValue());
      if (!kind)
        return op->emitOpError() << "invalid activation " << attr;
      editor.stringAttr(name, stringifyActivationKind(*kind).str());
    } else if (name == "position" && integerValue()) {
      std::optional<PositionKind> kind = symbolizePositionKind(*integerValue());
      if (!kind)
        return op->emitOpError() << "invalid position kind " << attr;
      editor.stringAttr(name, stringifyPositionKind(*kind).str());
    } else if (name == "group" && integerValue()) {
      std::optional<ParamGroup> group = symbolizeParamGroup(*integerValue());
      if (!group)
        return op->emitOpError() << "invalid parameter group " << attr;
      editor.stringAttr(name, stringifyParamGroup(*group).str());
    } else if (auto gating = dyn_cast<GatingAttr>(attr)) {
      editor.intAttr("top_k", gating.getTopK())
          .floatAttr("capacity_factor",
                     gating.getCapacityFactor().convertToDouble())
          .floatAttr("eval_capacity_factor",
                     gating.getEvalCapacityFactor().convertToDouble())
          .intAttr("min_capacity", gating.getMinCapacity())
          .boolAttr("drop_tokens", gating.getDropTokens())
          .boolAttr("use_rts", gating.getUseRts())
          .stringAttr("noise", stringifyNoisePolicy(gating.getNoise()).str())
          .floatAttr("jitter_eps", gating.getJitterEps().convertToDouble())
          .boolAttr("second_sampling", gating.getSecondSampling())
          .intAttr("groups", gating.getGroups());
    } else if (auto ints = dyn_cast<DenseI64ArrayAttr>(attr)) {
      editor.intVectorAttr(name, std::vector<int64_t>(ints.asArrayRef().begin(),
                                                      ints.asArrayRef().end()));
    } else if (isa<UnitAttr>(attr)) {
      editor.boolAttr(name, true);
    } else if (auto integer = dyn_cast<IntegerAttr>(attr)) {
      if (integer.getType().isInteger(1))
        editor.boolAttr(name, integer.getValue().getBoolValue());
      else
        editor.intAttr(name, integer.getValue().getSExtValue());
    } else if (auto real = dyn_cast<FloatAttr>(attr)) {
      editor.floatAttr(name, real.getValueAsDouble());
    } else if (auto text = dyn_cast<StringAttr>(attr)) {
      editor.stringAttr(name, text.str());
    } else if (auto type = dyn_cast<TypeAttr>(attr);
               type && name == "compute_type") {
      // moe-mixed-precision's input precision of a GEMM, in the plan's
      // spelling of element types.
      Type element = type.getValue();
      if (element.isF32())
        editor.stringAttr(name, "f32");
      else if (element.isBF16())
        editor.stringAttr(name, "bf16");
      else if (element.isF16())
        editor.stringAttr(name, "f16");
      else
        return op->emitOpError()
               << "compute_type must be f32, bf16 or f16, found " << element;
    } else {
      return op->emitOpError() << "attribute '" << name
                               << "' cannot be written to the plan: " << attr;
    }
  }
  return success();
}

fb::InitKind planInit(InitKind kind) {
  switch (kind) {
  case InitKind::zeros:
    return fb::InitKind::zeros;
  case InitKind::ones:
    return fb::InitKind::ones;
  case InitKind::normal:
    return fb::InitKind::normal;
  case InitKind::uniform:
    return fb::InitKind::uniform;
  case InitKind::xavier_uniform:
    return fb::InitKind::xavier_uniform;
  }
  return fb::InitKind::zeros;
}

/// The `moe.sharding` of an argument or result as a plan shard spec (empty
/// when absent or fully replicated).
moert::plan::ShardSpec shardSpecOf(ArrayAttr sharding) {
  moert::plan::ShardSpec spec;
  bool any = false;
  if (!sharding)
    return spec;
  for (Attribute dim : sharding) {
    std::vector<int> axes;
    if (auto list = dyn_cast<DenseI16ArrayAttr>(dim))
      for (int16_t a : list.asArrayRef())
        axes.push_back(a);
    any |= !axes.empty();
    spec.push_back(std::move(axes));
  }
  if (!any)
    spec.clear();
  return spec;
}

/// The logical shape of a local tensor sharded by `spec` over `gridShape`.
std::vector<int64_t> logicalShape(std::vector<int64_t> local,
                                  const moert::plan::ShardSpec &spec,
                                  ArrayRef<int64_t> gridShape) {
  for (size_t d = 0; d < spec.size() && d < local.size(); ++d)
    for (int axis : spec[d])
      local[d] *= gridShape[axis];
  return local;
}

/// Collective instructions from the upstream shard dialect's ops.
struct CollectiveInfo {
  fb::Opcode opcode;
  std::vector<int> axes;
  fb::ReductionKind reduction = fb::ReductionKind::none;
  int splitDim = -1, concatDim = -1;
};

FailureOr<fb::ReductionKind> planReduction(Operation *op,
                                           shard::ReductionKind kind) {
  switch (kind) {
  case shard::ReductionKind::Sum:
    return fb::ReductionKind::sum;
  case shard::ReductionKind::Average:
    return fb::ReductionKind::mean;
  case shard::ReductionKind::Max:
    return fb::ReductionKind::max;
  case shard::ReductionKind::Min:
    return fb::ReductionKind::min;
  default:
    op->emitOpError() << "reduction " << shard::stringifyReductionKind(kind)
                      << " has no plan equivalent";
    return failure();
  }
}

std::optional<FailureOr<CollectiveInfo>> collectiveOf(Operation *op) {
  auto axesOf = [](ArrayRef<int16_t> axes) {
    return std::vector<int>(axes.begin(), axes.end());
  };
  auto index = [](const APInt &v) {
    return static_cast<int>(v.getSExtValue());
  };
  if (auto reduce = dyn_cast<shard::AllReduceOp>(op)) {
    FailureOr<fb::ReductionKind> kind =
        planReduction(op, reduce.getReduction());
    if (failed(kind))
      return FailureOr<CollectiveInfo>(failure());
    return FailureOr<CollectiveInfo>(CollectiveInfo{
        fb::Opcode::all_reduce, axesOf(reduce.getGridAxes()), *kind});
  }
  if (auto scatter = dyn_cast<shard::ReduceScatterOp>(op)) {
    FailureOr<fb::ReductionKind> kind =
        planReduction(op, scatter.getReduction());
    if (failed(kind))
      return FailureOr<CollectiveInfo>(failure());
    return FailureOr<CollectiveInfo>(CollectiveInfo{
        fb::Opcode::reduce_scatter, axesOf(scatter.getGridAxes()), *kind,
        index(scatter.getScatterAxis())});
  }
  if (auto gather = dyn_cast<shard::AllGatherOp>(op))
    return FailureOr<CollectiveInfo>(CollectiveInfo{
        fb::Opcode::all_gather, axesOf(gather.getGridAxes()),
        fb::ReductionKind::none, -1, index(gather.getGatherAxis())});
  if (auto slice = dyn_cast<shard::AllSliceOp>(op))
    return FailureOr<CollectiveInfo>(
        CollectiveInfo{fb::Opcode::all_slice, axesOf(slice.getGridAxes()),
                       fb::ReductionKind::none, index(slice.getSliceAxis())});
  if (auto a2a = dyn_cast<shard::AllToAllOp>(op))
    return FailureOr<CollectiveInfo>(
        CollectiveInfo{fb::Opcode::all_to_all, axesOf(a2a.getGridAxes()),
                       fb::ReductionKind::none, index(a2a.getSplitAxis()),
                       index(a2a.getConcatAxis())});
  if (isa<shard::ShardDialect>(op->getDialect())) {
    op->emitOpError() << "has no instruction in the execution plan";
    return FailureOr<CollectiveInfo>(failure());
  }
  return std::nullopt;
}

std::string locationText(Location loc) {
  std::string text;
  llvm::raw_string_ostream os(text);
  loc.print(os);
  return text;
}

/// One instruction per op of `body` (an op's position plus the number of
/// instructions already written is its index).
LogicalResult emitInstructions(Block &body,
                               const llvm::DenseMap<Value, int> &bufferOf,
                               moert::plan::PlanWriter &writer) {
  for (Operation &op : body.without_terminator()) {
    SmallVector<int> operands, results;
    for (Value v : op.getOperands())
      operands.push_back(bufferOf.lookup(v));
    for (Value v : op.getResults())
      results.push_back(bufferOf.lookup(v));
    if (auto constant = dyn_cast<arith::ConstantOp>(op)) {
      auto splat = dyn_cast<SplatElementsAttr>(constant.getValue());
      if (!splat) {
        op.emitOpError() << "only splat constants can be emitted to a plan";
        return failure();
      }
      double value = 0.0;
      Attribute element = splat.getSplatValue<Attribute>();
      if (auto real = dyn_cast<FloatAttr>(element))
        value = real.getValueAsDouble();
      else if (auto integer = dyn_cast<IntegerAttr>(element))
        value = static_cast<double>(integer.getValue().getSExtValue());
      writer.addInstruction(fb::Opcode::fill, {}, {results.front()})
          .floatAttr("value", value)
          .location(locationText(op.getLoc()));
      continue;
    }
    if (std::optional<FailureOr<CollectiveInfo>> collective =
            collectiveOf(&op)) {
      if (failed(*collective))
        return failure();
      const CollectiveInfo &info = **collective;
      writer.addInstruction(info.opcode, {operands.front()}, {results.front()})
          .collective(info.axes, info.reduction, info.splitDim, info.concatDim)
          .location(locationText(op.getLoc()));
      continue;
    }
    if (isa<arith::MulFOp, arith::DivFOp>(op)) {
      writer
          .addInstruction(isa<arith::MulFOp>(op) ? fb::Opcode::mul
                                                 : fb::Opcode::div,
                          std::vector<int>(operands.begin(), operands.end()),
                          {results.front()})
          .location(locationText(op.getLoc()));
      continue;
    }
    FailureOr<fb::Opcode> opcode = opcodeOf(&op);
    if (failed(opcode))
      return failure();
    moert::plan::InstructionEditor editor = writer.addInstruction(
        *opcode, std::vector<int>(operands.begin(), operands.end()),
        std::vector<int>(results.begin(), results.end()));
    editor.location(locationText(op.getLoc()));
    if (failed(convertAttributes(&op, editor)))
      return failure();
  }

  return success();
}

/// The functions a plan carries after the training step, in this order
/// (moe-build-decoder's).
constexpr StringLiteral kProgramFunctions[] = {"encode", "decode_step",
                                               "evaluate", "refresh_params"};

/// Appends `fn` as a program: its parameters are the step's buffers (by
/// name), its other inputs persistent buffers of their own, except the
/// states one program returns and another reads (`moe.name` /
/// `moe.input` "state.N"), which share one persistent buffer
/// (`sharedBuffers`); its temporaries get a memory plan of their own in
/// the same arena (their live ranges lie within the program).
LogicalResult emitProgram(func::FuncOp fn, func::FuncOp step,
                          const llvm::DenseMap<Value, int> &stepBuffers,
                          llvm::StringMap<int> &sharedBuffers,
                          moert::plan::PlanWriter &writer, int64_t alignment) {
  if (!fn.getBody().hasOneBlock()) {
    fn.emitError() << "the plan needs a single-block function";
    return failure();
  }
  Block &body = fn.getBody().front();
  const std::string name = fn.getSymName().str();
  llvm::StringMap<std::pair<int, Type>> parameters, deviceCopies;
  for (BlockArgument arg : step.getBody().front().getArguments()) {
    if (auto param = step.getArgAttrOfType<StringAttr>(
            arg.getArgNumber(), MoeDialect::kParamAttrName))
      parameters[param.getValue()] = {stepBuffers.lookup(arg), arg.getType()};
    if (auto copy = step.getArgAttrOfType<StringAttr>(
            arg.getArgNumber(), MoeDialect::kDeviceCopyAttrName))
      deviceCopies[copy.getValue()] = {stepBuffers.lookup(arg), arg.getType()};
  }
  llvm::DenseMap<Value, int> bufferOf;
  auto shared = [&](Operation *where, StringRef key,
                    Type type) -> FailureOr<int> {
    FailureOr<fb::DType> dtype = planDType(where, type);
    if (failed(dtype))
      return failure();
    auto [it, inserted] = sharedBuffers.try_emplace(key, -1);
    if (inserted)
      it->second = writer.addPersistentBuffer(shapeOf(type), *dtype, key.str());
    const fb::BufferT &buffer = *writer.plan().buffers[it->second];
    if (buffer.shape != shapeOf(type) || buffer.dtype != *dtype) {
      where->emitError() << "'" << key << "' is " << type
                         << " here and of another type in an earlier program";
      return failure();
    }
    return it->second;
  };
  std::vector<int> inputs, outputs;
  for (BlockArgument arg : body.getArguments()) {
    unsigned i = arg.getArgNumber();
    if (auto param =
            fn.getArgAttrOfType<StringAttr>(i, MoeDialect::kParamAttrName)) {
      auto it = parameters.find(param.getValue());
      if (it == parameters.end() || it->second.second != arg.getType()) {
        fn.emitError() << "@" << name << " reads parameter '"
                       << param.getValue() << "' as " << arg.getType()
                       << ", which @" << step.getSymName()
                       << (it == parameters.end() ? " does not have"
                                                  : " holds as another type");
        return failure();
      }
      bufferOf[arg] = it->second.first;
      continue;
    }
    auto input = fn.getArgAttrOfType<StringAttr>(i, MoeDialect::kInputAttrName);
    if (!input) {
      fn.emitError() << "argument #" << i << " of @" << name
                     << " is neither a parameter nor an input";
      return failure();
    }
    std::string key = input.getValue().starts_with("state.")
                          ? input.str()
                          : name + ":" + input.str();
    FailureOr<int> id = shared(fn, key, arg.getType());
    if (failed(id))
      return failure();
    bufferOf[arg] = *id;
    inputs.push_back(*id);
  }
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  llvm::DenseMap<Value, std::string> resultNames;
  for (auto [index, value] : llvm::enumerate(ret.getOperands())) {
    // A parameter's device copy (moe-offload's @refresh_params) is
    // written into the step's buffer of it.
    if (auto copy = fn.getResultAttrOfType<StringAttr>(
            index, MoeDialect::kDeviceCopyAttrName)) {
      auto it = deviceCopies.find(copy.getValue());
      if (it == deviceCopies.end() || it->second.second != value.getType() ||
          isa<BlockArgument>(value) || bufferOf.count(value)) {
        fn.emitError() << "@" << name << " result #" << index
                       << " must be computed as the device copy of '"
                       << copy.getValue() << "' that @" << step.getSymName()
                       << " holds (same type)";
        return failure();
      }
      bufferOf[value] = it->second.first;
      continue;
    }
    auto result =
        fn.getResultAttrOfType<StringAttr>(index, MoeDialect::kNameAttrName);
    if (!result) {
      fn.emitError() << "result #" << index << " of @" << name
                     << " has no moe.name";
      return failure();
    }
    if (result.getValue().starts_with("state.")) {
      if (isa<BlockArgument>(value) || bufferOf.count(value)) {
        fn.emitError() << "state '" << result.getValue()
                       << "' must be computed by @" << name;
        return failure();
      }
      FailureOr<int> id =
          shared(value.getDefiningOp(), result.getValue(), value.getType());
      if (failed(id))
        return failure();
      bufferOf[value] = *id;
    } else if (!resultNames.count(value)) {
      resultNames[value] = name + ":" + result.str();
    }
  }
  MemoryPlan memory =
      planMemory(fn, alignment, [&](Value v) { return bufferOf.count(v) > 0; });
  const int base = writer.numInstructions();
  const int64_t count = static_cast<int64_t>(body.getOperations().size()) - 1;
  for (const BufferAssignment &b : memory.buffers) {
    FailureOr<fb::DType> dtype =
        planDType(b.value.getDefiningOp(), b.value.getType());
    if (failed(dtype))
      return failure();
    bufferOf[b.value] = writer.addArenaBuffer(
        shapeOf(b.value.getType()), *dtype, static_cast<uint64_t>(b.offset),
        base + static_cast<int>(b.firstUse),
        base + static_cast<int>(std::min(b.lastUse, count - 1)),
        resultNames.lookup(b.value));
  }
  if (static_cast<uint64_t>(memory.arenaBytes) > writer.plan().arena_bytes)
    writer.setArenaBytes(static_cast<uint64_t>(memory.arenaBytes));
  if (failed(emitInstructions(body, bufferOf, writer)))
    return failure();
  for (Value value : ret.getOperands())
    outputs.push_back(bufferOf.lookup(value));
  writer.addProgram(name, base, writer.numInstructions(), std::move(inputs),
                    std::move(outputs));
  return success();
}

} // namespace

FailureOr<std::vector<uint8_t>>
mlir::moe::emitTrainingPlan(ModuleOp module,
                            const PlanEmitterOptions &options) {
  auto func = module.lookupSymbol<func::FuncOp>(options.function);
  if (!func) {
    module.emitError() << "no function @" << options.function
                       << " to emit (run --moe-training-pipeline first)";
    return failure();
  }
  if (!func.getBody().hasOneBlock()) {
    func.emitError() << "the plan needs a single-block function";
    return failure();
  }
  Block &body = func.getBody().front();
  auto modelName = module->getAttrOfType<StringAttr>("moe.model");
  moert::plan::PlanWriter writer(modelName ? modelName.str() : "model");
  writer.setArenaAlignment(static_cast<uint32_t>(options.alignment));
  llvm::DenseMap<Value, int> bufferOf;

  // The device grid of a partitioned module (moe-partition): axes dp, ep,
  // tp in this order.
  std::vector<int64_t> gridShape;
  if (auto grid = module.lookupSymbol<shard::GridOp>("grid")) {
    ArrayRef<int64_t> shape = grid.getShape();
    if (shape.size() != 3) {
      grid.emitError() << "the plan expects the grid of moe-partition: three "
                          "axes (dp, ep, tp), found "
                       << shape.size();
      return failure();
    }
    static const char *const names[] = {"dp", "ep", "tp"};
    static const fb::AxisRole roles[] = {
        fb::AxisRole::data, fb::AxisRole::expert, fb::AxisRole::tensor};
    for (size_t i = 0; i < 3; ++i) {
      writer.addGridAxis(names[i], static_cast<int>(shape[i]), roles[i]);
      gridShape.push_back(shape[i]);
    }
    if (auto zero = module->getAttrOfType<IntegerAttr>("moe.zero_stage"))
      writer.setZeroStage(static_cast<int>(zero.getInt()));
  }
  auto argSpec = [&](unsigned i) {
    return shardSpecOf(
        func.getArgAttrOfType<ArrayAttr>(i, MoeDialect::kShardingAttrName));
  };

  // Persistent state: one buffer per argument.
  llvm::StringMap<int> expAvgBuffer, expAvgSqBuffer;
  llvm::StringMap<moert::plan::ShardSpec> stateSpec;
  for (BlockArgument arg : body.getArguments()) {
    unsigned i = arg.getArgNumber();
    FailureOr<fb::DType> dtype = planDType(func, arg.getType());
    if (failed(dtype))
      return failure();
    std::string name;
    if (auto param =
            func.getArgAttrOfType<StringAttr>(i, MoeDialect::kParamAttrName)) {
      name = param.str();
    } else if (auto state = func.getArgAttrOfType<StringAttr>(
                   i, MoeDialect::kOptStateAttrName)) {
      auto of =
          func.getArgAttrOfType<StringAttr>(i, MoeDialect::kStateOfAttrName);
      name = state.str() + ":" + (of ? of.str() : std::string("?"));
      (state.getValue() == "exp_avg" ? expAvgBuffer
                                     : expAvgSqBuffer)[of.getValue()] =
          static_cast<int>(bufferOf.size());
      stateSpec[of.getValue()] = argSpec(i);
    } else if (auto input = func.getArgAttrOfType<StringAttr>(
                   i, MoeDialect::kInputAttrName)) {
      name = input.str();
    } else if (auto copy = func.getArgAttrOfType<StringAttr>(
                   i, MoeDialect::kDeviceCopyAttrName)) {
      name = "device_copy:" + copy.str();
    } else if (auto grad = func.getArgAttrOfType<StringAttr>(
                   i, MoeDialect::kGradBufferAttrName)) {
      name = "grad_buffer:" + grad.str();
    } else {
      func.emitError() << "argument #" << i
                       << " is neither a parameter, an optimizer state, a "
                          "device copy, a gradient buffer nor a batch input";
      return failure();
    }
    bufferOf[arg] =
        writer.addPersistentBuffer(shapeOf(arg.getType()), *dtype, name);
    if (auto placement = func.getArgAttrOfType<StringAttr>(
            i, MoeDialect::kPlacementAttrName);
        placement && placement.getValue() == "host")
      writer.placeOnHost(bufferOf[arg]);
  }

  // AdamW updates parameters and moments in place, and returned updates
  // computed by other ops (the all-gather of a ZeRO shard) are written
  // straight into the state they replace (under ZeRO the parameter operand
  // is a slice: its update gets an arena buffer of its own).
  for (auto [value, arg] : stepArgumentAliases(func))
    bufferOf[value] = bufferOf.lookup(arg);
  // Parameter groups come from the AdamW updates.
  llvm::DenseMap<Value, ParamGroup> groupOf;
  func.walk([&](AdamWOp update) {
    Value param = update.getParam();
    while (Operation *def = param.getDefiningOp()) // ZeRO: through the slice
      param = def->getOperand(0);
    groupOf[param] = update.getGroup();
  });
  for (BlockArgument arg : body.getArguments()) {
    unsigned i = arg.getArgNumber();
    if (auto param =
            func.getArgAttrOfType<StringAttr>(i, MoeDialect::kParamAttrName)) {
      moert::plan::ParameterSpec spec;
      spec.name = param.str();
      spec.sharding = argSpec(i);
      spec.shape =
          logicalShape(shapeOf(arg.getType()), spec.sharding, gridShape);
      if (auto it = stateSpec.find(spec.name);
          it != stateSpec.end() && it->second != spec.sharding)
        spec.stateSharding = it->second;
      spec.dtype = *planDType(func, arg.getType());
      if (auto init =
              func.getArgAttrOfType<InitAttr>(i, MoeDialect::kInitAttrName)) {
        spec.init = planInit(init.getKind());
        spec.initScale = init.getScale().convertToDouble();
      }
      auto group = groupOf.find(arg);
      spec.group = group != groupOf.end() && group->second == ParamGroup::expert
                       ? fb::ParamGroup::expert
                       : fb::ParamGroup::dense;
      spec.buffer = bufferOf.lookup(arg);
      spec.expAvgBuffer = expAvgBuffer.lookup(spec.name);
      spec.expAvgSqBuffer = expAvgSqBuffer.lookup(spec.name);
      if (!expAvgBuffer.count(spec.name))
        spec.expAvgBuffer = spec.expAvgSqBuffer = -1;
      writer.addParameter(spec);
    } else if (auto input = func.getArgAttrOfType<StringAttr>(
                   i, MoeDialect::kInputAttrName)) {
      moert::plan::BatchInputSpec spec;
      spec.name = input.str();
      spec.sharding = argSpec(i);
      spec.shape =
          logicalShape(shapeOf(arg.getType()), spec.sharding, gridShape);
      spec.dtype = *planDType(func, arg.getType());
      spec.buffer = bufferOf.lookup(arg);
      writer.addBatchInput(spec);
    }
  }

  // Step temporaries: the static memory plan.
  MemoryPlan memory = planMemory(
      func, options.alignment, [&](Value v) { return bufferOf.count(v) > 0; });
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  llvm::DenseMap<Value, std::string> resultNames;
  for (auto [index, value] : llvm::enumerate(ret.getOperands())) {
    std::string name;
    if (auto role = func.getResultAttrOfType<StringAttr>(
            index, MoeDialect::kRoleAttrName))
      name = role.str();
    if (auto metric = func.getResultAttrOfType<StringAttr>(
            index, MoeDialect::kNameAttrName))
      name = metric.str();
    if (name == "expert_counts")
      name += ":" + std::to_string(index);
    // Gradients (of @forward_grad) are named after their parameter.
    if (auto param = func.getResultAttrOfType<StringAttr>(
            index, MoeDialect::kParamAttrName);
        param && name == "grad")
      name += ":" + param.str();
    if (!name.empty() && !resultNames.count(value))
      resultNames[value] = "output:" + name;
  }
  // The terminator's position is one past the last instruction: values it
  // returns live "until the end of the step" (-1).
  int64_t numInstructions =
      static_cast<int64_t>(body.getOperations().size()) - 1;
  bool hasPrograms = llvm::any_of(kProgramFunctions, [&](StringRef name) {
    return module.lookupSymbol<func::FuncOp>(name) != nullptr;
  });
  for (const BufferAssignment &b : memory.buffers) {
    FailureOr<fb::DType> dtype =
        planDType(b.value.getDefiningOp(), b.value.getType());
    if (failed(dtype))
      return failure();
    // With programs after the step, "until the end" is the step's end.
    int liveEnd = b.lastUse < numInstructions ? static_cast<int>(b.lastUse)
                  : hasPrograms ? static_cast<int>(numInstructions - 1)
                                : -1;
    bufferOf[b.value] = writer.addArenaBuffer(
        shapeOf(b.value.getType()), *dtype, static_cast<uint64_t>(b.offset),
        static_cast<int>(b.firstUse), liveEnd, resultNames.lookup(b.value));
  }
  writer.setArenaBytes(static_cast<uint64_t>(memory.arenaBytes));

  // Instructions, one per op (op positions are instruction indices, which
  // the live ranges above refer to).
  if (failed(emitInstructions(body, bufferOf, writer)))
    return failure();

  // The functions after the step (moe-build-decoder's), each a program of
  // its own over the same parameters.
  llvm::StringMap<int> sharedBuffers;
  for (StringRef name : kProgramFunctions) {
    auto program = module.lookupSymbol<func::FuncOp>(name);
    if (!program)
      continue;
    if (failed(emitProgram(program, func, bufferOf, sharedBuffers, writer,
                           options.alignment)))
      return failure();
  }

  // The training configuration, as far as the step fixes it.
  fb::TrainingConfigT training;
  training.seed = options.seed;
  func.walk([&](LrScheduleOp schedule) {
    training.learning_rate = schedule.getPeakLr().convertToDouble();
    training.warmup_steps = schedule.getWarmupStepsAttr().getInt();
  });
  func.walk([&](ClipByGlobalNormOp clip) {
    double bound = clip.getMaxNorm().convertToDouble();
    training.clip_norm = std::isfinite(bound) ? bound : 0.0;
  });
  func.walk([&](AdamWOp update) {
    training.beta1 = update.getBeta1().convertToDouble();
    training.beta2 = update.getBeta2().convertToDouble();
    training.epsilon = update.getEpsilon().convertToDouble();
    training.weight_decay = std::max(training.weight_decay,
                                     update.getWeightDecay().convertToDouble());
  });
  writer.setTrainingConfig(training);
  // Generated device code for the MoE layers' token movement.
  bool hasMoeLayer = false;
  func.walk([&](DispatchOp) { hasMoeLayer = true; });
  if (hasMoeLayer)
    for (int sm : options.gpuKernels) {
      std::string error;
      FailureOr<std::string> ptx = moeKernelPtx(sm, &error);
      if (failed(ptx)) {
        func.emitError() << "generating the MoE kernels: " << error;
        return failure();
      }
      writer.addExecutable(sm, "ptx",
                           std::vector<uint8_t>(ptx->begin(), ptx->end()),
                           moeKernelNames());
    }
  return writer.finish();
}
