//===- PlanProgram.h - A verified plan as an executable Program -----------===//
#ifndef MOERT_RUNNER_PLANPROGRAM_H
#define MOERT_RUNNER_PLANPROGRAM_H

#include "moert/exec/Program.h"
#include "moert/plan/Plan.h"

namespace moert {
namespace runner {

/// Converts a plan (already verified by the loader) into the executor's
/// Program: arena and persistent buffers keep their offsets, instructions
/// name their kernels after the dialect ops ("linear" -> "moe.linear"),
/// attributes keep their values (booleans as 0/1), collectives become
/// "shard.<op>" instructions carrying their grid axes, reduction and
/// split / concatenated dimensions, and the program records the plan's
/// grid shape.
Expected<exec::Program> programFromPlan(const plan::fb::Plan &plan);

} // namespace runner
} // namespace moert

#endif // MOERT_RUNNER_PLANPROGRAM_H
