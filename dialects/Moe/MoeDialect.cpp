//===- MoeDialect.cpp - Registration, attributes, function annotations ----===//
#include "dialects/Moe/MoeDialect.h"
#include "dialects/Moe/MoeOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "moert/GateCapacity.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/MathExtras.h"

#include <algorithm>
#include <charconv>
#include <cmath>

using namespace mlir;
using namespace mlir::moe;

#include "dialects/Moe/MoeDialect.cpp.inc"
#include "dialects/Moe/MoeEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/Moe/MoeAttrs.cpp.inc"

void MoeDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/Moe/MoeOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/Moe/MoeAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// Parameter parsing and printing
//===----------------------------------------------------------------------===//

FailureOr<llvm::APFloat> mlir::moe::parseDoubleParameter(AsmParser &parser) {
  double value = 0.0;
  if (parser.parseFloat(value))
    return failure();
  return llvm::APFloat(value);
}

void mlir::moe::printDoubleParameter(AsmPrinter &printer,
                                     const llvm::APFloat &apValue) {
  double value = apValue.convertToDouble();
  // std::to_chars without a precision gives the shortest text that reads back
  // as the same double; keep a decimal point so it reads as a float literal
  // (the MLIR lexer reads `1e+10` as an integer, `1.0e+10` as a float).
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  std::string text(buffer, result.ptr);
  if (text.find_first_of(".nN") == std::string::npos)
    text.insert(std::min(text.find_first_of("eE"), text.size()), ".0");
  printer.getStream() << text;
}

FailureOr<bool> mlir::moe::parseBoolParameter(AsmParser &parser) {
  StringRef keyword;
  SMLoc loc = parser.getCurrentLocation();
  if (parser.parseKeyword(&keyword))
    return failure();
  if (keyword == "true")
    return true;
  if (keyword == "false")
    return false;
  return parser.emitError(loc)
         << "expected 'true' or 'false', found '" << keyword << "'";
}

//===----------------------------------------------------------------------===//
// GatingAttr
//===----------------------------------------------------------------------===//

std::optional<int64_t> mlir::moe::boundedTensorBytes(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || !tensor.hasStaticShape())
    return std::nullopt;
  int64_t bits = tensor.getElementTypeBitWidth();
  int64_t bytes = std::max<int64_t>(1, (bits + 7) / 8);
  for (int64_t dim : tensor.getShape())
    if (dim < 0 || llvm::MulOverflow(bytes, dim, bytes) ||
        bytes > kMaxTensorBytes)
      return std::nullopt;
  return bytes;
}

LogicalResult GatingAttr::verify(
    function_ref<InFlightDiagnostic()> emitError, int64_t topK,
    llvm::APFloat capacityFactorValue, llvm::APFloat evalCapacityFactorValue,
    int64_t minCapacity, bool dropTokens, bool useRts, NoisePolicy noise,
    llvm::APFloat jitterEpsValue, bool secondSampling, int64_t groups) {
  double capacityFactor = capacityFactorValue.convertToDouble();
  double evalCapacityFactor = evalCapacityFactorValue.convertToDouble();
  double jitterEps = jitterEpsValue.convertToDouble();
  if (topK < 1)
    return emitError() << "gating top_k must be at least 1, found " << topK;
  if (!(capacityFactor > 0.0) || !std::isfinite(capacityFactor))
    return emitError() << "gating capacity_factor must be a finite value > 0, "
                          "found "
                       << capacityFactor;
  if (!(evalCapacityFactor > 0.0) || !std::isfinite(evalCapacityFactor))
    return emitError() << "gating eval_capacity_factor must be a finite value "
                          "> 0, found "
                       << evalCapacityFactor;
  if (minCapacity < 0)
    return emitError() << "gating min_capacity must be >= 0, found "
                       << minCapacity;
  if (!(jitterEps > 0.0 && jitterEps < 1.0))
    return emitError() << "gating jitter_eps must be in (0, 1), found "
                       << jitterEps;
  if (groups < 1)
    return emitError() << "gating groups must be at least 1, found " << groups;
  return success();
}

int64_t GatingAttr::getCapacity(int64_t numTokens, int64_t numExperts,
                                bool training) const {
  return moert::groupedExpertCapacity(
      numTokens, getGroups(), numExperts, getTopK(),
      (training ? getCapacityFactor() : getEvalCapacityFactor())
          .convertToDouble(),
      getMinCapacity(), getDropTokens());
}

int64_t GatingAttr::getGroupCapacity(int64_t numTokens, int64_t numExperts,
                                     bool training) const {
  int64_t total = getCapacity(numTokens, numExperts, training);
  return total < 0 ? -1 : total / getGroups();
}

//===----------------------------------------------------------------------===//
// InitAttr
//===----------------------------------------------------------------------===//

LogicalResult InitAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               InitKind kind, llvm::APFloat scaleValue) {
  double scale = scaleValue.convertToDouble();
  if (!std::isfinite(scale) || scale < 0.0)
    return emitError() << "init scale must be finite and >= 0, found " << scale;
  if ((kind == InitKind::normal || kind == InitKind::uniform ||
       kind == InitKind::xavier_uniform) &&
      scale == 0.0)
    return emitError() << "init '" << stringifyInitKind(kind)
                       << "' needs a scale > 0";
  return success();
}

//===----------------------------------------------------------------------===//
// Function argument and result annotations
//===----------------------------------------------------------------------===//

static constexpr llvm::StringLiteral kKnownRoles[] = {
    "loss", "aux_loss",  "expert_counts", "metric",
    "grad", "new_param", "new_state",     "new_device_copy"};
static constexpr llvm::StringLiteral kKnownOptStates[] = {"exp_avg",
                                                          "exp_avg_sq"};
static constexpr llvm::StringLiteral kKnownPlacements[] = {"host"};

/// Checks a string-valued annotation; `allowed` empty means any non-empty
/// string.
static LogicalResult verifyStringAnnotation(Operation *op, StringRef where,
                                            unsigned index,
                                            NamedAttribute attribute,
                                            ArrayRef<StringLiteral> allowed) {
  auto value = dyn_cast<StringAttr>(attribute.getValue());
  if (value && !value.getValue().empty() &&
      (allowed.empty() || llvm::is_contained(allowed, value.getValue())))
    return success();
  InFlightDiagnostic diag = op->emitError()
                            << where << " #" << index << ": '"
                            << attribute.getName().strref() << "' must be ";
  if (allowed.empty())
    return diag << "a non-empty string";
  diag << "one of ";
  llvm::interleaveComma(allowed, diag,
                        [&](StringLiteral s) { diag << "\"" << s << "\""; });
  return diag;
}

/// `moe.sharding`: one i16 array per dimension of `type`, each listing grid
/// axes in increasing order, no axis twice in the whole attribute.
static LogicalResult verifySharding(Operation *op, StringRef where,
                                    unsigned index, Type type,
                                    NamedAttribute attribute) {
  auto fail = [&]() {
    return op->emitError() << where << " #" << index << ": '"
                           << attribute.getName().strref() << "' ";
  };
  auto dims = dyn_cast<ArrayAttr>(attribute.getValue());
  auto tensor = dyn_cast_or_null<RankedTensorType>(type);
  if (!dims || !tensor)
    return fail() << "must be an array of i16 arrays on a ranked tensor";
  if (static_cast<int64_t>(dims.size()) != tensor.getRank())
    return fail() << "has " << dims.size() << " entries, expected one per "
                  << "dimension of " << type;
  llvm::SmallDenseSet<int16_t> seen;
  for (auto [dim, entry] : llvm::enumerate(dims)) {
    auto axes = dyn_cast<DenseI16ArrayAttr>(entry);
    if (!axes)
      return fail() << "entry " << dim << " must be an array<i16>, found "
                    << entry;
    int16_t previous = -1;
    for (int16_t axis : axes.asArrayRef()) {
      if (axis <= previous)
        return fail() << "entry " << dim
                      << ": grid axes must be non-negative and increasing";
      if (!seen.insert(axis).second)
        return fail() << "grid axis " << axis << " splits more than one "
                      << "dimension";
      previous = axis;
    }
  }
  return success();
}

std::pair<int, int> MoeDialect::findDuplicateParam(ArrayAttr argAttrs) {
  {
    std::lock_guard<std::mutex> lock(duplicateParamsMutex);
    auto it = duplicateParams.find(argAttrs);
    if (it != duplicateParams.end())
      return it->second;
  }
  std::pair<int, int> result = {-1, -1};
  llvm::DenseMap<Attribute, int> firstUse;
  for (auto [index, entry] : llvm::enumerate(argAttrs)) {
    auto dict = dyn_cast_or_null<DictionaryAttr>(entry);
    if (!dict)
      continue;
    auto name = dyn_cast_or_null<StringAttr>(dict.get(kParamAttrName));
    if (!name)
      continue;
    auto [it, inserted] = firstUse.try_emplace(name, static_cast<int>(index));
    if (!inserted) {
      result = {static_cast<int>(index), it->second};
      break;
    }
  }
  std::lock_guard<std::mutex> lock(duplicateParamsMutex);
  duplicateParams[argAttrs] = result;
  return result;
}

LogicalResult MoeDialect::verifyRegionArgAttribute(Operation *op,
                                                   unsigned regionIndex,
                                                   unsigned argIndex,
                                                   NamedAttribute attribute) {
  auto func = dyn_cast<FunctionOpInterface>(op);
  if (!func)
    return op->emitError() << "'" << attribute.getName()
                           << "' is only valid on function arguments";
  Type argType = func.getArgumentTypes()[argIndex];
  StringRef name = attribute.getName().strref();

  if (name == kParamAttrName) {
    auto paramName = dyn_cast<StringAttr>(attribute.getValue());
    if (!paramName || paramName.getValue().empty())
      return op->emitError() << "argument #" << argIndex << ": '" << name
                             << "' must be a non-empty string";
    if (!isa<RankedTensorType>(argType))
      return op->emitError()
             << "argument #" << argIndex
             << ": a parameter must be a ranked tensor, found " << argType;
    if (ArrayAttr argAttrs = func.getArgAttrsAttr()) {
      auto [duplicate, other] = findDuplicateParam(argAttrs);
      if (duplicate == static_cast<int>(argIndex))
        return op->emitError() << "argument #" << argIndex
                               << ": parameter name '" << paramName.getValue()
                               << "' is already used by argument #" << other;
    }
    return success();
  }
  if (name == kInitAttrName) {
    if (!isa<InitAttr>(attribute.getValue()))
      return op->emitError() << "argument #" << argIndex << ": '" << name
                             << "' must be a #moe.init attribute";
    if (!func.getArgAttr(argIndex, kParamAttrName))
      return op->emitError()
             << "argument #" << argIndex << ": '" << name << "' needs '"
             << kParamAttrName << "' on the same argument";
    return success();
  }
  if (name == kInputAttrName) {
    auto inputName = dyn_cast<StringAttr>(attribute.getValue());
    if (!inputName || inputName.getValue().empty())
      return op->emitError() << "argument #" << argIndex << ": '" << name
                             << "' must be a non-empty string";
    if (func.getArgAttr(argIndex, kParamAttrName))
      return op->emitError() << "argument #" << argIndex
                             << ": an argument cannot be both a parameter "
                                "and a batch input";
    return success();
  }
  // Optimizer state: which moment, of which parameter.
  if (name == kOptStateAttrName)
    return verifyStringAnnotation(op, "argument", argIndex, attribute,
                                  kKnownOptStates);
  if (name == kStateOfAttrName)
    return verifyStringAnnotation(op, "argument", argIndex, attribute, {});
  if (name == kShardingAttrName)
    return verifySharding(op, "argument", argIndex, argType, attribute);
  if (name == kPlacementAttrName) {
    if (!func.getArgAttr(argIndex, kParamAttrName) &&
        !func.getArgAttr(argIndex, kOptStateAttrName) &&
        !func.getArgAttr(argIndex, kGradBufferAttrName))
      return op->emitError() << "argument #" << argIndex << ": '" << name
                             << "' is only valid on a parameter, an "
                                "optimizer state or a gradient buffer";
    return verifyStringAnnotation(op, "argument", argIndex, attribute,
                                  kKnownPlacements);
  }
  if (name == kGradBufferAttrName)
    return verifyStringAnnotation(op, "argument", argIndex, attribute, {});
  if (name == kDeviceCopyAttrName) {
    auto type = dyn_cast<RankedTensorType>(argType);
    if (!type ||
        !(type.getElementType().isBF16() || type.getElementType().isF16()))
      return op->emitError()
             << "argument #" << argIndex << ": '" << name
             << "' needs a bf16 or f16 tensor, found " << argType;
    return verifyStringAnnotation(op, "argument", argIndex, attribute, {});
  }
  return op->emitError() << "argument #" << argIndex
                         << ": unknown moe argument attribute '" << name
                         << "' (expected moe.param, moe.init, moe.input, "
                            "moe.opt_state, moe.state_of, moe.sharding, "
                            "moe.placement, moe.device_copy or "
                            "moe.grad_buffer)";
}

LogicalResult
MoeDialect::verifyRegionResultAttribute(Operation *op, unsigned regionIndex,
                                        unsigned resultIndex,
                                        NamedAttribute attribute) {
  StringRef name = attribute.getName().strref();
  if (name == kRoleAttrName)
    return verifyStringAnnotation(op, "result", resultIndex, attribute,
                                  kKnownRoles);
  if (name == kOptStateAttrName)
    return verifyStringAnnotation(op, "result", resultIndex, attribute,
                                  kKnownOptStates);
  // Gradients and updated parameters name their parameter, updated states
  // the parameter they belong to, metrics themselves.
  if (name == kParamAttrName || name == kStateOfAttrName ||
      name == kNameAttrName || name == kDeviceCopyAttrName)
    return verifyStringAnnotation(op, "result", resultIndex, attribute, {});
  if (name == kShardingAttrName) {
    auto func = dyn_cast<FunctionOpInterface>(op);
    Type type = func ? func.getResultTypes()[resultIndex] : Type();
    return verifySharding(op, "result", resultIndex, type, attribute);
  }
  return op->emitError() << "result #" << resultIndex
                         << ": unknown moe result attribute '" << name
                         << "' (expected moe.role, moe.param, moe.opt_state, "
                            "moe.state_of, moe.name, moe.sharding or "
                            "moe.device_copy)";
}
