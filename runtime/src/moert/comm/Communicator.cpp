//===- Communicator.cpp - Shared helpers and the single-rank communicator -===//
//
// The pieces of the communicator library that need no MPI: names and sizes,
// statistics, the argument checks and reductions that every implementation
// shares (CommInternal.h), and the group of one rank whose collectives are
// copies.
//
//===----------------------------------------------------------------------===//
#include "moert/comm/Communicator.h"

#include "moert/comm/CommInternal.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <map>
#include <type_traits>

namespace moert::comm {

int64_t elementSize(ElementType type) {
  switch (type) {
  case ElementType::F32:
    return 4;
  case ElementType::I32:
    return 4;
  case ElementType::I64:
    return 8;
  case ElementType::U8:
    return 1;
  case ElementType::U16:
    return 2;
  }
  return 0;
}

const char *elementTypeName(ElementType type) {
  switch (type) {
  case ElementType::F32:
    return "f32";
  case ElementType::I32:
    return "i32";
  case ElementType::I64:
    return "i64";
  case ElementType::U8:
    return "u8";
  case ElementType::U16:
    return "u16";
  }
  return "unknown element type";
}

const char *reduceOpName(ReduceOp op) {
  switch (op) {
  case ReduceOp::Sum:
    return "sum";
  case ReduceOp::Mean:
    return "mean";
  case ReduceOp::Max:
    return "max";
  case ReduceOp::Min:
    return "min";
  }
  return "unknown reduction";
}

const char *collectiveName(CollectiveKind kind) {
  switch (kind) {
  case CollectiveKind::AllReduce:
    return "all_reduce";
  case CollectiveKind::AllGather:
    return "all_gather";
  case CollectiveKind::ReduceScatter:
    return "reduce_scatter";
  case CollectiveKind::AllToAll:
    return "all_to_all";
  }
  return "unknown collective";
}

int64_t CommStats::totalBytesSent() const {
  int64_t total = 0;
  for (int64_t bytes : bytesSent)
    total += bytes;
  return total;
}

CommStats GridCommunicators::totalStats() const {
  CommStats total;
  for (const std::unique_ptr<Communicator> &group : groups_) {
    const CommStats &stats = group->stats();
    for (int kind = 0; kind < kNumCollectiveKinds; ++kind) {
      total.calls[kind] += stats.calls[kind];
      total.bytesSent[kind] += stats.bytesSent[kind];
    }
  }
  return total;
}

//===----------------------------------------------------------------------===//
// Shared helpers
//===----------------------------------------------------------------------===//

namespace detail {
namespace {

// Integer sums wrap in two's complement (well defined through the unsigned
// type) so that an overflowing gradient count is a wrong value, not
// undefined behaviour that the optimizer may exploit.
template <typename T> T add(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}

// A NaN on either side wins, so that a diverged value is not hidden by the
// reduction.
template <typename T> T maxOf(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a))
      return a;
    if (std::isnan(b))
      return b;
  }
  return a >= b ? a : b;
}

template <typename T> T minOf(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a))
      return a;
    if (std::isnan(b))
      return b;
  }
  return a <= b ? a : b;
}

template <typename T>
void reduceTyped(T *accumulator, const T *input, int64_t count, ReduceOp op) {
  switch (op) {
  case ReduceOp::Sum:
  case ReduceOp::Mean:
    for (int64_t i = 0; i < count; ++i)
      accumulator[i] = add(accumulator[i], input[i]);
    return;
  case ReduceOp::Max:
    for (int64_t i = 0; i < count; ++i)
      accumulator[i] = maxOf(accumulator[i], input[i]);
    return;
  case ReduceOp::Min:
    for (int64_t i = 0; i < count; ++i)
      accumulator[i] = minOf(accumulator[i], input[i]);
    return;
  }
}

} // namespace

Status checkCollectiveArgs(const std::string &where, int64_t count,
                           int64_t groupSize, ElementType type,
                           std::initializer_list<const void *> buffers) {
  int64_t width = elementSize(type);
  if (width == 0)
    return invalidArgument(fmt::format("{}: unknown element type {}", where,
                                       static_cast<int>(type)));
  if (count < 0)
    return invalidArgument(
        fmt::format("{}: element count must be >= 0, got {}", where, count));
  if (groupSize < 1 || count > INT64_MAX / width / groupSize)
    return invalidArgument(fmt::format(
        "{}: {} elements of {} per rank over {} ranks exceed the int64 byte "
        "range",
        where, count, elementTypeName(type), groupSize));
  if (count > 0) {
    for (const void *buffer : buffers)
      if (buffer == nullptr)
        return invalidArgument(
            fmt::format("{}: null buffer for {} elements of {}", where, count,
                        elementTypeName(type)));
  }
  return Status::success();
}

Status checkReduction(const std::string &where, ElementType type, ReduceOp op) {
  if (op != ReduceOp::Sum && op != ReduceOp::Mean && op != ReduceOp::Max &&
      op != ReduceOp::Min)
    return invalidArgument(
        fmt::format("{}: unknown reduction {}", where, static_cast<int>(op)));
  switch (type) {
  case ElementType::F32:
    return Status::success();
  case ElementType::I32:
  case ElementType::I64:
    if (op == ReduceOp::Mean)
      return invalidArgument(fmt::format(
          "{}: mean of {} elements is not supported (mean is defined for f32 "
          "only; reduce with sum and divide)",
          where, elementTypeName(type)));
    return Status::success();
  case ElementType::U8:
  case ElementType::U16:
    break;
  }
  return invalidArgument(
      fmt::format("{}: cannot reduce {} elements (reductions support f32, "
                  "i32 and i64)",
                  where, elementTypeName(type)));
}

void reduceInto(void *accumulator, const void *input, int64_t count,
                ElementType type, ReduceOp op) {
  switch (type) {
  case ElementType::F32:
    reduceTyped(static_cast<float *>(accumulator),
                static_cast<const float *>(input), count, op);
    return;
  case ElementType::I32:
    reduceTyped(static_cast<int32_t *>(accumulator),
                static_cast<const int32_t *>(input), count, op);
    return;
  case ElementType::I64:
    reduceTyped(static_cast<int64_t *>(accumulator),
                static_cast<const int64_t *>(input), count, op);
    return;
  case ElementType::U8:
  case ElementType::U16:
    return; // rejected by checkReduction
  }
}

void divideForMean(void *data, int64_t count, ElementType type,
                   int64_t groupSize) {
  if (type != ElementType::F32 || groupSize == 1)
    return;
  float divisor = static_cast<float>(groupSize);
  float *values = static_cast<float *>(data);
  for (int64_t i = 0; i < count; ++i)
    values[i] /= divisor;
}

Status checkGridShape(const std::vector<int64_t> &shape,
                      const std::vector<std::string> &axisNames) {
  if (!axisNames.empty() && axisNames.size() != shape.size())
    return invalidArgument(
        fmt::format("device grid {} has {} axes but {} axis names were given",
                    describeGrid(shape, {}), shape.size(), axisNames.size()));
  int64_t product = 1;
  for (size_t axis = 0; axis < shape.size(); ++axis) {
    if (shape[axis] < 1)
      return invalidArgument(fmt::format(
          "device grid {}: axis {} has size {}, every axis needs size >= 1",
          describeGrid(shape, axisNames), axis, shape[axis]));
    if (product > INT_MAX / shape[axis])
      return invalidArgument(fmt::format("device grid {}: more than {} ranks",
                                         describeGrid(shape, axisNames),
                                         INT_MAX));
    product *= shape[axis];
  }
  return Status::success();
}

std::string describeGrid(const std::vector<int64_t> &shape,
                         const std::vector<std::string> &axisNames) {
  if (shape.empty())
    return "[]";
  bool named = axisNames.size() == shape.size();
  std::string text;
  for (size_t axis = 0; axis < shape.size(); ++axis) {
    if (axis > 0)
      text += " x ";
    if (named)
      text += axisNames[axis] + "=";
    text += std::to_string(shape[axis]);
  }
  return text;
}

std::string describeAxes(const std::vector<int> &axes,
                         const std::vector<std::string> &axisNames) {
  std::string text = "{";
  for (size_t i = 0; i < axes.size(); ++i) {
    if (i > 0)
      text += ", ";
    int axis = axes[i];
    if (axis >= 0 && static_cast<size_t>(axis) < axisNames.size())
      text += axisNames[axis];
    else
      text += std::to_string(axis);
  }
  return text + "}";
}

Expected<std::vector<int>> canonicalAxes(const std::vector<int> &axes,
                                         size_t gridRank) {
  std::vector<int> sorted = axes;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i] < 0 || static_cast<size_t>(sorted[i]) >= gridRank)
      return invalidArgument(
          fmt::format("group axes {}: axis {} is outside the grid's {} axes",
                      describeAxes(axes, {}), sorted[i], gridRank));
    if (i > 0 && sorted[i] == sorted[i - 1])
      return invalidArgument(
          fmt::format("group axes {}: axis {} appears more than once",
                      describeAxes(axes, {}), sorted[i]));
  }
  return sorted;
}

bool overlaps(const void *a, int64_t aBytes, const void *b, int64_t bBytes) {
  if (aBytes <= 0 || bBytes <= 0)
    return false;
  auto begin = [](const void *p) { return reinterpret_cast<uintptr_t>(p); };
  return begin(a) < begin(b) + static_cast<uintptr_t>(bBytes) &&
         begin(b) < begin(a) + static_cast<uintptr_t>(aBytes);
}

} // namespace detail

//===----------------------------------------------------------------------===//
// Single rank
//===----------------------------------------------------------------------===//

namespace {

std::string callSite(CollectiveKind kind) {
  return std::string(collectiveName(kind)) + " on a single-rank group";
}

void copyBytes(void *dst, const void *src, int64_t bytes) {
  if (bytes > 0 && dst != src)
    std::memmove(dst, src, static_cast<size_t>(bytes));
}

class SingleRankCommunicator final : public Communicator {
public:
  int rank() const override { return 0; }
  int size() const override { return 1; }

  Status allReduce(void *data, int64_t count, ElementType type,
                   ReduceOp op) override {
    std::string where = callSite(CollectiveKind::AllReduce);
    MOERT_RETURN_IF_ERROR(
        detail::checkCollectiveArgs(where, count, 1, type, {data}));
    MOERT_RETURN_IF_ERROR(detail::checkReduction(where, type, op));
    ++stats_.calls[static_cast<int>(CollectiveKind::AllReduce)];
    return Status::success();
  }

  Status allGather(const void *send, void *recv, int64_t count,
                   ElementType type) override {
    std::string where = callSite(CollectiveKind::AllGather);
    MOERT_RETURN_IF_ERROR(
        detail::checkCollectiveArgs(where, count, 1, type, {send, recv}));
    int64_t bytes = count * elementSize(type);
    // The same rule as a larger group: only the in-place position (recv +
    // rank() * count, here recv itself) may overlap.
    if (send != recv && detail::overlaps(send, bytes, recv, bytes))
      return invalidArgument(where + ": send overlaps recv other than at "
                                     "recv + rank() * count (in place)");
    ++stats_.calls[static_cast<int>(CollectiveKind::AllGather)];
    copyBytes(recv, send, bytes);
    return Status::success();
  }

  Status reduceScatter(const void *send, void *recv, int64_t count,
                       ElementType type, ReduceOp op) override {
    std::string where = callSite(CollectiveKind::ReduceScatter);
    MOERT_RETURN_IF_ERROR(
        detail::checkCollectiveArgs(where, count, 1, type, {send, recv}));
    MOERT_RETURN_IF_ERROR(detail::checkReduction(where, type, op));
    ++stats_.calls[static_cast<int>(CollectiveKind::ReduceScatter)];
    copyBytes(recv, send, count * elementSize(type));
    return Status::success();
  }

  Status allToAll(const void *send, void *recv, int64_t count,
                  ElementType type) override {
    std::string where = callSite(CollectiveKind::AllToAll);
    MOERT_RETURN_IF_ERROR(
        detail::checkCollectiveArgs(where, count, 1, type, {send, recv}));
    int64_t bytes = count * elementSize(type);
    if (detail::overlaps(send, bytes, recv, bytes))
      return invalidArgument(where + ": send and recv buffers overlap");
    ++stats_.calls[static_cast<int>(CollectiveKind::AllToAll)];
    copyBytes(recv, send, bytes);
    return Status::success();
  }

  Status barrier() override { return Status::success(); }
};

class SingleRankGrid final : public GridCommunicators {
public:
  explicit SingleRankGrid(std::vector<int64_t> shape) {
    shape_ = std::move(shape);
    coords_.assign(shape_.size(), 0);
    std::vector<int> allAxes(shape_.size());
    for (size_t axis = 0; axis < allAxes.size(); ++axis)
      allAxes[axis] = static_cast<int>(axis);
    world_ = cached(allAxes);
  }

  int worldRank() const override { return 0; }
  int worldSize() const override { return 1; }

  Expected<Communicator *> group(const std::vector<int> &axes) override {
    MOERT_ASSIGN_OR_RETURN(std::vector<int> sorted,
                           detail::canonicalAxes(axes, shape_.size()));
    return cached(sorted);
  }

  Communicator &world() override { return *world_; }

private:
  Communicator *cached(const std::vector<int> &sortedAxes) {
    auto found = byAxes_.find(sortedAxes);
    if (found != byAxes_.end())
      return found->second;
    groups_.push_back(makeSingleRankCommunicator());
    Communicator *created = groups_.back().get();
    byAxes_.emplace(sortedAxes, created);
    return created;
  }

  std::map<std::vector<int>, Communicator *> byAxes_;
  Communicator *world_ = nullptr;
};

} // namespace

std::unique_ptr<Communicator> makeSingleRankCommunicator() {
  return std::make_unique<SingleRankCommunicator>();
}

Expected<std::unique_ptr<GridCommunicators>>
makeSingleRankGrid(const std::vector<int64_t> &gridShape) {
  MOERT_RETURN_IF_ERROR(detail::checkGridShape(gridShape, {}));
  int64_t ranks = 1;
  for (int64_t extent : gridShape)
    ranks *= extent;
  if (ranks != 1)
    return invalidArgument(fmt::format(
        "device grid {} has {} ranks, but a single-rank run needs every axis "
        "of size 1 (run the plan under MPI with {} processes, or plan it for "
        "one device)",
        detail::describeGrid(gridShape, {}), ranks, ranks));
  return std::unique_ptr<GridCommunicators>(
      std::make_unique<SingleRankGrid>(gridShape));
}

} // namespace moert::comm
