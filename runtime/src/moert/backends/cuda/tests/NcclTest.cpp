//===- NcclTest.cpp - The NCCL communicator on a GPU ----------------------===//
//
// A NCCL grid of one rank on the first GPU (what one GPU can run: NCCL
// refuses two ranks on one device): every collective on device buffers,
// its results and byte counts, and the collective timeout: a collective
// held up on the stream (a host function that sleeps stands in for a peer
// that stopped) ends the process with exit code 124 and the watchdog's
// message, one that is merely slow completes; and the executor's
// collective stream, ordered with the compute stream by events. Without a
// GPU or without libnccl.so.2 the GPU cases skip with the reason; the
// error cases run everywhere.
//
//===----------------------------------------------------------------------===//
#include "moert/backends/cpu/CpuDevice.h"
#include "moert/comm/Watchdog.h"
#include "moert/exec/CollectiveQueue.h"
#include "moert/exec/DeviceCommunicators.h"
#include "moert/hal/Device.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <thread>
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

  /// A one-rank world of NCCL communicators on the test's device.
  Expected<std::unique_ptr<comm::GridCommunicators>> oneRankGrid() {
    MOERT_ASSIGN_OR_RETURN(std::unique_ptr<comm::GridCommunicators> single,
                           comm::makeSingleRankGrid({1}));
    return exec::makeDeviceGrid(std::move(single), *device_);
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
  Expected<std::unique_ptr<comm::GridCommunicators>> grid = oneRankGrid();
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

/// A host function on the stream that sleeps *seconds: the work after it
/// waits, as a collective waits for a peer that stopped.
void CUDART_CB sleepOnStream(void *seconds) {
  std::this_thread::sleep_for(
      std::chrono::duration<double>(*static_cast<double *>(seconds)));
}

/// An all-reduce of 256 floats on a one-rank NCCL world with `timeout`
/// seconds, enqueued behind `stall` seconds of sleep on the stream, then a
/// host wait; the result of that wait.
Status stalledAllReduce(hal::Device &device, double timeout, double *stall) {
  MOERT_ASSIGN_OR_RETURN(std::unique_ptr<comm::GridCommunicators> single,
                         comm::makeSingleRankGrid({1}));
  exec::DeviceGridOptions options;
  options.collectiveTimeoutSeconds = timeout;
  MOERT_ASSIGN_OR_RETURN(
      std::unique_ptr<comm::GridCommunicators> grid,
      exec::makeDeviceGrid(std::move(single), device, {}, options));
  std::vector<float> host(256, 1.5f);
  MOERT_ASSIGN_OR_RETURN(hal::DeviceBuffer buffer,
                         device.allocate(host.size() * sizeof(float), "x"));
  MOERT_RETURN_IF_ERROR(device.copyToDevice(buffer.data(), host.data(),
                                            host.size() * sizeof(float)));
  if (cudaLaunchHostFunc(static_cast<cudaStream_t>(device.nativeStream()),
                         sleepOnStream, stall) != cudaSuccess)
    return internalError("cudaLaunchHostFunc failed");
  MOERT_RETURN_IF_ERROR(
      grid->world().allReduce(buffer.data(), static_cast<int64_t>(host.size()),
                              comm::ElementType::F32, comm::ReduceOp::Sum));
  MOERT_RETURN_IF_ERROR(device.synchronize());
  MOERT_RETURN_IF_ERROR(device.copyToHost(host.data(), buffer.data(),
                                          host.size() * sizeof(float)));
  for (float x : host)
    if (x != 1.5f)
      return internalError("the all-reduce of one rank changed the data");
  return Status::success();
}

TEST_F(NcclGpuTest, ASlowCollectiveWithinTheTimeoutCompletes) {
  static double stall = 0.3;
  Status status = stalledAllReduce(*device_, 20.0, &stall);
  EXPECT_TRUE(status.ok()) << status.toString();
}

TEST_F(NcclGpuTest, AStalledCollectiveTimesOutAndEndsTheJob) {
  // A fresh process runs the statement (CUDA does not survive a fork).
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The timeout leaves NCCL's initialization (under the same timeout) time
  // to finish; the stall outlasts it. ncclCommAbort may wait for the stream
  // (at most 10 s before the job ends anyway).
  static double stall = 12.0;
  EXPECT_EXIT(
      {
        comm::configureCollectiveWatchdog(0.0, "moert-cuda-nccl-tests", 0);
        comm::setWatchdogStep(7);
        Status status = stalledAllReduce(*device_, 5.0, &stall);
        std::fprintf(stderr, "not timed out: %s\n", status.toString().c_str());
        std::_Exit(status.ok() ? 0 : 3);
      },
      ::testing::ExitedWithCode(124),
      "moert-cuda-nccl-tests: rank 0: error: collective timeout: all_reduce "
      "over the NCCL group over axes .* \\(rank 0 of 1\\) has not "
      "completed after 5\\.[0-9] s at training step 7 \\(another rank "
      "stopped, hung or lost its connection\\); aborting the job");
}

// The executor's collective stream (StreamCollectiveQueue.h) on a one-rank
// NCCL world: the collective sees the compute enqueued before it was
// started, even when that compute is late (a host function sleeps on the
// compute stream), and the compute after its wait point sees the
// collective's result, even when the collective is late (a sleep on the
// collective stream). Without the events either read would see stale data.
TEST_F(NcclGpuTest, CollectiveStreamIsOrderedWithTheComputeStream) {
  Expected<std::unique_ptr<comm::GridCommunicators>> grid = oneRankGrid();
  ASSERT_TRUE(grid.ok()) << grid.status().toString();
  Expected<std::unique_ptr<exec::CollectiveQueue>> queue =
      exec::makeCollectiveQueue(*device_, **grid);
  ASSERT_TRUE(queue.ok()) << queue.status().toString();
  ASSERT_TRUE(*queue);
  exec::CollectiveQueue &q = **queue;
  ASSERT_NE(q.stream(), nullptr);
  ASSERT_NE(q.stream(), device_->nativeStream());
  comm::Communicator &world = (*grid)->world();
  const int64_t n = 1 << 20;
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  Expected<hal::DeviceBuffer> a = device_->allocate(bytes, "a");
  Expected<hal::DeviceBuffer> b = device_->allocate(bytes, "b");
  Expected<hal::DeviceBuffer> c = device_->allocate(bytes, "c");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  std::vector<float> ones(static_cast<size_t>(n), 1.0f);
  ASSERT_TRUE(device_->copyToDevice(a->data(), ones.data(), bytes).ok());
  ASSERT_TRUE(device_->synchronize().ok());

  // Late compute: `a` becomes zeros only after 0.2 s on the compute stream.
  static double computeDelay = 0.2, collectiveDelay = 0.2;
  cudaStream_t compute = static_cast<cudaStream_t>(device_->nativeStream());
  ASSERT_EQ(cudaLaunchHostFunc(compute, sleepOnStream, &computeDelay),
            cudaSuccess);
  ASSERT_TRUE(device_->fill(a->data(), 0, bytes).ok());
  ASSERT_TRUE(q.start(0, [&]() -> Status {
                 // Late collective: it starts 0.2 s after its inputs are
                 // ready, on the collective stream.
                 if (cudaLaunchHostFunc(static_cast<cudaStream_t>(q.stream()),
                                        sleepOnStream,
                                        &collectiveDelay) != cudaSuccess)
                   return internalError("cudaLaunchHostFunc failed");
                 return world.allGather(a->data(), b->data(), n,
                                        comm::ElementType::F32);
               }).ok());
  ASSERT_TRUE(q.wait(0).ok());
  ASSERT_TRUE(device_->copyOnDevice(c->data(), b->data(), bytes).ok());
  std::vector<float> out(static_cast<size_t>(n), -1.0f);
  ASSERT_TRUE(device_->copyToHost(out.data(), c->data(), bytes).ok());
  EXPECT_EQ(out, std::vector<float>(static_cast<size_t>(n), 0.0f));
  EXPECT_EQ(
      world.stats().calls[static_cast<int>(comm::CollectiveKind::AllGather)],
      1);

  // A collective that fails when enqueued is reported at its wait; the
  // one started after it is not enqueued and reports the same error.
  ASSERT_TRUE(q.start(1, [&]() -> Status {
                 return world.allReduce(nullptr, 4, comm::ElementType::F32,
                                        comm::ReduceOp::Sum);
               }).ok());
  bool ranAfter = false;
  ASSERT_TRUE(q.start(2, [&]() -> Status {
                 ranAfter = true;
                 return Status::success();
               }).ok());
  Status failed = q.wait(2);
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("all_reduce over the NCCL group"),
            std::string::npos)
      << failed.toString();
  EXPECT_FALSE(ranAfter);
  EXPECT_FALSE(q.drain().ok()); // 1 was not waited for
  EXPECT_TRUE(q.drain().ok());  // and the queue is usable again
  EXPECT_TRUE(device_->synchronize().ok());
}

} // namespace
} // namespace moert
