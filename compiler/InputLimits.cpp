//===- InputLimits.cpp - Nesting limits for untrusted textual input -------===//
#include "compiler/InputLimits.h"

#include "llvm/Support/FormatVariadic.h"

llvm::Error mlir::moe::checkIrNesting(llvm::StringRef text,
                                      llvm::StringRef sourceName,
                                      unsigned maxDepth) {
  unsigned depth = 0;
  unsigned line = 1;
  size_t lineStart = 0;
  for (size_t i = 0, e = text.size(); i < e; ++i) {
    char c = text[i];
    switch (c) {
    case '\n':
      ++line;
      lineStart = i + 1;
      break;
    case '"':
      // A string literal: up to the next unescaped quote or the line end
      // (MLIR strings do not span lines).
      for (++i; i < e && text[i] != '"' && text[i] != '\n'; ++i)
        if (text[i] == '\\')
          ++i;
      if (i < e && text[i] == '\n')
        --i; // counted as a line break above
      break;
    case '/':
      if (i + 1 < e && text[i + 1] == '/') {
        while (i + 1 < e && text[i + 1] != '\n')
          ++i;
      }
      break;
    case '-':
      if (i + 1 < e && text[i + 1] == '>')
        ++i; // the arrow of function types and maps
      break;
    case '{':
    case '[':
    case '(':
    case '<':
      if (++depth > maxDepth)
        return llvm::createStringError(
            llvm::inconvertibleErrorCode(),
            llvm::formatv("{0}:{1}:{2}: input nested deeper than {3} levels "
                          "of brackets ({{ [ ( <); refused before parsing",
                          sourceName, line, i - lineStart + 1, maxDepth));
      break;
    case '}':
    case ']':
    case ')':
    case '>':
      if (depth > 0)
        --depth;
      break;
    default:
      break;
    }
  }
  return llvm::Error::success();
}
