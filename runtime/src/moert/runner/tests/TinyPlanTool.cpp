//===- TinyPlanTool.cpp - Writes the runner tests' tiny plan --------------===//
//
//   moert-tiny-plan <dp> <tp> <out.moeplan>
//
// For the shell tests of moe-train under mpirun (TinyPlan.h).
//
//===----------------------------------------------------------------------===//
#include "TinyPlan.h"

#include <cstdio>
#include <cstdlib>

int main(int argc, char **argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: moert-tiny-plan <dp> <tp> <out.moeplan>\n");
    return 2;
  }
  int dp = std::atoi(argv[1]), tp = std::atoi(argv[2]);
  if (dp < 1 || tp < 1 || moert::runner::testing::kTinyBatch % dp ||
      moert::runner::testing::kTinyDim % dp ||
      moert::runner::testing::kTinyVocab % tp) {
    std::fprintf(stderr, "moert-tiny-plan: dp must divide 4, tp 16\n");
    return 2;
  }
  moert::Status status = moert::plan::writePlanFile(
      argv[3], moert::runner::testing::makeTinyPlan(dp, tp));
  if (!status.ok()) {
    std::fprintf(stderr, "moert-tiny-plan: %s\n", status.toString().c_str());
    return 1;
  }
  return 0;
}
