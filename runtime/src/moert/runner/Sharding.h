//===- Sharding.h - Which block of a logical tensor a rank holds ----------===//
//
// A plan describes parameters and batch inputs by their logical
// (unsharded) shape and a shard spec: per dimension, the grid axes that
// split it, major to minor. The rank at grid coordinates c holds, of each
// split dimension, block i = (row-major index of c over that dimension's
// axes) of extent (logical extent / product of the axis sizes). The trainer
// uses this to cut a rank's shard out of a logical tensor (initialization,
// the batch, checkpoint loading) and to put the shards of all ranks back
// together (checkpoint saving).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_SHARDING_H
#define MOERT_RUNNER_SHARDING_H

#include "moert/Status.h"
#include "moert/exec/TensorBlocks.h"
#include "moert/plan/Plan.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moert {
namespace runner {

/// Per dimension, the grid axes that split it (empty: replicated); an
/// empty spec replicates the whole tensor.
using ShardSpec = std::vector<std::vector<int>>;

/// A rank's place on the device grid.
struct GridLocation {
  std::vector<int64_t> shape;  // axis sizes
  std::vector<int64_t> coords; // this rank's coordinate per axis

  /// The rank `rank` of a row-major grid (last axis fastest).
  static GridLocation ofRank(std::vector<int64_t> shape, int64_t rank);
  int64_t numRanks() const;
  /// Row-major index of the coordinates (the world rank).
  int64_t rank() const;
};

/// The plan's grid shape (one size per axis).
std::vector<int64_t> gridShapeOf(const plan::fb::Plan &plan);
/// "dp=2 x ep=2 x tp=1" ("[]" for a grid without axes).
std::string describeGrid(const plan::fb::Plan &plan);

/// The spec of a plan's `sharding` / `state_sharding` field.
ShardSpec shardSpecOf(
    const flatbuffers::Vector<flatbuffers::Offset<plan::fb::DimSharding>>
        *sharding);

/// The block of a tensor of `logicalShape` split as `spec` that the rank at
/// `location` holds. Checks the spec (one entry per dimension or none, axes
/// of the grid used once, extents divisible).
Expected<exec::TensorBlock> shardBlock(const GridLocation &location,
                                       const std::vector<int64_t> &logicalShape,
                                       const ShardSpec &spec);

/// Whether every rank holds the whole tensor (no dimension split over an
/// axis of size > 1).
bool isReplicated(const std::vector<int64_t> &gridShape, const ShardSpec &spec);

/// Assembles the logical tensor from the shards of every rank of the grid:
/// `shards` holds numRanks() equal blocks, rank r's at r * (its bytes),
/// each placed at that rank's block (replicas write identical bytes).
Status assembleShards(const std::vector<int64_t> &gridShape,
                      const std::vector<int64_t> &logicalShape,
                      const ShardSpec &spec, int64_t elementSize,
                      const void *shards, void *logical);

} // namespace runner
} // namespace moert

#endif // MOERT_RUNNER_SHARDING_H
