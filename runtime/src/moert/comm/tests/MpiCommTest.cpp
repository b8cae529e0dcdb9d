//===- MpiCommTest.cpp - Every MPI collective against a local reference ---===//
//
// Run under mpirun with 1 to 4 processes. Every rank can compute every
// rank's input (a function of world rank and index), so each rank checks its
// own result against a reference reduced locally, in the group's rank
// order; the results of the ranks of a group are then gathered (with plain
// MPI, not the code under test) and compared bit for bit, and the bytes each
// call sent are compared with the formulas of Communicator.h. Groups cover
// every subset of the axes of the grids whose size is the world's.
//
// Every rank runs the same calls in the same order: a check that fails on
// one rank must not skip a collective (EXPECT, not ASSERT, after the grid
// exists), or the other ranks would wait for it.
//
//===----------------------------------------------------------------------===//
#include "moert/comm/MpiCommunicator.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

namespace moert::comm {
namespace {

int worldRank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int worldSize() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

/// Grid shapes with as many ranks as the job has processes.
std::vector<std::vector<int64_t>> gridShapes() {
  switch (worldSize()) {
  case 1:
    return {{1}, {1, 1}};
  case 2:
    return {{2}, {2, 1}, {1, 2}};
  case 3:
    return {{3}, {1, 3}};
  case 4:
    return {{2, 2}, {4}, {2, 1, 2}};
  default:
    return {{worldSize()}};
  }
}

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string text;
  for (size_t axis = 0; axis < shape.size(); ++axis)
    text += (axis ? "x" : "") + std::to_string(shape[axis]);
  return text;
}

std::string axesText(const std::vector<int> &axes) {
  std::string text = "{";
  for (size_t i = 0; i < axes.size(); ++i)
    text += (i ? "," : "") + std::to_string(axes[i]);
  return text + "}";
}

/// Every subset of the axes (the empty one and all of them included), the
/// multi-axis ones also listed in descending order to exercise sorting.
std::vector<std::vector<int>> axisSubsets(size_t gridRank) {
  std::vector<std::vector<int>> subsets;
  for (unsigned mask = 0; mask < (1u << gridRank); ++mask) {
    std::vector<int> axes;
    for (size_t axis = 0; axis < gridRank; ++axis)
      if (mask & (1u << axis))
        axes.push_back(static_cast<int>(axis));
    if (axes.size() > 1)
      std::reverse(axes.begin(), axes.end());
    subsets.push_back(axes);
  }
  return subsets;
}

/// Row-major coordinates, last axis fastest.
std::vector<int64_t> coordsOf(int rank, const std::vector<int64_t> &shape) {
  std::vector<int64_t> coords(shape.size());
  for (size_t axis = shape.size(); axis-- > 0;) {
    coords[axis] = rank % shape[axis];
    rank /= static_cast<int>(shape[axis]);
  }
  return coords;
}

/// World ranks of the group of `rank` over `axes`, in group rank order.
std::vector<int> groupMembers(int rank, const std::vector<int64_t> &shape,
                              const std::vector<int> &axes) {
  std::vector<int64_t> mine = coordsOf(rank, shape);
  std::vector<int> members;
  for (int other = 0; other < worldSize(); ++other) {
    std::vector<int64_t> theirs = coordsOf(other, shape);
    bool same = true;
    for (size_t axis = 0; axis < shape.size(); ++axis)
      if (std::find(axes.begin(), axes.end(), static_cast<int>(axis)) ==
              axes.end() &&
          theirs[axis] != mine[axis])
        same = false;
    if (same)
      members.push_back(other);
  }
  return members;
}

int indexIn(const std::vector<int> &members, int rank) {
  return static_cast<int>(std::find(members.begin(), members.end(), rank) -
                          members.begin());
}

// Counts around the group sizes (n < p, n % p != 0, n % p == 0) and zero.
const std::vector<int64_t> kCounts = {0, 1, 2, 3, 5, 12, 17, 1001};

template <typename T> constexpr ElementType elementTypeOf();
template <> constexpr ElementType elementTypeOf<float>() {
  return ElementType::F32;
}
template <> constexpr ElementType elementTypeOf<int32_t>() {
  return ElementType::I32;
}
template <> constexpr ElementType elementTypeOf<int64_t>() {
  return ElementType::I64;
}
template <> constexpr ElementType elementTypeOf<uint8_t>() {
  return ElementType::U8;
}

/// Rank `rank`'s input element. Floats are multiples of 1/4 below 32 in
/// magnitude, so sums over a few ranks are exact in any order and the
/// reference can be compared bit for bit; the integer types use their
/// range (i64 beyond 32 bits).
template <typename T> T inputValue(int rank, int64_t index, int salt) {
  int64_t base = (rank * 131 + index * 17 + salt * 7) % 61 - 30;
  if constexpr (std::is_same_v<T, float>)
    return static_cast<float>(base) + 0.25f * static_cast<float>(index % 4);
  else if constexpr (std::is_same_v<T, int32_t>)
    return static_cast<int32_t>(base * 100003);
  else if constexpr (std::is_same_v<T, int64_t>)
    return base * (int64_t(1) << 36) + index;
  else
    return static_cast<uint8_t>((rank * 37 + index * 11 + salt) & 0xff);
}

/// The reduction over `members`' inputs in group rank order.
template <typename T>
T referenceReduce(const std::vector<int> &members, int64_t index, int salt,
                  ReduceOp op) {
  T result = inputValue<T>(members[0], index, salt);
  for (size_t i = 1; i < members.size(); ++i) {
    T value = inputValue<T>(members[i], index, salt);
    if (op == ReduceOp::Sum || op == ReduceOp::Mean)
      result = result + value;
    else if (op == ReduceOp::Max)
      result = std::max(result, value);
    else
      result = std::min(result, value);
  }
  if (op == ReduceOp::Mean)
    result = result / static_cast<T>(members.size());
  return result;
}

int64_t expectedBytes(CollectiveKind kind, int64_t count, int64_t groupSize,
                      ElementType type) {
  int64_t width = elementSize(type);
  if (kind == CollectiveKind::AllReduce)
    return 2 * (groupSize - 1) * ((count + groupSize - 1) / groupSize) * width;
  return (groupSize - 1) * count * width;
}

template <typename T>
::testing::AssertionResult bitIdentical(const std::vector<T> &actual,
                                        const std::vector<T> &expected) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure()
           << actual.size() << " elements, expected " << expected.size();
  for (size_t i = 0; i < actual.size(); ++i)
    if (std::memcmp(&actual[i], &expected[i], sizeof(T)) != 0)
      return ::testing::AssertionFailure()
             << "element " << i << " of " << actual.size() << " is "
             << +actual[i] << ", expected " << +expected[i];
  return ::testing::AssertionSuccess();
}

/// What one call should have added to the communicator's stats.
::testing::AssertionResult countedAs(const CommStats &before,
                                     const CommStats &after,
                                     CollectiveKind kind, int64_t bytes) {
  int k = static_cast<int>(kind);
  for (int other = 0; other < kNumCollectiveKinds; ++other) {
    int64_t calls = after.calls[other] - before.calls[other];
    int64_t sent = after.bytesSent[other] - before.bytesSent[other];
    int64_t wantCalls = other == k ? 1 : 0;
    int64_t wantBytes = other == k ? bytes : 0;
    if (calls != wantCalls || sent != wantBytes)
      return ::testing::AssertionFailure()
             << collectiveName(static_cast<CollectiveKind>(other)) << ": "
             << calls << " calls and " << sent << " bytes counted, expected "
             << wantCalls << " and " << wantBytes;
  }
  return ::testing::AssertionSuccess();
}

/// The results one rank produced for one group during a test; at the end
/// the ranks of the group compare theirs byte for byte.
class ResultLog {
public:
  template <typename T> void append(const std::vector<T> &values) {
    const uint8_t *bytes = reinterpret_cast<const uint8_t *>(values.data());
    bytes_.insert(bytes_.end(), bytes, bytes + values.size() * sizeof(T));
  }

  /// Collective over the world (uses MPI directly, not the code under
  /// test).
  ::testing::AssertionResult identicalAcross(const std::vector<int> &members) {
    int size = worldSize();
    int64_t mine = static_cast<int64_t>(bytes_.size());
    std::vector<int64_t> sizes(size);
    MPI_Allgather(&mine, 1, MPI_INT64_T, sizes.data(), 1, MPI_INT64_T,
                  MPI_COMM_WORLD);
    for (int rank = 0; rank < size; ++rank)
      if (sizes[rank] != mine)
        return ::testing::AssertionFailure()
               << "rank " << rank << " logged " << sizes[rank]
               << " result bytes, this rank " << mine;
    std::vector<uint8_t> all(bytes_.size() * size);
    MPI_Allgather(bytes_.data(), static_cast<int>(mine), MPI_BYTE, all.data(),
                  static_cast<int>(mine), MPI_BYTE, MPI_COMM_WORLD);
    for (int member : members)
      if (std::memcmp(all.data() + member * mine, bytes_.data(),
                      bytes_.size()) != 0)
        return ::testing::AssertionFailure()
               << "results differ between world ranks " << worldRank()
               << " and " << member;
    return ::testing::AssertionSuccess();
  }

private:
  std::vector<uint8_t> bytes_;
};

/// One group of one grid, with the reference's view of it.
struct GroupUnderTest {
  Communicator *comm;
  std::vector<int> members;
  int index; // this rank's index in members
  std::string name;
};

/// Runs `body(group)` for every subset of axes of every grid shape, then
/// checks the group's structure and that its ranks logged the same bits.
template <typename Body> void forEveryGroup(Body body) {
  for (const std::vector<int64_t> &shape : gridShapes()) {
    Expected<std::unique_ptr<GridCommunicators>> grid = makeMpiGrid(shape);
    ASSERT_TRUE(grid.ok()) << grid.status().toString();
    for (const std::vector<int> &axes : axisSubsets(shape.size())) {
      Expected<Communicator *> comm = (*grid)->group(axes);
      ASSERT_TRUE(comm.ok()) << comm.status().toString();
      GroupUnderTest group;
      group.comm = *comm;
      group.members = groupMembers(worldRank(), shape, axes);
      group.index = indexIn(group.members, worldRank());
      group.name = "grid " + shapeText(shape) + " axes " + axesText(axes);
      EXPECT_EQ(group.comm->size(), static_cast<int>(group.members.size()))
          << group.name;
      EXPECT_EQ(group.comm->rank(), group.index) << group.name;
      ResultLog log;
      body(group, log);
      EXPECT_TRUE(log.identicalAcross(group.members)) << group.name;
    }
  }
}

std::string caseName(const GroupUnderTest &group, ElementType type,
                     int64_t count, const char *op = nullptr) {
  std::ostringstream text;
  text << group.name << " " << elementTypeName(type) << " n=" << count;
  if (op)
    text << " " << op;
  return text.str();
}

template <typename T>
void checkAllReduce(const GroupUnderTest &group, ReduceOp op, int64_t count,
                    int salt, ResultLog &log) {
  constexpr ElementType type = elementTypeOf<T>();
  std::vector<T> data(count), expected(count);
  for (int64_t i = 0; i < count; ++i) {
    data[i] = inputValue<T>(worldRank(), i, salt);
    expected[i] = referenceReduce<T>(group.members, i, salt, op);
  }
  std::string name = caseName(group, type, count, reduceOpName(op));
  CommStats before = group.comm->stats();
  Status status = group.comm->allReduce(data.data(), count, type, op);
  EXPECT_TRUE(status.ok()) << name << ": " << status.toString();
  EXPECT_TRUE(bitIdentical(data, expected)) << name;
  EXPECT_TRUE(countedAs(before, group.comm->stats(), CollectiveKind::AllReduce,
                        expectedBytes(CollectiveKind::AllReduce, count,
                                      group.comm->size(), type)))
      << name;
  log.append(data);
}

template <typename T>
void checkAllGather(const GroupUnderTest &group, int64_t count, int salt,
                    bool inPlace, ResultLog &log) {
  constexpr ElementType type = elementTypeOf<T>();
  int64_t groupSize = static_cast<int64_t>(group.members.size());
  std::vector<T> send(count), recv(groupSize * count), expected(recv.size());
  for (int64_t i = 0; i < count; ++i)
    send[i] = inputValue<T>(worldRank(), i, salt);
  for (int64_t member = 0; member < groupSize; ++member)
    for (int64_t i = 0; i < count; ++i)
      expected[member * count + i] =
          inputValue<T>(group.members[member], i, salt);
  const T *source = send.data();
  if (inPlace) {
    std::copy(send.begin(), send.end(), recv.begin() + group.index * count);
    source = recv.data() + group.index * count;
  }
  std::string name = caseName(group, type, count, inPlace ? "in place" : "");
  CommStats before = group.comm->stats();
  Status status = group.comm->allGather(source, recv.data(), count, type);
  EXPECT_TRUE(status.ok()) << name << ": " << status.toString();
  EXPECT_TRUE(bitIdentical(recv, expected)) << name;
  EXPECT_TRUE(countedAs(
      before, group.comm->stats(), CollectiveKind::AllGather,
      expectedBytes(CollectiveKind::AllGather, count, groupSize, type)))
      << name;
  log.append(recv);
}

template <typename T>
void checkReduceScatter(const GroupUnderTest &group, ReduceOp op, int64_t count,
                        int salt, ResultLog &log) {
  constexpr ElementType type = elementTypeOf<T>();
  int64_t groupSize = static_cast<int64_t>(group.members.size());
  std::vector<T> send(groupSize * count), recv(count), expected(count);
  for (int64_t i = 0; i < groupSize * count; ++i)
    send[i] = inputValue<T>(worldRank(), i, salt);
  for (int64_t i = 0; i < count; ++i)
    expected[i] =
        referenceReduce<T>(group.members, group.index * count + i, salt, op);
  std::string name = caseName(group, type, count, reduceOpName(op));
  CommStats before = group.comm->stats();
  Status status =
      group.comm->reduceScatter(send.data(), recv.data(), count, type, op);
  EXPECT_TRUE(status.ok()) << name << ": " << status.toString();
  EXPECT_TRUE(bitIdentical(recv, expected)) << name;
  EXPECT_TRUE(countedAs(
      before, group.comm->stats(), CollectiveKind::ReduceScatter,
      expectedBytes(CollectiveKind::ReduceScatter, count, groupSize, type)))
      << name;
  // Each rank holds a different chunk; gathering them all makes the log
  // comparable across the group.
  std::vector<T> everyChunk(groupSize * count);
  EXPECT_TRUE(
      group.comm->allGather(recv.data(), everyChunk.data(), count, type).ok());
  log.append(everyChunk);
}

template <typename T>
void checkAllToAll(const GroupUnderTest &group, int64_t count, int salt,
                   ResultLog &log) {
  constexpr ElementType type = elementTypeOf<T>();
  int64_t groupSize = static_cast<int64_t>(group.members.size());
  std::vector<T> send(groupSize * count), recv(send.size()),
      expected(send.size());
  for (int64_t i = 0; i < groupSize * count; ++i)
    send[i] = inputValue<T>(worldRank(), i, salt);
  for (int64_t source = 0; source < groupSize; ++source)
    for (int64_t i = 0; i < count; ++i)
      expected[source * count + i] =
          inputValue<T>(group.members[source], group.index * count + i, salt);
  std::string name = caseName(group, type, count);
  CommStats before = group.comm->stats();
  Status status = group.comm->allToAll(send.data(), recv.data(), count, type);
  EXPECT_TRUE(status.ok()) << name << ": " << status.toString();
  EXPECT_TRUE(bitIdentical(recv, expected)) << name;
  EXPECT_TRUE(countedAs(
      before, group.comm->stats(), CollectiveKind::AllToAll,
      expectedBytes(CollectiveKind::AllToAll, count, groupSize, type)))
      << name;
  // What a rank receives differs across the group; a second exchange that
  // sends each chunk back must restore the input exactly, and the gathered
  // receive buffers (the whole exchange) are compared across the group.
  std::vector<T> back(send.size());
  EXPECT_TRUE(group.comm->allToAll(recv.data(), back.data(), count, type).ok());
  EXPECT_TRUE(bitIdentical(back, send)) << name << " (round trip)";
  std::vector<T> everyRecv(groupSize * recv.size());
  EXPECT_TRUE(group.comm
                  ->allGather(recv.data(), everyRecv.data(),
                              static_cast<int64_t>(recv.size()), type)
                  .ok());
  log.append(everyRecv);
}

const std::vector<ReduceOp> kFloatOps = {ReduceOp::Sum, ReduceOp::Mean,
                                         ReduceOp::Max, ReduceOp::Min};
const std::vector<ReduceOp> kIntegerOps = {ReduceOp::Sum, ReduceOp::Max,
                                           ReduceOp::Min};

TEST(MpiCollectives, AllReduce) {
  forEveryGroup([](const GroupUnderTest &group, ResultLog &log) {
    for (int64_t count : kCounts) {
      for (ReduceOp op : kFloatOps)
        checkAllReduce<float>(group, op, count, 1, log);
      for (ReduceOp op : kIntegerOps) {
        checkAllReduce<int32_t>(group, op, count, 2, log);
        checkAllReduce<int64_t>(group, op, count, 3, log);
      }
    }
  });
}

TEST(MpiCollectives, AllReduceOfInexactFloatsIsIdenticalOnEveryRank) {
  // Values whose sums round: the result depends on the order of additions
  // and must still be the same bits on every rank of the group.
  forEveryGroup([](const GroupUnderTest &group, ResultLog &log) {
    const int64_t count = 999;
    std::vector<float> data(count), expected(count, 0.0f);
    auto value = [](int rank, int64_t i) {
      return static_cast<float>(std::sin(0.37 * rank + 0.011 * i) / 3.0);
    };
    for (int64_t i = 0; i < count; ++i) {
      data[i] = value(worldRank(), i);
      for (int member : group.members)
        expected[i] += value(member, i);
    }
    ASSERT_TRUE(
        group.comm
            ->allReduce(data.data(), count, ElementType::F32, ReduceOp::Sum)
            .ok());
    for (int64_t i = 0; i < count; ++i)
      EXPECT_NEAR(data[i], expected[i], 1e-6) << group.name << " i=" << i;
    log.append(data);
  });
}

TEST(MpiCollectives, AllGather) {
  forEveryGroup([](const GroupUnderTest &group, ResultLog &log) {
    for (int64_t count : kCounts) {
      for (bool inPlace : {false, true}) {
        checkAllGather<float>(group, count, 4, inPlace, log);
        checkAllGather<uint8_t>(group, count, 5, inPlace, log);
        checkAllGather<int64_t>(group, count, 6, inPlace, log);
      }
    }
  });
}

TEST(MpiCollectives, ReduceScatter) {
  forEveryGroup([](const GroupUnderTest &group, ResultLog &log) {
    for (int64_t count : kCounts) {
      for (ReduceOp op : kFloatOps)
        checkReduceScatter<float>(group, op, count, 7, log);
      for (ReduceOp op : kIntegerOps) {
        checkReduceScatter<int32_t>(group, op, count, 8, log);
        checkReduceScatter<int64_t>(group, op, count, 9, log);
      }
    }
  });
}

TEST(MpiCollectives, AllToAll) {
  forEveryGroup([](const GroupUnderTest &group, ResultLog &log) {
    for (int64_t count : kCounts) {
      checkAllToAll<float>(group, count, 10, log);
      checkAllToAll<uint8_t>(group, count, 11, log);
      checkAllToAll<int64_t>(group, count, 12, log);
    }
  });
}

TEST(MpiCollectives, LargeTransfersAreSplitIntoPieces) {
  // With 7-byte messages (5 elements) and 1001-byte messages (1001
  // elements) every transfer is split, across element boundaries; results
  // and counted bytes must not change. (Pieces of a few hundred bytes keep
  // the number of round trips small: with 4 ranks on 2 busy cores each one
  // can wait for a scheduler tick.)
  int64_t previous = setMaxMpiMessageBytes(7);
  forEveryGroup([](const GroupUnderTest &group, ResultLog &log) {
    for (int64_t count : {int64_t(5), int64_t(1001)}) {
      setMaxMpiMessageBytes(count == 5 ? 7 : 1001);
      checkAllReduce<float>(group, ReduceOp::Sum, count, 13, log);
      checkAllReduce<int64_t>(group, ReduceOp::Max, count, 14, log);
      checkAllGather<uint8_t>(group, count, 15, false, log);
      checkReduceScatter<float>(group, ReduceOp::Mean, count, 16, log);
      checkAllToAll<int32_t>(group, count, 17, log);
    }
  });
  setMaxMpiMessageBytes(previous);
}

TEST(MpiGrid, CoordinatesGroupsAndWorld) {
  for (const std::vector<int64_t> &shape : gridShapes()) {
    Expected<std::unique_ptr<GridCommunicators>> gridOr = makeMpiGrid(shape);
    ASSERT_TRUE(gridOr.ok()) << gridOr.status().toString();
    GridCommunicators &grid = **gridOr;
    EXPECT_EQ(grid.worldRank(), worldRank());
    EXPECT_EQ(grid.worldSize(), worldSize());
    EXPECT_EQ(grid.gridShape(), shape);
    EXPECT_EQ(grid.coords(), coordsOf(worldRank(), shape));
    EXPECT_EQ(grid.world().size(), worldSize());
    EXPECT_EQ(grid.world().rank(), worldRank());

    std::vector<int> all(shape.size()), reversed;
    for (size_t axis = 0; axis < shape.size(); ++axis)
      all[axis] = static_cast<int>(axis);
    reversed.assign(all.rbegin(), all.rend());
    Expected<Communicator *> allGroup = grid.group(all);
    Expected<Communicator *> reversedGroup = grid.group(reversed);
    ASSERT_TRUE(allGroup.ok() && reversedGroup.ok());
    EXPECT_EQ(*allGroup, &grid.world());
    EXPECT_EQ(*reversedGroup, &grid.world());
    Expected<Communicator *> none = grid.group({});
    ASSERT_TRUE(none.ok());
    EXPECT_EQ((*none)->size(), 1);
    EXPECT_TRUE(grid.world().barrier().ok());

    // totalStats sums the groups: one all-reduce on the world and one on
    // the first axis' group.
    Expected<Communicator *> first = grid.group({0});
    ASSERT_TRUE(first.ok());
    std::vector<float> data(10, 1.0f);
    EXPECT_TRUE(grid.world()
                    .allReduce(data.data(), 10, ElementType::F32, ReduceOp::Sum)
                    .ok());
    EXPECT_TRUE(
        (*first)
            ->allReduce(data.data(), 10, ElementType::F32, ReduceOp::Sum)
            .ok());
    CommStats total = grid.totalStats();
    int k = static_cast<int>(CollectiveKind::AllReduce);
    EXPECT_EQ(total.calls[k], 2);
    EXPECT_EQ(total.bytesSent[k],
              expectedBytes(CollectiveKind::AllReduce, 10, worldSize(),
                            ElementType::F32) +
                  expectedBytes(CollectiveKind::AllReduce, 10, shape[0],
                                ElementType::F32));
    EXPECT_EQ(total.totalBytesSent(), total.bytesSent[k]);
  }
}

TEST(MpiGrid, ProcessCountMismatchIsExplained) {
  int size = worldSize();
  Expected<std::unique_ptr<GridCommunicators>> named =
      makeMpiGrid({size, 2, 1}, {"dp", "ep", "tp"});
  ASSERT_FALSE(named.ok());
  EXPECT_EQ(named.status().code(), StatusCode::InvalidArgument);
  std::string expected = "the device grid dp=" + std::to_string(size) +
                         " x ep=2 x tp=1 needs " + std::to_string(2 * size) +
                         " processes, but the MPI job has " +
                         std::to_string(size) + " (start it with mpirun -np " +
                         std::to_string(2 * size);
  EXPECT_NE(named.status().message().find(expected), std::string::npos)
      << named.status().toString();

  Expected<std::unique_ptr<GridCommunicators>> unnamed =
      makeMpiGrid({size + 1});
  ASSERT_FALSE(unnamed.ok());
  EXPECT_NE(unnamed.status().message().find("grid " + std::to_string(size + 1) +
                                            " needs"),
            std::string::npos)
      << unnamed.status().toString();
}

TEST(MpiGrid, RejectsBadShapesNamesAndAxes) {
  Expected<std::unique_ptr<GridCommunicators>> zero =
      makeMpiGrid({worldSize(), 0}, {"dp", "ep"});
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("axis 1 has size 0"),
            std::string::npos)
      << zero.status().toString();

  Expected<std::unique_ptr<GridCommunicators>> names =
      makeMpiGrid({worldSize()}, {"dp", "ep"});
  ASSERT_FALSE(names.ok());
  EXPECT_NE(names.status().message().find("2 axis names"), std::string::npos)
      << names.status().toString();

  Expected<std::unique_ptr<GridCommunicators>> grid =
      makeMpiGrid({worldSize(), 1}, {"dp", "tp"});
  ASSERT_TRUE(grid.ok()) << grid.status().toString();
  Expected<Communicator *> outside = (*grid)->group({2});
  ASSERT_FALSE(outside.ok());
  EXPECT_NE(outside.status().message().find("dp="), std::string::npos)
      << outside.status().toString();
  EXPECT_FALSE((*grid)->group({0, 0}).ok());
}

TEST(MpiCommunicator, RejectsBadArgumentsOnEveryRank) {
  Expected<std::unique_ptr<GridCommunicators>> grid =
      makeMpiGrid({worldSize()}, {"dp"});
  ASSERT_TRUE(grid.ok()) << grid.status().toString();
  Communicator &world = (*grid)->world();
  std::vector<int32_t> integers(4 * worldSize(), 1);
  std::vector<uint8_t> bytes(4 * worldSize(), 1);

  Status negative =
      world.allGather(integers.data(), integers.data(), -3, ElementType::I32);
  EXPECT_EQ(negative.code(), StatusCode::InvalidArgument);
  EXPECT_NE(negative.message().find("got -3"), std::string::npos)
      << negative.toString();

  Status mean =
      world.allReduce(integers.data(), 4, ElementType::I32, ReduceOp::Mean);
  EXPECT_EQ(mean.code(), StatusCode::InvalidArgument);
  EXPECT_NE(mean.message().find("mean of i32"), std::string::npos)
      << mean.toString();

  Status byteSum = world.reduceScatter(bytes.data(), bytes.data(), 1,
                                       ElementType::U8, ReduceOp::Sum);
  EXPECT_EQ(byteSum.code(), StatusCode::InvalidArgument);

  Status overlap =
      world.allToAll(integers.data(), integers.data() + 1, 2, ElementType::I32);
  EXPECT_EQ(overlap.code(), StatusCode::InvalidArgument);

  EXPECT_EQ(world.stats().totalBytesSent(), 0);
  for (int kind = 0; kind < kNumCollectiveKinds; ++kind)
    EXPECT_EQ(world.stats().calls[kind], 0) << kind;

  // The communicator still works after the rejected calls.
  EXPECT_TRUE(
      world.allReduce(integers.data(), 4, ElementType::I32, ReduceOp::Sum)
          .ok());
  EXPECT_EQ(integers[0], worldSize());
}

} // namespace
} // namespace moert::comm
