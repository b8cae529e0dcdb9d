//===- MpiCommunicator.h - Collectives over MPI (OpenMPI) ---------------===//
//
// The multi-process implementation of Communicator.h: one process per rank
// of the device grid, started by mpirun. Collectives are our own ring and
// pairwise algorithms over MPI_Sendrecv (never MPI's collectives), so that
// the bytes sent match the formulas of Communicator.h exactly and reduced
// values are computed once per chunk, by one rank (bit-identical results).
//
// mpi.h stays out of this header: code that only drives a training job
// needs none of MPI's types.
//
//   int main(int argc, char **argv) {
//     moert::comm::MpiSession mpi(&argc, &argv);
//     if (!mpi.status().ok()) { ...print, return 1... }
//     auto grid = moert::comm::makeMpiGrid({2, 2}, {"dp", "ep"});
//     if (!grid.ok()) { ...print grid.status().toString(), return 1... }
//     auto dp = (*grid)->group({0});
//     ...
//   }
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMM_MPICOMMUNICATOR_H
#define MOERT_COMM_MPICOMMUNICATOR_H

#include "moert/comm/Communicator.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moert::comm {

/// Owns MPI for the lifetime of a process: initializes it (asking for
/// thread level MPI_THREAD_SERIALIZED, so that the executor's communication
/// thread may run collectives while the main thread computes, one thread in
/// MPI at a time; MPI_THREAD_FUNNELED is the least it accepts, and then
/// collectives stay on the thread that created the session) unless
/// something else already did, and finalizes it on destruction when
/// it was the one to initialize it. Errors on MPI_COMM_WORLD are returned,
/// not fatal, when the session initialized MPI. Create one, early in
/// main(), before any grid; destroy grids before it.
/// Whether a launcher (mpirun, mpiexec, srun) started this process: one of
/// the environment variables OpenMPI, PMI/PMIx (MPICH, Slurm) set for
/// their ranks is present. A process started by hand is a job of one and
/// needs no MPI at all.
bool startedByMpiLauncher();

class MpiSession {
public:
  /// argc/argv as given to main() (MPI may consume its own arguments), or
  /// null.
  explicit MpiSession(int *argc = nullptr, char ***argv = nullptr);
  ~MpiSession();
  MpiSession(const MpiSession &) = delete;
  MpiSession &operator=(const MpiSession &) = delete;

  /// Why MPI is unusable (initialization failed, was already finalized, or
  /// the library cannot provide MPI_THREAD_FUNNELED); ok otherwise.
  const Status &status() const { return status_; }
  /// Rank and size of MPI_COMM_WORLD (0 and 1 when status() failed).
  int worldRank() const { return worldRank_; }
  int worldSize() const { return worldSize_; }
  /// Whether this session called MPI_Init_thread (and will finalize).
  bool initializedMpi() const { return initializedMpi_; }
  /// Whether MPI provides MPI_THREAD_SERIALIZED or more (collectives may
  /// run on a communication thread).
  bool serializedThreads() const { return serializedThreads_; }

private:
  Status status_;
  int worldRank_ = 0;
  int worldSize_ = 1;
  bool initializedMpi_ = false;
  bool serializedThreads_ = false;
};

/// The job's processes (MPI_COMM_WORLD) arranged on `gridShape`: world rank
/// = row-major index of the coordinates, last axis fastest. Fails when MPI
/// is not initialized or the number of processes is not the product of the
/// shape ("the device grid dp=2 x ep=2 x tp=1 needs 4 processes, but the
/// MPI job has 2 ..."). `axisNames`, when not empty, has one name per axis
/// and is used in messages only. Collective: every process calls it with
/// the same arguments. Groups are created on first request, with
/// MPI_Comm_split over a private duplicate of MPI_COMM_WORLD (see
/// GridCommunicators::group); a group of one rank uses no MPI at all.
Expected<std::unique_ptr<GridCommunicators>>
makeMpiGrid(const std::vector<int64_t> &gridShape,
            const std::vector<std::string> &axisNames = {});

/// Largest single MPI message in bytes; a larger transfer is split into
/// pieces of at most this size (MPI counts are ints). 1 GiB unless changed;
/// tests make it tiny to exercise the splitting. Returns the previous
/// value; values < 1 are ignored. Must be the same on every rank.
int64_t setMaxMpiMessageBytes(int64_t bytes);

} // namespace moert::comm

#endif // MOERT_COMM_MPICOMMUNICATOR_H
