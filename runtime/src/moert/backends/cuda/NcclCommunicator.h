//===- NcclCommunicator.h - Collectives over NCCL on the device stream -*- C++
//-*-===//
//
// The communicator interface (comm/Communicator.h) over NCCL: buffers are
// device pointers of the CUDA backend, every collective is enqueued on the
// device's stream (ordered with the kernels around it, no host wait), and
// the per-rank byte counts of CommStats are the interface's formulas, as
// for MPI.
//
// A grid of NCCL communicators is built on a grid that can already talk
// (the MPI grid of a job started by mpirun/srun, or a single-rank grid):
// rank 0's ncclUniqueId reaches every rank through that grid's world
// all-gather, the world communicator is ncclCommInitRank'ed, and each axis
// group is split from it (ncclCommSplit: ranks that agree on every axis
// outside the group share a color, keyed by world rank), in the same order
// on every rank, as GridCommunicators::group requires. A group of one rank
// copies on the stream.
//
// NCCL is loaded at run time (dlopen of libnccl.so.2) only when a NCCL grid
// is made, so a build links no NCCL and runs without it; NCCL errors
// become errors naming the collective, the group and the rank.
//
// Hangs: the communicators are non-blocking (ncclConfig_t::blocking = 0)
// and nothing waits for NCCL in a blocking call. Each collective records an
// event after it on the stream; before every host wait on the stream the
// device (CudaDevice::setStreamWatch) polls those events, oldest first,
// together with the communicator's asynchronous error
// (ncclCommGetAsyncError), and so do NCCL calls that answer ncclInProgress
// (initialization, splits, a group's end). The decision is
// comm::waitForCollective (comm/CollectiveWait.h). An asynchronous error
// aborts the communicators (ncclCommAbort) and becomes an error naming the
// collective, its group and rank; a collective not completed after the
// timeout (moe-train --collective-timeout; 0: wait forever) prints the MPI
// watchdog's message (collective, group, rank, step), aborts the
// communicators and ends the job (MPI_Abort, exit code 124).
//
// Collectives: all-reduce (sum, mean as ncclAvg, max, min), all-gather and
// reduce-scatter map to NCCL's; all-to-all is grouped ncclSend/ncclRecv of
// equal chunks.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_NCCLCOMMUNICATOR_H
#define MOERT_BACKENDS_CUDA_NCCLCOMMUNICATOR_H

#include "moert/comm/Communicator.h"
#include "moert/hal/Device.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moert {
namespace cuda {

/// Whether NCCL can be loaded here (libnccl.so.2 on the library path), and
/// why not.
Status ncclAvailable();

/// Color and key of the NCCL split that forms the group over `axes` (sorted,
/// distinct) of a row-major grid for the rank at `coords`: the row-major
/// index of the coordinates outside the group, and the world rank.
struct GroupSplit {
  int color = 0;
  int key = 0;
};
GroupSplit groupSplit(const std::vector<int64_t> &shape,
                      const std::vector<int64_t> &coords,
                      const std::vector<int> &axes, int worldRank);

/// A grid of NCCL communicators on `device` (a CUDA device), bootstrapped
/// over `bootstrap` (same shape; kept alive by the result). Collective over
/// the bootstrap grid's world. A collective (or the grid's creation) that
/// has not completed after `collectiveTimeoutSeconds` (> 0; 0: no limit)
/// ends the job, see above.
Expected<std::unique_ptr<comm::GridCommunicators>>
makeNcclGrid(std::unique_ptr<comm::GridCommunicators> bootstrap,
             hal::Device &device,
             const std::vector<std::string> &axisNames = {},
             double collectiveTimeoutSeconds = 0);

/// Points every communicator of `grid` (made by makeNcclGrid), and those
/// it makes later, at `stream` (a cudaStream_t of the grid's device; null:
/// the device's stream, where they start). The executor's collective
/// stream (StreamCollectiveQueue.h) sets it around each collective it
/// enqueues. An error for a grid that is not a NCCL grid.
Status setNcclStream(comm::GridCommunicators &grid, void *stream);

} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_NCCLCOMMUNICATOR_H
