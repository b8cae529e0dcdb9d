//===- PartitionReport.cpp - Per-rank memory, FLOPs and traffic of a step -===//
//
// An inspection pass over the output of moe-partition: for one rank of the
// SPMD program it prints what the plan will allocate (parameters,
// gradients, optimizer state, batch, the arena peak of the static memory
// plan, the persistent buffers), the matrix-product FLOPs of the local
// program, and per collective kind the number of ops and the bytes a rank
// sends per step. Every rank runs the same program on shards of the same
// shapes, so one rank's numbers are every rank's.
//
// The numbers are meant to be compared with what a runtime executing the
// plan measures, so they follow the plan's rules: the arena is the memory
// plan the emitter uses (planStepMemory), persistent buffers are laid out
// one per argument, each at the next multiple of the alignment
// (PlanWriter::addPersistentBuffer), and the bytes sent are those of the
// usual ring algorithms:
//
//   all_reduce      2 (p-1) ceil(n/p) w   n = elements of the operand
//   all_gather      (p-1) n w             n = elements of the operand
//   reduce_scatter  (p-1) n w             n = elements of the result
//   all_to_all      (p-1) n w             n = elements of the operand / p
//   all_slice       0                     (local: no communication)
//
// with w the element bytes and p the product of the grid sizes of the op's
// grid axes (p = 1 sends nothing).
//
//===----------------------------------------------------------------------===//
#include "compiler/MemoryPlan.h"
#include "compiler/ModelStats.h"
#include "dialects/Moe/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <iterator>
#include <map>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEPARTITIONREPORT
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The collective kinds of moe-partition, in report order.
constexpr const char *kCollectiveKinds[] = {
    "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "all_slice"};
constexpr size_t kNumCollectiveKinds = std::size(kCollectiveKinds);

struct CollectiveTraffic {
  int64_t count = 0;
  int64_t bytesSent = 0;
};

struct PartitionNumbers {
  int64_t grid[3] = {1, 1, 1}; // dp, ep, tp
  int64_t zero = 0;
  int64_t parameterBytes = 0;
  int64_t gradientBytes = 0;
  int64_t optimizerStateBytes = 0;
  int64_t batchBytes = 0;
  int64_t activationBytes = 0; // the arena
  int64_t persistentBytes = 0;
  // moe-offload: 16-bit device copies of parameters, and the arguments
  // kept in host memory (master weights, moments) in a region of their own.
  int64_t deviceCopyBytes = 0;
  int64_t hostBytes = 0;
  // Bytes copied between device and host memory per step (offload): down,
  // the gradients (moe.to_host) and what a host AdamW reads from the
  // device; up, the 16-bit copies of updated masters (moe.convert of a
  // host value) and the fp32 parameters a host AdamW updates on the device.
  int64_t toHostBytes = 0;
  int64_t toDeviceBytes = 0;
  MatmulFlops flops;
  CollectiveTraffic collectives[kNumCollectiveKinds];
  // Bytes per collective kind and grid axes, for the breakdown.
  std::map<std::pair<size_t, std::string>, CollectiveTraffic> byAxes;
};

int64_t elementBytes(Type type) {
  auto tensor = cast<RankedTensorType>(type);
  return std::max<int64_t>(1, (tensor.getElementTypeBitWidth() + 7) / 8);
}

int64_t numElements(Type type) {
  return cast<RankedTensorType>(type).getNumElements();
}

int64_t alignUp(int64_t value, int64_t alignment) {
  return alignment <= 0 ? value
                        : (value + alignment - 1) / alignment * alignment;
}

std::string axesText(ArrayRef<int16_t> axes) {
  std::string text = "[";
  for (auto [i, axis] : llvm::enumerate(axes))
    text += (i ? ", " : "") + std::to_string(axis);
  return text + "]";
}

struct MoePartitionReport
    : mlir::moe::impl::MoePartitionReportBase<MoePartitionReport> {
  using Base::Base;

  void runOnOperation() override;

private:
  LogicalResult collect(ModuleOp module, func::FuncOp func,
                        PartitionNumbers &numbers);
  /// Index of the op's kind in kCollectiveKinds and the bytes one rank
  /// sends; std::nullopt for ops that are not collectives.
  std::optional<std::pair<size_t, int64_t>>
  traffic(Operation *op, ArrayRef<int64_t> gridShape);
  void print(func::FuncOp func, const PartitionNumbers &numbers);
  LogicalResult writeJson(func::FuncOp func, const PartitionNumbers &numbers);
};

std::optional<std::pair<size_t, int64_t>>
MoePartitionReport::traffic(Operation *op, ArrayRef<int64_t> gridShape) {
  auto groupSize = [&](ArrayRef<int16_t> axes) {
    int64_t p = 1;
    for (int16_t axis : axes)
      p *= gridShape[axis];
    return p;
  };
  return llvm::TypeSwitch<Operation *,
                          std::optional<std::pair<size_t, int64_t>>>(op)
      .Case<shard::AllReduceOp>(
          [&](auto reduce) -> std::optional<std::pair<size_t, int64_t>> {
            int64_t p = groupSize(reduce.getGridAxes());
            Type type = reduce.getInput().getType();
            int64_t n = numElements(type);
            int64_t chunk = (n + p - 1) / p;
            return std::pair(size_t(0),
                             2 * (p - 1) * chunk * elementBytes(type));
          })
      .Case<shard::AllGatherOp>(
          [&](auto gather) -> std::optional<std::pair<size_t, int64_t>> {
            int64_t p = groupSize(gather.getGridAxes());
            Type type = gather.getInput().getType();
            return std::pair(size_t(1),
                             (p - 1) * numElements(type) * elementBytes(type));
          })
      .Case<shard::ReduceScatterOp>(
          [&](auto scatter) -> std::optional<std::pair<size_t, int64_t>> {
            int64_t p = groupSize(scatter.getGridAxes());
            Type type = scatter.getResult().getType();
            return std::pair(size_t(2),
                             (p - 1) * numElements(type) * elementBytes(type));
          })
      .Case<shard::AllToAllOp>(
          [&](auto exchange) -> std::optional<std::pair<size_t, int64_t>> {
            int64_t p = groupSize(exchange.getGridAxes());
            Type type = exchange.getInput().getType();
            return std::pair(size_t(3), (p - 1) * (numElements(type) / p) *
                                            elementBytes(type));
          })
      .Case<shard::AllSliceOp>(
          [&](auto) -> std::optional<std::pair<size_t, int64_t>> {
            return std::pair(size_t(4), int64_t(0));
          })
      .Default([](Operation *) { return std::nullopt; });
}

LogicalResult MoePartitionReport::collect(ModuleOp module, func::FuncOp func,
                                          PartitionNumbers &numbers) {
  // The grid of moe-partition (an unpartitioned step is one rank).
  SmallVector<int64_t> gridShape = {1, 1, 1};
  if (auto grid = module.lookupSymbol<shard::GridOp>("grid")) {
    ArrayRef<int64_t> shape = grid.getShape();
    if (shape.size() != 3)
      return grid.emitError()
             << "moe-partition-report expects the grid of moe-partition: "
                "three axes (dp, ep, tp), found "
             << shape.size();
    gridShape.assign(shape.begin(), shape.end());
  }
  for (size_t axis = 0; axis < 3; ++axis)
    numbers.grid[axis] = gridShape[axis];
  if (auto zero = module->getAttrOfType<IntegerAttr>("moe.zero_stage"))
    numbers.zero = zero.getInt();

  // Arguments: what they hold, and their persistent buffers laid out as
  // the plan writer does (each at the next multiple of the alignment).
  Block &body = func.getBody().front();
  int64_t persistentEnd = 0, hostEnd = 0;
  for (BlockArgument arg : body.getArguments()) {
    unsigned i = arg.getArgNumber();
    int64_t bytes = tensorBytes(arg.getType());
    if (func.getArgAttr(i, MoeDialect::kParamAttrName))
      numbers.parameterBytes += bytes;
    else if (func.getArgAttr(i, MoeDialect::kOptStateAttrName))
      numbers.optimizerStateBytes += bytes;
    else if (func.getArgAttr(i, MoeDialect::kInputAttrName))
      numbers.batchBytes += bytes;
    else if (func.getArgAttr(i, MoeDialect::kDeviceCopyAttrName))
      numbers.deviceCopyBytes += bytes;
    auto placement =
        func.getArgAttrOfType<StringAttr>(i, MoeDialect::kPlacementAttrName);
    int64_t &end =
        placement && placement.getValue() == "host" ? hostEnd : persistentEnd;
    end = alignUp(end, alignment) + bytes;
  }
  numbers.persistentBytes = persistentEnd;
  numbers.hostBytes = hostEnd;
  func.walk([&](AdamWOp update) {
    numbers.gradientBytes += tensorBytes(update.getGrad().getType());
  });
  // Values in host memory: arguments placed there, the buffers moe.to_host
  // writes, and what AdamW makes of host operands.
  auto inHost = [&](Value value) -> bool {
    for (;;) {
      if (auto arg = dyn_cast<BlockArgument>(value)) {
        auto placement = func.getArgAttrOfType<StringAttr>(
            arg.getArgNumber(), MoeDialect::kPlacementAttrName);
        return placement && placement.getValue() == "host";
      }
      Operation *def = value.getDefiningOp();
      if (isa_and_nonnull<ToHostOp>(def))
        return true;
      auto update = dyn_cast_or_null<AdamWOp>(def);
      if (!update)
        return false;
      const unsigned result = cast<OpResult>(value).getResultNumber();
      value = result == 0   ? update.getParam()
              : result == 1 ? update.getExpAvg()
                            : update.getExpAvgSq();
    }
  };
  func.walk([&](Operation *op) {
    if (auto copy = dyn_cast<ToHostOp>(op)) {
      numbers.toHostBytes += tensorBytes(copy.getInput().getType());
    } else if (auto convert = dyn_cast<ConvertOp>(op)) {
      if (inHost(convert.getInput()))
        numbers.toDeviceBytes += tensorBytes(convert.getType());
    } else if (auto update = dyn_cast<AdamWOp>(op)) {
      if (!inHost(update.getExpAvg()))
        return;
      const int64_t bytes = tensorBytes(update.getParam().getType());
      if (!inHost(update.getParam())) {
        numbers.toHostBytes += bytes;
        numbers.toDeviceBytes += bytes;
      }
      if (!inHost(update.getGrad()))
        numbers.toHostBytes += bytes;
    }
  });
  numbers.activationBytes = planStepMemory(func, alignment).arenaBytes;
  numbers.flops = computeMatmulFlops(func);

  bool unknown = false;
  func.walk([&](Operation *op) {
    if (!isa_and_nonnull<shard::ShardDialect>(op->getDialect()))
      return;
    std::optional<std::pair<size_t, int64_t>> sent = traffic(op, gridShape);
    if (!sent) {
      op->emitError() << "moe-partition-report does not know the traffic of "
                      << op->getName();
      unknown = true;
      return;
    }
    auto [kind, bytes] = *sent;
    auto axes = op->getAttrOfType<DenseI16ArrayAttr>("grid_axes");
    std::string key = axes ? axesText(axes.asArrayRef()) : "[]";
    for (CollectiveTraffic *entry :
         {&numbers.collectives[kind], &numbers.byAxes[{kind, key}]}) {
      ++entry->count;
      entry->bytesSent += bytes;
    }
  });
  return failure(unknown);
}

void MoePartitionReport::print(func::FuncOp func,
                               const PartitionNumbers &numbers) {
  llvm::raw_ostream &os = llvm::outs();
  auto mib = [](int64_t bytes) {
    return static_cast<double>(bytes) / (1024.0 * 1024.0);
  };
  int64_t ranks = numbers.grid[0] * numbers.grid[1] * numbers.grid[2];
  os << "partition report of @" << func.getSymName()
     << ": grid dp=" << numbers.grid[0] << " ep=" << numbers.grid[1]
     << " tp=" << numbers.grid[2] << " (" << ranks
     << (ranks == 1 ? " rank" : " ranks") << "), zero=" << numbers.zero << "\n";
  os << "  per rank (every rank of the SPMD program has the same sizes):\n";
  auto bytesLine = [&](StringRef label, int64_t bytes) {
    os << llvm::format("  %-26s %16lld bytes  %11.2f MiB\n",
                       label.str().c_str(), static_cast<long long>(bytes),
                       mib(bytes));
  };
  bytesLine("parameters", numbers.parameterBytes);
  if (numbers.deviceCopyBytes > 0)
    bytesLine("16-bit parameter copies", numbers.deviceCopyBytes);
  bytesLine("gradients", numbers.gradientBytes);
  bytesLine("optimizer state", numbers.optimizerStateBytes);
  bytesLine("batch inputs", numbers.batchBytes);
  bytesLine("activations (arena peak)", numbers.activationBytes);
  bytesLine("persistent (arguments)", numbers.persistentBytes);
  if (numbers.hostBytes > 0) {
    bytesLine("host (offloaded)", numbers.hostBytes);
    bytesLine("copied to the host / step", numbers.toHostBytes);
    bytesLine("copied to the device / step", numbers.toDeviceBytes);
  }
  auto flopsLine = [&](StringRef label, int64_t flops) {
    os << llvm::format("  %-26s %16lld  %11.3f GFLOP\n", label.str().c_str(),
                       static_cast<long long>(flops),
                       static_cast<double>(flops) * 1e-9);
  };
  const MatmulFlops &flops = numbers.flops;
  flopsLine("flops per step", flops.total());
  flopsLine("  forward", flops.forward);
  flopsLine("  backward", flops.backward);
  flopsLine("  linear", flops.linear);
  flopsLine("  attention", flops.attention);
  flopsLine("  experts", flops.experts);
  flopsLine("  gates", flops.gates);
  os << "  collectives per step             ops       bytes sent\n";
  CollectiveTraffic total;
  for (size_t kind = 0; kind < kNumCollectiveKinds; ++kind) {
    const CollectiveTraffic &entry = numbers.collectives[kind];
    os << llvm::format("  %-26s %9lld %16lld\n", kCollectiveKinds[kind],
                       static_cast<long long>(entry.count),
                       static_cast<long long>(entry.bytesSent));
    for (const auto &[key, byAxes] : numbers.byAxes)
      if (key.first == kind)
        os << llvm::format("    over %-21s %9lld %16lld\n", key.second.c_str(),
                           static_cast<long long>(byAxes.count),
                           static_cast<long long>(byAxes.bytesSent));
    total.count += entry.count;
    total.bytesSent += entry.bytesSent;
  }
  os << llvm::format("  %-26s %9lld %16lld\n", "total",
                     static_cast<long long>(total.count),
                     static_cast<long long>(total.bytesSent));
}

LogicalResult MoePartitionReport::writeJson(func::FuncOp func,
                                            const PartitionNumbers &numbers) {
  std::error_code error;
  llvm::raw_fd_ostream file(json, error, llvm::sys::fs::OF_Text);
  if (error)
    return func.emitError() << "moe-partition-report cannot write '" << json
                            << "': " << error.message();
  llvm::json::OStream out(file, /*IndentSize=*/2);
  out.object([&] {
    out.attribute("function", func.getSymName());
    out.attributeObject("grid", [&] {
      out.attribute("dp", numbers.grid[0]);
      out.attribute("ep", numbers.grid[1]);
      out.attribute("tp", numbers.grid[2]);
    });
    out.attribute("zero", numbers.zero);
    out.attribute("alignment", static_cast<int64_t>(alignment));
    out.attribute("parameter_bytes", numbers.parameterBytes);
    out.attribute("gradient_bytes", numbers.gradientBytes);
    out.attribute("optimizer_state_bytes", numbers.optimizerStateBytes);
    out.attribute("batch_bytes", numbers.batchBytes);
    out.attribute("activation_bytes", numbers.activationBytes);
    out.attribute("persistent_bytes", numbers.persistentBytes);
    out.attribute("device_copy_bytes", numbers.deviceCopyBytes);
    out.attribute("host_bytes", numbers.hostBytes);
    out.attribute("to_host_bytes", numbers.toHostBytes);
    out.attribute("to_device_bytes", numbers.toDeviceBytes);
    out.attribute("flops", numbers.flops.total());
    out.attributeObject("collectives", [&] {
      for (size_t kind = 0; kind < kNumCollectiveKinds; ++kind)
        out.attributeObject(kCollectiveKinds[kind], [&] {
          out.attribute("count", numbers.collectives[kind].count);
          out.attribute("bytes_sent", numbers.collectives[kind].bytesSent);
        });
    });
    // The same traffic split by the grid axes the ops span (a planner
    // needs to know which groups stay inside a node).
    out.attributeArray("by_axes", [&] {
      for (const auto &[key, entry] : numbers.byAxes)
        out.object([&] {
          out.attribute("kind", kCollectiveKinds[key.first]);
          out.attribute("axes", key.second);
          out.attribute("count", entry.count);
          out.attribute("bytes_sent", entry.bytesSent);
        });
    });
  });
  file << "\n";
  file.close();
  if (file.has_error())
    return func.emitError() << "moe-partition-report cannot write '" << json
                            << "': " << file.error().message();
  return success();
}

void MoePartitionReport::runOnOperation() {
  ModuleOp module = getOperation();
  auto func = module.lookupSymbol<func::FuncOp>(functionName);
  if (!func) {
    module.emitError() << "moe-partition-report: no function @" << functionName
                       << " (run --moe-training-pipeline first)";
    return signalPassFailure();
  }
  if (!func.getBody().hasOneBlock()) {
    func.emitError() << "moe-partition-report needs a single-block function";
    return signalPassFailure();
  }
  PartitionNumbers numbers;
  if (failed(collect(module, func, numbers)))
    return signalPassFailure();
  if (!quiet)
    print(func, numbers);
  if (!json.empty() && failed(writeJson(func, numbers)))
    return signalPassFailure();
  markAllAnalysesPreserved();
}

} // namespace
