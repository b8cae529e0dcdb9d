//===- Ops.h - The runtime's opcodes, generated from Ops.def ----*- C++ -*-===//
#ifndef MOERT_OPS_H
#define MOERT_OPS_H

#include <cstdint>
#include <optional>
#include <string>

namespace moert {

/// One value per line of Ops.def, numbered as in the plan schema.
enum class Op : uint16_t {
#define MOERT_OP(Name, Value, Dialect, MinOperands, MaxOperands, Results)      \
  Name = Value,
#include "moert/Ops.def"
};

/// What Ops.def says of an op.
struct OpInfo {
  Op op;
  const char *name;        // "linear"
  const char *dialectName; // "moe.linear", "shard.all_reduce"
  int minOperands, maxOperands, numResults;
  bool collective; // an op of the shard dialect
};

/// Every op, in the order of Ops.def.
const OpInfo *allOps(size_t *count);
/// The entry of `op` (every enumerator has one).
const OpInfo &opInfo(Op op);
/// An op by its schema value, its dialect name ("moe.linear") or its bare
/// name ("linear"); nullopt when no line of Ops.def has it.
std::optional<Op> opFromValue(uint32_t value);
std::optional<Op> opFromName(const std::string &name);
namespace detail {
constexpr size_t largerOf(size_t a, size_t b) { return a < b ? b : a; }
constexpr size_t maxOpValue() {
  size_t largest = 0;
#define MOERT_OP(Name, Value, Dialect, MinOperands, MaxOperands, Results)      \
  largest = largerOf(largest, (Value));
#include "moert/Ops.def"
  return largest;
}
} // namespace detail
/// One past the largest schema value (sizes tables indexed by Op).
constexpr size_t kOpTableSize = detail::maxOpValue() + 1;

} // namespace moert

#endif // MOERT_OPS_H
