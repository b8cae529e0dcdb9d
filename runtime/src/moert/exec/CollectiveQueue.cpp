//===- CollectiveQueue.cpp - Collectives beside the compute ---------------===//
#include "moert/exec/CollectiveQueue.h"

#include "moert/comm/Communicator.h"
#include "moert/hal/Device.h"

#if defined(MOERT_HAVE_CUDA)
#include "moert/backends/cuda/StreamCollectiveQueue.h"
#endif

#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

namespace moert {
namespace exec {

namespace {

/// One thread runs the collectives in the order they were started. A
/// collective's outcome stays in `finished_` until its wait takes it.
class HostCollectiveQueue final : public CollectiveQueue {
public:
  HostCollectiveQueue() : thread_([this] { loop(); }) {}
  ~HostCollectiveQueue() override {
    (void)drain();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  Status start(size_t index, std::function<Status()> work) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (finished_.count(index) || inFlight_.count(index))
        return internalError("queued instruction #" + std::to_string(index) +
                             " was started twice without a wait");
      queue_.push_back(Job{index, std::move(work)});
      inFlight_.insert({index, true});
    }
    wake_.notify_all();
    return Status::success();
  }

  Status wait(size_t index) override {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!inFlight_.count(index) && !finished_.count(index))
      return internalError("waiting for queued instruction #" +
                           std::to_string(index) + ", which was not started");
    done_.wait(lock, [&] { return finished_.count(index) != 0; });
    Status status = std::move(finished_[index]);
    finished_.erase(index);
    inFlight_.erase(index);
    return status;
  }

  Status drain() override {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return queue_.empty() && !running_; });
    Status first = Status::success();
    for (auto &[index, status] : finished_)
      if (first.ok() && !status.ok())
        first = std::move(status);
    finished_.clear();
    inFlight_.clear();
    // The next step starts afresh: what failed was reported once.
    failure_ = Status::success();
    return first;
  }

private:
  struct Job {
    size_t index;
    std::function<Status()> work;
  };

  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty())
        return; // stopping, nothing left
      Job job = std::move(queue_.front());
      queue_.pop_front();
      Status status = Status::success();
      if (!failure_.ok()) {
        // Behind a failed collective: not run (its peers may never come).
        status = failure_;
      } else {
        running_ = true;
        lock.unlock();
        try {
          status = job.work();
        } catch (const std::exception &e) {
          status = internalError(std::string("a queued instruction threw: ") +
                                 e.what());
        }
        lock.lock();
        running_ = false;
        if (!status.ok())
          failure_ = status;
      }
      finished_[job.index] = std::move(status);
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_; // the thread: work or stop
  std::condition_variable done_; // waiters: a job finished
  std::deque<Job> queue_;
  std::map<size_t, Status> finished_;
  std::map<size_t, bool> inFlight_; // started, not yet waited for
  Status failure_ = Status::success();
  bool running_ = false;
  bool stopping_ = false;
  std::thread thread_; // last: starts after the members above exist
};

} // namespace

std::unique_ptr<CollectiveQueue> makeHostCollectiveQueue() {
  return std::make_unique<HostCollectiveQueue>();
}

Expected<std::unique_ptr<CollectiveQueue>>
makeCollectiveQueue(hal::Device &device, comm::GridCommunicators &grid) {
  if (grid.world().devicePointers()) {
#if defined(MOERT_HAVE_CUDA)
    return cuda::makeStreamCollectiveQueue(device, grid);
#else
    return std::unique_ptr<CollectiveQueue>();
#endif
  }
  if (!device.hostAccessible() || !grid.collectivesFromAnyThread())
    return std::unique_ptr<CollectiveQueue>();
  return makeHostCollectiveQueue();
}

Expected<std::unique_ptr<CollectiveQueue>>
makeHostWorkQueue(hal::Device &device) {
  if (device.hostAccessible())
    return makeHostCollectiveQueue();
#if defined(MOERT_HAVE_CUDA)
  return cuda::makeTransferQueue(device);
#else
  return std::unique_ptr<CollectiveQueue>();
#endif
}

} // namespace exec
} // namespace moert
