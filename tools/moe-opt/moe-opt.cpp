//===- moe-opt.cpp - The moe compiler driver ------------------------------===//
//
// mlir-opt with the moe dialects, passes and pipelines, plus one guard for
// untrusted input: the text is scanned for its bracket nesting before the
// (recursive) parser sees it, so deeply nested IR is an error, not a stack
// overflow (compiler/InputLimits.h).
//
//===----------------------------------------------------------------------===//
#include "compiler/InitAll.h"
#include "compiler/InputLimits.h"

#include "mlir/Bytecode/BytecodeReader.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  mlir::DialectRegistry registry;
  mlir::moe::registerAllDialects(registry);
  mlir::moe::registerAllPasses();
  const char *description = "MoE compiler: Mixture-of-Experts training plans\n";
  auto [inputFilename, outputFilename] =
      mlir::registerAndParseCLIOptions(argc, argv, description, registry);
  mlir::MlirOptMainConfig config =
      mlir::MlirOptMainConfig::createFromCLOptions();
  // Listing dialects or passes reads no input: upstream's driver as is.
  if (config.shouldShowDialects() || config.shouldListPasses())
    return mlir::asMainReturnCode(
        mlir::MlirOptMain(argc, argv, inputFilename, outputFilename, registry));

  auto error = [](const llvm::Twine &message) {
    llvm::WithColor::error(llvm::errs(), "moe-opt") << message << "\n";
    return EXIT_FAILURE;
  };
  std::string errorMessage;
  std::unique_ptr<llvm::MemoryBuffer> file =
      mlir::openInputFile(inputFilename, &errorMessage);
  if (!file)
    return error(errorMessage);
  // Textual IR only: the bytecode reader keeps its region stack on the heap.
  if (!mlir::isBytecode(file->getMemBufferRef()))
    if (llvm::Error nesting = mlir::moe::checkIrNesting(
            file->getBuffer(), inputFilename == "-"
                                   ? llvm::StringRef("<stdin>")
                                   : llvm::StringRef(inputFilename)))
      return error(llvm::toString(std::move(nesting)));
  std::unique_ptr<llvm::ToolOutputFile> output =
      mlir::openOutputFile(outputFilename, &errorMessage);
  if (!output)
    return error(errorMessage);
  if (failed(
          mlir::MlirOptMain(output->os(), std::move(file), registry, config)))
    return EXIT_FAILURE;
  // Like mlir-opt: the output is kept only when everything succeeded.
  output->keep();
  return EXIT_SUCCESS;
}
