//===- MpiTestMain.cpp - gtest main for tests run under mpirun -----------===//
//
// Every rank runs the same tests in the same order (collectives inside a
// test must match across ranks). Rank 0 prints gtest's usual report; the
// other ranks print only their failures, prefixed with their rank, so that
// a failure on any rank is visible without four interleaved reports. The
// exit code is the same on every rank: non-zero when any rank failed, so
// mpirun (and ctest) report the failure whichever rank saw it.
//
//===----------------------------------------------------------------------===//
#include "moert/comm/MpiCommunicator.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

namespace {

/// The report of a rank other than 0: failed assertions and failed tests.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}

  void OnTestPartResult(const ::testing::TestPartResult &result) override {
    if (!result.failed())
      return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "unknown",
                 result.line_number(), result.message());
  }

  void OnTestEnd(const ::testing::TestInfo &info) override {
    if (info.result()->Failed())
      std::fprintf(stderr, "[rank %d] [  FAILED  ] %s.%s\n", rank_,
                   info.test_suite_name(), info.name());
  }

private:
  int rank_;
};

} // namespace

int main(int argc, char **argv) {
  moert::comm::MpiSession mpi(&argc, &argv);
  if (!mpi.status().ok()) {
    std::fprintf(stderr, "cannot start MPI: %s\n",
                 mpi.status().toString().c_str());
    return 1;
  }
  ::testing::InitGoogleTest(&argc, argv);
  if (mpi.worldRank() != 0) {
    ::testing::TestEventListeners &listeners =
        ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(mpi.worldRank()));
  }

  int localFailed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int anyFailed = localFailed;
  if (MPI_Allreduce(&localFailed, &anyFailed, 1, MPI_INT, MPI_MAX,
                    MPI_COMM_WORLD) != MPI_SUCCESS)
    anyFailed = 1;
  if (mpi.worldRank() == 0 && anyFailed && !localFailed)
    std::fprintf(stderr, "tests failed on another rank (see the [rank N] "
                         "lines above)\n");
  return anyFailed;
}
