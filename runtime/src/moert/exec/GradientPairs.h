//===- GradientPairs.h - Gradient attributes against the forward op's ---===//
//
// The backward kernels recompute what their forward op did from their own
// attributes: a dropout gradient redraws the mask from its stream and rate,
// an attention gradient splits the heads by its own `num_heads`, a gate
// gradient re-derives the routing from its gating configuration. A plan in
// which the two disagree runs without any kernel reading out of bounds and
// trains on wrong gradients, silently. Before anything runs, every gradient
// instruction is therefore matched with the forward instruction it
// differentiates (by the operands they share, or the random stream) and
// the attributes both interpret must be equal.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_GRADIENTPAIRS_H
#define MOERT_EXEC_GRADIENTPAIRS_H

#include "moert/Status.h"
#include "moert/exec/Program.h"

namespace moert {
namespace exec {

/// Checks every gradient instruction of `program` against the forward
/// instructions it pairs with; the error names both instructions and the
/// attribute with both values.
Status checkGradientPairs(const Program &program);

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_GRADIENTPAIRS_H
