//===- ShapeRules.h - Operand and result shapes of every op -----*- C++ -*-===//
//
// A plan is untrusted input: before anything runs, the executor checks
// every instruction's operand and result shapes against its op's rules
// (linear [.., K] x [K, N] -> [.., N], a gate's routing [S, k], an expert
// buffer [E, C, M], AdamW's matching state, ...), so that no kernel reads
// or writes past a buffer because a plan was malformed. The error names
// what was found and what was expected; the executor adds the instruction.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_SHAPERULES_H
#define MOERT_EXEC_SHAPERULES_H

#include "moert/Status.h"
#include "moert/exec/Program.h"

namespace moert {
namespace exec {

/// Checks `inst` (whose operand and result counts are already checked).
Status checkInstructionShapes(const Instruction &inst, const Program &program);

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_SHAPERULES_H
