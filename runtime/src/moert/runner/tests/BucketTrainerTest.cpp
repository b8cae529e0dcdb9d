//===- BucketTrainerTest.cpp - Plans sharing one persistent state ---------===//
#include "moert/runner/BucketTrainer.h"

#include "TinyPlan.h"

#include <gtest/gtest.h>

namespace moert {
namespace runner {
namespace {

PlanFile tinyPlan(const std::string &path, int dp = 1) {
  Expected<plan::LoadedPlan> loaded =
      plan::loadPlanFromBytes(testing::makeTinyPlan(dp, 1));
  EXPECT_TRUE(loaded.ok()) << loaded.status().toString();
  return {path, std::move(*loaded)};
}

int32_t bufferNamed(const exec::Program &program, const std::string &name) {
  for (size_t id = 0; id < program.buffers.size(); ++id)
    if (program.buffers[id].name == name)
      return static_cast<int32_t>(id);
  return -1;
}

TEST(BucketTrainerTest, StateLayoutsMustAgree) {
  PlanFile a = tinyPlan("a.moeplan"), b = tinyPlan("b.moeplan");
  Expected<exec::Program> pa = trainerProgram(a.plan.plan(), false);
  Expected<exec::Program> pb = trainerProgram(b.plan.plan(), false);
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_TRUE(checkSharedState(a, *pa, b, *pb).ok());

  // A moment elsewhere in the persistent region.
  exec::Program moved = *pb;
  const int32_t m = bufferNamed(moved, "embed.m");
  ASSERT_GE(m, 0);
  moved.buffers[m].offset += 64;
  Status offset = checkSharedState(a, *pa, b, moved);
  ASSERT_FALSE(offset.ok());
  EXPECT_NE(offset.message().find(
                "bucket plan 'b.moeplan' cannot share the persistent state "
                "of 'a.moeplan': the offset of persistent buffer 'embed.m' "
                "is " +
                std::to_string(pa->buffers[m].offset + 64) + ", expected " +
                std::to_string(pa->buffers[m].offset)),
            std::string::npos)
      << offset.message();

  // Another kind (offloaded on one side only).
  exec::Program host = *pb;
  host.buffers[m].kind = exec::BufferKind::Host;
  Status kind = checkSharedState(a, *pa, b, host);
  ASSERT_FALSE(kind.ok());
  EXPECT_NE(kind.message().find("the kind of persistent buffer 'embed.m' is "
                                "host, expected persistent"),
            std::string::npos)
      << kind.message();

  // State the steps carry beyond the parameters and moments (a 16-bit
  // device copy, say) must be the same too.
  exec::Program extra = *pb;
  exec::Buffer copy;
  copy.type = {exec::DType::F32, {4}};
  copy.kind = exec::BufferKind::Persistent;
  copy.offset = extra.persistentBytes;
  copy.name = "copy:embed";
  extra.buffers.push_back(copy);
  extra.persistentBytes += 64;
  Status count = checkSharedState(a, *pa, b, extra);
  ASSERT_FALSE(count.ok());
  EXPECT_NE(count.message().find("the number of persistent state buffers is "),
            std::string::npos)
      << count.message();

  // A batch input lying on a parameter of the shared state.
  exec::Program overlapping = *pb;
  const int32_t src = bufferNamed(overlapping, "src");
  const int32_t proj = bufferNamed(overlapping, "proj");
  ASSERT_GE(src, 0);
  ASSERT_GE(proj, 0);
  overlapping.buffers[src].offset = overlapping.buffers[proj].offset + 4;
  Status overlap = checkSharedState(a, *pa, b, overlapping);
  ASSERT_FALSE(overlap.ok());
  EXPECT_NE(overlap.message().find("persistent buffer 'src' of 'b.moeplan'"),
            std::string::npos)
      << overlap.message();
  EXPECT_NE(overlap.message().find("overlaps the state buffer 'proj'"),
            std::string::npos)
      << overlap.message();

  // Another grid.
  PlanFile c = tinyPlan("c.moeplan", 2);
  Expected<exec::Program> pc = trainerProgram(c.plan.plan(), false);
  ASSERT_TRUE(pc.ok());
  Status grid = checkSharedState(a, *pa, c, *pc);
  ASSERT_FALSE(grid.ok());
  EXPECT_NE(grid.message().find("the device grid is dp=2 x ep=1 x tp=1, "
                                "expected dp=1 x ep=1 x tp=1"),
            std::string::npos)
      << grid.message();
}

TEST(BucketTrainerTest, TrainersShareTheFirstOnesRegions) {
  std::vector<PlanFile> plans;
  plans.push_back(tinyPlan("a.moeplan"));
  plans.push_back(tinyPlan("b.moeplan"));
  Expected<std::unique_ptr<BucketTrainer>> made =
      BucketTrainer::create(std::move(plans), 1, 0, nullptr, nullptr, false);
  ASSERT_TRUE(made.ok()) << made.status().toString();
  BucketTrainer &buckets = **made;
  ASSERT_EQ(buckets.numBuckets(), 2u);
  EXPECT_FALSE(buckets.bucket(0).executor().sharesMemory());
  EXPECT_TRUE(buckets.bucket(1).executor().sharesMemory());
  ASSERT_TRUE(buckets.main().initializeParameters().ok());
  for (const ParameterState &param : buckets.bucket(1).parameters())
    EXPECT_EQ(buckets.bucket(1).executor().deviceAddress(param.value),
              buckets.main().executor().deviceAddress(param.value))
        << param.name;
  // Without a source that picks buckets there is nothing to run.
  Expected<StepMetrics> step = buckets.runStep(1);
  ASSERT_FALSE(step.ok());
  EXPECT_NE(step.status().message().find("need a batch source"),
            std::string::npos);
}

} // namespace
} // namespace runner
} // namespace moert
