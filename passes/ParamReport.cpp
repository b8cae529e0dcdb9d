//===- ParamReport.cpp - Print parameter statistics of model functions ----===//
//
// An inspection pass: for each function with parameters it prints the
// parameter counts (total, dense, expert, active per token), so a user sees
// the size of a model before compiling a plan for it.
//
//===----------------------------------------------------------------------===//
#include "compiler/ModelStats.h"
#include "dialects/Moe/MoeOps.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEPARAMREPORT
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// 1234567 -> "1.23M"; exact counts are printed beside it.
std::string humanCount(double count) {
  const char *units[] = {"", "K", "M", "B", "T"};
  int unit = 0;
  while (count >= 1000.0 && unit < 4) {
    count /= 1000.0;
    ++unit;
  }
  std::string text;
  llvm::raw_string_ostream(text) << llvm::format("%.2f", count) << units[unit];
  return text;
}

struct MoeParamReport : mlir::moe::impl::MoeParamReportBase<MoeParamReport> {
  void runOnOperation() override {
    llvm::raw_ostream &os = llvm::outs();
    getOperation()->walk([&](func::FuncOp func) {
      ParamStats stats = computeParamStats(func);
      if (stats.numParams == 0)
        return;
      auto line = [&](StringRef label, double value) {
        os << llvm::format("  %-22s %16.0f  (%s)\n", label.str().c_str(), value,
                           humanCount(value).c_str());
      };
      os << "parameters of @" << func.getSymName() << ": " << stats.numParams
         << " tensors\n";
      line("total", static_cast<double>(stats.totalElements));
      line("dense", static_cast<double>(stats.denseElements));
      line("expert", static_cast<double>(stats.expertElements));
      line("active per token", stats.activeElements);
      os << "  moe layers             " << stats.moeLayers;
      if (stats.moeLayers > 0)
        os << " (" << stats.numExperts << " experts, top-" << stats.topK << ")";
      os << "\n";
    });
    markAllAnalysesPreserved();
  }
};

} // namespace
