//===- Watchdog.cpp - A timeout for collectives ---------------------------===//

#include "moert/comm/Watchdog.h"

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace moert::comm {
namespace {

using Clock = std::chrono::steady_clock;

struct Watchdog {
  std::mutex mutex;
  std::condition_variable wake;
  double timeoutSeconds = 0;
  std::string program = "moert";
  int rank = 0;
  int64_t step = -1;
  // The collective being waited in (empty: none) and since when.
  std::string current;
  Clock::time_point since;
  int depth = 0;
  bool started = false;

  void run() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      double timeout = timeoutSeconds;
      auto poll = std::chrono::milliseconds(
          timeout > 0 ? std::max<int64_t>(
                            10, static_cast<int64_t>(timeout * 1000 / 20))
                      : 1000);
      wake.wait_for(lock, poll);
      if (timeoutSeconds <= 0 || current.empty())
        continue;
      double waited =
          std::chrono::duration<double>(Clock::now() - since).count();
      if (waited < timeoutSeconds)
        continue;
      WaitContext context;
      context.program = program;
      context.rank = rank;
      context.step = step;
      std::fprintf(stderr, "%s\n",
                   collectiveTimeoutMessage(context, current, waited).c_str());
      std::fflush(stderr);
      endJobAfterCollectiveTimeout();
    }
  }
};

Watchdog &watchdog() {
  static Watchdog *instance = new Watchdog(); // never destroyed: the thread
  return *instance;                           // may outlive static teardown
}

} // namespace

void configureCollectiveWatchdog(double timeoutSeconds,
                                 const std::string &program, int rank) {
  Watchdog &dog = watchdog();
  std::lock_guard<std::mutex> lock(dog.mutex);
  dog.timeoutSeconds = timeoutSeconds;
  dog.program = program;
  dog.rank = rank;
  if (timeoutSeconds > 0 && !dog.started) {
    dog.started = true;
    std::thread([&dog] { dog.run(); }).detach();
  }
  dog.wake.notify_all();
}

WaitContext watchdogContext() {
  Watchdog &dog = watchdog();
  std::lock_guard<std::mutex> lock(dog.mutex);
  WaitContext context;
  context.program = dog.program;
  context.rank = dog.rank;
  context.step = dog.step;
  return context;
}

void endJobAfterCollectiveTimeout() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized)
    MPI_Abort(MPI_COMM_WORLD, 124);
  std::_Exit(124);
}

void setWatchdogStep(int64_t step) {
  Watchdog &dog = watchdog();
  std::lock_guard<std::mutex> lock(dog.mutex);
  dog.step = step;
}

CollectiveWatch::CollectiveWatch(const std::string &what) {
  Watchdog &dog = watchdog();
  std::lock_guard<std::mutex> lock(dog.mutex);
  if (dog.depth++ == 0) {
    outermost_ = true;
    dog.current = what;
    dog.since = Clock::now();
  }
}

CollectiveWatch::~CollectiveWatch() {
  Watchdog &dog = watchdog();
  std::lock_guard<std::mutex> lock(dog.mutex);
  --dog.depth;
  if (outermost_)
    dog.current.clear();
}

} // namespace moert::comm
