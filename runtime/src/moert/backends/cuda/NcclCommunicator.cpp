//===- NcclCommunicator.cpp - Collectives over NCCL on the device stream --===//
#include "moert/backends/cuda/NcclCommunicator.h"

#include "moert/backends/cuda/CudaDevice.h"
#include "moert/comm/CommInternal.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

namespace moert {
namespace cuda {

namespace {

//===----------------------------------------------------------------------===//
// The library, loaded at run time
//===----------------------------------------------------------------------===//

struct NcclApi {
  decltype(&ncclGetUniqueId) getUniqueId = nullptr;
  decltype(&ncclCommInitRank) commInitRank = nullptr;
  decltype(&ncclCommSplit) commSplit = nullptr;
  decltype(&ncclCommDestroy) commDestroy = nullptr;
  decltype(&ncclAllReduce) allReduce = nullptr;
  decltype(&ncclAllGather) allGather = nullptr;
  decltype(&ncclReduceScatter) reduceScatter = nullptr;
  decltype(&ncclSend) send = nullptr;
  decltype(&ncclRecv) recv = nullptr;
  decltype(&ncclGroupStart) groupStart = nullptr;
  decltype(&ncclGroupEnd) groupEnd = nullptr;
  decltype(&ncclGetErrorString) errorString = nullptr;
  decltype(&ncclGetLastError) lastError = nullptr;
  Status status;
};

const NcclApi &ncclApi() {
  static const NcclApi api = [] {
    NcclApi a;
    void *library = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
      const char *why = dlerror();
      a.status = failedPrecondition(
          std::string("NCCL is not available: dlopen(libnccl.so.2) failed (") +
          (why ? why : "no reason given") +
          "); install NCCL 2.x (or the nvidia-nccl-cu13 wheel) and put its "
          "lib directory on LD_LIBRARY_PATH, or run with --comm mpi");
      return a;
    }
    std::string missing;
    auto load = [&](auto &slot, const char *name) {
      slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(
          dlsym(library, name));
      if (!slot)
        missing += std::string(missing.empty() ? "" : ", ") + name;
    };
    load(a.getUniqueId, "ncclGetUniqueId");
    load(a.commInitRank, "ncclCommInitRank");
    load(a.commSplit, "ncclCommSplit");
    load(a.commDestroy, "ncclCommDestroy");
    load(a.allReduce, "ncclAllReduce");
    load(a.allGather, "ncclAllGather");
    load(a.reduceScatter, "ncclReduceScatter");
    load(a.send, "ncclSend");
    load(a.recv, "ncclRecv");
    load(a.groupStart, "ncclGroupStart");
    load(a.groupEnd, "ncclGroupEnd");
    load(a.errorString, "ncclGetErrorString");
    load(a.lastError, "ncclGetLastError");
    if (!missing.empty())
      a.status = failedPrecondition(
          "the NCCL library found lacks " + missing +
          " (NCCL 2.18 or newer is needed for ncclCommSplit)");
    return a;
  }();
  return api;
}

Status ncclFailure(const std::string &where, const char *call,
                   ncclResult_t result, ncclComm_t comm = nullptr) {
  const NcclApi &api = ncclApi();
  std::string message = where + ": " + call + " failed: " +
                        (api.errorString ? api.errorString(result) : "?");
  if (api.lastError) {
    const char *detail = api.lastError(comm);
    if (detail && *detail)
      message += " (" + std::string(detail) + ")";
  }
  return internalError(message);
}

#define MOERT_NCCL_RETURN_IF_ERROR(where, call, ...)                           \
  do {                                                                         \
    ncclResult_t moertNcclResult = ncclApi().call(__VA_ARGS__);                \
    if (moertNcclResult != ncclSuccess)                                        \
      return ncclFailure(where, #call, moertNcclResult);                      \
  } while (false)

Expected<ncclDataType_t> ncclType(comm::ElementType type) {
  switch (type) {
  case comm::ElementType::F32:
    return ncclFloat32;
  case comm::ElementType::I32:
    return ncclInt32;
  case comm::ElementType::I64:
    return ncclInt64;
  case comm::ElementType::U8:
    return ncclUint8;
  }
  return invalidArgument("unknown element type");
}

ncclRedOp_t ncclOp(comm::ReduceOp op) {
  switch (op) {
  case comm::ReduceOp::Sum:
    return ncclSum;
  case comm::ReduceOp::Mean:
    return ncclAvg;
  case comm::ReduceOp::Max:
    return ncclMax;
  case comm::ReduceOp::Min:
    return ncclMin;
  }
  return ncclSum;
}

//===----------------------------------------------------------------------===//
// Communicator
//===----------------------------------------------------------------------===//

class NcclCommunicator final : public comm::Communicator {
public:
  /// `comm` null: a group of one (copies on the stream). `owned`: this
  /// communicator destroys `comm`.
  NcclCommunicator(ncclComm_t comm, bool owned, int rank, int size,
                   cudaStream_t stream, std::string description)
      : comm_(comm), owned_(owned), rank_(rank), size_(size), stream_(stream),
        description_(std::move(description)) {}
  ~NcclCommunicator() override {
    if (comm_ && owned_)
      ncclApi().commDestroy(comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool devicePointers() const override { return true; }

  Status allReduce(void *data, int64_t count, comm::ElementType type,
                   comm::ReduceOp op) override {
    const std::string where = site(comm::CollectiveKind::AllReduce);
    MOERT_RETURN_IF_ERROR(
        comm::detail::checkCollectiveArgs(where, count, size_, type, {data}));
    MOERT_RETURN_IF_ERROR(comm::detail::checkReduction(where, type, op));
    MOERT_ASSIGN_OR_RETURN(ncclDataType_t dtype, ncclType(type));
    if (comm_ && count > 0)
      MOERT_NCCL_RETURN_IF_ERROR(where, allReduce, data, data,
                                 static_cast<size_t>(count), dtype, ncclOp(op),
                                 comm_, stream_);
    const int64_t chunk = (count + size_ - 1) / size_;
    count_(comm::CollectiveKind::AllReduce,
           2 * (size_ - 1) * chunk * comm::elementSize(type));
    return Status::success();
  }

  Status allGather(const void *send, void *recv, int64_t count,
                   comm::ElementType type) override {
    const std::string where = site(comm::CollectiveKind::AllGather);
    MOERT_RETURN_IF_ERROR(comm::detail::checkCollectiveArgs(
        where, count, size_, type, {send, recv}));
    MOERT_ASSIGN_OR_RETURN(ncclDataType_t dtype, ncclType(type));
    const int64_t bytes = count * comm::elementSize(type);
    if (comm_) {
      if (count > 0)
        MOERT_NCCL_RETURN_IF_ERROR(where, allGather, send, recv,
                                   static_cast<size_t>(count), dtype, comm_,
                                   stream_);
    } else {
      MOERT_RETURN_IF_ERROR(copy(where, recv, send, bytes));
    }
    count_(comm::CollectiveKind::AllGather, (size_ - 1) * bytes);
    return Status::success();
  }

  Status reduceScatter(const void *send, void *recv, int64_t count,
                       comm::ElementType type, comm::ReduceOp op) override {
    const std::string where = site(comm::CollectiveKind::ReduceScatter);
    MOERT_RETURN_IF_ERROR(comm::detail::checkCollectiveArgs(
        where, count, size_, type, {send, recv}));
    MOERT_RETURN_IF_ERROR(comm::detail::checkReduction(where, type, op));
    MOERT_ASSIGN_OR_RETURN(ncclDataType_t dtype, ncclType(type));
    const int64_t bytes = count * comm::elementSize(type);
    if (comm_) {
      if (count > 0)
        MOERT_NCCL_RETURN_IF_ERROR(where, reduceScatter, send, recv,
                                   static_cast<size_t>(count), dtype,
                                   ncclOp(op), comm_, stream_);
    } else {
      MOERT_RETURN_IF_ERROR(copy(where, recv, send, bytes));
    }
    count_(comm::CollectiveKind::ReduceScatter, (size_ - 1) * bytes);
    return Status::success();
  }

  Status allToAll(const void *send, void *recv, int64_t count,
                  comm::ElementType type) override {
    const std::string where = site(comm::CollectiveKind::AllToAll);
    MOERT_RETURN_IF_ERROR(comm::detail::checkCollectiveArgs(
        where, count, size_, type, {send, recv}));
    MOERT_ASSIGN_OR_RETURN(ncclDataType_t dtype, ncclType(type));
    const int64_t bytes = count * comm::elementSize(type);
    if (comm::detail::overlaps(send, bytes * size_, recv, bytes * size_))
      return invalidArgument(where + ": send and recv buffers overlap");
    if (comm_) {
      if (count > 0) {
        MOERT_NCCL_RETURN_IF_ERROR(where, groupStart);
        Status status = Status::success();
        for (int peer = 0; peer < size_ && status.ok(); ++peer) {
          ncclResult_t r = ncclApi().send(
              static_cast<const char *>(send) + peer * bytes,
              static_cast<size_t>(count), dtype, peer, comm_, stream_);
          if (r == ncclSuccess)
            r = ncclApi().recv(static_cast<char *>(recv) + peer * bytes,
                               static_cast<size_t>(count), dtype, peer, comm_,
                               stream_);
          if (r != ncclSuccess)
            status = ncclFailure(where, "ncclSend/ncclRecv", r, comm_);
        }
        // The group must be closed even after a failed call.
        const ncclResult_t closed = ncclApi().groupEnd();
        MOERT_RETURN_IF_ERROR(status);
        if (closed != ncclSuccess)
          return ncclFailure(where, "ncclGroupEnd", closed, comm_);
      }
    } else {
      MOERT_RETURN_IF_ERROR(copy(where, recv, send, bytes));
    }
    count_(comm::CollectiveKind::AllToAll, (size_ - 1) * bytes);
    return Status::success();
  }

  Status barrier() override {
    // Collectives are ordered on the stream; a barrier is a one-element
    // all-reduce waited for on the host.
    if (!comm_)
      return Status::success();
    const std::string where = description_ + " barrier";
    int32_t *flag = nullptr;
    if (cudaMallocAsync(reinterpret_cast<void **>(&flag), sizeof(int32_t),
                        stream_) != cudaSuccess)
      return internalError(where + ": cudaMallocAsync failed");
    ncclResult_t r = ncclApi().allReduce(flag, flag, 1, ncclInt32, ncclSum,
                                         comm_, stream_);
    cudaFreeAsync(flag, stream_);
    if (r != ncclSuccess)
      return ncclFailure(where, "ncclAllReduce", r, comm_);
    if (cudaStreamSynchronize(stream_) != cudaSuccess)
      return internalError(where + ": cudaStreamSynchronize failed");
    return Status::success();
  }

private:
  std::string site(comm::CollectiveKind kind) const {
    return std::string(comm::collectiveName(kind)) + " over " + description_ +
           " (rank " + std::to_string(rank_) + " of " + std::to_string(size_) +
           ")";
  }

  Status copy(const std::string &where, void *to, const void *from,
              int64_t bytes) {
    if (bytes <= 0 || to == from)
      return Status::success();
    const cudaError_t e =
        cudaMemcpyAsync(to, from, static_cast<size_t>(bytes),
                        cudaMemcpyDeviceToDevice, stream_);
    if (e != cudaSuccess)
      return internalError(where + ": cudaMemcpyAsync failed: " +
                           cudaGetErrorString(e));
    return Status::success();
  }

  void count_(comm::CollectiveKind kind, int64_t bytes) {
    ++stats_.calls[static_cast<int>(kind)];
    stats_.bytesSent[static_cast<int>(kind)] += bytes;
  }

  ncclComm_t comm_;
  bool owned_;
  int rank_, size_;
  cudaStream_t stream_;
  std::string description_;
};

//===----------------------------------------------------------------------===//
// Grid
//===----------------------------------------------------------------------===//

class NcclGrid final : public comm::GridCommunicators {
public:
  NcclGrid(std::unique_ptr<comm::GridCommunicators> bootstrap,
           cudaStream_t stream, std::vector<std::string> axisNames)
      : bootstrap_(std::move(bootstrap)), stream_(stream),
        axisNames_(std::move(axisNames)) {
    shape_ = bootstrap_->gridShape();
    coords_ = bootstrap_->coords();
  }
  ~NcclGrid() override {
    // Group communicators before the world they were split from.
    byAxes_.clear();
    world_ = nullptr;
    while (!groups_.empty())
      groups_.pop_back();
    if (worldComm_)
      ncclApi().commDestroy(worldComm_);
  }

  Status initialize() {
    MOERT_RETURN_IF_ERROR(ncclApi().status);
    const int size = bootstrap_->worldSize(), rank = bootstrap_->worldRank();
    const std::string where =
        "creating the NCCL world of the device grid " +
        comm::detail::describeGrid(shape_, axisNames_);
    ncclUniqueId id;
    std::memset(&id, 0, sizeof(id));
    if (rank == 0)
      MOERT_NCCL_RETURN_IF_ERROR(where, getUniqueId, &id);
    // Rank 0's id reaches every rank through the bootstrap grid.
    std::vector<uint8_t> ids(static_cast<size_t>(size) * sizeof(id));
    MOERT_RETURN_IF_ERROR(bootstrap_->world().allGather(
        &id, ids.data(), sizeof(id), comm::ElementType::U8));
    std::memcpy(&id, ids.data(), sizeof(id));
    MOERT_NCCL_RETURN_IF_ERROR(where, commInitRank, &worldComm_, size, id,
                               rank);
    std::vector<int> all(shape_.size());
    for (size_t axis = 0; axis < all.size(); ++axis)
      all[axis] = static_cast<int>(axis);
    // The world uses NCCL even with one rank (a 1-rank job still exercises
    // the library); the grid keeps the handle, which groups split from.
    world_ = remember(all, std::make_unique<NcclCommunicator>(
                               worldComm_, /*owned=*/false, rank, size,
                               stream_, describe(all)));
    return Status::success();
  }

  int worldRank() const override { return bootstrap_->worldRank(); }
  int worldSize() const override { return bootstrap_->worldSize(); }
  comm::Communicator &world() override { return *world_; }

  Expected<comm::Communicator *> group(const std::vector<int> &axes) override {
    MOERT_ASSIGN_OR_RETURN(std::vector<int> sorted,
                           comm::detail::canonicalAxes(axes, shape_.size()));
    auto found = byAxes_.find(sorted);
    if (found != byAxes_.end())
      return found->second;
    int groupSize = 1;
    for (int axis : sorted)
      groupSize *= static_cast<int>(shape_[axis]);
    const std::string description = describe(sorted);
    if (groupSize == 1)
      return remember(sorted, std::make_unique<NcclCommunicator>(
                                  nullptr, false, 0, 1, stream_, description));
    const GroupSplit split = groupSplit(shape_, coords_, sorted, worldRank());
    ncclComm_t groupComm = nullptr;
    MOERT_NCCL_RETURN_IF_ERROR("creating the NCCL " + description, commSplit,
                               worldComm_, split.color, split.key, &groupComm,
                               nullptr);
    // Ranks ordered by world rank: the group rank is the row-major index of
    // the group's coordinates.
    int64_t groupRank = 0;
    for (int axis : sorted)
      groupRank = groupRank * shape_[axis] + coords_[axis];
    return remember(sorted, std::make_unique<NcclCommunicator>(
                                groupComm, /*owned=*/true,
                                static_cast<int>(groupRank),
                                groupSize, stream_, description));
  }

private:
  std::string describe(const std::vector<int> &axes) const {
    int64_t size = 1;
    for (int axis : axes)
      size *= shape_[axis];
    return "the NCCL group over axes " +
           comm::detail::describeAxes(axes, axisNames_) + " (" +
           std::to_string(size) + " ranks) of the device grid " +
           comm::detail::describeGrid(shape_, axisNames_);
  }

  comm::Communicator *remember(const std::vector<int> &sorted,
                               std::unique_ptr<comm::Communicator> made) {
    comm::Communicator *pointer = made.get();
    groups_.push_back(std::move(made));
    byAxes_.emplace(sorted, pointer);
    return pointer;
  }

  std::unique_ptr<comm::GridCommunicators> bootstrap_;
  cudaStream_t stream_;
  std::vector<std::string> axisNames_;
  ncclComm_t worldComm_ = nullptr;
  comm::Communicator *world_ = nullptr;
  std::map<std::vector<int>, comm::Communicator *> byAxes_;
};

} // namespace

Status ncclAvailable() { return ncclApi().status; }

GroupSplit groupSplit(const std::vector<int64_t> &shape,
                      const std::vector<int64_t> &coords,
                      const std::vector<int> &axes, int worldRank) {
  GroupSplit split;
  for (size_t axis = 0; axis < shape.size(); ++axis) {
    if (std::binary_search(axes.begin(), axes.end(), static_cast<int>(axis)))
      continue;
    split.color = split.color * static_cast<int>(shape[axis]) +
                  static_cast<int>(coords[axis]);
  }
  split.key = worldRank;
  return split;
}

Expected<std::unique_ptr<comm::GridCommunicators>>
makeNcclGrid(std::unique_ptr<comm::GridCommunicators> bootstrap,
             hal::Device &device, const std::vector<std::string> &axisNames) {
  if (!bootstrap)
    return invalidArgument("a NCCL grid needs a bootstrap grid");
  if (device.backend() != hal::Backend::Cuda)
    return failedPrecondition("NCCL collectives run on CUDA devices; the "
                              "device is " +
                              device.description() + " (use --device cuda)");
  MOERT_RETURN_IF_ERROR(ncclApi().status);
  CudaDevice &cudaDevice = cudaDeviceOf(device);
  auto grid = std::make_unique<NcclGrid>(std::move(bootstrap),
                                         cudaDevice.stream(), axisNames);
  MOERT_RETURN_IF_ERROR(grid->initialize());
  return std::unique_ptr<comm::GridCommunicators>(std::move(grid));
}

} // namespace cuda
} // namespace moert
