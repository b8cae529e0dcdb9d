//===- IrParserFuzzer.cpp - libFuzzer target: textual IR
//-------------------===//
//
// moe-opt's front end on any text: the nesting scan, then MLIR's parser and
// verifier with the dialects moe-opt registers (moe, func, arith, tensor,
// shard). Any input must give diagnostics or a verified module.
//
//===----------------------------------------------------------------------===//
#include "compiler/InputLimits.h"
#include "dialects/Moe/MoeDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  if (llvm::Error error = mlir::moe::checkIrNesting(text, "<fuzz>")) {
    llvm::consumeError(std::move(error));
    return 0;
  }
  static mlir::DialectRegistry *registry = [] {
    auto *r = new mlir::DialectRegistry();
    r->insert<mlir::moe::MoeDialect, mlir::func::FuncDialect,
              mlir::arith::ArithDialect, mlir::tensor::TensorDialect,
              mlir::shard::ShardDialect>();
    return r;
  }();
  mlir::MLIRContext context(*registry, mlir::MLIRContext::Threading::DISABLED);
  context.loadAllAvailableDialects();
  // Diagnostics are expected; they are not printed.
  context.getDiagEngine().registerHandler([](mlir::Diagnostic &) {});
  mlir::ParserConfig config(&context);
  // MLIR's lexer stops at a NUL after the text (as every file moe-opt reads
  // has): give it a NUL-terminated copy, as libFuzzer's bytes are not.
  std::string source = text.str();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(source, config, "<fuzz>");
  if (module)
    (void)mlir::verify(*module);
  return 0;
}
