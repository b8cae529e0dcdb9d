//===- EmitPlan.cpp - Write the execution plan of @train_step -------------===//
#include "compiler/PlanEmitter.h"
#include "passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"
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
