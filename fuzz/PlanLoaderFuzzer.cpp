//===- PlanLoaderFuzzer.cpp - libFuzzer target: the plan loader -----------===//
//
// Any byte string given to loadPlanFromBytes must give a Status or a plan
// that passed every check; a plan that loads is then dumped and unpacked
// (which reads every table the verifier accepted).
//
//===----------------------------------------------------------------------===//
#include "moert/plan/PlanDump.h"
#include "moert/plan/PlanLoader.h"

#include <cstddef>
#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  moert::Expected<moert::plan::LoadedPlan> plan =
      moert::plan::loadPlanFromBytes(std::move(bytes), "<fuzz>");
  if (!plan.ok())
    return 0;
  std::string text = moert::plan::dumpPlan(plan->plan());
  moert::plan::fb::PlanT unpacked = plan->unpack();
  (void)text;
  (void)unpacked;
  return 0;
}
