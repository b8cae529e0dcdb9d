//===- Sharding.cpp - Which block of a logical tensor a rank holds --------===//
#include "moert/runner/Sharding.h"

#include <set>

namespace moert {
namespace runner {

namespace fb = plan::fb;

GridLocation GridLocation::ofRank(std::vector<int64_t> shape, int64_t rank) {
  GridLocation location;
  location.coords.assign(shape.size(), 0);
  for (size_t i = shape.size(); i-- > 0;) {
    location.coords[i] = rank % shape[i];
    rank /= shape[i];
  }
  location.shape = std::move(shape);
  return location;
}

int64_t GridLocation::numRanks() const {
  int64_t ranks = 1;
  for (int64_t size : shape)
    ranks *= size;
  return ranks;
}

int64_t GridLocation::rank() const {
  int64_t rank = 0;
  for (size_t i = 0; i < shape.size(); ++i)
    rank = rank * shape[i] + coords[i];
  return rank;
}

std::vector<int64_t> gridShapeOf(const fb::Plan &plan) {
  std::vector<int64_t> shape;
  if (plan.grid() && plan.grid()->axes())
    for (const fb::GridAxis *axis : *plan.grid()->axes())
      shape.push_back(axis->size());
  return shape;
}

std::string describeGrid(const fb::Plan &plan) {
  if (!plan.grid() || !plan.grid()->axes() || plan.grid()->axes()->size() == 0)
    return "[]";
  std::string text;
  for (const fb::GridAxis *axis : *plan.grid()->axes())
    text += (text.empty() ? "" : " x ") + axis->name()->str() + "=" +
            std::to_string(axis->size());
  return text;
}

ShardSpec shardSpecOf(
    const flatbuffers::Vector<flatbuffers::Offset<fb::DimSharding>> *sharding) {
  ShardSpec spec;
  if (!sharding)
    return spec;
  for (const fb::DimSharding *dim : *sharding) {
    std::vector<int> axes;
    if (dim->axes())
      axes.assign(dim->axes()->begin(), dim->axes()->end());
    spec.push_back(std::move(axes));
  }
  return spec;
}

Expected<exec::TensorBlock> shardBlock(const GridLocation &location,
                                       const std::vector<int64_t> &logicalShape,
                                       const ShardSpec &spec) {
  exec::TensorBlock block;
  block.offset.assign(logicalShape.size(), 0);
  block.extent = logicalShape;
  if (spec.empty())
    return block;
  if (spec.size() != logicalShape.size())
    return invalidArgument("the shard spec has " + std::to_string(spec.size()) +
                           " entries, expected one per dimension of " +
                           plan::formatShape(logicalShape));
  std::set<int> used;
  for (size_t dim = 0; dim < spec.size(); ++dim) {
    int64_t index = 0, parts = 1;
    for (int axis : spec[dim]) {
      if (axis < 0 || axis >= static_cast<int>(location.shape.size()) ||
          !used.insert(axis).second)
        return invalidArgument(
            "dimension " + std::to_string(dim) + " is split over grid axis " +
            std::to_string(axis) + ", which is not an unused axis of the " +
            std::to_string(location.shape.size()) + "-axis grid");
      index = index * location.shape[axis] + location.coords[axis];
      parts *= location.shape[axis];
    }
    if (logicalShape[dim] % parts != 0)
      return invalidArgument("dimension " + std::to_string(dim) + " of " +
                             plan::formatShape(logicalShape) +
                             " is not divisible into " + std::to_string(parts) +
                             " shards");
    block.extent[dim] = logicalShape[dim] / parts;
    block.offset[dim] = index * block.extent[dim];
  }
  return block;
}

bool isReplicated(const std::vector<int64_t> &gridShape,
                  const ShardSpec &spec) {
  for (const std::vector<int> &axes : spec)
    for (int axis : axes)
      if (axis >= 0 && axis < static_cast<int>(gridShape.size()) &&
          gridShape[axis] > 1)
        return false;
  return true;
}

Status assembleShards(const std::vector<int64_t> &gridShape,
                      const std::vector<int64_t> &logicalShape,
                      const ShardSpec &spec, int64_t elementSize,
                      const void *shards, void *logical) {
  GridLocation first = GridLocation::ofRank(gridShape, 0);
  int64_t ranks = first.numRanks();
  const auto *bytes = static_cast<const uint8_t *>(shards);
  for (int64_t rank = 0; rank < ranks; ++rank) {
    MOERT_ASSIGN_OR_RETURN(
        exec::TensorBlock block,
        shardBlock(GridLocation::ofRank(gridShape, rank), logicalShape, spec));
    int64_t shardBytes = block.numElements() * elementSize;
    exec::copyBlockIn(bytes + rank * shardBytes, logicalShape, elementSize,
                      block, logical);
  }
  return Status::success();
}

} // namespace runner
} // namespace moert
