//===- CollectiveWait.h - Waiting for asynchronous collectives --*- C++ -*-===//
//
// Collectives that run asynchronously (NCCL on a CUDA stream) are waited
// for by polling rather than by a call that blocks: a blocking wait on a
// collective whose peer stopped never returns, and nothing else could see
// the communicator's asynchronous errors meanwhile. waitForCollective is
// the decision part of that wait, with the polls, the error check and the
// clock passed in, so that it runs (and is tested) without a GPU: it polls
// until the work is done, an asynchronous error shows or the timeout
// passes, and says which, with a message naming the collective, the rank
// and the training step in the same words as the MPI watchdog
// (comm/Watchdog.h).
//
// What to do after a timeout (abort the communicators, end the job) is the
// caller's: the backend knows its handles.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_COMM_COLLECTIVEWAIT_H
#define MOERT_COMM_COLLECTIVEWAIT_H

#include "moert/Status.h"

#include <cstdint>
#include <functional>
#include <string>

namespace moert::comm {

/// Who waits, for the messages: the program, its rank in the job and the
/// training step (-1: none, e.g. while the communicators are created).
struct WaitContext {
  std::string program = "moert";
  int rank = 0;
  int64_t step = -1;
};

/// The message of a collective that has not completed after `waitedSeconds`
/// (the MPI watchdog prints the same): "<program>: rank <r>: error:
/// collective timeout: <what> has not completed after <s> s at training
/// step <n> (another rank stopped, hung or lost its connection); aborting
/// the job".
std::string collectiveTimeoutMessage(const WaitContext &context,
                                     const std::string &what,
                                     double waitedSeconds);

/// What a wait polls. Every callable is required.
struct WaitHooks {
  /// Whether the work has completed; an error status: it failed (a CUDA
  /// error of the stream), which ends the wait with that error.
  std::function<Expected<bool>()> done;
  /// An asynchronous error of the communicator (success: none so far).
  std::function<Status()> asyncError;
  /// A monotonic clock in seconds.
  std::function<double()> now;
  /// Pauses between polls, in seconds.
  std::function<void(double)> sleep;
};

struct WaitResult {
  enum class Outcome { Completed, Failed, TimedOut };
  Outcome outcome = Outcome::Completed;
  /// Failed: the error, its message prefixed by `what`; TimedOut: an
  /// Unavailable status whose message is collectiveTimeoutMessage's.
  Status status;
  /// Seconds from the start of the wait to its end (by `now`).
  double waitedSeconds = 0;
};

/// Polls `hooks` until the work is done, fails, or `timeoutSeconds` (> 0;
/// 0 waits forever) have passed since the call: each round asks done(),
/// then asyncError(), then the clock, and sleeps between rounds (no sleep
/// for the first rounds, then growing to a fraction of a millisecond, so
/// that a short collective is seen at once and a long one costs little
/// CPU). `what` names the collective, its group and rank.
WaitResult waitForCollective(const std::string &what, double timeoutSeconds,
                             const WaitContext &context,
                             const WaitHooks &hooks);

/// The pause before poll round `round` (0-based) of waitForCollective, in
/// seconds.
double collectivePollPause(int64_t round);

} // namespace moert::comm

#endif // MOERT_COMM_COLLECTIVEWAIT_H
