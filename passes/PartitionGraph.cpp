//===- PartitionGraph.cpp - Graphviz view of one partitioned MoE layer ----===//
//
// Draws one MoE layer of a (partitioned) training step as a Graphviz
// digraph, so that the layouts moe-partition chose can be read at a glance:
// the forward ops from the producer of the gate's input through combine,
// the backward ops from combine_grad through dispatch_grad and gate_grad,
// and the collectives among and after them (boxes, with their grid axes and
// split/concat dimensions). Edges carry the local tensor types of one rank;
// parameters carry their `moe.sharding`.
//
//===----------------------------------------------------------------------===//
#include "dialects/Moe/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEPARTITIONGRAPH
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

constexpr const char *kAxisNames[] = {"dp", "ep", "tp"};

/// Text of a Graphviz double-quoted string (newlines become `\n`).
std::string quoted(StringRef text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

/// "2x32x128xf32" for tensor<2x32x128xf32>.
std::string typeText(Type type) {
  std::string text;
  llvm::raw_string_ostream os(text);
  if (auto tensor = dyn_cast<RankedTensorType>(type)) {
    for (int64_t dim : tensor.getShape())
      os << dim << "x";
    os << tensor.getElementType();
  } else {
    os << type;
  }
  return text;
}

/// "[0, 1] (dp, ep)".
std::string axesText(ArrayRef<int16_t> axes) {
  std::string ids = "[", names = "(";
  for (auto [i, axis] : llvm::enumerate(axes)) {
    ids += (i ? ", " : "") + std::to_string(axis);
    names += std::string(i ? ", " : "") +
             (axis >= 0 && axis < 3 ? kAxisNames[axis] : "?");
  }
  return ids + "] " + names + ")";
}

/// A `moe.sharding` attribute as "[ep, -, -]" (per dimension, the grid axes
/// that split it; '-' for a whole dimension).
std::string shardingText(ArrayAttr sharding) {
  if (!sharding)
    return "replicated";
  std::string text = "[";
  for (auto [i, dim] : llvm::enumerate(sharding)) {
    text += i ? ", " : "";
    auto axes = dyn_cast<DenseI16ArrayAttr>(dim);
    if (!axes || axes.empty()) {
      text += "-";
      continue;
    }
    for (auto [j, axis] : llvm::enumerate(axes.asArrayRef()))
      text += std::string(j ? "*" : "") +
              (axis >= 0 && axis < 3 ? kAxisNames[axis] : "?");
  }
  return text + "]";
}

/// The label of an op node: its name and the attributes that matter for
/// the layout.
std::string opLabel(Operation *op) {
  std::string label;
  llvm::raw_string_ostream os(label);
  StringRef name = op->getName().getStringRef();
  name.consume_front("moe.");
  os << name;
  llvm::TypeSwitch<Operation *>(op)
      .Case<shard::AllReduceOp>([&](auto reduce) {
        os << " (" << shard::stringifyReductionKind(reduce.getReduction())
           << ")\ngrid_axes = " << axesText(reduce.getGridAxes());
      })
      .Case<shard::ReduceScatterOp>([&](auto scatter) {
        os << " (" << shard::stringifyReductionKind(scatter.getReduction())
           << ")\ngrid_axes = " << axesText(scatter.getGridAxes())
           << "\nscatter_axis = " << scatter.getScatterAxis().getSExtValue();
      })
      .Case<shard::AllGatherOp>([&](auto gather) {
        os << "\ngrid_axes = " << axesText(gather.getGridAxes())
           << "\ngather_axis = " << gather.getGatherAxis().getSExtValue();
      })
      .Case<shard::AllSliceOp>([&](auto slice) {
        os << "\ngrid_axes = " << axesText(slice.getGridAxes())
           << "\nslice_axis = " << slice.getSliceAxis().getSExtValue();
      })
      .Case<shard::AllToAllOp>([&](auto exchange) {
        os << "\ngrid_axes = " << axesText(exchange.getGridAxes())
           << "\nsplit_axis = " << exchange.getSplitAxis().getSExtValue()
           << ", concat_axis = " << exchange.getConcatAxis().getSExtValue();
      })
      .Case<GateOp, GateGradOp>([&](auto gate) {
        GatingAttr config = gate.getConfig();
        os << "\ntop_k = " << config.getTopK()
           << ", capacity = " << gate.getCapacity()
           << ", groups = " << config.getGroups();
      });
  if (auto axes = op->getAttrOfType<DenseI64ArrayAttr>("shard_axes")) {
    os << "\ntokens split over [";
    for (auto [i, axis] : llvm::enumerate(axes.asArrayRef()))
      os << (i ? ", " : "") << (axis >= 0 && axis < 3 ? kAxisNames[axis] : "?");
    os << "]";
  }
  return label;
}

/// The ops of `block` between `sources` and `sinks` (inclusive) that lie on
/// a def-use path from a source to a sink. Ops are visited in block order,
/// so only the span between the first source and the last sink is walked.
llvm::SetVector<Operation *> opsBetween(Block &block,
                                        ArrayRef<Operation *> sources,
                                        ArrayRef<Operation *> sinks) {
  llvm::DenseSet<Operation *> reached(sources.begin(), sources.end());
  Operation *first = sources.front();
  for (Operation *source : sources)
    if (source->isBeforeInBlock(first))
      first = source;
  Operation *last = sinks.front();
  for (Operation *sink : sinks)
    if (last->isBeforeInBlock(sink))
      last = sink;
  SmallVector<Operation *> span;
  for (Operation *op = first; op; op = op->getNextNode()) {
    span.push_back(op);
    if (op == last)
      break;
  }
  for (Operation *op : span)
    for (Value operand : op->getOperands())
      if (Operation *def = operand.getDefiningOp(); def && reached.count(def))
        reached.insert(op);
  llvm::DenseSet<Operation *> needed(sinks.begin(), sinks.end());
  for (Operation *op : llvm::reverse(span))
    for (Operation *user : op->getUsers())
      if (needed.count(user))
        needed.insert(op);
  llvm::SetVector<Operation *> result;
  for (Operation *op : span)
    if (reached.count(op) && needed.count(op))
      result.insert(op);
  return result;
}

/// Adds the chains of collectives that consume results of `ops` (e.g. the
/// reduction of a weight gradient and its ZeRO slice).
void addCollectiveUsers(llvm::SetVector<Operation *> &ops) {
  for (size_t i = 0; i < ops.size(); ++i)
    for (Operation *user : ops[i]->getUsers())
      if (isa_and_nonnull<shard::ShardDialect>(user->getDialect()))
        ops.insert(user);
}

template <typename OpT> OpT userOf(Value value) {
  for (Operation *user : value.getUsers())
    if (auto op = dyn_cast<OpT>(user))
      return op;
  return nullptr;
}

struct MoePartitionGraph
    : mlir::moe::impl::MoePartitionGraphBase<MoePartitionGraph> {
  using Base::Base;

  void runOnOperation() override;
};

void MoePartitionGraph::runOnOperation() {
  ModuleOp module = getOperation();
  auto func = module.lookupSymbol<func::FuncOp>(functionName);
  if (!func) {
    module.emitError() << "moe-partition-graph: no function @" << functionName
                       << " (run --moe-training-pipeline first)";
    return signalPassFailure();
  }
  if (!func.getBody().hasOneBlock()) {
    func.emitError() << "moe-partition-graph needs a single-block function";
    return signalPassFailure();
  }
  Block &body = func.getBody().front();
  SmallVector<GateOp> gates;
  for (auto gate : body.getOps<GateOp>())
    gates.push_back(gate);
  if (layer < 0 || layer >= static_cast<int64_t>(gates.size())) {
    func.emitError() << "moe-partition-graph: layer "
                     << static_cast<int64_t>(layer) << " does not exist: @"
                     << functionName << " has " << gates.size()
                     << " MoE layer(s) (moe.gate ops), numbered from 0";
    return signalPassFailure();
  }
  GateOp gate = gates[layer];
  auto combine = userOf<CombineOp>(gate.getIndices());
  if (!combine) {
    gate.emitError() << "moe-partition-graph: the gate of layer "
                     << static_cast<int64_t>(layer) << " has no moe.combine";
    return signalPassFailure();
  }

  // Forward: from the producer of the gate's input through combine.
  SmallVector<Operation *> sources = {gate};
  if (Operation *producer = gate.getInput().getDefiningOp())
    sources.push_back(producer);
  llvm::SetVector<Operation *> forward =
      opsBetween(body, sources, {combine.getOperation()});
  addCollectiveUsers(forward);

  // Backward: from combine_grad through dispatch_grad and gate_grad.
  llvm::SetVector<Operation *> backward;
  auto combineGrad = userOf<CombineGradOp>(gate.getIndices());
  SmallVector<Operation *> backwardSinks;
  if (auto dispatchGrad = userOf<DispatchGradOp>(gate.getIndices()))
    backwardSinks.push_back(dispatchGrad);
  if (auto gateGrad = userOf<GateGradOp>(gate.getIndices()))
    backwardSinks.push_back(gateGrad);
  if (combineGrad && !backwardSinks.empty()) {
    backward = opsBetween(body, {combineGrad.getOperation()}, backwardSinks);
    addCollectiveUsers(backward);
  }

  // Node names in program order.
  llvm::DenseMap<Operation *, std::string> nodeOf;
  for (Operation &op : body)
    if (forward.count(&op) || backward.count(&op))
      nodeOf[&op] = "op" + std::to_string(nodeOf.size());

  std::string text;
  llvm::raw_string_ostream os(text);
  std::string title = "MoE layer " + std::to_string(layer) + " of @" +
                      functionName + ", one rank's program";
  if (auto grid = module.lookupSymbol<shard::GridOp>("grid")) {
    ArrayRef<int64_t> shape = grid.getShape();
    title += " on grid";
    for (auto [i, size] : llvm::enumerate(shape))
      title += std::string(" ") + (i < 3 ? kAxisNames[i] : "?") + "=" +
               std::to_string(size);
  } else {
    title += " (not partitioned)";
  }
  os << "digraph " << quoted("moe_layer_" + std::to_string(layer)) << " {\n";
  os << "  graph [label=" << quoted(title)
     << ", labelloc=t, rankdir=TB, fontname=\"Helvetica\"];\n";
  os << "  node [fontname=\"Helvetica\", fontsize=10];\n";
  os << "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  auto emitNode = [&](Operation *op, StringRef fill) {
    bool collective = isa_and_nonnull<shard::ShardDialect>(op->getDialect());
    os << "    " << nodeOf[op] << " [label=" << quoted(opLabel(op));
    if (collective)
      os << ", shape=box, style=\"filled,bold\", color=\"#b2182b\", "
            "fillcolor=\"#f4a582\"";
    else
      os << ", shape=ellipse, style=filled, fillcolor=\"" << fill << "\"";
    os << "];\n";
  };
  auto emitCluster = [&](StringRef name, StringRef label,
                         const llvm::SetVector<Operation *> &ops,
                         StringRef fill) {
    os << "  subgraph " << name << " {\n    label=" << quoted(label) << ";\n";
    for (Operation &op : body)
      if (ops.count(&op))
        emitNode(&op, fill);
    os << "  }\n";
  };
  emitCluster("cluster_forward", "forward", forward, "#d1e5f0");
  if (!backward.empty())
    emitCluster("cluster_backward", "backward", backward, "#fddbc7");

  // Inputs from outside the drawn ops: parameters with their sharding, and
  // other values named after their producer.
  llvm::DenseMap<Value, std::string> inputNodes;
  auto inputNode = [&](Value value) -> std::string {
    auto it = inputNodes.find(value);
    if (it != inputNodes.end())
      return it->second;
    std::string node = "in" + std::to_string(inputNodes.size());
    inputNodes[value] = node;
    std::string label;
    if (auto arg = dyn_cast<BlockArgument>(value)) {
      unsigned i = arg.getArgNumber();
      if (auto param = func.getArgAttrOfType<StringAttr>(
              i, MoeDialect::kParamAttrName)) {
        label = param.str() + "\n" + typeText(value.getType()) + "\nsharding " +
                shardingText(func.getArgAttrOfType<ArrayAttr>(
                    i, MoeDialect::kShardingAttrName));
        os << "  " << node << " [label=" << quoted(label)
           << ", shape=cylinder, style=filled, fillcolor=\"#e0e0e0\"];\n";
        return node;
      }
      label = "argument #" + std::to_string(i);
      if (auto input =
              func.getArgAttrOfType<StringAttr>(i, MoeDialect::kInputAttrName))
        label = input.str();
    } else {
      label = "from " + value.getDefiningOp()->getName().getStringRef().str();
    }
    os << "  " << node << " [label=" << quoted(label)
       << ", shape=plaintext, fontcolor=\"#606060\"];\n";
    return node;
  };
  // One edge per (producer, consumer, type); operands that repeat it (the
  // indices and locations of a gate feed several ops) are counted.
  SmallVector<std::pair<std::string, int>> edges;
  llvm::StringMap<size_t> edgeIndex;
  for (Operation &op : body) {
    auto it = nodeOf.find(&op);
    if (it == nodeOf.end())
      continue;
    for (Value operand : op.getOperands()) {
      Operation *def = operand.getDefiningOp();
      std::string from =
          def && nodeOf.count(def) ? nodeOf[def] : inputNode(operand);
      std::string type = typeText(operand.getType());
      std::string key = from + " -> " + it->second + " " + type;
      auto [entry, inserted] = edgeIndex.try_emplace(key, edges.size());
      if (inserted)
        edges.push_back({key, 0});
      ++edges[entry->second].second;
    }
  }
  for (auto &[key, count] : edges) {
    StringRef text = key;
    auto [arrow, type] = text.rsplit(' ');
    std::string label = type.str();
    if (count > 1)
      label += " (x" + std::to_string(count) + ")";
    os << "  " << arrow << " [label=" << quoted(label) << "];\n";
  }
  os << "}\n";

  std::string errorMessage;
  std::unique_ptr<llvm::ToolOutputFile> file =
      openOutputFile(output, &errorMessage);
  if (!file) {
    module.emitError() << "moe-partition-graph cannot write '" << output
                       << "': " << errorMessage;
    return signalPassFailure();
  }
  file->os() << text;
  file->keep();
  markAllAnalysesPreserved();
}

} // namespace
