//===- SingleRankCommTest.cpp - The group of one and the shared checks ----===//
//
// The single-rank communicator (copies, calls counted, nothing sent), the
// single-rank grid, names and sizes, and the argument checks that every
// communicator shares; no MPI is started.
//
//===----------------------------------------------------------------------===//
#include "moert/comm/Communicator.h"
#include "moert/comm/Watchdog.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <numeric>
#include <thread>

namespace moert::comm {
namespace {

int64_t calls(const Communicator &comm, CollectiveKind kind) {
  return comm.stats().calls[static_cast<int>(kind)];
}

TEST(CommNames, SizesAndNames) {
  EXPECT_EQ(elementSize(ElementType::F32), 4);
  EXPECT_EQ(elementSize(ElementType::I32), 4);
  EXPECT_EQ(elementSize(ElementType::I64), 8);
  EXPECT_EQ(elementSize(ElementType::U8), 1);
  EXPECT_EQ(elementSize(static_cast<ElementType>(42)), 0);
  EXPECT_STREQ(collectiveName(CollectiveKind::AllReduce), "all_reduce");
  EXPECT_STREQ(collectiveName(CollectiveKind::AllGather), "all_gather");
  EXPECT_STREQ(collectiveName(CollectiveKind::ReduceScatter), "reduce_scatter");
  EXPECT_STREQ(collectiveName(CollectiveKind::AllToAll), "all_to_all");
  EXPECT_STREQ(elementTypeName(ElementType::I64), "i64");
  EXPECT_STREQ(reduceOpName(ReduceOp::Mean), "mean");
}

TEST(CommStats, TotalBytesSentSumsEveryKind) {
  CommStats stats;
  EXPECT_EQ(stats.totalBytesSent(), 0);
  stats.bytesSent[0] = 3;
  stats.bytesSent[1] = 5;
  stats.bytesSent[3] = 100;
  EXPECT_EQ(stats.totalBytesSent(), 108);
}

TEST(SingleRankCommunicator, CollectivesAreCopiesAndSendNothing) {
  std::unique_ptr<Communicator> comm = makeSingleRankCommunicator();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);

  std::vector<float> data = {1.5f, -2.0f, 3.25f};
  std::vector<float> original = data;
  for (ReduceOp op :
       {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min}) {
    ASSERT_TRUE(comm->allReduce(data.data(), 3, ElementType::F32, op).ok());
    EXPECT_EQ(data, original);
  }

  std::vector<int64_t> send = {7, -8, 9}, recv(3, 0);
  ASSERT_TRUE(
      comm->allGather(send.data(), recv.data(), 3, ElementType::I64).ok());
  EXPECT_EQ(recv, send);
  recv.assign(3, 0);
  ASSERT_TRUE(comm->reduceScatter(send.data(), recv.data(), 3, ElementType::I64,
                                  ReduceOp::Max)
                  .ok());
  EXPECT_EQ(recv, send);
  std::vector<uint8_t> bytes = {1, 2, 3, 250}, bytesOut(4, 0);
  ASSERT_TRUE(
      comm->allToAll(bytes.data(), bytesOut.data(), 4, ElementType::U8).ok());
  EXPECT_EQ(bytesOut, bytes);
  EXPECT_TRUE(comm->barrier().ok());

  EXPECT_EQ(calls(*comm, CollectiveKind::AllReduce), 4);
  EXPECT_EQ(calls(*comm, CollectiveKind::AllGather), 1);
  EXPECT_EQ(calls(*comm, CollectiveKind::ReduceScatter), 1);
  EXPECT_EQ(calls(*comm, CollectiveKind::AllToAll), 1);
  EXPECT_EQ(comm->stats().totalBytesSent(), 0);

  comm->resetStats();
  EXPECT_EQ(calls(*comm, CollectiveKind::AllReduce), 0);
}

TEST(SingleRankCommunicator, ZeroCountAcceptsNullBuffers) {
  std::unique_ptr<Communicator> comm = makeSingleRankCommunicator();
  EXPECT_TRUE(
      comm->allReduce(nullptr, 0, ElementType::F32, ReduceOp::Sum).ok());
  EXPECT_TRUE(comm->allGather(nullptr, nullptr, 0, ElementType::U8).ok());
  EXPECT_TRUE(
      comm->reduceScatter(nullptr, nullptr, 0, ElementType::I32, ReduceOp::Min)
          .ok());
  EXPECT_TRUE(comm->allToAll(nullptr, nullptr, 0, ElementType::I64).ok());
  EXPECT_EQ(calls(*comm, CollectiveKind::AllReduce), 1);
}

TEST(SingleRankCommunicator, RejectsBadArgumentsWithoutCounting) {
  std::unique_ptr<Communicator> comm = makeSingleRankCommunicator();
  float value = 1.0f;
  int32_t integer = 1;
  uint8_t byte = 1;

  Status negative =
      comm->allReduce(&value, -1, ElementType::F32, ReduceOp::Sum);
  EXPECT_EQ(negative.code(), StatusCode::InvalidArgument);
  EXPECT_NE(negative.message().find("must be >= 0, got -1"), std::string::npos)
      << negative.toString();
  EXPECT_NE(negative.message().find("all_reduce"), std::string::npos);

  Status null = comm->allGather(nullptr, &value, 1, ElementType::F32);
  EXPECT_EQ(null.code(), StatusCode::InvalidArgument);
  EXPECT_NE(null.message().find("null buffer"), std::string::npos);

  Status integerMean =
      comm->allReduce(&integer, 1, ElementType::I32, ReduceOp::Mean);
  EXPECT_EQ(integerMean.code(), StatusCode::InvalidArgument);
  EXPECT_NE(integerMean.message().find("mean of i32"), std::string::npos)
      << integerMean.toString();

  Status byteSum =
      comm->reduceScatter(&byte, &byte, 1, ElementType::U8, ReduceOp::Sum);
  EXPECT_EQ(byteSum.code(), StatusCode::InvalidArgument);
  EXPECT_NE(byteSum.message().find("cannot reduce u8"), std::string::npos)
      << byteSum.toString();

  Status unknownType =
      comm->allGather(&byte, &byte, 1, static_cast<ElementType>(9));
  EXPECT_EQ(unknownType.code(), StatusCode::InvalidArgument);

  Status huge = comm->allGather(&byte, &byte, INT64_MAX / 2, ElementType::I64);
  EXPECT_EQ(huge.code(), StatusCode::InvalidArgument);
  EXPECT_NE(huge.message().find("int64"), std::string::npos);

  std::vector<float> buffer(4);
  Status overlap =
      comm->allToAll(buffer.data(), buffer.data() + 1, 3, ElementType::F32);
  EXPECT_EQ(overlap.code(), StatusCode::InvalidArgument);

  EXPECT_EQ(calls(*comm, CollectiveKind::AllReduce), 0);
  EXPECT_EQ(calls(*comm, CollectiveKind::AllGather), 0);
  EXPECT_EQ(calls(*comm, CollectiveKind::ReduceScatter), 0);
  EXPECT_EQ(calls(*comm, CollectiveKind::AllToAll), 0);
}

TEST(SingleRankGrid, GroupsAreCachedByAxisSet) {
  Expected<std::unique_ptr<GridCommunicators>> gridOr =
      makeSingleRankGrid({1, 1, 1});
  ASSERT_TRUE(gridOr.ok()) << gridOr.status().toString();
  GridCommunicators &grid = **gridOr;
  EXPECT_EQ(grid.worldRank(), 0);
  EXPECT_EQ(grid.worldSize(), 1);
  EXPECT_EQ(grid.gridShape(), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(grid.coords(), (std::vector<int64_t>{0, 0, 0}));

  Expected<Communicator *> a = grid.group({0, 2});
  Expected<Communicator *> b = grid.group({2, 0});
  Expected<Communicator *> none = grid.group({});
  Expected<Communicator *> all = grid.group({1, 0, 2});
  ASSERT_TRUE(a.ok() && b.ok() && none.ok() && all.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *none);
  EXPECT_EQ(*all, &grid.world());
  EXPECT_EQ((*a)->size(), 1);

  float value = 2.0f;
  ASSERT_TRUE((*a)->allReduce(&value, 1, ElementType::F32, ReduceOp::Sum).ok());
  ASSERT_TRUE(
      grid.world().allReduce(&value, 1, ElementType::F32, ReduceOp::Max).ok());
  CommStats total = grid.totalStats();
  EXPECT_EQ(total.calls[static_cast<int>(CollectiveKind::AllReduce)], 2);
  EXPECT_EQ(total.totalBytesSent(), 0);
}

TEST(SingleRankGrid, RejectsBadAxes) {
  Expected<std::unique_ptr<GridCommunicators>> gridOr =
      makeSingleRankGrid({1, 1});
  ASSERT_TRUE(gridOr.ok());
  Expected<Communicator *> outside = (*gridOr)->group({0, 2});
  EXPECT_EQ(outside.status().code(), StatusCode::InvalidArgument);
  EXPECT_NE(outside.status().message().find("axis 2 is outside"),
            std::string::npos)
      << outside.status().toString();
  Expected<Communicator *> negative = (*gridOr)->group({-1});
  EXPECT_FALSE(negative.ok());
  Expected<Communicator *> duplicate = (*gridOr)->group({1, 1});
  EXPECT_EQ(duplicate.status().code(), StatusCode::InvalidArgument);
  EXPECT_NE(duplicate.status().message().find("more than once"),
            std::string::npos);
}

TEST(SingleRankGrid, ValidatesTheShape) {
  EXPECT_TRUE(makeSingleRankGrid({}).ok());
  EXPECT_TRUE(makeSingleRankGrid({1}).ok());

  Expected<std::unique_ptr<GridCommunicators>> many =
      makeSingleRankGrid({2, 1, 2});
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.status().code(), StatusCode::InvalidArgument);
  EXPECT_NE(many.status().message().find("2 x 1 x 2 has 4 ranks"),
            std::string::npos)
      << many.status().toString();

  Expected<std::unique_ptr<GridCommunicators>> zero =
      makeSingleRankGrid({1, 0});
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("axis 1 has size 0"),
            std::string::npos)
      << zero.status().toString();

  Expected<std::unique_ptr<GridCommunicators>> negative =
      makeSingleRankGrid({-1});
  EXPECT_FALSE(negative.ok());
}

// The collective watchdog's state is written by the thread that runs
// collectives (and the step updates) while the watchdog thread reads it: an
// armed watchdog polling every 100 ms (timeout 2 s) and two threads entering
// and leaving watched collectives for a little longer than a second. Under
// ThreadSanitizer (scripts/sanitize-threads.sh) any unsynchronized access is
// a report; in every build the watchdog must not fire while no collective
// lasts anywhere near its timeout.
TEST(CollectiveWatchdog, ArmedWatchdogAndBusyCollectivesShareItsState) {
  configureCollectiveWatchdog(2.0, "moert-comm-tests", 0);
  std::atomic<int64_t> entered{0};
  auto busy = [&entered](int64_t first) {
    const auto end =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(1200);
    for (int64_t i = first; std::chrono::steady_clock::now() < end; ++i) {
      CollectiveWatch outer("all_reduce on group 'dp'");
      CollectiveWatch inner("nested piece");
      setWatchdogStep(i);
      entered.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::thread other(busy, 1000000);
  busy(0);
  other.join();
  configureCollectiveWatchdog(0.0, "moert-comm-tests", 0); // disarmed again
  EXPECT_GT(entered.load(), 100);
}

} // namespace
} // namespace moert::comm
