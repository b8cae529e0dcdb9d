//===- PlanDump.h - Human-readable listing of a plan ------------*- C++ -*-===//
//
// What an engineer reads before spending cluster time on a plan: the grid,
// the training configuration, the parameters with their sharding, the
// memory plan and the instruction stream, one line per item. Used by the
// plan inspector tool and in test failure messages.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_PLAN_PLANDUMP_H
#define MOERT_PLAN_PLANDUMP_H

#include "moert/plan/Plan.h"

#include <ostream>
#include <string>

namespace moert::plan {

/// Prints `plan` (which must have passed the loader's checks).
void printPlan(const fb::Plan &plan, std::ostream &out);
std::string dumpPlan(const fb::Plan &plan);

} // namespace moert::plan

#endif // MOERT_PLAN_PLANDUMP_H
