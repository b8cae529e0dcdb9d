//===- PartitionedExecutorTest.cpp - Partitioned programs, one process ----===//
//
// What a partitioned program needs of the executor that one process can
// check: strided block copies, collectives over groups of one rank (with and
// without grid communicators), the clear error of a larger group without
// communicators, rank-dependent instructions (all_slice, dropout and the
// gate with `shard_axes`) placed on a grid position of a stand-in grid, and
// the kernels partitioning adds. Real multi-rank collectives are in
// CollectiveMpiTest.cpp.
//
//===----------------------------------------------------------------------===//
#include "TestPrograms.h"

#include "moert/comm/Communicator.h"
#include "moert/exec/TensorBlocks.h"

#include <gtest/gtest.h>

#include <numeric>

using namespace moert;
using namespace moert::exec;
using namespace moert::exec::testing;

namespace {

std::vector<float> iota(int64_t n, float start = 0.0f) {
  std::vector<float> values(static_cast<size_t>(n));
  std::iota(values.begin(), values.end(), start);
  return values;
}

//===----------------------------------------------------------------------===//
// Tensor blocks
//===----------------------------------------------------------------------===//

TEST(TensorBlocks, CopyOutAndInAgreeWithElementIndexing) {
  const std::vector<int64_t> shape = {4, 6, 5};
  std::vector<float> tensor = iota(4 * 6 * 5);
  for (const TensorBlock &block :
       {TensorBlock{{0, 0, 0}, {4, 6, 5}}, TensorBlock{{2, 0, 0}, {2, 6, 5}},
        TensorBlock{{0, 3, 0}, {4, 3, 5}}, TensorBlock{{1, 2, 1}, {2, 3, 3}},
        TensorBlock{{0, 0, 4}, {4, 6, 1}}, TensorBlock{{3, 5, 2}, {1, 1, 1}}}) {
    std::vector<float> out(static_cast<size_t>(block.numElements()), -1.0f);
    copyBlockOut(tensor.data(), shape, sizeof(float), block, out.data());
    int64_t position = 0;
    bool ok = true;
    forEachIndex(block.extent, [&](const std::vector<int64_t> &index) {
      std::vector<int64_t> source = index;
      for (size_t d = 0; d < source.size(); ++d)
        source[d] += block.offset[d];
      ok &= out[position++] == tensor[flatIndex(shape, source)];
    });
    EXPECT_TRUE(ok) << "block at offset " << block.offset[0] << ","
                    << block.offset[1] << "," << block.offset[2];
    std::vector<float> back(tensor.size(), 0.0f);
    copyBlockIn(out.data(), shape, sizeof(float), block, back.data());
    position = 0;
    forEachIndex(block.extent, [&](const std::vector<int64_t> &index) {
      std::vector<int64_t> target = index;
      for (size_t d = 0; d < target.size(); ++d)
        target[d] += block.offset[d];
      ok &= back[flatIndex(shape, target)] == out[position++];
    });
    EXPECT_TRUE(ok);
  }
}

TEST(TensorBlocks, ScalarBlock) {
  float value = 7.0f, out = 0.0f;
  copyBlockOut(&value, {}, sizeof(float), TensorBlock{{}, {}}, &out);
  EXPECT_EQ(out, 7.0f);
}

TEST(TensorBlocks, PackAndUnpackChunksOnEveryDimension) {
  const std::vector<int64_t> shape = {4, 6, 8};
  std::vector<float> tensor = iota(4 * 6 * 8);
  for (int dim = 0; dim < 3; ++dim) {
    const int64_t parts = 2;
    std::vector<float> packed(tensor.size());
    packChunks(tensor.data(), shape, sizeof(float), dim, parts, packed.data());
    std::vector<int64_t> chunkShape = shape;
    chunkShape[dim] /= parts;
    // Chunk j is block j along `dim`.
    int64_t chunkElements = static_cast<int64_t>(tensor.size()) / parts;
    for (int64_t j = 0; j < parts; ++j) {
      TensorBlock block{{0, 0, 0}, chunkShape};
      block.offset[dim] = j * chunkShape[dim];
      std::vector<float> expected(static_cast<size_t>(chunkElements));
      copyBlockOut(tensor.data(), shape, sizeof(float), block, expected.data());
      EXPECT_TRUE(std::equal(expected.begin(), expected.end(),
                             packed.begin() + j * chunkElements))
          << "dim " << dim << " chunk " << j;
    }
    std::vector<float> unpacked(tensor.size());
    unpackChunks(packed.data(), chunkShape, sizeof(float), dim, parts,
                 unpacked.data());
    EXPECT_EQ(unpacked, tensor) << "dim " << dim;
  }
}

//===----------------------------------------------------------------------===//
// Collectives in one process
//===----------------------------------------------------------------------===//

CollectiveInfo over(std::vector<int> axes,
                    Reduction reduction = Reduction::None, int splitDim = -1,
                    int concatDim = -1) {
  return CollectiveInfo{std::move(axes), reduction, splitDim, concatDim};
}

/// Every collective over the grid's axes of size 1: copies.
struct OneRankCollectives {
  TestProgram t;
  int32_t x, reduced, gathered, scattered, exchanged, sliced;
  OneRankCollectives() {
    t.program.gridShape = {1, 1, 1};
    x = t.buffer(DType::F32, {2, 3});
    reduced = t.buffer(DType::F32, {2, 3});
    gathered = t.buffer(DType::F32, {2, 3});
    scattered = t.buffer(DType::F32, {2, 3});
    exchanged = t.buffer(DType::F32, {2, 3});
    sliced = t.buffer(DType::F32, {2, 3});
    t.add("shard.all_reduce", {x}, {reduced}, {},
          over({0, 1, 2}, Reduction::Sum));
    t.add("shard.all_gather", {x}, {gathered}, {}, over({1}, {}, -1, 1));
    t.add("shard.reduce_scatter", {x}, {scattered}, {},
          over({0, 2}, Reduction::Mean, 1));
    t.add("shard.all_to_all", {x}, {exchanged}, {}, over({2}, {}, 1, 0));
    t.add("shard.all_slice", {x}, {sliced}, {}, over({0}, {}, 0));
  }
};

TEST(Collectives, GroupsOfOneRankCopyWithoutCommunicators) {
  OneRankCollectives c;
  auto executor = Executor::create(c.t.program);
  ASSERT_TRUE(executor.ok()) << executor.status().toString();
  fill(**executor, c.x, iota(6, 1.0f));
  ASSERT_TRUE((*executor)->run(RunContext()).ok());
  for (int32_t id : {c.reduced, c.gathered, c.scattered, c.exchanged, c.sliced})
    EXPECT_EQ(read<float>(**executor, id), iota(6, 1.0f)) << "buffer " << id;
}

TEST(Collectives, GroupsOfOneRankOnASingleRankGrid) {
  OneRankCollectives c;
  auto executor = Executor::create(c.t.program);
  ASSERT_TRUE(executor.ok()) << executor.status().toString();
  auto grid = comm::makeSingleRankGrid({1, 1, 1});
  ASSERT_TRUE(grid.ok()) << grid.status().toString();
  fill(**executor, c.x, iota(6, 1.0f));
  RunContext context;
  context.grid = grid->get();
  Status status = (*executor)->run(context);
  ASSERT_TRUE(status.ok()) << status.toString();
  for (int32_t id : {c.reduced, c.gathered, c.scattered, c.exchanged, c.sliced})
    EXPECT_EQ(read<float>(**executor, id), iota(6, 1.0f)) << "buffer " << id;
  // The communicators saw the four communicating collectives (all_slice is
  // local) and sent nothing.
  comm::CommStats stats = (*grid)->totalStats();
  for (int kind = 0; kind < comm::kNumCollectiveKinds; ++kind)
    EXPECT_EQ(stats.calls[kind], 1)
        << comm::collectiveName(static_cast<comm::CollectiveKind>(kind));
  EXPECT_EQ(stats.totalBytesSent(), 0);
}

TEST(Collectives, InPlaceAllReduce) {
  TestProgram t;
  t.program.gridShape = {1};
  int32_t x = t.buffer(DType::I32, {5});
  t.add("shard.all_reduce", {x}, {x}, {}, over({0}, Reduction::Sum));
  auto executor = Executor::create(t.program);
  ASSERT_TRUE(executor.ok());
  fill<int32_t>(**executor, x, {1, 2, 3, 4, 5});
  ASSERT_TRUE((*executor)->run(RunContext()).ok());
  EXPECT_EQ(read<int32_t>(**executor, x),
            (std::vector<int32_t>{1, 2, 3, 4, 5}));
}

TEST(Collectives, LargerGroupWithoutCommunicatorsIsAnError) {
  TestProgram t;
  t.program.gridShape = {2, 1};
  int32_t x = t.buffer(DType::F32, {4});
  int32_t y = t.buffer(DType::F32, {4});
  t.add("shard.all_reduce", {x}, {y}, {}, over({0}, Reduction::Sum));
  auto executor = Executor::create(t.program);
  ASSERT_TRUE(executor.ok());
  Status status = (*executor)->run(RunContext());
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::FailedPrecondition);
  EXPECT_NE(status.message().find("instruction #0 (shard.all_reduce)"),
            std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("spans a group of 2 ranks, but this "
                                  "process runs without grid communicators"),
            std::string::npos)
      << status.message();
}

TEST(Collectives, ResultShapeIsChecked) {
  TestProgram t;
  t.program.gridShape = {1};
  int32_t x = t.buffer(DType::F32, {4, 2});
  int32_t y = t.buffer(DType::F32, {2, 4});
  t.add("shard.all_gather", {x}, {y}, {}, over({0}, {}, -1, 0));
  auto executor = Executor::create(t.program);
  ASSERT_TRUE(executor.ok());
  Status status = (*executor)->run(RunContext());
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("the result is f32[2x4], expected shape "
                                  "f32[4x2] for the operand f32[4x2] over a "
                                  "group of 1 ranks"),
            std::string::npos)
      << status.message();
}

TEST(Collectives, AxesOutsideTheGridAreRejectedBeforeRunning) {
  TestProgram t;
  t.program.gridShape = {1, 1};
  int32_t x = t.buffer(DType::F32, {4});
  t.add("shard.all_reduce", {x}, {x}, {}, over({2}, Reduction::Sum));
  auto executor = Executor::create(t.program);
  ASSERT_FALSE(executor.ok());
  EXPECT_NE(executor.status().message().find(
                "collective over grid axis 2, expected increasing axes of "
                "the program's 2-axis grid"),
            std::string::npos)
      << executor.status().message();
}

TEST(Collectives, CommunicatorGridMustMatchTheProgram) {
  OneRankCollectives c;
  auto executor = Executor::create(c.t.program);
  ASSERT_TRUE(executor.ok());
  auto grid = comm::makeSingleRankGrid({1, 1});
  ASSERT_TRUE(grid.ok());
  RunContext context;
  context.grid = grid->get();
  Status status = (*executor)->run(context);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("grid of shape [1, 1], the program was "
                                  "partitioned for [1, 1, 1]"),
            std::string::npos)
      << status.message();
}

//===----------------------------------------------------------------------===//
// Rank-dependent instructions on a stand-in grid position
//===----------------------------------------------------------------------===//

/// A grid position without communicators: enough for the instructions
/// that only need to know where this rank sits (all_slice, shard_axes).
class PlacedGrid : public comm::GridCommunicators {
public:
  PlacedGrid(std::vector<int64_t> shape, std::vector<int64_t> coords) {
    shape_ = std::move(shape);
    coords_ = std::move(coords);
  }
  int worldRank() const override {
    int64_t rank = 0;
    for (size_t i = 0; i < shape_.size(); ++i)
      rank = rank * shape_[i] + coords_[i];
    return static_cast<int>(rank);
  }
  int worldSize() const override {
    int64_t size = 1;
    for (int64_t extent : shape_)
      size *= extent;
    return static_cast<int>(size);
  }
  Expected<comm::Communicator *> group(const std::vector<int> &) override {
    return failedPrecondition("this test grid has no communicators");
  }
  comm::Communicator &world() override { return *unused_; }

private:
  std::unique_ptr<comm::Communicator> unused_ =
      comm::makeSingleRankCommunicator();
};

TEST(AllSlice, KeepsThisRanksBlockOfEveryDimension) {
  // Grid dp=2 x ep=3 x tp=2 at coordinates (1, 2, 0).
  PlacedGrid grid({2, 3, 2}, {1, 2, 0});
  const std::vector<int64_t> shape = {4, 6, 12};
  std::vector<float> x = iota(4 * 6 * 12);
  struct Case {
    std::vector<int> axes;
    int dim;
    int64_t index, parts;
  };
  for (const Case &c :
       {Case{{0}, 0, 1, 2}, Case{{1}, 1, 2, 3}, Case{{0, 1}, 2, 1 * 3 + 2, 6},
        Case{{1, 2}, 1, 4, 6}, Case{{2}, 2, 0, 2}}) {
    TestProgram t;
    t.program.gridShape = {2, 3, 2};
    std::vector<int64_t> resultShape = shape;
    resultShape[c.dim] /= c.parts;
    int32_t in = t.buffer(DType::F32, shape);
    int32_t out = t.buffer(DType::F32, resultShape);
    t.add("shard.all_slice", {in}, {out}, {}, over(c.axes, {}, c.dim));
    auto executor = Executor::create(t.program);
    ASSERT_TRUE(executor.ok());
    fill(**executor, in, x);
    RunContext context;
    context.grid = &grid;
    Status status = (*executor)->run(context);
    ASSERT_TRUE(status.ok()) << status.toString();
    TensorBlock block{{0, 0, 0}, resultShape};
    block.offset[c.dim] = c.index * resultShape[c.dim];
    std::vector<float> expected(static_cast<size_t>(block.numElements()));
    copyBlockOut(x.data(), shape, sizeof(float), block, expected.data());
    EXPECT_EQ(read<float>(**executor, out), expected) << "dim " << c.dim;
  }
}

TEST(ShardAxes, DropoutOfAShardIsTheShardOfTheDropout) {
  const int64_t rows = 8, cols = 16;
  std::vector<float> full = iota(rows * cols, 1.0f);
  std::map<std::string, AttrValue> attrs = {{"rate", 0.5},
                                            {"stream", int64_t{7}}};
  auto run = [&](const char *kernel, std::vector<int64_t> shape,
                 const std::vector<float> &input,
                 std::map<std::string, AttrValue> extra,
                 comm::GridCommunicators *grid) {
    TestProgram t;
    t.program.gridShape = {2, 2, 1};
    int32_t in = t.buffer(DType::F32, shape);
    int32_t out = t.buffer(DType::F32, shape);
    extra.insert(attrs.begin(), attrs.end());
    t.add(kernel, {in}, {out}, extra);
    auto executor = Executor::create(t.program);
    EXPECT_TRUE(executor.ok());
    fill(**executor, in, input);
    RunContext context;
    context.seed = 11;
    context.step = 3;
    context.grid = grid;
    Status status = (*executor)->run(context);
    EXPECT_TRUE(status.ok()) << status.toString();
    return read<float>(**executor, out);
  };
  for (const char *kernel : {"moe.dropout", "moe.dropout_grad"}) {
    std::vector<float> whole = run(kernel, {rows, cols}, full, {}, nullptr);
    // Four token shards over dp x ep: the rank at (1, 0) holds shard 2.
    PlacedGrid grid({2, 2, 1}, {1, 0, 0});
    std::vector<float> shard(full.begin() + 2 * rows / 4 * cols,
                             full.begin() + 3 * rows / 4 * cols);
    std::vector<float> got =
        run(kernel, {rows / 4, cols}, shard,
            {{"shard_axes", std::vector<int64_t>{0, 1}}}, &grid);
    std::vector<float> expected(whole.begin() + 2 * rows / 4 * cols,
                                whole.begin() + 3 * rows / 4 * cols);
    EXPECT_EQ(got, expected) << kernel;
    // Without shard_axes the shard would draw the mask of elements 0.. .
    std::vector<float> unplaced =
        run(kernel, {rows / 4, cols}, shard, {}, &grid);
    EXPECT_NE(unplaced, expected) << kernel;
  }
}

TEST(ShardAxes, GateNoiseOfAShardIsTheShardOfTheGateNoise) {
  // Dropless top-1 routing with jitter: each token's choice depends on its
  // own input and its global token id only.
  const int64_t tokens = 16, model = 8, experts = 4;
  std::vector<float> x(tokens * model), w(model * experts);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>((i * 37 % 17) - 8) / 8.0f;
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = static_cast<float>((i * 11 % 13) - 6) / 6.0f;
  auto run = [&](int64_t s, const float *input,
                 std::map<std::string, AttrValue> extra,
                 comm::GridCommunicators *grid) {
    TestProgram t;
    t.program.gridShape = {2, 1, 1};
    int32_t in = t.buffer(DType::F32, {s, model});
    int32_t weight = t.buffer(DType::F32, {model, experts});
    int32_t chosen = t.buffer(DType::I32, {s, 1});
    int32_t slots = t.buffer(DType::I32, {s, 1});
    int32_t weights = t.buffer(DType::F32, {s, 1});
    int32_t counts = t.buffer(DType::I32, {experts});
    int32_t aux = t.buffer(DType::F32, {});
    std::map<std::string, AttrValue> attrs = {{"top_k", int64_t{1}},
                                              {"capacity_factor", 1.0},
                                              {"eval_capacity_factor", 1.0},
                                              {"min_capacity", int64_t{1}},
                                              {"drop_tokens", int64_t{0}},
                                              {"use_rts", int64_t{0}},
                                              {"noise", std::string("jitter")},
                                              {"jitter_eps", 0.5},
                                              {"capacity", int64_t{s}},
                                              {"stream", int64_t{5}}};
    attrs.insert(extra.begin(), extra.end());
    t.add("moe.gate", {in, weight}, {chosen, slots, weights, counts, aux},
          attrs);
    auto executor = Executor::create(t.program);
    EXPECT_TRUE(executor.ok()) << executor.status().toString();
    std::copy(input, input + s * model,
              static_cast<float *>((*executor)->bufferData(in)));
    fill(**executor, weight, w);
    RunContext context;
    context.seed = 2;
    context.step = 9;
    context.grid = grid;
    Status status = (*executor)->run(context);
    EXPECT_TRUE(status.ok()) << status.toString();
    return std::make_pair(read<int32_t>(**executor, chosen),
                          read<float>(**executor, weights));
  };
  auto whole = run(tokens, x.data(), {}, nullptr);
  PlacedGrid grid({2, 1, 1}, {1, 0, 0});
  auto shard = run(tokens / 2, x.data() + tokens / 2 * model,
                   {{"shard_axes", std::vector<int64_t>{0}}}, &grid);
  EXPECT_EQ(shard.first, std::vector<int32_t>(whole.first.begin() + tokens / 2,
                                              whole.first.end()));
  EXPECT_EQ(shard.second, std::vector<float>(whole.second.begin() + tokens / 2,
                                             whole.second.end()));
  auto unplaced = run(tokens / 2, x.data() + tokens / 2 * model, {}, &grid);
  EXPECT_NE(unplaced.second, shard.second);
}

TEST(ShardAxes, ShardOfSeveralRanksNeedsTheGrid) {
  TestProgram t;
  t.program.gridShape = {2};
  int32_t in = t.buffer(DType::F32, {4});
  int32_t out = t.buffer(DType::F32, {4});
  t.add("moe.dropout", {in}, {out},
        {{"rate", 0.1},
         {"stream", int64_t{1}},
         {"shard_axes", std::vector<int64_t>{0}}});
  auto executor = Executor::create(t.program);
  ASSERT_TRUE(executor.ok());
  Status status = (*executor)->run(RunContext());
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("shard_axes: the instruction spans a "
                                  "group of 2 ranks"),
            std::string::npos)
      << status.message();
}

//===----------------------------------------------------------------------===//
// Kernels partitioning adds
//===----------------------------------------------------------------------===//

TEST(PartitionKernels, TokenCountBiasAddMulDiv) {
  TestProgram t;
  int32_t labels = t.buffer(DType::I32, {2, 4});
  int32_t count = t.buffer(DType::F32, {});
  int32_t x = t.buffer(DType::F32, {2, 3});
  int32_t bias = t.buffer(DType::F32, {3});
  int32_t biased = t.buffer(DType::F32, {2, 3});
  int32_t product = t.buffer(DType::F32, {2, 3});
  int32_t quotient = t.buffer(DType::F32, {2, 3});
  t.add("moe.token_count", {labels}, {count}, {{"ignore_index", int64_t{-1}}});
  t.add("moe.bias_add", {x, bias}, {biased});
  t.add("moe.mul", {biased, x}, {product});
  t.add("moe.div", {product, x}, {quotient});
  auto executor = Executor::create(t.program);
  ASSERT_TRUE(executor.ok()) << executor.status().toString();
  fill<int32_t>(**executor, labels, {3, -1, 0, 7, -1, -1, 2, 5});
  fill<float>(**executor, x, {1, 2, 3, 4, 5, 6});
  fill<float>(**executor, bias, {10, 20, 30});
  Status status = (*executor)->run(RunContext());
  ASSERT_TRUE(status.ok()) << status.toString();
  EXPECT_EQ(read<float>(**executor, count), std::vector<float>{5});
  EXPECT_EQ(read<float>(**executor, biased),
            (std::vector<float>{11, 22, 33, 14, 25, 36}));
  EXPECT_EQ(read<float>(**executor, product),
            (std::vector<float>{11, 44, 99, 56, 125, 216}));
  EXPECT_EQ(read<float>(**executor, quotient),
            (std::vector<float>{11, 22, 33, 14, 25, 36}));
}

TEST(PartitionKernels, ShapeErrorsNameTheInstruction) {
  TestProgram t;
  int32_t x = t.buffer(DType::F32, {2, 3});
  int32_t bias = t.buffer(DType::F32, {2});
  int32_t out = t.buffer(DType::F32, {2, 3});
  t.add("moe.bias_add", {x, bias}, {out});
  auto executor = Executor::create(t.program);
  ASSERT_TRUE(executor.ok());
  Status status = (*executor)->run(RunContext());
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("instruction #0 (moe.bias_add) at test: "
                                  "expected x [..., N], bias [N]"),
            std::string::npos)
      << status.message();
}

} // namespace
