//===- FuzzCorpusTest.cpp - Replays the committed plan fuzz inputs --------===//
//
// The seed corpus of the plan-loader fuzzer (fuzz/corpus/plan-loader: real
// plans written by moe-opt) must load; every committed regression input
// (fuzz/regressions/plan-loader: minimized crashers the fuzzer found) must
// give a Status, not a crash. This replays them in every build, so a
// machine without clang still checks them.
//
//===----------------------------------------------------------------------===//
#include "moert/plan/PlanDump.h"
#include "moert/plan/PlanLoader.h"

#include "FuzzInputs.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using moe::fuzz::filesIn;
using moe::fuzz::readBytes;

TEST(PlanFuzzCorpus, SeedPlansLoad) {
  std::vector<std::string> seeds =
      filesIn(std::string(MOE_FUZZ_DIR) + "/corpus/plan-loader");
  ASSERT_GE(seeds.size(), 3u) << MOE_FUZZ_DIR;
  for (const std::string &path : seeds) {
    auto plan = moert::plan::loadPlanFromBytes(readBytes(path), path);
    EXPECT_TRUE(plan.ok())
        << path << ": " << plan.status().toString()
        << " (regenerate the seed plans with moe-opt after a format change; "
           "fuzz/README.md)";
    if (plan.ok())
      EXPECT_FALSE(moert::plan::dumpPlan(plan->plan()).empty());
  }
}

TEST(PlanFuzzCorpus, RegressionInputsGiveAStatus) {
  for (const std::string &path :
       filesIn(std::string(MOE_FUZZ_DIR) + "/regressions/plan-loader")) {
    auto plan = moert::plan::loadPlanFromBytes(readBytes(path), path);
    if (plan.ok()) {
      (void)moert::plan::dumpPlan(plan->plan());
      (void)plan->unpack();
    } else {
      EXPECT_FALSE(plan.status().toString().empty()) << path;
    }
  }
}

} // namespace
