//===- InputLimitsTest.cpp - Nesting and duplicate-key scans --------------===//
#include "compiler/InputLimits.h"
#include "compiler/InitAll.h"
#include "compiler/ModelConfig.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <gtest/gtest.h>

#include <string>

using namespace mlir::moe;

namespace {

std::string errorOf(llvm::Error error) {
  return error ? llvm::toString(std::move(error)) : std::string();
}

TEST(JsonStructure, DepthLimitIsExactAndNeedsNoRecursion) {
  std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_EQ(errorOf(checkJsonStructure(ok, "t.json")), "");
  std::string deep = std::string(65, '[') + std::string(65, ']');
  EXPECT_EQ(errorOf(checkJsonStructure(deep, "t.json")),
            "t.json:1:65: JSON nested deeper than 64 levels (objects and "
            "arrays); a model configuration needs 2");
  // Ten million levels: answered by the scan (a recursive parser would
  // need gigabytes of stack).
  std::string huge(10'000'000, '[');
  EXPECT_NE(errorOf(checkJsonStructure(huge, "t.json")), "");
}

TEST(JsonStructure, DuplicateKeys) {
  EXPECT_EQ(errorOf(checkJsonStructure("{\"a\": 1,\n \"a\": 2}", "t.json")),
            "t.json:2:2: duplicate key \"a\" (each key may appear once per "
            "object)");
  // Same key in different objects, keys equal to values, brackets and
  // escaped quotes inside strings: all fine.
  EXPECT_EQ(errorOf(checkJsonStructure(
                "{\"a\": {\"a\": \"a\"}, \"b\": [\"a\", {\"a\": 1}], "
                "\"c\\\"[{\": \"]}\\\"\"}",
                "t.json")),
            "");
  // An escape naming the same character is the same key.
  EXPECT_NE(errorOf(checkJsonStructure("{\"ab\": 1, \"a\\u0062\": 2}", "t")),
            "");
  // Unterminated text is left to the parser.
  EXPECT_EQ(errorOf(checkJsonStructure("{\"a\": \"", "t.json")), "");
}

TEST(IrNesting, CountsBracketsOutsideStringsAndComments) {
  std::string ok = std::string(1000, '(') + std::string(1000, ')');
  EXPECT_EQ(errorOf(checkIrNesting(ok, "t.mlir")), "");
  std::string deep = "x\n" + std::string(1001, '{');
  EXPECT_EQ(errorOf(checkIrNesting(deep, "t.mlir")),
            "t.mlir:2:1001: input nested deeper than 1000 levels of brackets "
            "({ [ ( <); refused before parsing");
  std::string commented = "// " + std::string(5000, '[') + "\n\"" +
                          std::string(5000, '<') + "\\\"\"";
  EXPECT_EQ(errorOf(checkIrNesting(commented, "t.mlir")), "");
  // Arrows close nothing: a thousand `(x) -> (y)` stay at depth <= 1.
  std::string arrows;
  for (int i = 0; i < 1000; ++i)
    arrows += "(x) -> (y) ";
  EXPECT_EQ(errorOf(checkIrNesting(arrows, "t.mlir")), "");
  // A line break ends an unterminated string, so a quote cannot hide the
  // brackets of the following lines.
  std::string hidden = "\"\n" + std::string(1001, '[');
  EXPECT_NE(errorOf(checkIrNesting(hidden, "t.mlir")), "");
}

// The IR fuzzer's committed inputs (fuzz/corpus/ir-parser: the dialect's
// valid and invalid test cases, generated models and train steps;
// fuzz/regressions/ir-parser: minimized crashers) go through moe-opt's front
// end in every build: nesting scan, parser, verifier. None may crash; the
// generated models and the train step must verify.
TEST(IrFuzzCorpus, ReplaysThroughTheFrontEnd) {
  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  int verified = 0, files = 0;
  for (const char *kind : {"corpus", "regressions"}) {
    std::string directory =
        std::string(MOE_SOURCE_DIR) + "/fuzz/" + kind + "/ir-parser";
    std::error_code ec;
    for (llvm::sys::fs::directory_iterator it(directory, ec), end;
         !ec && it != end; it.increment(ec)) {
      auto buffer = llvm::MemoryBuffer::getFile(it->path());
      ASSERT_TRUE(static_cast<bool>(buffer)) << it->path();
      ++files;
      if (llvm::Error error =
              checkIrNesting((*buffer)->getBuffer(), it->path())) {
        llvm::consumeError(std::move(error));
        continue;
      }
      mlir::MLIRContext context(registry,
                                mlir::MLIRContext::Threading::DISABLED);
      context.getDiagEngine().registerHandler([](mlir::Diagnostic &) {});
      mlir::ParserConfig config(&context);
      auto module = mlir::parseSourceString<mlir::ModuleOp>(
          (*buffer)->getBuffer(), config, it->path());
      bool ok = module && succeeded(mlir::verify(*module));
      verified += ok;
      llvm::StringRef name = llvm::sys::path::filename(it->path());
      if (name.starts_with("model-") || name.starts_with("train-step")) {
        EXPECT_TRUE(ok) << it->path();
      }
    }
  }
  EXPECT_GE(files, 100);
  EXPECT_GE(verified, 3);
}

} // namespace
