//===- Ops.cpp - Lookups over Ops.def -------------------------------------===//
#include "moert/Ops.h"

#include <cstdlib>

namespace moert {
namespace {
const OpInfo kOps[] = {
#define MOERT_OP(Name, Value, Dialect, MinOperands, MaxOperands, Results)      \
  {Op::Name,   #Name,        #Dialect "." #Name, MinOperands,                  \
   MaxOperands, Results,     sizeof(#Dialect) == sizeof("shard")},
#include "moert/Ops.def"
};
constexpr size_t kNumOps = sizeof(kOps) / sizeof(kOps[0]);
} // namespace

const OpInfo *allOps(size_t *count) {
  *count = kNumOps;
  return kOps;
}

const OpInfo &opInfo(Op op) {
  for (const OpInfo &info : kOps)
    if (info.op == op)
      return info;
  std::abort(); // every enumerator comes from a line of Ops.def
}

std::optional<Op> opFromValue(uint32_t value) {
  for (const OpInfo &info : kOps)
    if (static_cast<uint32_t>(info.op) == value)
      return info.op;
  return std::nullopt;
}

std::optional<Op> opFromName(const std::string &name) {
  for (const OpInfo &info : kOps)
    if (name == info.name || name == info.dialectName)
      return info.op;
  return std::nullopt;
}

} // namespace moert
