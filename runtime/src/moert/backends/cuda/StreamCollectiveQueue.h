//===- StreamCollectiveQueue.h - NCCL collectives on a stream of their own ===//
//
// The CUDA form of exec::CollectiveQueue: the collectives of a run go to a
// second stream (created with the queue, non-blocking like the device's),
// ordered with the compute stream by events and never by a host wait:
//   start(i)  records an event on the compute stream and makes the
//             collective stream wait for it (the collective sees every
//             kernel enqueued before it), points the NCCL grid at the
//             collective stream, runs the kernel (its 2-D packing copies
//             and the NCCL call go there), points the grid back at the
//             device's stream, and records a completion event;
//   wait(i)   makes the compute stream wait for that event: the kernels
//             enqueued after it start once the collective has completed;
//   drain()   does so for every collective not yet waited for.
// The host waits (copies to the host, synchronize) keep polling the NCCL
// collectives with the timeout (NcclCommunicator.h): the completion events
// NCCL's watch records are on the collective stream now, and the compute
// stream waits for them before anything after it.
//
// An error the kernel returns when it is enqueued (a bad argument, an
// aborted communicator) is reported at the collective's wait point, as on
// the host queue, and the collectives started after it are not enqueued.
//
// The same class, without a grid, is the offload's transfer stream
// (makeTransferQueue).
//
// Its GPU test (moert-cuda-nccl-tests, CollectiveStreamIsOrderedWith-
// TheComputeStream, run by scripts/gpu-check.sh; passed on an H200,
// docs/gpu.md) drives it on a one-rank NCCL world with a late compute
// stream and a late collective stream; a training step uses it for
// collectives only on two or more ranks, so two or more GPUs (not tested:
// one GPU at most is lent).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_STREAMCOLLECTIVEQUEUE_H
#define MOERT_BACKENDS_CUDA_STREAMCOLLECTIVEQUEUE_H

#include "moert/exec/CollectiveQueue.h"

#include <memory>

namespace moert {
namespace cuda {

/// A queue on a new stream of `device` (a CUDA device) for the NCCL grid
/// `grid` (its communicators devicePointers()).
Expected<std::unique_ptr<exec::CollectiveQueue>>
makeStreamCollectiveQueue(hal::Device &device, comm::GridCommunicators &grid);

/// The same queue for the offload's host work (exec::scheduleHostWork): a
/// transfer stream. start() runs the kernel on the calling thread after
/// making the stream wait for the compute enqueued so far; the kernels of
/// moe.to_host, moe.convert of a host master and moe.adamw of host state
/// enqueue their copies between host and device on it (call.stream()), so
/// that the gradients leave the device while the backward pass goes on
/// and the updated 16-bit copies go up while the host updates the next
/// parameter; wait() makes the compute stream wait for them.
Expected<std::unique_ptr<exec::CollectiveQueue>>
makeTransferQueue(hal::Device &device);

} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_STREAMCOLLECTIVEQUEUE_H
