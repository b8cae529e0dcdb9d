//===- Communicator.h - Collectives behind one interface ----------------===//
//
// The runtime's collectives: a communicator is a group of ranks (a world or
// one axis group of the device grid) that runs all-reduce, all-gather,
// reduce-scatter and all-to-all on contiguous buffers. Implementations:
// a single-rank one (identity; no MPI needed) and an MPI one (OpenMPI),
// whose collectives are ring / pairwise algorithms over point-to-point
// messages so that the bytes each rank sends are known exactly and counted.
//
// Bytes a rank sends per call (w = element size, p = group size):
//   all_reduce      2 (p-1) ceil(n/p) w   (ring reduce-scatter + all-gather
//                                           over a buffer padded to p chunks)
//   all_gather      (p-1) n w             (n = elements contributed per rank)
//   reduce_scatter  (p-1) n w             (n = elements received per rank)
//   all_to_all      (p-1) n w             (n = elements per peer chunk)
// A group of one rank sends nothing. The compiler's per-rank report uses
// the same formulas (tested against CommStats).
//
// Results are identical on every rank of the group (bit for bit): reduced
// chunks are computed once, by one rank, and then gathered.
//
// Contract of every collective: all ranks of the group call it in the same
// order with the same count, element type and reduction (a rank that
// disagrees makes its peers wait or fail). Arguments are checked before any
// message is sent and nothing is counted for a rejected call: count < 0, a
// null buffer with count > 0, a reduction of U8 or the mean of an integer
// type, sizes beyond int64 (the same on every rank, given the same
// arguments), and overlapping buffers where not allowed (a rank-local
// mistake: its peers then wait). Communicators are not thread-safe: one
// thread at a time uses them. That is the thread that made the grid, or,
// where GridCommunicators::collectivesFromAnyThread() says so, the
// executor's communication thread while the other one waits for it or
// calls no communicator (MPI_THREAD_SERIALIZED).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMM_COMMUNICATOR_H
#define MOERT_COMM_COMMUNICATOR_H

#include "moert/Status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moert {
namespace comm {

/// U16: 16-bit floats (bf16, f16) moved as they are; never reduced.
enum class ElementType : uint8_t { F32, I32, I64, U8, U16 };
/// Bytes per element; 0 for a value outside the enum.
int64_t elementSize(ElementType type);
/// "f32", "i32", "i64", "u8", "u16".
const char *elementTypeName(ElementType type);

enum class ReduceOp : uint8_t { Sum, Mean, Max, Min };
/// "sum", "mean", "max", "min".
const char *reduceOpName(ReduceOp op);

enum class CollectiveKind : uint8_t {
  AllReduce = 0,
  AllGather = 1,
  ReduceScatter = 2,
  AllToAll = 3,
};
constexpr int kNumCollectiveKinds = 4;
/// "all_reduce", "all_gather", "reduce_scatter", "all_to_all".
const char *collectiveName(CollectiveKind kind);

/// What a communicator has done since creation (or the last reset), indexed
/// by CollectiveKind. `calls` counts accepted calls (also on a group of one);
/// `bytesSent` the payload bytes this rank sent (the formulas above).
struct CommStats {
  int64_t calls[kNumCollectiveKinds] = {};
  int64_t bytesSent[kNumCollectiveKinds] = {};
  int64_t totalBytesSent() const;
};

class Communicator {
public:
  virtual ~Communicator() = default;

  /// This process's index in the group, 0 .. size()-1.
  virtual int rank() const = 0;
  virtual int size() const = 0;

  /// In place: every rank ends with the reduction of all ranks' `count`
  /// elements. Mean divides the sum by size() (floating types only).
  virtual Status allReduce(void *data, int64_t count, ElementType type,
                           ReduceOp op) = 0;
  /// `send` holds `count` elements; `recv` receives size() * count: rank
  /// i's contribution at offset i * count. `send` may be recv + rank() *
  /// count (in place); any other overlap is rejected.
  virtual Status allGather(const void *send, void *recv, int64_t count,
                           ElementType type) = 0;
  /// `send` holds size() * count elements; `recv` receives `count`: chunk
  /// rank() of the element-wise reduction over all ranks. `recv` may
  /// overlap `send` (it is written last).
  virtual Status reduceScatter(const void *send, void *recv, int64_t count,
                               ElementType type, ReduceOp op) = 0;
  /// `send` holds size() chunks of `count` elements, chunk j for rank j;
  /// `recv` receives size() chunks, chunk i from rank i. The buffers must
  /// not overlap.
  virtual Status allToAll(const void *send, void *recv, int64_t count,
                          ElementType type) = 0;
  virtual Status barrier() = 0;
  /// Whether the buffers are device pointers of the CUDA backend, the
  /// collectives enqueued on its stream (NCCL), rather than host memory.
  virtual bool devicePointers() const { return false; }

  const CommStats &stats() const { return stats_; }
  void resetStats() { stats_ = CommStats(); }

protected:
  CommStats stats_;
};

/// A group of one: every collective is the identity (copies), nothing sent.
std::unique_ptr<Communicator> makeSingleRankCommunicator();

/// The ranks of a job arranged on a row-major device grid (last axis
/// fastest), with one communicator per subset of axes: the group of a rank
/// for axes A is the set of ranks whose coordinates differ from its own
/// only on the axes in A (in that group, ranks are ordered by their world
/// rank, which is row-major order of the A coordinates).
class GridCommunicators {
public:
  virtual ~GridCommunicators() = default;
  virtual int worldRank() const = 0;
  virtual int worldSize() const = 0;
  const std::vector<int64_t> &gridShape() const { return shape_; }
  /// This rank's coordinate on each axis.
  const std::vector<int64_t> &coords() const { return coords_; }
  /// The communicator over `axes` (indices into the grid, any order,
  /// duplicates not allowed; empty gives a group of one). Created on the
  /// first request for an axis set and cached (the pointer stays valid as
  /// long as the grid). For a multi-rank grid that first request is
  /// collective: every rank of the job must make it, in the same order
  /// relative to its other first requests, unless the group has one rank.
  virtual Expected<Communicator *> group(const std::vector<int> &axes) = 0;
  /// Sum of the stats of every group communicator created so far (world()
  /// included, once: it is the group over all axes).
  CommStats totalStats() const;
  /// Every rank of the job, ordered by world rank; the same object as
  /// group() over all axes.
  virtual Communicator &world() = 0;
  /// Whether the collectives may be called from a thread other than the
  /// one that made the grid, by one thread at a time (the executor's
  /// communication thread, exec/CollectiveQueue.h). MPI allows it from
  /// MPI_THREAD_SERIALIZED up; the group creation of group() stays on the
  /// thread that made the grid.
  virtual bool collectivesFromAnyThread() const { return true; }

protected:
  std::vector<int64_t> shape_, coords_;
  std::vector<std::unique_ptr<Communicator>> groups_; // for totalStats
};

/// Grid of one rank (every axis of size 1): all groups are single-rank.
Expected<std::unique_ptr<GridCommunicators>>
makeSingleRankGrid(const std::vector<int64_t> &gridShape);

} // namespace comm
} // namespace moert

#endif // MOERT_COMM_COMMUNICATOR_H
