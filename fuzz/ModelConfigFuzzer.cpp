//===- ModelConfigFuzzer.cpp - libFuzzer target: JSON model configs -------===//
//
// Any text given to parseModelConfig must give an error or a configuration
// that validates (a valid one is validated a second time, which must agree).
//
//===----------------------------------------------------------------------===//
#include "compiler/ModelConfig.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  llvm::Expected<mlir::moe::ModelConfig> config =
      mlir::moe::parseModelConfig(text, "<fuzz>");
  if (!config) {
    llvm::consumeError(config.takeError());
    return 0;
  }
  if (llvm::Error error = mlir::moe::validateModelConfig(*config, "<fuzz>")) {
    llvm::consumeError(std::move(error));
    std::abort(); // parse accepted what validation refuses
  }
  return 0;
}
