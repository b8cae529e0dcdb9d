//===- PlanTest.cpp - Plan round trip, dump and robustness sweeps ---------===//

#include "SmallPlan.h"

#include "moert/plan/KernelSignatures.h"
#include "moert/plan/PlanDump.h"
#include "moert/plan/PlanLoader.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <unistd.h>

namespace moert::plan {
namespace {

using testing::makeSmallPlan;
using testing::SmallPlanIds;

TEST(PlanRoundTrip, BytesLoadBackToTheSamePlan) {
  PlanWriter writer = makeSmallPlan();
  std::vector<uint8_t> bytes = writer.finish();
  Expected<LoadedPlan> loaded = loadPlanFromBytes(bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  fb::PlanT unpacked = loaded->unpack();
  EXPECT_TRUE(unpacked == writer.plan()) << dumpPlan(loaded->plan());
  // Re-serializing the unpacked plan gives a plan that loads the same.
  Expected<LoadedPlan> again = loadPlanFromBytes(serializePlan(unpacked));
  ASSERT_TRUE(again.ok()) << again.status().toString();
  EXPECT_TRUE(again->unpack() == writer.plan());
}

TEST(PlanRoundTrip, FieldsReadBackThroughTheFlatBuffersView) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  Expected<LoadedPlan> loaded = loadPlanFromBytes(writer.finish());
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  const fb::Plan &plan = loaded->plan();
  EXPECT_EQ(plan.version()->major(), kSchemaMajorVersion);
  EXPECT_EQ(plan.version()->minor(), kSchemaMinorVersion);
  EXPECT_EQ(plan.model_name()->str(), "small-test-model");
  EXPECT_EQ(numRanks(*plan.grid()), 4);
  EXPECT_EQ(plan.grid()->zero_stage(), 1);
  ASSERT_EQ(plan.parameters()->size(), 2u);
  const fb::Parameter &expert = *plan.parameters()->Get(1);
  EXPECT_EQ(expert.group(), fb::ParamGroup::expert);
  EXPECT_EQ(expert.init(), fb::InitKind::xavier_uniform);
  EXPECT_EQ(localShape(*plan.grid(), {4, 16, 32}, expert.sharding()),
            (std::vector<int64_t>{2, 16, 32}));
  EXPECT_EQ(plan.buffers()->Get(ids.embedded)->size(), 1280u);
  EXPECT_EQ(plan.arena_bytes(), 3840u);
  ASSERT_EQ(plan.instructions()->size(), 4u);
  const fb::Instruction &reduce = *plan.instructions()->Get(2);
  EXPECT_EQ(reduce.opcode(), fb::Opcode::all_reduce);
  EXPECT_EQ(reduce.collective()->reduction(), fb::ReductionKind::sum);
  const fb::Attribute &position =
      *plan.instructions()->Get(0)->attributes()->Get(0);
  EXPECT_EQ(position.value_as_StringValue()->value()->str(), "sinusoidal");
  EXPECT_DOUBLE_EQ(plan.training()->beta2(), 0.98);
  EXPECT_EQ(plan.training()->warmup_steps(), 4000);
}

TEST(PlanRoundTrip, FileWriteAndLoad) {
  std::string path = ::testing::TempDir() + "plan-roundtrip-" +
                     std::to_string(::getpid()) + ".moeplan";
  PlanWriter writer = makeSmallPlan();
  Status written = writePlanFile(path, writer.finish());
  ASSERT_TRUE(written.ok()) << written.toString();
  Expected<LoadedPlan> loaded = loadPlan(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_EQ(loaded->source(), path);
  EXPECT_TRUE(loaded->unpack() == writer.plan());
  std::remove(path.c_str());
}

TEST(PlanRoundTrip, MissingFileIsNotFound) {
  Expected<LoadedPlan> loaded = loadPlan("/nonexistent/dir/x.moeplan");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::NotFound);
}

// A plan of a newer minor version may carry attributes this build does not
// know; they are skipped (minor versions only add).
TEST(PlanRoundTrip, NewerMinorVersionWithUnknownAttributeLoads) {
  PlanWriter writer = makeSmallPlan();
  *writer.mutablePlan().version =
      fb::SchemaVersion(kSchemaMajorVersion, kSchemaMinorVersion + 1);
  InstructionEditor(*writer.mutablePlan().instructions[1])
      .intVectorAttr("future_tile_sizes", {64, 128});
  Expected<LoadedPlan> loaded = loadPlanFromBytes(writer.finish());
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_TRUE(loaded->unpack() == writer.plan());
  EXPECT_NE(dumpPlan(loaded->plan()).find("future_tile_sizes = [64, 128]"),
            std::string::npos);
}

TEST(PlanRoundTrip, ConstantOperand) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  int ones = writer.addConstantBuffer({2, 10, 16}, fb::DType::f32, 1.0, "ones");
  writer.mutablePlan().instructions[3]->operands[0] = ones;
  Expected<LoadedPlan> loaded = loadPlanFromBytes(writer.finish());
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_TRUE(loaded->unpack() == writer.plan());
  EXPECT_NE(dumpPlan(loaded->plan())
                .find("%7 [2, 10, 16] f32 constant splat "
                      "1 'ones'"),
            std::string::npos);
}

TEST(PlanDump, ListsEveryPart) {
  Expected<LoadedPlan> loaded = loadPlanFromBytes(makeSmallPlan().finish());
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  std::string dump = dumpPlan(loaded->plan());
  const std::string header = "plan 'small-test-model' (schema 1." +
                             std::to_string(kSchemaMinorVersion) + ")";
  for (const char *expected :
       {header.c_str(),
        "grid: dp=2 (data) x ep=2 (expert) x tp=1 (tensor) = 4 ranks, ZeRO "
        "stage 1",
        "#1 encoder.layers.0.moe.w1 [4, 16, 32] f32 [ep, -, -] init "
        "xavier_uniform(1) expert -> %1",
        "#0 tokens [8, 10] i32 [dp x ep, -] -> %2",
        "%4 [2, 10, 16] f32 arena [1280, 2560) live [1, 3] 'activated'",
        "#0 embedding %2, %0 -> %3 {position = \"sinusoidal\", scaled = "
        "true}  // model.mlir:12:5",
        "#2 all_reduce %4 -> %5 over [ep] sum", "warmup 4000 steps"})
    EXPECT_NE(dump.find(expected), std::string::npos)
        << "missing: " << expected << "\nin:\n"
        << dump;
}

TEST(PlanGrid, CoordinatesAreRowMajor) {
  PlanWriter writer = makeSmallPlan();
  Expected<LoadedPlan> loaded = loadPlanFromBytes(writer.finish());
  ASSERT_TRUE(loaded.ok());
  const fb::DeviceGrid &grid = *loaded->plan().grid();
  EXPECT_EQ(coordinatesOfRank(grid, 0), (GridCoordinates{0, 0, 0}));
  EXPECT_EQ(coordinatesOfRank(grid, 1), (GridCoordinates{0, 1, 0}));
  EXPECT_EQ(coordinatesOfRank(grid, 2), (GridCoordinates{1, 0, 0}));
  EXPECT_EQ(coordinatesOfRank(grid, 3), (GridCoordinates{1, 1, 0}));
}

TEST(KernelSignatures, EveryOpcodeHasOne) {
  for (fb::Opcode opcode : fb::EnumValuesOpcode()) {
    const KernelSignature *signature = kernelSignature(opcode);
    ASSERT_NE(signature, nullptr) << opcodeName(opcode);
    EXPECT_LE(signature->minOperands, signature->maxOperands);
    EXPECT_LE(signature->minResults, signature->maxResults);
  }
  EXPECT_EQ(kernelSignature(static_cast<fb::Opcode>(999)), nullptr);
}

// Every proper prefix of a valid plan must be rejected cleanly.
TEST(PlanRobustness, EveryTruncationIsAnError) {
  std::vector<uint8_t> bytes = makeSmallPlan().finish();
  for (size_t length = 0; length < bytes.size(); ++length) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + length);
    Expected<LoadedPlan> loaded = loadPlanFromBytes(std::move(prefix));
    EXPECT_FALSE(loaded.ok()) << "a " << length << "-byte prefix of "
                              << bytes.size() << " bytes loaded";
    if (!loaded.ok())
      EXPECT_FALSE(loaded.status().message().empty());
  }
}

// Flips bits at every byte position: each load must end in an error or in
// a plan that passed every check (which must then also dump safely). Run
// under AddressSanitizer to turn a silent out-of-bounds read into a failure.
TEST(PlanRobustness, FlippedBytesNeverCrash) {
  std::vector<uint8_t> bytes = makeSmallPlan().finish();
  size_t rejected = 0, accepted = 0;
  for (size_t position = 0; position < bytes.size(); ++position) {
    for (uint8_t mask : {0x01, 0x10, 0x80, 0xff}) {
      std::vector<uint8_t> corrupt = bytes;
      corrupt[position] ^= mask;
      Expected<LoadedPlan> loaded = loadPlanFromBytes(std::move(corrupt));
      if (loaded.ok()) {
        ++accepted;
        EXPECT_FALSE(dumpPlan(loaded->plan()).empty());
      } else {
        ++rejected;
        EXPECT_FALSE(loaded.status().message().empty());
      }
    }
  }
  // Most flips hit offsets, ids, sizes or enum values and must be caught;
  // some (a float's low mantissa bit, padding) legitimately are not.
  EXPECT_GT(rejected, accepted / 4);
  std::printf("byte flips: %zu rejected, %zu accepted as valid plans\n",
              rejected, accepted);
}

// Random multi-byte corruption (seeded, so failures reproduce): several
// bytes at once reach states single flips do not, e.g. consistent-looking
// but wrong offsets.
TEST(PlanRobustness, RandomMultiByteCorruptionNeverCrashes) {
  std::vector<uint8_t> bytes = makeSmallPlan().finish();
  std::mt19937 random(20240601);
  std::uniform_int_distribution<size_t> position(0, bytes.size() - 1);
  std::uniform_int_distribution<int> count(2, 6), value(0, 255);
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<uint8_t> corrupt = bytes;
    for (int i = count(random); i > 0; --i)
      corrupt[position(random)] = static_cast<uint8_t>(value(random));
    Expected<LoadedPlan> loaded = loadPlanFromBytes(std::move(corrupt));
    if (loaded.ok())
      EXPECT_FALSE(dumpPlan(loaded->plan()).empty());
    else
      EXPECT_FALSE(loaded.status().message().empty());
  }
}

} // namespace
} // namespace moert::plan
