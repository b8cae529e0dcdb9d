//===- KernelRegistryTest.cpp - Every op has a kernel on every backend ----===//
//
// Ops.def is the one list of ops. These tests tie the other lists to it:
// each backend built into this binary registers a kernel for every op,
// the plan's attribute table knows every op with the same operand and
// result counts, and names and schema values round-trip.
//
//===----------------------------------------------------------------------===//
#include "moert/Ops.h"
#include "moert/exec/Executor.h"
#include "moert/exec/KernelRegistry.h"
#include "moert/plan/KernelSignatures.h"
#include "moert/plan/Plan.h"

#include <gtest/gtest.h>

#include <set>

namespace moert {
namespace {

std::vector<OpInfo> ops() {
  size_t count = 0;
  const OpInfo *all = allOps(&count);
  return std::vector<OpInfo>(all, all + count);
}

TEST(OpsTest, NamesAndValuesRoundTrip) {
  std::set<uint32_t> values;
  std::set<std::string> names;
  for (const OpInfo &info : ops()) {
    EXPECT_TRUE(values.insert(static_cast<uint32_t>(info.op)).second)
        << info.name << " reuses a schema value";
    EXPECT_TRUE(names.insert(info.name).second) << info.name;
    EXPECT_EQ(opFromName(info.name), info.op);
    EXPECT_EQ(opFromName(info.dialectName), info.op);
    EXPECT_EQ(opFromValue(static_cast<uint32_t>(info.op)), info.op);
    EXPECT_EQ(std::string(info.dialectName),
              std::string(info.collective ? "shard." : "moe.") + info.name);
    EXPECT_LE(info.minOperands, info.maxOperands) << info.name;
    EXPECT_GE(info.numResults, 1) << info.name;
    // The schema spells it the same way.
    EXPECT_EQ(plan::opcodeName(static_cast<plan::fb::Opcode>(info.op)),
              info.name);
  }
  EXPECT_FALSE(opFromName("moe.copy")) << "a removed op is still listed";
  EXPECT_FALSE(opFromValue(30));
  EXPECT_FALSE(opFromName("moe.frobnicate"));
}

TEST(OpsTest, EveryOpHasAnAttributeSignatureWithTheSameCounts) {
  for (const OpInfo &info : ops()) {
    const plan::KernelSignature *signature =
        plan::kernelSignature(static_cast<plan::fb::Opcode>(info.op));
    ASSERT_NE(signature, nullptr) << info.name;
    EXPECT_EQ(signature->minOperands, info.minOperands) << info.name;
    EXPECT_EQ(signature->maxOperands, info.maxOperands) << info.name;
    EXPECT_EQ(signature->minResults, info.numResults) << info.name;
    EXPECT_EQ(signature->maxResults, info.numResults) << info.name;
  }
  EXPECT_EQ(plan::kernelSignature(static_cast<plan::fb::Opcode>(30)), nullptr);
}

class KernelRegistryTest : public ::testing::TestWithParam<hal::Backend> {};

TEST_P(KernelRegistryTest, EveryOpHasAKernel) {
  const exec::KernelRegistry &registry = exec::kernelRegistry(GetParam());
  for (const OpInfo &info : ops())
    EXPECT_NE(registry.find(info.op), nullptr)
        << "the " << hal::backendName(GetParam())
        << " backend has no kernel for " << info.dialectName;
}

std::vector<hal::Backend> builtBackends() {
  std::vector<hal::Backend> backends;
  for (int b = 0; b < hal::kNumBackends; ++b)
    if (hal::backendBuilt(static_cast<hal::Backend>(b)))
      backends.push_back(static_cast<hal::Backend>(b));
  return backends;
}

INSTANTIATE_TEST_SUITE_P(
    Backends, KernelRegistryTest, ::testing::ValuesIn(builtBackends()),
    [](const ::testing::TestParamInfo<hal::Backend> &info) {
      return std::string(hal::backendName(info.param));
    });

TEST(KernelRegistryTest, TheCpuBackendIsAlwaysBuilt) {
  EXPECT_TRUE(hal::backendBuilt(hal::Backend::Cpu));
  EXPECT_NE(exec::lookupKernel("moe.linear"), nullptr);
  EXPECT_NE(exec::lookupKernel("shard.all_to_all"), nullptr);
  EXPECT_EQ(exec::lookupKernel("moe.copy"), nullptr);
}

} // namespace
} // namespace moert
