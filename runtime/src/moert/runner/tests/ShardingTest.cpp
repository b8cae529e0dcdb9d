//===- ShardingTest.cpp - Which block of a logical tensor a rank holds ----===//
#include "moert/runner/Sharding.h"

#include <gtest/gtest.h>

#include <numeric>

using namespace moert;
using namespace moert::runner;

namespace {

TEST(GridLocation, RowMajorWithTheLastAxisFastest) {
  GridLocation location = GridLocation::ofRank({2, 3, 2}, 9);
  EXPECT_EQ(location.coords, (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(location.rank(), 9);
  EXPECT_EQ(location.numRanks(), 12);
  for (int64_t rank = 0; rank < 12; ++rank)
    EXPECT_EQ(GridLocation::ofRank({2, 3, 2}, rank).rank(), rank);
  EXPECT_EQ(GridLocation::ofRank({}, 0).numRanks(), 1);
}

TEST(ShardBlock, OneBlockPerSplitDimension) {
  // dp=2 x ep=3 x tp=2 at (1, 2, 0).
  GridLocation location = GridLocation::ofRank({2, 3, 2}, 1 * 6 + 2 * 2 + 0);
  auto block = shardBlock(location, {12, 6, 4}, {});
  ASSERT_TRUE(block.ok());
  EXPECT_EQ(block->offset, (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(block->extent, (std::vector<int64_t>{12, 6, 4}));
  // Dimension 0 over (dp, ep): index 1 * 3 + 2 = 5 of 6; dimension 2 over tp.
  block = shardBlock(location, {12, 6, 4}, {{0, 1}, {}, {2}});
  ASSERT_TRUE(block.ok());
  EXPECT_EQ(block->offset, (std::vector<int64_t>{10, 0, 0}));
  EXPECT_EQ(block->extent, (std::vector<int64_t>{2, 6, 2}));
  // Major to minor as listed: (ep, tp) on dimension 1 is 2 * 2 + 0 = 4 of 6.
  block = shardBlock(location, {12, 6, 4}, {{}, {1, 2}, {}});
  ASSERT_TRUE(block.ok());
  EXPECT_EQ(block->offset, (std::vector<int64_t>{0, 4, 0}));
  EXPECT_EQ(block->extent, (std::vector<int64_t>{12, 1, 4}));
}

TEST(ShardBlock, BadSpecsAreErrors) {
  GridLocation location = GridLocation::ofRank({2, 2}, 3);
  auto wrongRank = shardBlock(location, {4, 4}, {{0}});
  ASSERT_FALSE(wrongRank.ok());
  EXPECT_NE(wrongRank.status().message().find(
                "the shard spec has 1 entries, expected one per dimension"),
            std::string::npos);
  auto twice = shardBlock(location, {4, 4}, {{0}, {0}});
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("not an unused axis"),
            std::string::npos);
  auto outside = shardBlock(location, {4, 4}, {{2}, {}});
  ASSERT_FALSE(outside.ok());
  auto indivisible = shardBlock(location, {3, 4}, {{0}, {}});
  ASSERT_FALSE(indivisible.ok());
  EXPECT_NE(indivisible.status().message().find(
                "dimension 0 of [3, 4] is not divisible into 2 shards"),
            std::string::npos);
}

TEST(ShardBlock, ReplicatedWhenNoAxisOfSizeAboveOneSplits) {
  EXPECT_TRUE(isReplicated({2, 1}, {}));
  EXPECT_TRUE(isReplicated({2, 1}, {{1}, {}}));
  EXPECT_FALSE(isReplicated({2, 1}, {{}, {0}}));
}

/// Cuts every rank's shard out of a logical tensor and assembles them.
std::vector<float> roundTrip(const std::vector<int64_t> &gridShape,
                             const std::vector<int64_t> &shape,
                             const ShardSpec &spec,
                             const std::vector<float> &logical) {
  GridLocation first = GridLocation::ofRank(gridShape, 0);
  std::vector<float> shards;
  for (int64_t rank = 0; rank < first.numRanks(); ++rank) {
    auto block = shardBlock(GridLocation::ofRank(gridShape, rank), shape, spec);
    EXPECT_TRUE(block.ok()) << block.status().toString();
    std::vector<float> shard(static_cast<size_t>(block->numElements()));
    exec::copyBlockOut(logical.data(), shape, sizeof(float), *block,
                       shard.data());
    shards.insert(shards.end(), shard.begin(), shard.end());
  }
  std::vector<float> assembled(logical.size(), -1.0f);
  Status status = assembleShards(gridShape, shape, spec, sizeof(float),
                                 shards.data(), assembled.data());
  EXPECT_TRUE(status.ok()) << status.toString();
  return assembled;
}

TEST(AssembleShards, LogicalToShardsAndBackOnManySpecs) {
  const std::vector<int64_t> shape = {8, 6, 4};
  std::vector<float> logical(8 * 6 * 4);
  std::iota(logical.begin(), logical.end(), 0.0f);
  struct Case {
    std::vector<int64_t> grid;
    ShardSpec spec;
  };
  for (const Case &c : {
           Case{{2, 2, 1}, {}},
           Case{{2, 2, 1}, {{0}, {}, {}}},
           Case{{2, 2, 1}, {{0, 1}, {}, {}}},
           Case{{2, 2, 1}, {{1, 0}, {}, {}}},
           Case{{2, 2, 1}, {{1}, {0}, {}}},
           Case{{2, 3, 2}, {{0}, {1}, {2}}},
           Case{{2, 3, 2}, {{0, 2}, {1}, {}}},
           Case{{4, 1, 2}, {{}, {}, {0}}},
           Case{{1, 1, 1}, {{0}, {1}, {2}}},
       })
    EXPECT_EQ(roundTrip(c.grid, shape, c.spec, logical), logical);
}

} // namespace
