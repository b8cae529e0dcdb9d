//===- InputLimits.h - Nesting limits for untrusted textual input
//----------===//
//
// MLIR's textual parser, verifier and printer recurse once per nesting level
// (region, attribute array, type parameter list), so a file with tens of
// thousands of nested `module {` exhausts the stack. The tools scan the text
// first, without recursion, and refuse input nested deeper than a limit far
// above any real program but far below what an 8 MiB stack can parse.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_COMPILER_INPUTLIMITS_H
#define MOE_COMPILER_INPUTLIMITS_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

namespace mlir::moe {

/// The deepest bracket nesting moe-opt accepts in IR (a generated model
/// nests at most 5).
inline constexpr unsigned kMaxIrNesting = 1000;

/// Refuses MLIR text whose brackets `{ [ ( <` nest deeper than `maxDepth`,
/// naming line and column of the first bracket past the limit. Strings and
/// `//` comments are skipped, `->` is not a bracket. The count is an upper
/// bound of the parser's recursion: a closing bracket the parser would not
/// accept ends parsing there. Text that is not valid IR otherwise passes
/// (the parser reports it).
llvm::Error checkIrNesting(llvm::StringRef text, llvm::StringRef sourceName,
                           unsigned maxDepth = kMaxIrNesting);

} // namespace mlir::moe

#endif // MOE_COMPILER_INPUTLIMITS_H
