//===- CollectiveQueue.h - Collectives beside the compute ---*- C++ -*-===//
//
// (The same queues run the offload's host work: makeHostWorkQueue below.)
// Where the executor starts a collective instruction so that it runs while
// the instructions after it compute (CollectiveSchedule.h says until
// when). Two kinds:
//   - host communicators (MPI) on a host device: a communication thread
//     with a FIFO of collectives; start() enqueues and returns, wait()
//     blocks the calling thread until that collective (and so every one
//     before it) has run;
//   - device communicators (NCCL) on a CUDA device: a second stream; start()
//     makes it wait for what the compute stream has enqueued so far (an
//     event), enqueues the collective there and records an event after it;
//     wait() makes the compute stream wait for that event (the host does
//     not block). See backends/cuda/StreamCollectiveQueue.cpp.
// Both run collectives one at a time in the order they were started, the
// schedule's `orderedQueue`.
//
// Errors: a collective that fails (an MPI error, a peer that disagrees on
// the count) reports, at its wait point, the error the synchronous call
// would have returned (the executor names the instruction in it); the
// collectives queued behind a failed one do not run (their peers would
// wait in vain) and their waits report the first failure.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_COLLECTIVEQUEUE_H
#define MOERT_EXEC_COLLECTIVEQUEUE_H

#include "moert/Status.h"

#include <cstddef>
#include <functional>
#include <memory>

namespace moert {
namespace hal {
class Device;
} // namespace hal
namespace comm {
class GridCommunicators;
} // namespace comm

namespace exec {

class CollectiveQueue {
public:
  virtual ~CollectiveQueue() = default;
  /// Starts collective instruction `index` (`work` runs it: on the queue's
  /// thread, or on this thread enqueuing onto stream()). Indices increase
  /// between drains. An error here (the queue cannot take it) means
  /// nothing was started.
  virtual Status start(size_t index, std::function<Status()> work) = 0;
  /// Returns once collective `index` (started, not yet waited for) has
  /// completed, or (device) once the compute stream waits for it. Its
  /// error, or that of an earlier collective that failed.
  virtual Status wait(size_t index) = 0;
  /// Waits for every collective started and not yet waited for; the first
  /// error among them (success when none failed). The queue is empty and
  /// usable afterwards.
  virtual Status drain() = 0;
  /// The native stream the collectives' kernels enqueue on (a
  /// cudaStream_t); null for a host queue.
  virtual void *stream() { return nullptr; }
};

/// A communication thread for host collectives (see above). The thread
/// starts here and is joined by the destructor, which first drains.
std::unique_ptr<CollectiveQueue> makeHostCollectiveQueue();

/// The queue for `device` and `grid`, or null where collectives stay
/// synchronous: host communicators that may not be used from a second
/// thread (MPI below MPI_THREAD_SERIALIZED), host communicators on a device
/// the host cannot address (their kernel stages through host copies), or
/// device communicators in a build without CUDA. An error when making the
/// queue failed (a stream could not be created).
Expected<std::unique_ptr<CollectiveQueue>>
makeCollectiveQueue(hal::Device &device, comm::GridCommunicators &grid);

/// The queue the offload's host work runs on beside the compute
/// (scheduleHostWork, CollectiveSchedule.h): on a host device a thread of
/// its own, like the host collectives' (the gradient copies and the host
/// AdamW run there while the instructions after them compute); on a CUDA
/// device a transfer stream (StreamCollectiveQueue.h, makeTransferQueue):
/// the kernels run on the calling thread and their copies between host
/// and device go to that stream. Null for a CUDA device in a build without
/// CUDA.
Expected<std::unique_ptr<CollectiveQueue>>
makeHostWorkQueue(hal::Device &device);

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_COLLECTIVEQUEUE_H
