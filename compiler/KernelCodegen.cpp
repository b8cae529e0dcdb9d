//===- KernelCodegen.cpp - The MoE data-movement kernels, generated -------===//
#include "compiler/KernelCodegen.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Pipelines/Passes.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

namespace mlir {
namespace moe {

namespace {

// The kernel bodies. They use %bid / %nblk (block index / count) and %tid /
// %nthr (thread index / count), defined by gpu ops in a kernel and by loops
// in a host function, and the i64 arguments %S %k %M %E %C.

/// The shared prologue: sizes as index values, constants.
const char *kPrologue = R"(
    %zero = arith.constant 0 : i64
    %none = arith.constant -1 : i64
    %i0 = arith.constant 0 : index
    %i1 = arith.constant 1 : index
    %Si = arith.index_cast %S : i64 to index
    %ki = arith.index_cast %k : i64 to index
    %Mi = arith.index_cast %M : i64 to index
)";

/// %ok: routing entry %entry (i64) is kept and valid; %e, %c its expert and
/// slot (i64).
const char *kEntry = R"(
      %ep = llvm.getelementptr %experts[%entry] : (!llvm.ptr, i64) -> !llvm.ptr, i32
      %e32 = llvm.load %ep : !llvm.ptr -> i32
      %sp = llvm.getelementptr %slots[%entry] : (!llvm.ptr, i64) -> !llvm.ptr, i32
      %c32 = llvm.load %sp : !llvm.ptr -> i32
      %e = arith.extsi %e32 : i32 to i64
      %c = arith.extsi %c32 : i32 to i64
      %eLow = arith.cmpi sge, %e, %zero : i64
      %eHigh = arith.cmpi slt, %e, %E : i64
      %cLow = arith.cmpi sge, %c, %zero : i64
      %cHigh = arith.cmpi slt, %c, %C : i64
      %eOk = arith.andi %eLow, %eHigh : i1
      %cOk = arith.andi %cLow, %cHigh : i1
      %ok = arith.andi %eOk, %cOk : i1
)";

std::string dispatchBody() {
  return std::string(kPrologue) + R"(
    %entries = arith.muli %Si, %ki : index
    scf.for %i = %bid to %entries step %nblk {
      %entry = arith.index_cast %i : index to i64
)" + kEntry + R"(
      scf.if %ok {
        %s = arith.divsi %entry, %k : i64
        %srcOffset = arith.muli %s, %M : i64
        %src = llvm.getelementptr %x[%srcOffset] : (!llvm.ptr, i64) -> !llvm.ptr, f32
        %eC = arith.muli %e, %C : i64
        %row = arith.addi %eC, %c : i64
        %dstOffset = arith.muli %row, %M : i64
        %dst = llvm.getelementptr %buffer[%dstOffset] : (!llvm.ptr, i64) -> !llvm.ptr, f32
        scf.for %m = %tid to %Mi step %nthr {
          %m64 = arith.index_cast %m : index to i64
          %from = llvm.getelementptr %src[%m64] : (!llvm.ptr, i64) -> !llvm.ptr, f32
          %v = llvm.load %from : !llvm.ptr -> f32
          %to = llvm.getelementptr %dst[%m64] : (!llvm.ptr, i64) -> !llvm.ptr, f32
          llvm.store %v, %to : f32, !llvm.ptr
        }
      }
    }
)";
}

/// combine (`weighted`) or the dispatch gradient: out[s, m] = the sum over
/// kept choices, in order, from 0.
std::string gatherBody(bool weighted) {
  std::string term =
      weighted ? R"(
            %wp = llvm.getelementptr %weights[%entry] : (!llvm.ptr, i64) -> !llvm.ptr, f32
            %w = llvm.load %wp : !llvm.ptr -> f32
            %product = arith.mulf %w, %bv : f32
            %sum = arith.addf %acc, %product : f32
)"
               : R"(
            %sum = arith.addf %acc, %bv : f32
)";
  return std::string(kPrologue) + R"(
    scf.for %si = %bid to %Si step %nblk {
      %s = arith.index_cast %si : index to i64
      %sk = arith.muli %s, %k : i64
      %sM = arith.muli %s, %M : i64
      scf.for %m = %tid to %Mi step %nthr {
        %m64 = arith.index_cast %m : index to i64
        %fzero = arith.constant 0.0 : f32
        %total = scf.for %j = %i0 to %ki step %i1 iter_args(%acc = %fzero) -> (f32) {
          %j64 = arith.index_cast %j : index to i64
          %entry = arith.addi %sk, %j64 : i64
)" + kEntry + R"(
          %next = scf.if %ok -> (f32) {
            %eC = arith.muli %e, %C : i64
            %row = arith.addi %eC, %c : i64
            %rowM = arith.muli %row, %M : i64
            %at = arith.addi %rowM, %m64 : i64
            %bp = llvm.getelementptr %buffer[%at] : (!llvm.ptr, i64) -> !llvm.ptr, f32
            %bv = llvm.load %bp : !llvm.ptr -> f32
)" + term + R"(
            scf.yield %sum : f32
          } else {
            scf.yield %acc : f32
          }
          scf.yield %next : f32
        }
        %outAt = arith.addi %sM, %m64 : i64
        %op = llvm.getelementptr %out[%outAt] : (!llvm.ptr, i64) -> !llvm.ptr, f32
        llvm.store %total, %op : f32, !llvm.ptr
      }
    }
)";
}

struct KernelText {
  const char *name;
  const char *pointers; // the pointer arguments
  std::string body;
};

std::vector<KernelText> kernels() {
  return {
      {"moe_dispatch",
       "%x: !llvm.ptr, %experts: !llvm.ptr, %slots: !llvm.ptr, "
       "%buffer: !llvm.ptr",
       dispatchBody()},
      {"moe_combine",
       "%buffer: !llvm.ptr, %experts: !llvm.ptr, %slots: !llvm.ptr, "
       "%weights: !llvm.ptr, %out: !llvm.ptr",
       gatherBody(true)},
      {"moe_dispatch_grad",
       "%buffer: !llvm.ptr, %experts: !llvm.ptr, %slots: !llvm.ptr, "
       "%out: !llvm.ptr",
       gatherBody(false)},
  };
}

const char *kSizes = "%S: i64, %k: i64, %M: i64, %E: i64, %C: i64";

void registerKernelDialects(DialectRegistry &registry) {
  registry.insert<arith::ArithDialect, func::FuncDialect, gpu::GPUDialect,
                  LLVM::LLVMDialect, NVVM::NVVMDialect, scf::SCFDialect>();
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
}

} // namespace

const std::vector<std::string> &moeKernelNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> list;
    for (const KernelText &k : kernels())
      list.push_back(k.name);
    return list;
  }();
  return names;
}

std::string moeKernelSource(bool forGpu) {
  std::string text;
  llvm::raw_string_ostream os(text);
  if (forGpu) {
    os << "module attributes {gpu.container_module} {\n"
       << "  gpu.module @moe_kernels {\n";
    for (const KernelText &k : kernels())
      os << "  gpu.func @" << k.name << "(" << k.pointers << ", " << kSizes
         << ") kernel {\n"
         << "    %bid = gpu.block_id x\n"
         << "    %nblk = gpu.grid_dim x\n"
         << "    %tid = gpu.thread_id x\n"
         << "    %nthr = gpu.block_dim x\n"
         << k.body << "    gpu.return\n  }\n";
    os << "  }\n}\n";
  } else {
    os << "module {\n";
    for (const KernelText &k : kernels())
      os << "  func.func @" << k.name << "_host(" << k.pointers << ", "
         << kSizes << ", %blocks: i64, %threads: i64) {\n"
         << "    %h0 = arith.constant 0 : index\n"
         << "    %h1 = arith.constant 1 : index\n"
         << "    %nblk = arith.index_cast %blocks : i64 to index\n"
         << "    %nthr = arith.index_cast %threads : i64 to index\n"
         << "    scf.for %bid = %h0 to %nblk step %h1 {\n"
         << "    scf.for %tid = %h0 to %nthr step %h1 {\n"
         << k.body << "    }\n    }\n    return\n  }\n";
    os << "}\n";
  }
  return text;
}

FailureOr<std::string> moeKernelPtx(int sm, std::string *error) {
  auto fail = [&](const std::string &why) -> FailureOr<std::string> {
    if (error)
      *error = why;
    return failure();
  };
  static const bool targetsReady = [] {
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
    return true;
  }();
  (void)targetsReady;
  DialectRegistry registry;
  registerKernelDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  std::string diagnostics;
  llvm::raw_string_ostream diagnosticStream(diagnostics);
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diagnostic) {
    diagnosticStream << diagnostic << "\n";
    return success();
  });
  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(moeKernelSource(true), &context);
  if (!module)
    return fail("the generated kernel source does not parse: " + diagnostics);
  PassManager pm(&context);
  gpu::GPUToNVVMPipelineOptions options;
  options.cubinChip = "sm_" + std::to_string(sm);
  // PTX 8.0 (CUDA 12.0) or newer is required for sm_90.
  options.cubinFeatures = "+ptx80";
  options.cubinFormat = "isa";
  options.optLevel = 3;
  gpu::buildLowerToNVVMPassPipeline(pm, options);
  if (failed(pm.run(*module)))
    return fail("lowering the kernels to PTX for sm_" + std::to_string(sm) +
                " failed: " + diagnostics);
  std::string ptx;
  module->walk([&](gpu::BinaryOp binary) {
    for (Attribute object : binary.getObjects())
      if (auto gpuObject = dyn_cast<gpu::ObjectAttr>(object))
        ptx += gpuObject.getObject().getValue().str();
  });
  if (ptx.empty())
    return fail("lowering the kernels to PTX for sm_" + std::to_string(sm) +
                " produced no PTX");
  // The module's PTX is a null-terminated string for the driver.
  while (!ptx.empty() && ptx.back() == '\0')
    ptx.pop_back();
  return ptx;
}

} // namespace moe
} // namespace mlir
