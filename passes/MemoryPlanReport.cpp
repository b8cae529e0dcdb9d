//===- MemoryPlanReport.cpp - Print the static arena plan of functions ----===//
#include "compiler/MemoryPlan.h"
#include "dialects/Moe/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEMEMORYPLANREPORT
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

struct MoeMemoryPlanReport
    : mlir::moe::impl::MoeMemoryPlanReportBase<MoeMemoryPlanReport> {
  using Base::Base;

  void runOnOperation() override {
    llvm::raw_ostream &os = llvm::outs();
    auto mib = [](int64_t bytes) {
      return static_cast<double>(bytes) / (1024.0 * 1024.0);
    };
    getOperation()->walk([&](func::FuncOp func) {
      if (!functionName.empty() && func.getSymName() != functionName)
        return;
      if (!func.getBody().hasOneBlock())
        return;
      // Values the emitted plan writes into persistent state (in-place
      // AdamW updates, returned ZeRO all-gathers) take no arena bytes.
      MemoryPlan plan = planStepMemory(func, alignment);
      os << "memory plan of @" << func.getSymName() << ": "
         << plan.buffers.size() << " buffers\n";
      os << llvm::format("  arena (peak)           %14lld bytes  %9.2f MiB\n",
                         static_cast<long long>(plan.arenaBytes),
                         mib(plan.arenaBytes));
      os << llvm::format("  live lower bound       %14lld bytes  %9.2f MiB\n",
                         static_cast<long long>(plan.liveLowerBound),
                         mib(plan.liveLowerBound));
      os << llvm::format("  without reuse          %14lld bytes  %9.2f MiB\n",
                         static_cast<long long>(plan.unsharedBytes),
                         mib(plan.unsharedBytes));
      os << llvm::format("  arguments (persistent) %14lld bytes  %9.2f MiB\n",
                         static_cast<long long>(plan.argumentBytes),
                         mib(plan.argumentBytes));
    });
    markAllAnalysesPreserved();
  }
};

} // namespace
