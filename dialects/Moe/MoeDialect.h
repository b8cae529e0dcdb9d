//===- MoeDialect.h - The moe dialect, its enums and attributes -----------===//
#ifndef MOE_DIALECTS_MOE_MOEDIALECT_H
#define MOE_DIALECTS_MOE_MOEDIALECT_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/DenseMap.h"

#include <mutex>
#include <utility>

#include "dialects/Moe/MoeDialect.h.inc"
#include "dialects/Moe/MoeEnums.h.inc"

namespace mlir::moe {
/// Parses a double written as an integer or float literal.
FailureOr<llvm::APFloat> parseDoubleParameter(AsmParser &parser);
/// Prints a double in its shortest form that parses back to the same value.
void printDoubleParameter(AsmPrinter &printer, const llvm::APFloat &value);
/// Parses `true` or `false`.
FailureOr<bool> parseBoolParameter(AsmParser &parser);

/// The largest byte size of one tensor the compiler accepts: 2^48 bytes
/// (256 TiB), far beyond any device, and small enough that the sums of
/// buffer sizes in a plan cannot overflow int64.
inline constexpr int64_t kMaxTensorBytes = int64_t(1) << 48;

/// The byte size of a statically shaped tensor type (element bits rounded
/// up to whole bytes), or nullopt when the element count or the byte count
/// overflows int64 or exceeds kMaxTensorBytes.
std::optional<int64_t> boundedTensorBytes(Type type);
} // namespace mlir::moe

#define GET_ATTRDEF_CLASSES
#include "dialects/Moe/MoeAttrs.h.inc"

#endif // MOE_DIALECTS_MOE_MOEDIALECT_H
