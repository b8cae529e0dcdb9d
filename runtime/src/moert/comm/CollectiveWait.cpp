//===- CollectiveWait.cpp - Waiting for asynchronous collectives ----------===//

#include "moert/comm/CollectiveWait.h"

#include <algorithm>
#include <cstdio>

namespace moert::comm {

std::string collectiveTimeoutMessage(const WaitContext &context,
                                     const std::string &what,
                                     double waitedSeconds) {
  const std::string stepText =
      context.step >= 0 ? " at training step " + std::to_string(context.step)
                        : "";
  char waited[64];
  std::snprintf(waited, sizeof(waited), "%.1f", waitedSeconds);
  return context.program + ": rank " + std::to_string(context.rank) +
         ": error: collective timeout: " + what + " has not completed after " +
         waited + " s" + stepText +
         " (another rank stopped, hung or lost its connection); aborting "
         "the job";
}

double collectivePollPause(int64_t round) {
  // Spin for the first rounds (a collective that is about to finish is
  // seen at once), then sleep 2, 4, ... microseconds up to 200.
  constexpr int64_t kSpinRounds = 64;
  constexpr double kLongestPause = 200e-6;
  if (round < kSpinRounds)
    return 0;
  const int64_t doublings = std::min<int64_t>(round - kSpinRounds, 20);
  return std::min(kLongestPause,
                  1e-6 * static_cast<double>(int64_t{2} << doublings));
}

WaitResult waitForCollective(const std::string &what, double timeoutSeconds,
                             const WaitContext &context,
                             const WaitHooks &hooks) {
  WaitResult result;
  const double start = hooks.now();
  for (int64_t round = 0;; ++round) {
    Expected<bool> done = hooks.done();
    if (!done.ok()) {
      result.outcome = WaitResult::Outcome::Failed;
      result.status = done.takeStatus();
      result.status.withContext(what);
      result.waitedSeconds = hooks.now() - start;
      return result;
    }
    if (*done) {
      result.outcome = WaitResult::Outcome::Completed;
      result.waitedSeconds = hooks.now() - start;
      return result;
    }
    Status asyncError = hooks.asyncError();
    if (!asyncError.ok()) {
      result.outcome = WaitResult::Outcome::Failed;
      result.status = std::move(asyncError);
      result.status.withContext(what);
      result.waitedSeconds = hooks.now() - start;
      return result;
    }
    const double waited = hooks.now() - start;
    if (timeoutSeconds > 0 && waited >= timeoutSeconds) {
      result.outcome = WaitResult::Outcome::TimedOut;
      result.status = Status(StatusCode::Unavailable,
                             collectiveTimeoutMessage(context, what, waited));
      result.waitedSeconds = waited;
      return result;
    }
    const double pause = collectivePollPause(round);
    if (pause > 0)
      hooks.sleep(pause);
  }
}

} // namespace moert::comm
