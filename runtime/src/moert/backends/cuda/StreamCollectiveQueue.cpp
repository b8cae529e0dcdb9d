//===- StreamCollectiveQueue.cpp - NCCL collectives on their own stream ---===//
#include "moert/backends/cuda/StreamCollectiveQueue.h"

#include "moert/backends/cuda/CudaDevice.h"
#include "moert/backends/cuda/NcclCommunicator.h"
#include "moert/comm/Communicator.h"

#include <cuda_runtime.h>

#include <map>
#include <string>
#include <vector>

namespace moert {
namespace cuda {

namespace {

Status cudaFailure(const char *call, cudaError_t e) {
  return internalError(std::string("collective stream: ") + call +
                       " failed: " + cudaGetErrorString(e));
}

class StreamCollectiveQueue final : public exec::CollectiveQueue {
public:
  /// `grid` null: a queue for the offload's host work (no NCCL stream to
  /// point anywhere).
  StreamCollectiveQueue(CudaDevice &device, comm::GridCommunicators *grid)
      : device_(device), grid_(grid) {}
  ~StreamCollectiveQueue() override {
    (void)drain();
    for (cudaEvent_t event : free_)
      cudaEventDestroy(event);
    if (before_)
      cudaEventDestroy(before_);
    if (stream_)
      cudaStreamDestroy(stream_);
  }

  Status initialize() {
    cudaError_t e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
    if (e != cudaSuccess)
      return cudaFailure("cudaStreamCreateWithFlags", e);
    e = cudaEventCreateWithFlags(&before_, cudaEventDisableTiming);
    if (e != cudaSuccess)
      return cudaFailure("cudaEventCreateWithFlags", e);
    return Status::success();
  }

  Status start(size_t index, std::function<Status()> work) override {
    if (started_.count(index))
      return internalError("queued instruction #" + std::to_string(index) +
                           " was started twice without a wait");
    Started entry;
    if (!failure_.ok()) {
      // Behind a collective that failed: not enqueued.
      entry.status = failure_;
      started_.emplace(index, std::move(entry));
      return Status::success();
    }
    // The collective stream waits for the compute enqueued so far.
    cudaError_t e = cudaEventRecord(before_, device_.stream());
    if (e == cudaSuccess)
      e = cudaStreamWaitEvent(stream_, before_, 0);
    if (e != cudaSuccess)
      return cudaFailure("cudaEventRecord/cudaStreamWaitEvent", e);
    if (grid_)
      MOERT_RETURN_IF_ERROR(setNcclStream(*grid_, stream_));
    entry.status = work();
    if (grid_)
      MOERT_RETURN_IF_ERROR(setNcclStream(*grid_, nullptr));
    if (!entry.status.ok()) {
      failure_ = entry.status;
    } else {
      MOERT_ASSIGN_OR_RETURN(entry.done, event());
      e = cudaEventRecord(entry.done, stream_);
      if (e != cudaSuccess) {
        free_.push_back(entry.done);
        return cudaFailure("cudaEventRecord", e);
      }
    }
    started_.emplace(index, std::move(entry));
    return Status::success();
  }

  Status wait(size_t index) override {
    auto found = started_.find(index);
    if (found == started_.end())
      return internalError("waiting for queued instruction #" +
                           std::to_string(index) + ", which was not started");
    Started entry = std::move(found->second);
    started_.erase(found);
    return finish(entry);
  }

  Status drain() override {
    Status first = Status::success();
    for (auto &[index, entry] : started_) {
      Status status = finish(entry);
      if (first.ok() && !status.ok())
        first = status;
    }
    started_.clear();
    failure_ = Status::success();
    return first;
  }

  void *stream() override { return stream_; }

private:
  struct Started {
    Status status = Status::success();
    cudaEvent_t done = nullptr; // null: nothing was enqueued
  };

  /// The compute stream waits for `entry`'s completion event.
  Status finish(Started &entry) {
    if (entry.done) {
      const cudaError_t e =
          cudaStreamWaitEvent(device_.stream(), entry.done, 0);
      free_.push_back(entry.done); // reusable: the wait is enqueued
      entry.done = nullptr;
      if (e != cudaSuccess && entry.status.ok())
        entry.status = cudaFailure("cudaStreamWaitEvent", e);
    }
    return entry.status;
  }

  Expected<cudaEvent_t> event() {
    if (!free_.empty()) {
      cudaEvent_t event = free_.back();
      free_.pop_back();
      return event;
    }
    cudaEvent_t event = nullptr;
    const cudaError_t e =
        cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
    if (e != cudaSuccess)
      return cudaFailure("cudaEventCreateWithFlags", e);
    return event;
  }

  CudaDevice &device_;
  comm::GridCommunicators *grid_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t before_ = nullptr;
  std::map<size_t, Started> started_;
  std::vector<cudaEvent_t> free_;
  Status failure_ = Status::success();
};

} // namespace

Expected<std::unique_ptr<exec::CollectiveQueue>>
makeStreamCollectiveQueue(hal::Device &device, comm::GridCommunicators &grid) {
  if (device.backend() != hal::Backend::Cuda)
    return failedPrecondition("a collective stream needs a CUDA device; the "
                              "device is " +
                              device.description());
  auto queue =
      std::make_unique<StreamCollectiveQueue>(cudaDeviceOf(device), &grid);
  MOERT_RETURN_IF_ERROR(queue->initialize());
  return std::unique_ptr<exec::CollectiveQueue>(std::move(queue));
}

Expected<std::unique_ptr<exec::CollectiveQueue>>
makeTransferQueue(hal::Device &device) {
  if (device.backend() != hal::Backend::Cuda)
    return failedPrecondition("a transfer stream needs a CUDA device; the "
                              "device is " +
                              device.description());
  auto queue =
      std::make_unique<StreamCollectiveQueue>(cudaDeviceOf(device), nullptr);
  MOERT_RETURN_IF_ERROR(queue->initialize());
  return std::unique_ptr<exec::CollectiveQueue>(std::move(queue));
}

} // namespace cuda
} // namespace moert
