//===- MpiCommunicator.cpp - Ring and pairwise collectives over MPI -------===//
//
// Every collective is a sequence of MPI_Sendrecv steps between neighbours
// (rings) or partners (pairwise exchange); each step moves one chunk of the
// same size in both directions, so a rank's sent bytes are exactly the
// formulas of Communicator.h. Reductions run here, not in MPI: in the ring
// reduce-scatter each chunk is reduced along the ring and finished by the
// rank that owns it, and the all-reduce then gathers those finished chunks,
// so every rank holds the same bits.
//
//===----------------------------------------------------------------------===//
#include "moert/comm/MpiCommunicator.h"

#include <cstdlib>

#include "moert/comm/CommInternal.h"
#include "moert/comm/Watchdog.h"

#include <fmt/format.h>
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <map>
#include <utility>

namespace moert::comm {
namespace {

int64_t maxMessageBytes = int64_t(1) << 30;

std::string mpiErrorText(int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    return fmt::format("MPI error {}", code);
  return fmt::format("{} (MPI error {})", std::string(text, length), code);
}

Status mpiFailure(const std::string &where, const std::string &call, int code) {
  return Status(StatusCode::Unavailable, fmt::format("{}: {} failed: {}", where,
                                                     call, mpiErrorText(code)));
}

bool mpiFinalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

/// A group of two or more ranks backed by its own MPI communicator.
class MpiCommunicator final : public Communicator {
public:
  /// Takes ownership of `comm`; `description` names the group in messages.
  MpiCommunicator(MPI_Comm comm, int rank, int size, std::string description)
      : comm_(comm), rank_(rank), size_(size),
        description_(std::move(description)) {}
  ~MpiCommunicator() override {
    // After MPI_Finalize nothing may be called; the handle just goes away.
    if (comm_ != MPI_COMM_NULL && !mpiFinalized())
      MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator &) = delete;
  MpiCommunicator &operator=(const MpiCommunicator &) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Status allReduce(void *data, int64_t count, ElementType type,
                   ReduceOp op) override;
  Status allGather(const void *send, void *recv, int64_t count,
                   ElementType type) override;
  Status reduceScatter(const void *send, void *recv, int64_t count,
                       ElementType type, ReduceOp op) override;
  Status allToAll(const void *send, void *recv, int64_t count,
                  ElementType type) override;
  Status barrier() override;

private:
  std::string where(CollectiveKind kind) const {
    return fmt::format("{} on {}", collectiveName(kind), description_);
  }
  int next() const { return (rank_ + 1) % size_; }
  int previous() const { return (rank_ + size_ - 1) % size_; }

  /// Sends `bytes` from `sendBuffer` to `destination` while receiving the
  /// same number of bytes from `source` into `recvBuffer`, in pieces of at
  /// most maxMessageBytes; counts the sent bytes under `kind`.
  Status exchange(CollectiveKind kind, const void *sendBuffer, int destination,
                  void *recvBuffer, int source, int64_t bytes);

  /// Ring reduce-scatter of `chunkCount` elements per chunk: on return
  /// `result` holds chunk rank() reduced over the group (before the mean's
  /// division). Chunk k of this rank's contribution is the first
  /// validCount(k) elements at `input` + k * chunkCount; missing elements of
  /// a short last chunk are sent as zeros and never reduced with real data.
  template <typename ValidCount>
  Status ringReduceScatter(CollectiveKind kind, const uint8_t *input,
                           int64_t chunkCount, ElementType type, ReduceOp op,
                           ValidCount validCount, std::vector<uint8_t> &result,
                           std::vector<uint8_t> &scratch);

  MPI_Comm comm_;
  int rank_;
  int size_;
  std::string description_;
};

Status MpiCommunicator::exchange(CollectiveKind kind, const void *sendBuffer,
                                 int destination, void *recvBuffer, int source,
                                 int64_t bytes) {
  // Tags separate the collectives only for readability of MPI traces;
  // within one communicator the steps are ordered anyway.
  const int tag = 1 + static_cast<int>(kind);
  const uint8_t *sendBytes = static_cast<const uint8_t *>(sendBuffer);
  uint8_t *recvBytes = static_cast<uint8_t *>(recvBuffer);
  for (int64_t offset = 0; offset < bytes;) {
    int piece = static_cast<int>(std::min<int64_t>(
        {bytes - offset, maxMessageBytes, static_cast<int64_t>(INT_MAX)}));
    MPI_Status status;
    CollectiveWatch watch(where(kind));
    int code = MPI_Sendrecv(sendBytes + offset, piece, MPI_BYTE, destination,
                            tag, recvBytes + offset, piece, MPI_BYTE, source,
                            tag, comm_, &status);
    if (code != MPI_SUCCESS)
      return mpiFailure(where(kind),
                        fmt::format("MPI_Sendrecv (to rank {}, from rank {}, "
                                    "{} bytes)",
                                    destination, source, piece),
                        code);
    int received = 0;
    code = MPI_Get_count(&status, MPI_BYTE, &received);
    if (code != MPI_SUCCESS)
      return mpiFailure(where(kind), "MPI_Get_count", code);
    if (received != piece)
      return internalError(fmt::format(
          "{}: received {} bytes from rank {} where {} were expected (do all "
          "ranks pass the same count and element type?)",
          where(kind), received, source, piece));
    stats_.bytesSent[static_cast<int>(kind)] += piece;
    offset += piece;
  }
  return Status::success();
}

template <typename ValidCount>
Status MpiCommunicator::ringReduceScatter(CollectiveKind kind,
                                          const uint8_t *input,
                                          int64_t chunkCount, ElementType type,
                                          ReduceOp op, ValidCount validCount,
                                          std::vector<uint8_t> &result,
                                          std::vector<uint8_t> &scratch) {
  const int64_t width = elementSize(type);
  const int64_t chunkBytes = chunkCount * width;
  result.assign(static_cast<size_t>(chunkBytes), 0);
  scratch.assign(static_cast<size_t>(chunkBytes), 0);
  // Step s: send the partial reduction of chunk (rank - s - 1) to the next
  // rank, receive that of chunk (rank - s - 2) from the previous one and add
  // this rank's part. The chunk received at the last step, p - 2, is chunk
  // rank(): its reduction is then complete.
  int first = (rank_ + size_ - 1) % size_;
  if (int64_t valid = validCount(first); valid > 0)
    std::memcpy(result.data(), input + first * chunkBytes,
                static_cast<size_t>(valid * width));
  for (int step = 0; step + 1 < size_; ++step) {
    MOERT_RETURN_IF_ERROR(exchange(kind, result.data(), next(), scratch.data(),
                                   previous(), chunkBytes));
    int chunk = (rank_ + 2 * size_ - step - 2) % size_;
    if (int64_t valid = validCount(chunk); valid > 0)
      detail::reduceInto(scratch.data(), input + chunk * chunkBytes, valid,
                         type, op);
    std::swap(result, scratch);
  }
  return Status::success();
}

Status MpiCommunicator::allReduce(void *data, int64_t count, ElementType type,
                                  ReduceOp op) {
  const CollectiveKind kind = CollectiveKind::AllReduce;
  MOERT_RETURN_IF_ERROR(
      detail::checkCollectiveArgs(where(kind), count, size_, type, {data}));
  MOERT_RETURN_IF_ERROR(detail::checkReduction(where(kind), type, op));
  ++stats_.calls[static_cast<int>(kind)];
  if (count == 0)
    return Status::success();

  // p chunks of ceil(n / p) elements; the last ones may be short or empty.
  const int64_t width = elementSize(type);
  const int64_t chunkCount = (count + size_ - 1) / size_;
  const int64_t chunkBytes = chunkCount * width;
  auto validCount = [&](int chunk) {
    return std::clamp<int64_t>(count - chunk * chunkCount, 0, chunkCount);
  };
  uint8_t *bytes = static_cast<uint8_t *>(data);
  std::vector<uint8_t> carry, incoming;
  MOERT_RETURN_IF_ERROR(ringReduceScatter(kind, bytes, chunkCount, type, op,
                                          validCount, carry, incoming));
  if (op == ReduceOp::Mean)
    detail::divideForMean(carry.data(), chunkCount, type, size_);

  // Ring all-gather of the finished chunks: step s forwards chunk
  // (rank - s) and receives chunk (rank - s - 1). The reduce-scatter has
  // read every input chunk already, so results can go straight into data.
  auto store = [&](int chunk, const std::vector<uint8_t> &from) {
    if (int64_t valid = validCount(chunk); valid > 0)
      std::memcpy(bytes + chunk * chunkBytes, from.data(),
                  static_cast<size_t>(valid * width));
  };
  store(rank_, carry);
  for (int step = 0; step + 1 < size_; ++step) {
    MOERT_RETURN_IF_ERROR(exchange(kind, carry.data(), next(), incoming.data(),
                                   previous(), chunkBytes));
    store((rank_ + 2 * size_ - step - 1) % size_, incoming);
    std::swap(carry, incoming);
  }
  return Status::success();
}

Status MpiCommunicator::allGather(const void *send, void *recv, int64_t count,
                                  ElementType type) {
  const CollectiveKind kind = CollectiveKind::AllGather;
  MOERT_RETURN_IF_ERROR(detail::checkCollectiveArgs(where(kind), count, size_,
                                                    type, {send, recv}));
  const int64_t chunkBytes = count * elementSize(type);
  uint8_t *out = static_cast<uint8_t *>(recv);
  uint8_t *own = out + rank_ * chunkBytes;
  if (send != own &&
      detail::overlaps(send, chunkBytes, recv, chunkBytes * size_))
    return invalidArgument(where(kind) +
                           ": send overlaps recv other than at recv + rank() * "
                           "count (the in-place position)");
  ++stats_.calls[static_cast<int>(kind)];
  if (count == 0)
    return Status::success();
  if (send != own)
    std::memcpy(own, send, static_cast<size_t>(chunkBytes));
  // Step s forwards chunk (rank - s), received at step s - 1 (own at 0).
  for (int step = 0; step + 1 < size_; ++step) {
    int sendChunk = (rank_ + size_ - step) % size_;
    int recvChunk = (rank_ + 2 * size_ - step - 1) % size_;
    MOERT_RETURN_IF_ERROR(exchange(kind, out + sendChunk * chunkBytes, next(),
                                   out + recvChunk * chunkBytes, previous(),
                                   chunkBytes));
  }
  return Status::success();
}

Status MpiCommunicator::reduceScatter(const void *send, void *recv,
                                      int64_t count, ElementType type,
                                      ReduceOp op) {
  const CollectiveKind kind = CollectiveKind::ReduceScatter;
  MOERT_RETURN_IF_ERROR(detail::checkCollectiveArgs(where(kind), count, size_,
                                                    type, {send, recv}));
  MOERT_RETURN_IF_ERROR(detail::checkReduction(where(kind), type, op));
  ++stats_.calls[static_cast<int>(kind)];
  if (count == 0)
    return Status::success();
  std::vector<uint8_t> result, scratch;
  MOERT_RETURN_IF_ERROR(ringReduceScatter(
      kind, static_cast<const uint8_t *>(send), count, type, op,
      [count](int) { return count; }, result, scratch));
  if (op == ReduceOp::Mean)
    detail::divideForMean(result.data(), count, type, size_);
  std::memcpy(recv, result.data(), result.size());
  return Status::success();
}

Status MpiCommunicator::allToAll(const void *send, void *recv, int64_t count,
                                 ElementType type) {
  const CollectiveKind kind = CollectiveKind::AllToAll;
  MOERT_RETURN_IF_ERROR(detail::checkCollectiveArgs(where(kind), count, size_,
                                                    type, {send, recv}));
  const int64_t chunkBytes = count * elementSize(type);
  if (detail::overlaps(send, chunkBytes * size_, recv, chunkBytes * size_))
    return invalidArgument(where(kind) + ": send and recv buffers overlap");
  ++stats_.calls[static_cast<int>(kind)];
  if (count == 0)
    return Status::success();
  const uint8_t *in = static_cast<const uint8_t *>(send);
  uint8_t *out = static_cast<uint8_t *>(recv);
  std::memcpy(out + rank_ * chunkBytes, in + rank_ * chunkBytes,
              static_cast<size_t>(chunkBytes));
  // Pairwise exchange: with p a power of two, step s pairs rank r with
  // r XOR s (both directions with one partner); otherwise r sends to
  // r + s and receives from r - s.
  const bool powerOfTwo = (size_ & (size_ - 1)) == 0;
  for (int step = 1; step < size_; ++step) {
    int destination = powerOfTwo ? rank_ ^ step : (rank_ + step) % size_;
    int source = powerOfTwo ? rank_ ^ step : (rank_ + size_ - step) % size_;
    MOERT_RETURN_IF_ERROR(exchange(kind, in + destination * chunkBytes,
                                   destination, out + source * chunkBytes,
                                   source, chunkBytes));
  }
  return Status::success();
}

Status MpiCommunicator::barrier() {
  CollectiveWatch watch("barrier on " + description_);
  int code = MPI_Barrier(comm_);
  if (code != MPI_SUCCESS)
    return mpiFailure("barrier on " + description_, "MPI_Barrier", code);
  return Status::success();
}

/// The grid of an MPI job. Owns every group communicator (in groups_); the
/// world communicator's MPI handle is also the parent of every split.
class MpiGrid final : public GridCommunicators {
public:
  MpiGrid(std::vector<int64_t> shape, std::vector<std::string> axisNames,
          int worldRank, int worldSize)
      : axisNames_(std::move(axisNames)), worldRank_(worldRank),
        worldSize_(worldSize) {
    shape_ = std::move(shape);
    coords_.assign(shape_.size(), 0);
    int64_t remainder = worldRank;
    for (size_t axis = shape_.size(); axis-- > 0;) {
      coords_[axis] = remainder % shape_[axis];
      remainder /= shape_[axis];
    }
  }

  /// Creates the world communicator over `worldComm` (owned from here on).
  void adoptWorld(MPI_Comm worldComm) {
    std::vector<int> allAxes = allAxisList();
    std::unique_ptr<Communicator> world;
    if (worldSize_ == 1)
      world = makeSingleRankCommunicator();
    else
      world = std::make_unique<MpiCommunicator>(
          worldComm, worldRank_, worldSize_, describeGroup(allAxes, true));
    worldComm_ = worldComm;
    world_ = world.get();
    groups_.push_back(std::move(world));
    byAxes_.emplace(allAxes, world_);
  }

  int worldRank() const override { return worldRank_; }
  int worldSize() const override { return worldSize_; }
  Communicator &world() override { return *world_; }
  bool collectivesFromAnyThread() const override {
    int provided = MPI_THREAD_SINGLE;
    return MPI_Query_thread(&provided) == MPI_SUCCESS &&
           provided >= MPI_THREAD_SERIALIZED;
  }

  Expected<Communicator *> group(const std::vector<int> &axes) override {
    Expected<std::vector<int>> sortedOr =
        detail::canonicalAxes(axes, shape_.size());
    if (!sortedOr.ok())
      return sortedOr.takeStatus().withContext(
          "device grid " + detail::describeGrid(shape_, axisNames_));
    std::vector<int> sorted = std::move(sortedOr).value();
    auto found = byAxes_.find(sorted);
    if (found != byAxes_.end())
      return found->second;

    int groupSize = 1;
    for (int axis : sorted)
      groupSize *= static_cast<int>(shape_[axis]);
    if (groupSize == 1)
      return remember(sorted, makeSingleRankCommunicator());

    // Ranks that agree on every axis outside the group share a color (the
    // row-major index of those coordinates); ordering by world rank keeps
    // the group's ranks in row-major order of the group's coordinates.
    int color = 0;
    for (size_t axis = 0; axis < shape_.size(); ++axis) {
      if (std::binary_search(sorted.begin(), sorted.end(),
                             static_cast<int>(axis)))
        continue;
      color = color * static_cast<int>(shape_[axis]) +
              static_cast<int>(coords_[axis]);
    }
    std::string description = describeGroup(sorted, false);
    MPI_Comm groupComm = MPI_COMM_NULL;
    int code = MPI_Comm_split(worldComm_, color, worldRank_, &groupComm);
    if (code != MPI_SUCCESS)
      return mpiFailure("creating the " + description, "MPI_Comm_split", code);
    MPI_Comm_set_errhandler(groupComm, MPI_ERRORS_RETURN);
    int rank = 0, size = 0;
    code = MPI_Comm_rank(groupComm, &rank);
    if (code == MPI_SUCCESS)
      code = MPI_Comm_size(groupComm, &size);
    if (code != MPI_SUCCESS) {
      MPI_Comm_free(&groupComm);
      return mpiFailure("creating the " + description,
                        "MPI_Comm_rank/MPI_Comm_size", code);
    }
    auto created =
        std::make_unique<MpiCommunicator>(groupComm, rank, size, description);
    if (size != groupSize)
      return internalError(fmt::format(
          "creating the {}: MPI_Comm_split gave {} ranks, the grid says {}",
          description, size, groupSize));
    return remember(sorted, std::move(created));
  }

private:
  std::vector<int> allAxisList() const {
    std::vector<int> axes(shape_.size());
    for (size_t axis = 0; axis < axes.size(); ++axis)
      axes[axis] = static_cast<int>(axis);
    return axes;
  }

  std::string describeGroup(const std::vector<int> &axes, bool world) const {
    int64_t size = 1;
    for (int axis : axes)
      size *= shape_[axis];
    return fmt::format("the {}group over axes {} ({} ranks) of the device "
                       "grid {}",
                       world ? "world " : "",
                       detail::describeAxes(axes, axisNames_), size,
                       detail::describeGrid(shape_, axisNames_));
  }

  Communicator *remember(const std::vector<int> &sortedAxes,
                         std::unique_ptr<Communicator> communicator) {
    Communicator *pointer = communicator.get();
    groups_.push_back(std::move(communicator));
    byAxes_.emplace(sortedAxes, pointer);
    return pointer;
  }

  std::vector<std::string> axisNames_;
  int worldRank_;
  int worldSize_;
  MPI_Comm worldComm_ = MPI_COMM_NULL; // owned by the world communicator
  Communicator *world_ = nullptr;
  std::map<std::vector<int>, Communicator *> byAxes_;
};

} // namespace

//===----------------------------------------------------------------------===//
// MpiSession
//===----------------------------------------------------------------------===//

bool startedByMpiLauncher() {
  for (const char *name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                           "PMI_SIZE", "MPI_LOCALRANKID"})
    if (std::getenv(name))
      return true;
  return false;
}

MpiSession::MpiSession(int *argc, char ***argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (mpiFinalized()) {
    status_ = failedPrecondition(
        "MPI was already finalized in this process; it cannot be restarted");
    return;
  }
  int provided = MPI_THREAD_SINGLE;
  if (!initialized) {
    // SERIALIZED where the library has it: the executor's communication
    // thread then runs the collectives while this one computes (one thread
    // in MPI at a time). FUNNELED is enough for synchronous collectives.
    int code = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    if (code != MPI_SUCCESS) {
      status_ = Status(StatusCode::Unavailable,
                       "MPI_Init_thread failed: " + mpiErrorText(code));
      return;
    }
    initializedMpi_ = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_FUNNELED) {
    status_ = failedPrecondition(fmt::format(
        "MPI provides thread level {} but the runtime needs "
        "MPI_THREAD_FUNNELED ({}): the OpenMP threads of the kernels run "
        "beside the thread that calls MPI",
        provided, static_cast<int>(MPI_THREAD_FUNNELED)));
    return;
  }
  serializedThreads_ = provided >= MPI_THREAD_SERIALIZED;
  MPI_Comm_rank(MPI_COMM_WORLD, &worldRank_);
  MPI_Comm_size(MPI_COMM_WORLD, &worldSize_);
}

MpiSession::~MpiSession() {
  if (initializedMpi_ && !mpiFinalized())
    MPI_Finalize();
}

//===----------------------------------------------------------------------===//
// makeMpiGrid
//===----------------------------------------------------------------------===//

Expected<std::unique_ptr<GridCommunicators>>
makeMpiGrid(const std::vector<int64_t> &gridShape,
            const std::vector<std::string> &axisNames) {
  MOERT_RETURN_IF_ERROR(detail::checkGridShape(gridShape, axisNames));
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized || mpiFinalized())
    return failedPrecondition(
        "MPI is not initialized (create an MpiSession in main() before the "
        "device grid)");

  int worldRank = 0, worldSize = 0;
  int code = MPI_Comm_rank(MPI_COMM_WORLD, &worldRank);
  if (code == MPI_SUCCESS)
    code = MPI_Comm_size(MPI_COMM_WORLD, &worldSize);
  if (code != MPI_SUCCESS)
    return mpiFailure("creating the device grid", "MPI_Comm_rank/size", code);

  int64_t needed = 1;
  for (int64_t extent : gridShape)
    needed *= extent;
  if (needed != worldSize)
    return invalidArgument(fmt::format(
        "the device grid {} needs {} processes, but the MPI job has {} "
        "(start it with mpirun -np {} ...)",
        detail::describeGrid(gridShape, axisNames), needed, worldSize, needed));

  auto grid =
      std::make_unique<MpiGrid>(gridShape, axisNames, worldRank, worldSize);
  MPI_Comm worldComm = MPI_COMM_NULL;
  if (worldSize > 1) {
    // A private duplicate: our messages never match the application's, and
    // our error handler does not change MPI_COMM_WORLD's.
    code = MPI_Comm_dup(MPI_COMM_WORLD, &worldComm);
    if (code != MPI_SUCCESS)
      return mpiFailure("creating the device grid", "MPI_Comm_dup", code);
    MPI_Comm_set_errhandler(worldComm, MPI_ERRORS_RETURN);
  }
  grid->adoptWorld(worldComm);
  return std::unique_ptr<GridCommunicators>(std::move(grid));
}

int64_t setMaxMpiMessageBytes(int64_t bytes) {
  int64_t previous = maxMessageBytes;
  if (bytes >= 1)
    maxMessageBytes = std::min<int64_t>(bytes, INT_MAX);
  return previous;
}

} // namespace moert::comm
