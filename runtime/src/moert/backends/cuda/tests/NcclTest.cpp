//===- NcclTest.cpp - The NCCL communicator on a GPU ----------------------===//
//
// A NCCL grid of one rank on the first GPU (what one GPU can run: NCCL
// refuses two ranks on one device): every collective on device buffers,
// its results and byte counts. Without a GPU or without libnccl.so.2 the
// GPU cases skip with the reason; the error cases run everywhere.
//
//===----------------------------------------------------------------------===//
#include "moert/backends/cpu/CpuDevice.h"
#include "moert/exec/DeviceCommunicators.h"
#include "moert/hal/Device.h"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

namespace moert {
namespace {

TEST(NcclTest, RefusesADeviceThatIsNotCuda) {
  Expected<std::unique_ptr<comm::GridCommunicators>> single =
      comm::makeSingleRankGrid({1, 1});
  ASSERT_TRUE(single.ok());
  Expected<std::unique_ptr<comm::GridCommunicators>> grid =
      exec::makeDeviceGrid(std::move(*single), cpu::hostDevice());
  ASSERT_FALSE(grid.ok());
  EXPECT_NE(grid.status().message().find("need a CUDA device"),
            std::string::npos)
      << grid.status().toString();
}

class NcclGpuTest : public ::testing::Test {
protected:
  void SetUp() override {
    Expected<std::unique_ptr<hal::Device>> device =
        hal::createDevice(hal::Backend::Cuda, hal::DeviceOptions());
    if (!device.ok())
      GTEST_SKIP() << device.status().toString();
    device_ = std::move(*device);
    Status available = exec::deviceCommunicatorsAvailable(*device_);
    if (!available.ok())
      GTEST_SKIP() << available.toString();
  }

  std::vector<float> run(comm::Communicator &c, int which,
                         const std::vector<float> &input) {
    const size_t bytes = input.size() * sizeof(float);
    Expected<hal::DeviceBuffer> a = device_->allocate(bytes, "nccl test");
    Expected<hal::DeviceBuffer> b = device_->allocate(bytes, "nccl test");
    EXPECT_TRUE(a.ok() && b.ok());
    EXPECT_TRUE(device_->copyToDevice(a->data(), input.data(), bytes).ok());
    const int64_t n = static_cast<int64_t>(input.size());
    Status s = Status::success();
    switch (which) {
    case 0:
      s = c.allReduce(a->data(), n, comm::ElementType::F32,
                      comm::ReduceOp::Sum);
      break;
    case 1:
      s = c.allGather(a->data(), b->data(), n, comm::ElementType::F32);
      break;
    case 2:
      s = c.reduceScatter(a->data(), b->data(), n, comm::ElementType::F32,
                          comm::ReduceOp::Mean);
      break;
    default:
      s = c.allToAll(a->data(), b->data(), n, comm::ElementType::F32);
      break;
    }
    EXPECT_TRUE(s.ok()) << s.toString();
    std::vector<float> out(input.size());
    EXPECT_TRUE(
        device_->copyToHost(out.data(), which == 0 ? a->data() : b->data(),
                            bytes)
            .ok());
    return out;
  }

  std::unique_ptr<hal::Device> device_;
};

TEST_F(NcclGpuTest, OneRankWorldRunsEveryCollectiveOnTheDevice) {
  Expected<std::unique_ptr<comm::GridCommunicators>> single =
      comm::makeSingleRankGrid({1});
  ASSERT_TRUE(single.ok());
  Expected<std::unique_ptr<comm::GridCommunicators>> grid =
      exec::makeDeviceGrid(std::move(*single), *device_);
  ASSERT_TRUE(grid.ok()) << grid.status().toString();
  comm::Communicator &world = (*grid)->world();
  EXPECT_TRUE(world.devicePointers());
  EXPECT_EQ(world.size(), 1);
  std::vector<float> input(1000);
  std::iota(input.begin(), input.end(), -3.0f);
  for (int which = 0; which < 4; ++which)
    EXPECT_EQ(run(world, which, input), input) << "collective " << which;
  // A group of one sends nothing; each call is counted.
  for (int kind = 0; kind < comm::kNumCollectiveKinds; ++kind) {
    EXPECT_EQ(world.stats().calls[kind], 1);
    EXPECT_EQ(world.stats().bytesSent[kind], 0);
  }
  EXPECT_TRUE(world.barrier().ok());
  // Errors name the collective and the group.
  Status bad = world.allReduce(nullptr, 4, comm::ElementType::F32,
                               comm::ReduceOp::Sum);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("all_reduce over the NCCL group"),
            std::string::npos)
      << bad.toString();
}

} // namespace
} // namespace moert
