//===- CollectiveWaitTest.cpp - The polled wait for async collectives -----===//
//
// waitForCollective (comm/CollectiveWait.h), the decision part of the wait
// for NCCL collectives, with scripted polls, errors and a fake clock: it
// returns when the work is done, turns an asynchronous error into an error
// naming the collective, times out at the deadline with the watchdog's
// message (collective, group, rank, step), and with timeout 0 never times
// out. No GPU and no MPI.
//
//===----------------------------------------------------------------------===//
#include "moert/comm/CollectiveWait.h"
#include "moert/comm/Watchdog.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace moert::comm {
namespace {

const char *const kWhat = "all-reduce over the NCCL group over axes (dp) (2 "
                          "ranks) of the device grid 2x1 (dp, ep) (rank 1 of "
                          "2)";

/// A fake monotonic clock that the wait's sleeps advance, plus counters.
struct FakeClock {
  double seconds = 100.0; // not 0: the wait must measure from its start
  double slept = 0;
  int64_t sleeps = 0;
  /// Advanced on every poll too (a poll takes time), in seconds.
  double perPoll = 0;
};

WaitHooks hooksFor(FakeClock &clock, std::function<Expected<bool>()> done,
                   std::function<Status()> asyncError) {
  WaitHooks hooks;
  hooks.done = [&clock, done = std::move(done)]() {
    clock.seconds += clock.perPoll;
    return done();
  };
  hooks.asyncError = std::move(asyncError);
  hooks.now = [&clock] { return clock.seconds; };
  hooks.sleep = [&clock](double pause) {
    EXPECT_GT(pause, 0);
    clock.seconds += pause;
    clock.slept += pause;
    ++clock.sleeps;
  };
  return hooks;
}

WaitContext context(int64_t step) {
  WaitContext c;
  c.program = "moe-train";
  c.rank = 3;
  c.step = step;
  return c;
}

Status noError() { return Status::success(); }

TEST(CollectiveWait, CompletesWhenThePollSaysDone) {
  FakeClock clock;
  clock.perPoll = 0.001;
  int64_t polls = 0;
  WaitResult result = waitForCollective(
      kWhat, 30.0, context(7),
      hooksFor(
          clock, [&]() -> Expected<bool> { return ++polls >= 500; }, noError));
  EXPECT_EQ(result.outcome, WaitResult::Outcome::Completed);
  EXPECT_TRUE(result.status.ok()) << result.status.toString();
  EXPECT_EQ(polls, 500);
  // 500 polls of 1 ms plus the pauses between them.
  EXPECT_NEAR(result.waitedSeconds, 0.5 + clock.slept, 1e-9);
  // The first rounds spin; the later ones sleep.
  EXPECT_GT(clock.sleeps, 0);
  EXPECT_LT(clock.sleeps, 500);
}

TEST(CollectiveWait, DoneAtOnceNeitherSleepsNorAsksForErrors) {
  FakeClock clock;
  int errorChecks = 0;
  WaitResult result =
      waitForCollective(kWhat, 1.0, context(1),
                        hooksFor(
                            clock, []() -> Expected<bool> { return true; },
                            [&] {
                              ++errorChecks;
                              return Status::success();
                            }));
  EXPECT_EQ(result.outcome, WaitResult::Outcome::Completed);
  EXPECT_EQ(clock.sleeps, 0);
  EXPECT_EQ(errorChecks, 0);
  EXPECT_EQ(result.waitedSeconds, 0);
}

TEST(CollectiveWait, AnAsyncErrorEndsTheWaitWithItsMessage) {
  FakeClock clock;
  int64_t polls = 0;
  WaitResult result = waitForCollective(
      kWhat, 0.0, context(12),
      hooksFor(
          clock,
          [&]() -> Expected<bool> {
            ++polls;
            return false;
          },
          [&] {
            if (polls < 100)
              return Status::success();
            return Status(StatusCode::Unavailable,
                          "NCCL reported an asynchronous error: remote "
                          "process exited or there was a network error");
          }));
  EXPECT_EQ(result.outcome, WaitResult::Outcome::Failed);
  EXPECT_EQ(polls, 100);
  EXPECT_EQ(result.status.code(), StatusCode::Unavailable);
  EXPECT_EQ(result.status.message(),
            std::string(kWhat) +
                ": NCCL reported an asynchronous error: remote process "
                "exited or there was a network error");
}

TEST(CollectiveWait, AFailedPollEndsTheWaitNamingTheCollective) {
  FakeClock clock;
  WaitResult result = waitForCollective(
      kWhat, 5.0, context(2),
      hooksFor(
          clock,
          []() -> Expected<bool> {
            return internalError("cudaEventQuery failed: an illegal memory "
                                 "access was encountered");
          },
          noError));
  EXPECT_EQ(result.outcome, WaitResult::Outcome::Failed);
  EXPECT_EQ(result.status.code(), StatusCode::Internal);
  EXPECT_EQ(result.status.message().rfind(kWhat, 0), 0u)
      << result.status.message();
  EXPECT_NE(result.status.message().find("illegal memory access"),
            std::string::npos);
}

TEST(CollectiveWait, TimesOutAtTheDeadlineNamingCollectiveGroupRankAndStep) {
  FakeClock clock;
  clock.perPoll = 0.01;
  int64_t polls = 0;
  WaitResult result = waitForCollective(kWhat, 2.0, context(42),
                                        hooksFor(
                                            clock,
                                            [&]() -> Expected<bool> {
                                              ++polls;
                                              return false;
                                            },
                                            noError));
  ASSERT_EQ(result.outcome, WaitResult::Outcome::TimedOut);
  EXPECT_EQ(result.status.code(), StatusCode::Unavailable);
  // At the deadline, not long after it: within one poll and one pause.
  EXPECT_GE(result.waitedSeconds, 2.0);
  EXPECT_LT(result.waitedSeconds, 2.0 + 0.01 + collectivePollPause(1 << 20));
  EXPECT_GT(polls, 0);
  char waited[32];
  std::snprintf(waited, sizeof(waited), "%.1f", result.waitedSeconds);
  EXPECT_EQ(result.status.message(),
            "moe-train: rank 3: error: collective timeout: " +
                std::string(kWhat) + " has not completed after " + waited +
                " s at training step 42 (another rank stopped, hung or lost "
                "its connection); aborting the job");
}

TEST(CollectiveWait, TimeoutBeforeTheFirstStepNamesNoStep) {
  FakeClock clock;
  clock.perPoll = 1.0;
  WaitResult result = waitForCollective(
      "creating the NCCL world of the device grid 2", 3.0, context(-1),
      hooksFor(
          clock, []() -> Expected<bool> { return false; }, noError));
  ASSERT_EQ(result.outcome, WaitResult::Outcome::TimedOut);
  EXPECT_EQ(result.status.message(),
            "moe-train: rank 3: error: collective timeout: creating the NCCL "
            "world of the device grid 2 has not completed after 3.0 s "
            "(another rank stopped, hung or lost its connection); aborting "
            "the job");
}

TEST(CollectiveWait, TimeoutZeroNeverTimesOut) {
  FakeClock clock;
  clock.perPoll = 3600.0; // an hour per poll: any deadline would pass
  int64_t polls = 0;
  WaitResult result = waitForCollective(
      kWhat, 0.0, context(5),
      hooksFor(
          clock, [&]() -> Expected<bool> { return ++polls >= 10000; },
          noError));
  EXPECT_EQ(result.outcome, WaitResult::Outcome::Completed);
  EXPECT_EQ(polls, 10000);
  EXPECT_GE(result.waitedSeconds, 10000 * 3600.0);
}

TEST(CollectiveWait, PausesGrowAndStayShort) {
  EXPECT_EQ(collectivePollPause(0), 0);
  double previous = 0;
  bool slept = false;
  for (int64_t round = 0; round < 4096; ++round) {
    const double pause = collectivePollPause(round);
    EXPECT_GE(pause, previous) << "round " << round;
    EXPECT_LE(pause, 200e-6) << "round " << round;
    previous = pause;
    slept = slept || pause > 0;
  }
  EXPECT_TRUE(slept);
  EXPECT_EQ(collectivePollPause(int64_t{1} << 40), 200e-6);
}

TEST(CollectiveWait, WatchdogContextNamesTheConfiguredProgramAndStep) {
  configureCollectiveWatchdog(0.0, "moert-comm-tests", 5); // disarmed
  setWatchdogStep(17);
  WaitContext c = watchdogContext();
  EXPECT_EQ(c.program, "moert-comm-tests");
  EXPECT_EQ(c.rank, 5);
  EXPECT_EQ(c.step, 17);
  setWatchdogStep(-1);
  configureCollectiveWatchdog(0.0, "moert-comm-tests", 0);
}

} // namespace
} // namespace moert::comm
