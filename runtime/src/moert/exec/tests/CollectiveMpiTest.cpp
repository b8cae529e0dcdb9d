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

#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
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

} // namespace
