//===- Watchdog.h - A timeout for collectives -------------------*- C++ -*-===//
//
// A rank that stops (SIGSTOP, a hung GPU, a lost node whose TCP connection
// stays open) leaves every other rank blocked in its next collective
// forever. The watchdog is a background thread that ends such a job: each
// blocking MPI call runs inside a CollectiveWatch, and when one has not
// returned after the configured timeout the watchdog prints which
// collective, on which communicator, at which rank and training step, and
// calls MPI_Abort, which ends every rank of the job.
//
// Off (timeout 0) until configure() is called with a positive timeout.
//
// Collectives that run asynchronously on a GPU (NCCL) are not waited for in
// a blocking call; their wait polls with the same timeout
// (comm/CollectiveWait.h), names the program, rank and step this module
// keeps (watchdogContext), and ends the job the same way
// (endJobAfterCollectiveTimeout).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMM_WATCHDOG_H
#define MOERT_COMM_WATCHDOG_H

#include "moert/comm/CollectiveWait.h"

#include <cstdint>
#include <string>

namespace moert::comm {

/// Starts (or reconfigures) the watchdog: `timeoutSeconds` > 0 arms it, 0
/// disarms it. `program` and `rank` prefix its message.
void configureCollectiveWatchdog(double timeoutSeconds,
                                 const std::string &program, int rank);
/// The training step that messages name (-1: none yet).
void setWatchdogStep(int64_t step);

/// The program, rank and step the messages name (the last configured;
/// "moert", rank 0 and step -1 before).
WaitContext watchdogContext();

/// Ends the job after a collective timeout whose message was printed:
/// MPI_Abort(124) when MPI is initialized (every rank ends), else exit
/// code 124.
[[noreturn]] void endJobAfterCollectiveTimeout();

/// While alive, `what` (e.g. "all-reduce on group 'dp'") is the collective
/// this thread waits in. Nesting keeps the outermost.
class CollectiveWatch {
public:
  explicit CollectiveWatch(const std::string &what);
  ~CollectiveWatch();
  CollectiveWatch(const CollectiveWatch &) = delete;
  CollectiveWatch &operator=(const CollectiveWatch &) = delete;

private:
  bool outermost_ = false;
};

} // namespace moert::comm

#endif // MOERT_COMM_WATCHDOG_H
