//===- EmitPlan.cpp - Write the execution plan of @train_step -------------===//
#include "compiler/KernelCodegen.h"
#include "compiler/PlanEmitter.h"
#include "passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/raw_ostream.h"
#include "moert/plan/PlanWriter.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEEMITPLAN
#include "passes/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

struct MoeEmitPlan : mlir::moe::impl::MoeEmitPlanBase<MoeEmitPlan> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (output.empty()) {
      module.emitError() << "moe-emit-plan needs an output path "
                            "(--moe-emit-plan=\"output=model.moeplan\")";
      return signalPassFailure();
    }
    PlanEmitterOptions options;
    options.function = functionName;
    options.seed = seed;
    options.alignment = alignment;
    if (gpuKernels != "none" && !gpuKernels.empty()) {
      for (StringRef item : llvm::split(StringRef(gpuKernels), ',')) {
        int sm = 0;
        if (item.trim().getAsInteger(10, sm) || sm < 50 || sm > 200) {
          emitError(module.getLoc()) << "moe-emit-plan: gpu-kernels expects "
                                "architectures such as 80,90 (or 'none'), "
                                "found '"
                             << item << "'";
          return signalPassFailure();
        }
        options.gpuKernels.push_back(sm);
      }
    }
    if (!dumpKernels.empty()) {
      for (int sm : options.gpuKernels) {
        std::string error;
        FailureOr<std::string> ptx = moeKernelPtx(sm, &error);
        if (failed(ptx)) {
          emitError(module.getLoc()) << "moe-emit-plan: " << error;
          return signalPassFailure();
        }
        std::string path =
            dumpKernels + "/moe_kernels.sm_" + std::to_string(sm) + ".ptx";
        std::error_code ec;
        llvm::raw_fd_ostream out(path, ec);
        if (ec) {
          emitError(module.getLoc()) << "moe-emit-plan: cannot write '" << path
                             << "': " << ec.message();
          return signalPassFailure();
        }
        out << *ptx;
      }
    }
    FailureOr<std::vector<uint8_t>> bytes = emitTrainingPlan(module, options);
    if (failed(bytes))
      return signalPassFailure();
    moert::Status written = moert::plan::writePlanFile(output, *bytes);
    if (!written.ok()) {
      module.emitError() << "cannot write the plan to '" << output
                         << "': " << written.message();
      return signalPassFailure();
    }
    markAllAnalysesPreserved();
  }
};

} // namespace
