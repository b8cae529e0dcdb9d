//===- CollectiveMpiTest.cpp - Collective kernels across MPI processes ----===//
//
// Run under mpirun (2 and 4 processes). Each collective instruction
// ("shard.all_reduce", ...) runs through the executor on every grid whose
// size is the world's, over every subset of its axes, splitting and
// concatenating along every dimension (the non-leading ones pack and unpack
// chunks). Every rank can compute every rank's operand (a function of world
// rank and index), so each rank checks its result against a reference
// computed element by element from the group's operands, and the bytes its
// communicators sent against the formulas of Communicator.h.
//
// Every rank runs the same instructions in the same order: checks are
// EXPECTs, never ASSERTs that would skip a collective on one rank.
//
//===----------------------------------------------------------------------===//
#include "TestPrograms.h"

#include "moert/comm/MpiCommunicator.h"
#include "moert/exec/CollectiveSchedule.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <sstream>

using namespace moert;
using namespace moert::exec;
using namespace moert::exec::testing;

namespace {

int worldSize() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

/// Three-axis grids (dp x ep x tp, as plans have) of the world's size.
std::vector<std::vector<int64_t>> gridShapes() {
  switch (worldSize()) {
  case 1:
    return {{1, 1, 1}};
  case 2:
    return {{2, 1, 1}, {1, 1, 2}};
  case 4:
    return {{2, 2, 1}, {1, 2, 2}, {4, 1, 1}};
  default:
    return {{worldSize(), 1, 1}};
  }
}

/// The non-empty subsets of the grid's axes, each in increasing order.
std::vector<std::vector<int>> axisSets(size_t numAxes) {
  std::vector<std::vector<int>> sets;
  for (unsigned mask = 1; mask < (1u << numAxes); ++mask) {
    std::vector<int> axes;
    for (size_t axis = 0; axis < numAxes; ++axis)
      if (mask & (1u << axis))
        axes.push_back(static_cast<int>(axis));
    sets.push_back(axes);
  }
  return sets;
}

std::vector<int64_t> coordsOf(const std::vector<int64_t> &shape, int64_t rank) {
  std::vector<int64_t> coords(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    coords[i] = rank % shape[i];
    rank /= shape[i];
  }
  return coords;
}

/// The world ranks of this rank's group over `axes`, in group order.
std::vector<int64_t> groupMembers(const std::vector<int64_t> &shape,
                                  const std::vector<int64_t> &mine,
                                  const std::vector<int> &axes) {
  std::vector<int64_t> members;
  int64_t ranks = 1;
  for (int64_t extent : shape)
    ranks *= extent;
  for (int64_t rank = 0; rank < ranks; ++rank) {
    std::vector<int64_t> coords = coordsOf(shape, rank);
    bool same = true;
    for (size_t axis = 0; axis < shape.size(); ++axis)
      if (std::find(axes.begin(), axes.end(), static_cast<int>(axis)) ==
          axes.end())
        same &= coords[axis] == mine[axis];
    if (same)
      members.push_back(rank);
  }
  return members;
}

/// Operand element `index` of world rank `rank`: distinct per rank, and
/// small enough that sums of four are exact in f32.
double operandValue(int64_t rank, int64_t index) {
  return static_cast<double>(rank * 1000 + index % 500);
}

const std::vector<int64_t> kShape = {4, 4, 8};

struct Case {
  std::string kernel;
  DType dtype = DType::F32;
  Reduction reduction = Reduction::None;
  int splitDim = -1, concatDim = -1;
  bool inPlace = false;
  std::string name() const {
    std::ostringstream os;
    os << kernel << " " << dtypeName(dtype) << " " << reductionName(reduction)
       << " split " << splitDim << " concat " << concatDim
       << (inPlace ? " in place" : "");
    return os.str();
  }
};

std::vector<Case> cases() {
  std::vector<Case> all;
  for (Reduction r :
       {Reduction::Sum, Reduction::Mean, Reduction::Max, Reduction::Min})
    all.push_back({"shard.all_reduce", DType::F32, r});
  all.push_back({"shard.all_reduce", DType::I32, Reduction::Sum});
  all.push_back({"shard.all_reduce", DType::F32, Reduction::Sum, -1, -1, true});
  for (int dim = 0; dim < 3; ++dim) {
    all.push_back({"shard.all_gather", DType::F32, Reduction::None, -1, dim});
    all.push_back({"shard.reduce_scatter", DType::F32, Reduction::Sum, dim});
    all.push_back({"shard.all_slice", DType::F32, Reduction::None, dim});
    for (int concat = 0; concat < 3; ++concat)
      all.push_back(
          {"shard.all_to_all", DType::F32, Reduction::None, dim, concat});
  }
  all.push_back({"shard.all_gather", DType::I32, Reduction::None, -1, 1});
  all.push_back({"shard.reduce_scatter", DType::I32, Reduction::Max, 2});
  return all;
}

/// The result this rank expects, element by element.
std::vector<double> reference(const Case &c,
                              const std::vector<int64_t> &members,
                              int64_t groupRank,
                              const std::vector<int64_t> &resultShape) {
  const int64_t p = static_cast<int64_t>(members.size());
  std::vector<double> result;
  auto value = [&](int64_t member, const std::vector<int64_t> &index) {
    return operandValue(members[member], flatIndex(kShape, index));
  };
  forEachIndex(resultShape, [&](std::vector<int64_t> index) {
    if (c.kernel == "shard.all_reduce") {
      double acc = value(0, index);
      for (int64_t m = 1; m < p; ++m) {
        double v = value(m, index);
        if (c.reduction == Reduction::Max)
          acc = std::max(acc, v);
        else if (c.reduction == Reduction::Min)
          acc = std::min(acc, v);
        else
          acc += v;
      }
      result.push_back(c.reduction == Reduction::Mean ? acc / p : acc);
    } else if (c.kernel == "shard.all_gather") {
      int64_t local = kShape[c.concatDim];
      int64_t member = index[c.concatDim] / local;
      index[c.concatDim] %= local;
      result.push_back(value(member, index));
    } else if (c.kernel == "shard.reduce_scatter") {
      index[c.splitDim] += groupRank * resultShape[c.splitDim];
      double acc = value(0, index);
      for (int64_t m = 1; m < p; ++m)
        acc = c.reduction == Reduction::Max ? std::max(acc, value(m, index))
                                            : acc + value(m, index);
      result.push_back(acc);
    } else if (c.kernel == "shard.all_to_all") {
      // Chunk i (from member i) sits at position i along concat_dim; it is
      // member i's block `groupRank` along split_dim.
      std::vector<int64_t> chunk = kShape;
      chunk[c.splitDim] /= p;
      int64_t member = index[c.concatDim] / chunk[c.concatDim];
      index[c.concatDim] %= chunk[c.concatDim];
      index[c.splitDim] += groupRank * chunk[c.splitDim];
      result.push_back(value(member, index));
    } else { // all_slice: own operand, own block
      index[c.splitDim] += groupRank * resultShape[c.splitDim];
      result.push_back(value(groupRank, index));
    }
  });
  return result;
}

/// Bytes one call sends per Communicator.h; all_slice sends nothing.
int64_t expectedBytes(const Case &c, int64_t p, int64_t operandElements) {
  int64_t w = dtypeSize(c.dtype);
  if (c.kernel == "shard.all_reduce")
    return 2 * (p - 1) * ((operandElements + p - 1) / p) * w;
  if (c.kernel == "shard.all_gather")
    return (p - 1) * operandElements * w;
  if (c.kernel == "shard.reduce_scatter" || c.kernel == "shard.all_to_all")
    return (p - 1) * (operandElements / p) * w;
  return 0;
}

TEST(CollectiveKernels, EveryCollectiveOnEveryGridAndAxisSet) {
  int64_t operandElements = 1;
  for (int64_t d : kShape)
    operandElements *= d;
  for (const std::vector<int64_t> &shape : gridShapes()) {
    auto grid = comm::makeMpiGrid(shape, {"dp", "ep", "tp"});
    ASSERT_TRUE(grid.ok()) << grid.status().toString(); // same on every rank
    comm::GridCommunicators &communicators = **grid;
    const std::vector<int64_t> &mine = communicators.coords();
    for (const std::vector<int> &axes : axisSets(shape.size())) {
      std::vector<int64_t> members = groupMembers(shape, mine, axes);
      const int64_t p = static_cast<int64_t>(members.size());
      int64_t groupRank =
          std::find(members.begin(), members.end(), communicators.worldRank()) -
          members.begin();
      for (const Case &c : cases()) {
        std::string where = c.name() + " over axes";
        for (int axis : axes)
          where += " " + std::to_string(axis);
        where += " of grid";
        for (int64_t extent : shape)
          where += " " + std::to_string(extent);
        std::vector<int64_t> resultShape = kShape;
        if (c.splitDim >= 0)
          resultShape[c.splitDim] /= p;
        if (c.concatDim >= 0)
          resultShape[c.concatDim] *= p;

        TestProgram t;
        t.program.gridShape = shape;
        int32_t in = t.buffer(c.dtype, kShape, BufferKind::Arena);
        int32_t out =
            c.inPlace ? in : t.buffer(c.dtype, resultShape, BufferKind::Arena);
        t.add(c.kernel, {in}, {out}, {},
              CollectiveInfo{axes, c.reduction, c.splitDim, c.concatDim});
        auto executor = Executor::create(t.program);
        EXPECT_TRUE(executor.ok())
            << where << ": " << executor.status().toString();
        if (!executor.ok())
          continue; // the same on every rank
        std::vector<double> input;
        for (int64_t i = 0; i < operandElements; ++i)
          input.push_back(operandValue(communicators.worldRank(), i));
        if (c.dtype == DType::F32)
          fill(**executor, in, std::vector<float>(input.begin(), input.end()));
        else
          fill(**executor, in,
               std::vector<int32_t>(input.begin(), input.end()));

        RunContext context;
        context.grid = &communicators;
        comm::CommStats before = communicators.totalStats();
        Status status = (*executor)->run(context);
        EXPECT_TRUE(status.ok()) << where << ": " << status.toString();
        comm::CommStats after = communicators.totalStats();

        std::vector<double> got;
        if (c.dtype == DType::F32)
          for (float v : read<float>(**executor, out))
            got.push_back(v);
        else
          for (int32_t v : read<int32_t>(**executor, out))
            got.push_back(v);
        std::vector<double> expected =
            reference(c, members, groupRank, resultShape);
        EXPECT_EQ(got, expected) << where;
        EXPECT_EQ(after.totalBytesSent() - before.totalBytesSent(),
                  expectedBytes(c, p, operandElements))
            << where;
      }
    }
  }
}

//===----------------------------------------------------------------------===//
// Collectives overlapped with compute (Executor::setCollectiveOverlap)
//===----------------------------------------------------------------------===//

/// Compute and collectives whose buffers overlap the way the compiler's
/// arena lays them out: `reused` takes the bytes of the first all-reduce's
/// operand once it is dead in program order, so the instruction that
/// writes it must wait for that collective.
struct OverlapProgram {
  TestProgram t;
  int32_t a = 0, x = 0, reduced = 0, y = 0, reused = 0, gathered = 0, z = 0,
          exchanged = 0, out = 0;
  explicit OverlapProgram(int64_t ranks) {
    t.program.gridShape = {ranks, 1, 1};
    a = t.buffer(DType::F32, {ranks * 16});
    x = t.buffer(DType::F32, {ranks * 16}, BufferKind::Arena);
    reduced = t.buffer(DType::F32, {ranks * 16}, BufferKind::Arena);
    y = t.buffer(DType::F32, {ranks * 16}, BufferKind::Arena);
    gathered = t.buffer(DType::F32, {ranks * ranks * 16}, BufferKind::Arena);
    z = t.buffer(DType::F32, {ranks * 16}, BufferKind::Arena);
    exchanged = t.buffer(DType::F32, {ranks * 16}, BufferKind::Arena);
    out = t.buffer(DType::F32, {ranks * 16});
    // `reused`: an arena buffer over x's bytes under another id.
    Buffer alias = t.program.buffers[x];
    alias.name = "reused";
    t.program.buffers.push_back(alias);
    reused = static_cast<int32_t>(t.program.buffers.size() - 1);
    CollectiveInfo sum{{0}, Reduction::Sum, -1, -1};
    t.add("moe.mul", {a, a}, {x});                      // 0
    t.add("shard.all_reduce", {x}, {reduced}, {}, sum); // 1
    t.add("moe.add", {a, a}, {y});                      // 2
    t.add("shard.all_gather", {y}, {gathered}, {},
          CollectiveInfo{{0}, Reduction::None, -1, 0}); // 3
    t.add("moe.mul", {a, y}, {reused}); // 4: writes 1's operand bytes
    t.add("shard.all_to_all", {reused}, {exchanged}, {},
          CollectiveInfo{{0}, Reduction::None, 0, 0}); // 5
    t.add("moe.add", {reduced, y}, {z});               // 6
    t.add("moe.add", {z, exchanged}, {out});           // 7
  }
};

TEST(CollectiveOverlap, SameBitsAndBytesAsSynchronousCollectives) {
  const int64_t ranks = worldSize();
  if (ranks < 2)
    GTEST_SKIP() << "needs 2 or more processes";
  auto grid = comm::makeMpiGrid({ranks, 1, 1}, {"dp", "ep", "tp"});
  ASSERT_TRUE(grid.ok()) << grid.status().toString();
  EXPECT_TRUE((*grid)->collectivesFromAnyThread()); // OpenMPI: SERIALIZED+
  OverlapProgram p(ranks);
  CollectiveSchedule schedule = scheduleCollectives(p.t.program);
  EXPECT_EQ(schedule.waitPoint[1], 4u); // 4 overwrites its operand bytes
  EXPECT_EQ(schedule.waitPoint[3], 8u); // nothing reads `gathered`
  EXPECT_EQ(schedule.waitPoint[5], 7u);

  std::vector<float> input;
  for (int64_t i = 0; i < ranks * 16; ++i)
    input.push_back(static_cast<float>(
        0.1 * static_cast<double>((*grid)->worldRank() + 1) + 0.37 * i));
  std::vector<std::vector<float>> results[2];
  int64_t bytes[2] = {};
  for (int overlap = 0; overlap < 2; ++overlap) {
    auto executor = Executor::create(p.t.program);
    ASSERT_TRUE(executor.ok()) << executor.status().toString();
    (*executor)->setCollectiveOverlap(overlap == 1);
    fill(**executor, p.a, input);
    RunContext context;
    context.grid = grid->get();
    comm::CommStats before = (*grid)->totalStats();
    for (int step = 0; step < 3; ++step) {
      Status status = (*executor)->run(context);
      ASSERT_TRUE(status.ok()) << status.toString();
      EXPECT_EQ((*executor)->lastRunOverlapped(), overlap == 1);
    }
    bytes[overlap] =
        (*grid)->totalStats().totalBytesSent() - before.totalBytesSent();
    for (int32_t id : {p.reduced, p.gathered, p.exchanged, p.out})
      results[overlap].push_back(read<float>(**executor, id));
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  for (size_t k = 0; k < results[0].size(); ++k)
    EXPECT_EQ(0, std::memcmp(results[0][k].data(), results[1][k].data(),
                             results[0][k].size() * sizeof(float)))
        << "result " << k;
  EXPECT_EQ(bytes[0], bytes[1]);
  EXPECT_GT(bytes[1], 0);
}

TEST(CollectiveOverlap, AFailedCollectiveReportsTheSynchronousError) {
  // The ranks disagree on the all-reduce's count (a rank-local mistake):
  // every rank's first exchange fails, on the communication thread with
  // overlap. The error names the instruction and is the one the
  // synchronous run returns; the all-gather queued behind it does not run
  // (no rank reaches it, so none waits for it).
  const int64_t ranks = worldSize();
  if (ranks < 2 || ranks % 2 != 0)
    GTEST_SKIP() << "needs an even number of processes";
  auto grid = comm::makeMpiGrid({ranks, 1, 1}, {"dp", "ep", "tp"});
  ASSERT_TRUE(grid.ok()) << grid.status().toString();
  const int64_t count = (*grid)->worldRank() % 2 == 0 ? 64 : 32;
  TestProgram t;
  t.program.gridShape = {ranks, 1, 1};
  int32_t a = t.buffer(DType::F32, {count});
  int32_t reduced = t.buffer(DType::F32, {count}, BufferKind::Arena);
  int32_t b = t.buffer(DType::F32, {4});
  int32_t gathered = t.buffer(DType::F32, {4 * ranks}, BufferKind::Arena);
  int32_t c = t.buffer(DType::F32, {4}, BufferKind::Arena);
  t.add("shard.all_reduce", {a}, {reduced}, {},
        CollectiveInfo{{0}, Reduction::Sum, -1, -1});
  t.add("shard.all_gather", {b}, {gathered}, {},
        CollectiveInfo{{0}, Reduction::None, -1, 0});
  t.add("moe.add", {b, b}, {c});
  std::string messages[2];
  for (int overlap = 0; overlap < 2; ++overlap) {
    auto executor = Executor::create(t.program);
    ASSERT_TRUE(executor.ok()) << executor.status().toString();
    (*executor)->setCollectiveOverlap(overlap == 1);
    RunContext context;
    context.grid = grid->get();
    comm::CommStats before = (*grid)->totalStats();
    Status status = (*executor)->run(context);
    EXPECT_FALSE(status.ok());
    messages[overlap] = status.message();
    EXPECT_NE(messages[overlap].find("instruction #0 (shard.all_reduce)"),
              std::string::npos)
        << messages[overlap];
    EXPECT_NE(messages[overlap].find("all_reduce on the group over axes "
                                     "{dp}"),
              std::string::npos)
        << messages[overlap];
    // The all-gather never ran.
    comm::CommStats after = (*grid)->totalStats();
    EXPECT_EQ(after.calls[static_cast<int>(comm::CollectiveKind::AllGather)],
              before.calls[static_cast<int>(comm::CollectiveKind::AllGather)]);
  }
  EXPECT_EQ(messages[0], messages[1]);
}

} // namespace
