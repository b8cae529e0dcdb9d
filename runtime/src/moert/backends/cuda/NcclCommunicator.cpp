//===- NcclCommunicator.cpp - Collectives over NCCL on the device stream --===//
#include "moert/backends/cuda/NcclCommunicator.h"

#include "moert/backends/cuda/CudaDevice.h"
#include "moert/comm/CollectiveWait.h"
#include "moert/comm/CommInternal.h"
#include "moert/comm/Watchdog.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <thread>

namespace moert {
namespace cuda {

namespace {

//===----------------------------------------------------------------------===//
// The library, loaded at run time
//===----------------------------------------------------------------------===//

struct NcclApi {
  decltype(&ncclGetUniqueId) getUniqueId = nullptr;
  decltype(&ncclCommInitRankConfig) commInitRankConfig = nullptr;
  decltype(&ncclCommSplit) commSplit = nullptr;
  decltype(&ncclCommFinalize) commFinalize = nullptr;
  decltype(&ncclCommDestroy) commDestroy = nullptr;
  decltype(&ncclCommAbort) commAbort = nullptr;
  decltype(&ncclCommGetAsyncError) commGetAsyncError = nullptr;
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
    load(a.commInitRankConfig, "ncclCommInitRankConfig");
    load(a.commSplit, "ncclCommSplit");
    load(a.commFinalize, "ncclCommFinalize");
    load(a.commDestroy, "ncclCommDestroy");
    load(a.commAbort, "ncclCommAbort");
    load(a.commGetAsyncError, "ncclCommGetAsyncError");
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

/// "<call> failed: <NCCL's words> (<its last error>)".
std::string ncclErrorText(const std::string &call, ncclResult_t result,
                          ncclComm_t comm) {
  const NcclApi &api = ncclApi();
  std::string message =
      call + " failed: " + (api.errorString ? api.errorString(result) : "?");
  if (api.lastError) {
    const char *detail = api.lastError(comm);
    if (detail && *detail)
      message += " (" + std::string(detail) + ")";
  }
  return message;
}

Status ncclFailure(const std::string &where, const char *call,
                   ncclResult_t result, ncclComm_t comm = nullptr) {
  return internalError(where + ": " + ncclErrorText(call, result, comm));
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
  case comm::ElementType::U16:
    return ncclFloat16; // moved, never reduced (checkReduction refuses)
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
// The state the communicators of a grid share
//===----------------------------------------------------------------------===//

/// Every NCCL handle of a grid (to abort them all), the collective timeout,
/// and the collectives enqueued on the stream but not yet waited for. The
/// communicators are non-blocking (ncclConfig_t::blocking = 0): an NCCL
/// call that cannot finish at once returns ncclInProgress, and the
/// communicator's state (ncclCommGetAsyncError) says when it has; a
/// collective's completion is an event recorded after it on the stream.
/// Both are polled (comm::waitForCollective) with the deadline and the
/// asynchronous error check; on a timeout every communicator is aborted
/// (ncclCommAbort) and the job ends with the watchdog's message; on an
/// asynchronous error they are aborted too (NCCL cannot go on after one)
/// and the error names the collective, its group and rank.
///
/// The device consults it before each host wait on the stream (a
/// StreamWatch), so that a hung peer ends the job instead of leaving the
/// host in cudaStreamSynchronize.
class NcclState final : public StreamWatch {
public:
  NcclState(double timeoutSeconds, int worldRank)
      : timeoutSeconds_(timeoutSeconds), worldRank_(worldRank) {}
  ~NcclState() override { release(); }

  /// Takes `comm` (non-null; `description` names it) into the grid:
  /// watched for asynchronous errors and aborted with the others, destroyed
  /// by release(), in reverse order of adoption.
  void adopt(ncclComm_t comm, std::string description) {
    comms_.push_back(comm);
    descriptions_.push_back(std::move(description));
  }

  /// An error once the communicators were aborted after a failure.
  Status usable(const std::string &where) const {
    if (!aborted_)
      return Status::success();
    return failedPrecondition(where +
                              ": the NCCL communicators were aborted after "
                              "an earlier error (" +
                              abortReason_ + ")");
  }

  /// The result of NCCL call `call` on `comm`: an error naming `where`, or
  /// (ncclInProgress) waits until the communicator has finished it. An
  /// error the call returns at once (a bad argument) leaves the
  /// communicators as they are; one that shows while waiting aborts them.
  Status settle(const std::string &where, const char *call, ncclResult_t result,
                ncclComm_t comm) {
    if (result == ncclSuccess)
      return Status::success();
    if (result != ncclInProgress || !comm)
      return ncclFailure(where, call, result, comm);
    const std::string callName = call;
    return wait(
        where,
        [comm, callName]() -> Expected<bool> {
          ncclResult_t state = ncclSuccess;
          const ncclResult_t r = ncclApi().commGetAsyncError(comm, &state);
          if (r != ncclSuccess)
            return internalError(
                ncclErrorText("ncclCommGetAsyncError", r, comm));
          if (state == ncclInProgress)
            return false;
          if (state == ncclSuccess)
            return true;
          return Status(StatusCode::Unavailable,
                        ncclErrorText(callName, state, comm));
        },
        [] { return Status::success(); });
  }

  /// Remembers that a collective on `comm` was just enqueued on `stream`
  /// (`where` names it in errors and in the timeout message).
  Status enqueued(const std::string &where, ncclComm_t comm,
                  cudaStream_t stream) {
    cudaEvent_t event = nullptr;
    if (!freeEvents_.empty()) {
      event = freeEvents_.back();
      freeEvents_.pop_back();
    } else {
      const cudaError_t e =
          cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
      if (e != cudaSuccess)
        return internalError(where + ": cudaEventCreateWithFlags failed: " +
                             cudaGetErrorString(e));
    }
    // Collectives that have completed need no wait any more (the queue
    // stays short between host waits); the oldest is asked first.
    while (pending_.size() >= 32 &&
           cudaEventQuery(pending_.front().event) == cudaSuccess) {
      freeEvents_.push_back(pending_.front().event);
      pending_.pop_front();
    }
    const cudaError_t e = cudaEventRecord(event, stream);
    if (e != cudaSuccess) {
      cudaEventDestroy(event);
      return internalError(
          where + ": cudaEventRecord failed: " + cudaGetErrorString(e));
    }
    pending_.push_back(Pending{event, comm, where});
    return Status::success();
  }

  /// Waits for every collective enqueued so far, oldest first, each with
  /// the full timeout from the moment the host starts waiting for it. An
  /// asynchronous error of any communicator of the grid ends the wait (a
  /// peer lost by one group leaves the others waiting).
  Status waitPending() override {
    while (!pending_.empty()) {
      const Pending next = pending_.front();
      MOERT_RETURN_IF_ERROR(wait(
          next.what,
          [event = next.event]() -> Expected<bool> {
            const cudaError_t e = cudaEventQuery(event);
            if (e == cudaSuccess)
              return true;
            if (e == cudaErrorNotReady)
              return false;
            return internalError(std::string("cudaEventQuery failed: ") +
                                 cudaGetErrorString(e));
          },
          [this] { return anyAsyncError(); }));
      freeEvents_.push_back(next.event);
      pending_.pop_front();
    }
    return Status::success();
  }

  /// Forgets the pending collectives and frees the communicators (newest
  /// first: groups before the world they were split from). Each is
  /// finalized (ncclCommFinalize, polled: a peer that is gone cannot stall
  /// it past the timeout) and destroyed; one that fails or times out there
  /// is aborted instead.
  void release() {
    for (const Pending &p : pending_)
      cudaEventDestroy(p.event);
    pending_.clear();
    for (cudaEvent_t event : freeEvents_)
      cudaEventDestroy(event);
    freeEvents_.clear();
    while (!comms_.empty()) {
      ncclComm_t comm = comms_.back();
      comms_.pop_back();
      descriptions_.pop_back();
      if (aborted_)
        continue; // abortAll freed it
      const NcclApi &api = ncclApi();
      ncclResult_t r = api.commFinalize(comm);
      bool finalized = r == ncclSuccess;
      if (r == ncclInProgress) {
        comm::WaitHooks hooks = clockHooks();
        hooks.done = [comm]() -> Expected<bool> {
          ncclResult_t state = ncclSuccess;
          if (ncclApi().commGetAsyncError(comm, &state) != ncclSuccess)
            return internalError("ncclCommGetAsyncError failed");
          if (state == ncclInProgress)
            return false;
          if (state == ncclSuccess)
            return true;
          return internalError(ncclErrorText("ncclCommFinalize", state, comm));
        };
        hooks.asyncError = [] { return Status::success(); };
        finalized = comm::waitForCollective("finalizing an NCCL communicator",
                                            timeoutSeconds_, context(), hooks)
                        .outcome == comm::WaitResult::Outcome::Completed;
      }
      if (finalized)
        api.commDestroy(comm);
      else
        api.commAbort(comm);
    }
  }

  /// Aborts every communicator (NCCL stops their kernels and frees them);
  /// later collectives fail naming `reason`. Also for a communicator whose
  /// creation failed (ncclCommDestroy is not for those). With
  /// `graceSeconds` >= 0 the aborts run on a thread of their own and this
  /// returns after at most that long (ncclCommAbort has been seen to hang
  /// in some NCCL versions; a job that is about to end must not).
  void abortAll(const std::string &reason, double graceSeconds = -1) {
    if (aborted_)
      return;
    aborted_ = true;
    abortReason_ = reason;
    std::vector<ncclComm_t> newestFirst(comms_.rbegin(), comms_.rend());
    auto abortThem = [newestFirst] {
      for (ncclComm_t comm : newestFirst)
        ncclApi().commAbort(comm);
    };
    if (graceSeconds < 0) {
      abortThem();
    } else {
      std::packaged_task<void()> task(abortThem);
      std::future<void> finished = task.get_future();
      std::thread(std::move(task)).detach();
      finished.wait_for(std::chrono::duration<double>(graceSeconds));
    }
    // The events stay valid (freed by release()); what they follow was
    // aborted, so nothing waits for them any more.
    for (const Pending &p : pending_)
      freeEvents_.push_back(p.event);
    pending_.clear();
  }

private:
  struct Pending {
    cudaEvent_t event;
    ncclComm_t comm;
    std::string what;
  };

  /// How long a job that timed out waits for ncclCommAbort before it ends.
  static constexpr double kAbortGraceSeconds = 10;

  /// The first asynchronous error of the grid's communicators, naming the
  /// one that has it when it is not `comm`.
  Status anyAsyncError() const {
    for (size_t i = 0; i < comms_.size(); ++i) {
      ncclComm_t comm = comms_[i];
      ncclResult_t state = ncclSuccess;
      const ncclResult_t r = ncclApi().commGetAsyncError(comm, &state);
      if (r != ncclSuccess)
        return internalError(descriptions_[i] + ": " +
                             ncclErrorText("ncclCommGetAsyncError", r, comm));
      if (state == ncclSuccess || state == ncclInProgress)
        continue;
      const char *words = ncclApi().errorString(state);
      std::string message = "NCCL reported an asynchronous error on " +
                            descriptions_[i] + ": " + (words ? words : "?");
      const char *detail = ncclApi().lastError(comm);
      if (detail && *detail)
        message += " (" + std::string(detail) + ")";
      return Status(StatusCode::Unavailable, message);
    }
    return Status::success();
  }

  comm::WaitContext context() const {
    comm::WaitContext c = comm::watchdogContext();
    c.rank = worldRank_;
    return c;
  }

  static comm::WaitHooks clockHooks() {
    comm::WaitHooks hooks;
    hooks.now = [] {
      return std::chrono::duration<double>(
                 std::chrono::steady_clock::now().time_since_epoch())
          .count();
    };
    hooks.sleep = [](double seconds) {
      std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    };
    return hooks;
  }

  /// Polls `done` and `error` for `what` with the timeout. A failure aborts
  /// the communicators and is returned; a timeout prints the message,
  /// aborts them and ends the job.
  Status wait(const std::string &what, std::function<Expected<bool>()> done,
              std::function<Status()> error) {
    comm::WaitHooks hooks = clockHooks();
    hooks.done = std::move(done);
    hooks.asyncError = std::move(error);
    comm::WaitResult result =
        comm::waitForCollective(what, timeoutSeconds_, context(), hooks);
    switch (result.outcome) {
    case comm::WaitResult::Outcome::Completed:
      return Status::success();
    case comm::WaitResult::Outcome::Failed:
      abortAll(result.status.message());
      return result.status;
    case comm::WaitResult::Outcome::TimedOut:
      // The message first: aborting may take a moment.
      std::fprintf(stderr, "%s\n", result.status.message().c_str());
      std::fflush(stderr);
      abortAll("collective timeout", kAbortGraceSeconds);
      comm::endJobAfterCollectiveTimeout();
    }
    return result.status;
  }

  double timeoutSeconds_;
  int worldRank_;
  std::vector<ncclComm_t> comms_;
  std::vector<std::string> descriptions_; // of comms_
  bool aborted_ = false;
  std::string abortReason_;
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> freeEvents_;
};

//===----------------------------------------------------------------------===//
// Communicator
//===----------------------------------------------------------------------===//

class NcclCommunicator final : public comm::Communicator {
public:
  /// `comm` null: a group of one (copies on the stream). The handle belongs
  /// to `state`.
  NcclCommunicator(ncclComm_t comm, std::shared_ptr<NcclState> state, int rank,
                   int size, cudaStream_t stream, std::string description)
      : comm_(comm), state_(std::move(state)), rank_(rank), size_(size),
        stream_(stream), description_(std::move(description)) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool devicePointers() const override { return true; }
  /// The stream the next collectives enqueue on.
  void setStream(cudaStream_t stream) { stream_ = stream; }

  Status allReduce(void *data, int64_t count, comm::ElementType type,
                   comm::ReduceOp op) override {
    const std::string where = site(comm::CollectiveKind::AllReduce);
    MOERT_RETURN_IF_ERROR(
        comm::detail::checkCollectiveArgs(where, count, size_, type, {data}));
    MOERT_RETURN_IF_ERROR(comm::detail::checkReduction(where, type, op));
    MOERT_ASSIGN_OR_RETURN(ncclDataType_t dtype, ncclType(type));
    if (comm_ && count > 0) {
      MOERT_RETURN_IF_ERROR(state_->usable(where));
      MOERT_RETURN_IF_ERROR(
          enqueued(where, "ncclAllReduce",
                   ncclApi().allReduce(data, data, static_cast<size_t>(count),
                                       dtype, ncclOp(op), comm_, stream_)));
    }
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
      if (count > 0) {
        MOERT_RETURN_IF_ERROR(state_->usable(where));
        MOERT_RETURN_IF_ERROR(
            enqueued(where, "ncclAllGather",
                     ncclApi().allGather(send, recv, static_cast<size_t>(count),
                                         dtype, comm_, stream_)));
      }
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
      if (count > 0) {
        MOERT_RETURN_IF_ERROR(state_->usable(where));
        MOERT_RETURN_IF_ERROR(enqueued(
            where, "ncclReduceScatter",
            ncclApi().reduceScatter(send, recv, static_cast<size_t>(count),
                                    dtype, ncclOp(op), comm_, stream_)));
      }
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
        MOERT_RETURN_IF_ERROR(state_->usable(where));
        MOERT_NCCL_RETURN_IF_ERROR(where, groupStart);
        Status status = Status::success();
        for (int peer = 0; peer < size_ && status.ok(); ++peer) {
          ncclResult_t r = ncclApi().send(
              static_cast<const char *>(send) + peer * bytes,
              static_cast<size_t>(count), dtype, peer, comm_, stream_);
          if (r == ncclSuccess || r == ncclInProgress)
            r = ncclApi().recv(static_cast<char *>(recv) + peer * bytes,
                               static_cast<size_t>(count), dtype, peer, comm_,
                               stream_);
          if (r != ncclSuccess && r != ncclInProgress)
            status = ncclFailure(where, "ncclSend/ncclRecv", r, comm_);
        }
        // The group must be closed even after a failed call. Calls inside
        // a group only queue; ncclGroupEnd issues them (and may still be in
        // progress on a non-blocking communicator).
        const ncclResult_t closed = ncclApi().groupEnd();
        if (!status.ok()) {
          // No NCCL call may follow one still in progress.
          (void)state_->settle(where, "ncclGroupEnd", closed, comm_);
          return status;
        }
        MOERT_RETURN_IF_ERROR(enqueued(where, "ncclGroupEnd", closed));
      }
    } else {
      MOERT_RETURN_IF_ERROR(copy(where, recv, send, bytes));
    }
    count_(comm::CollectiveKind::AllToAll, (size_ - 1) * bytes);
    return Status::success();
  }

  Status barrier() override {
    // Collectives are ordered on the stream; a barrier is a one-element
    // all-reduce waited for on the host (polled, with the timeout).
    if (!comm_)
      return Status::success();
    const std::string where = description_ + " barrier";
    MOERT_RETURN_IF_ERROR(state_->usable(where));
    int32_t *flag = nullptr;
    if (cudaMallocAsync(reinterpret_cast<void **>(&flag), sizeof(int32_t),
                        stream_) != cudaSuccess)
      return internalError(where + ": cudaMallocAsync failed");
    const ncclResult_t r =
        ncclApi().allReduce(flag, flag, 1, ncclInt32, ncclSum, comm_, stream_);
    // Freed after the all-reduce is on the stream (settled), whatever the
    // outcome.
    Status status = enqueued(where, "ncclAllReduce", r);
    cudaFreeAsync(flag, stream_);
    MOERT_RETURN_IF_ERROR(status);
    MOERT_RETURN_IF_ERROR(state_->waitPending());
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

  /// The result of the NCCL call that enqueues a collective: settled (a
  /// non-blocking call still in progress is waited for) and, once on the
  /// stream, remembered for the host waits.
  Status enqueued(const std::string &where, const char *call,
                  ncclResult_t result) {
    MOERT_RETURN_IF_ERROR(state_->settle(where, call, result, comm_));
    return state_->enqueued(where, comm_, stream_);
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
  std::shared_ptr<NcclState> state_;
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
           CudaDevice &device, std::vector<std::string> axisNames,
           double collectiveTimeoutSeconds)
      : bootstrap_(std::move(bootstrap)), deviceStream_(device.stream()),
        stream_(device.stream()), axisNames_(std::move(axisNames)) {
    shape_ = bootstrap_->gridShape();
    coords_ = bootstrap_->coords();
    state_ = std::make_shared<NcclState>(collectiveTimeoutSeconds,
                                         bootstrap_->worldRank());
    // Host waits on the device's stream wait for the collectives first.
    device.setStreamWatch(state_);
  }
  ~NcclGrid() override {
    byAxes_.clear();
    world_ = nullptr;
    groups_.clear();
    // The device may outlive the grid (and keeps the state): nothing is
    // pending any more, and the communicators are freed now.
    state_->release();
  }

  Status initialize() {
    MOERT_RETURN_IF_ERROR(ncclApi().status);
    const int size = bootstrap_->worldSize(), rank = bootstrap_->worldRank();
    const std::string where = "creating the NCCL world of the device grid " +
                              comm::detail::describeGrid(shape_, axisNames_) +
                              " (rank " + std::to_string(rank) + " of " +
                              std::to_string(size) + ")";
    ncclUniqueId id;
    std::memset(&id, 0, sizeof(id));
    if (rank == 0)
      MOERT_NCCL_RETURN_IF_ERROR(where, getUniqueId, &id);
    // Rank 0's id reaches every rank through the bootstrap grid.
    std::vector<uint8_t> ids(static_cast<size_t>(size) * sizeof(id));
    MOERT_RETURN_IF_ERROR(bootstrap_->world().allGather(
        &id, ids.data(), sizeof(id), comm::ElementType::U8));
    std::memcpy(&id, ids.data(), sizeof(id));
    std::vector<int> all(shape_.size());
    for (size_t axis = 0; axis < all.size(); ++axis)
      all[axis] = static_cast<int>(axis);
    // Non-blocking: initialization (which waits for every rank) is polled
    // with the timeout, and so is every later call; groups split from the
    // world inherit the setting.
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclComm_t worldComm = nullptr;
    const ncclResult_t r =
        ncclApi().commInitRankConfig(&worldComm, size, id, rank, &config);
    if (worldComm)
      state_->adopt(worldComm, describe(all));
    if (Status status =
            state_->settle(where, "ncclCommInitRankConfig", r, worldComm);
        !status.ok()) {
      state_->abortAll(status.message());
      return status;
    }
    worldComm_ = worldComm;
    // The world uses NCCL even with one rank (a 1-rank job still exercises
    // the library); groups split from its handle.
    world_ = remember(
        all, std::make_unique<NcclCommunicator>(worldComm_, state_, rank, size,
                                                stream_, describe(all)));
    return Status::success();
  }

  int worldRank() const override { return bootstrap_->worldRank(); }
  int worldSize() const override { return bootstrap_->worldSize(); }
  comm::Communicator &world() override { return *world_; }

  /// See setNcclStream.
  void setStream(cudaStream_t stream) {
    stream_ = stream ? stream : deviceStream_;
    for (const std::unique_ptr<comm::Communicator> &made : groups_)
      static_cast<NcclCommunicator &>(*made).setStream(stream_);
  }

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
                                  nullptr, state_, 0, 1, stream_, description));
    const std::string where = "creating the NCCL " + description;
    MOERT_RETURN_IF_ERROR(state_->usable(where));
    const GroupSplit split = groupSplit(shape_, coords_, sorted, worldRank());
    ncclComm_t groupComm = nullptr;
    // No config: the group inherits the world's (non-blocking).
    const ncclResult_t r = ncclApi().commSplit(worldComm_, split.color,
                                               split.key, &groupComm, nullptr);
    if (groupComm)
      state_->adopt(groupComm, description);
    if (Status status = state_->settle(where, "ncclCommSplit", r,
                                       groupComm ? groupComm : worldComm_);
        !status.ok()) {
      state_->abortAll(status.message());
      return status;
    }
    // Ranks ordered by world rank: the group rank is the row-major index of
    // the group's coordinates.
    int64_t groupRank = 0;
    for (int axis : sorted)
      groupRank = groupRank * shape_[axis] + coords_[axis];
    return remember(sorted, std::make_unique<NcclCommunicator>(
                                groupComm, state_, static_cast<int>(groupRank),
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
  cudaStream_t deviceStream_; // the device's (compute) stream
  cudaStream_t stream_;       // where collectives enqueue now
  std::vector<std::string> axisNames_;
  std::shared_ptr<NcclState> state_;
  ncclComm_t worldComm_ = nullptr;
  comm::Communicator *world_ = nullptr;
  std::map<std::vector<int>, comm::Communicator *> byAxes_;
};

} // namespace

Status ncclAvailable() { return ncclApi().status; }

Status setNcclStream(comm::GridCommunicators &grid, void *stream) {
  NcclGrid *nccl = dynamic_cast<NcclGrid *>(&grid);
  if (!nccl)
    return invalidArgument("setNcclStream: the grid is not a NCCL grid");
  nccl->setStream(static_cast<cudaStream_t>(stream));
  return Status::success();
}

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
             hal::Device &device, const std::vector<std::string> &axisNames,
             double collectiveTimeoutSeconds) {
  if (!bootstrap)
    return invalidArgument("a NCCL grid needs a bootstrap grid");
  if (device.backend() != hal::Backend::Cuda)
    return failedPrecondition("NCCL collectives run on CUDA devices; the "
                              "device is " +
                              device.description() + " (use --device cuda)");
  MOERT_RETURN_IF_ERROR(ncclApi().status);
  CudaDevice &cudaDevice = cudaDeviceOf(device);
  auto grid = std::make_unique<NcclGrid>(std::move(bootstrap), cudaDevice,
                                         axisNames, collectiveTimeoutSeconds);
  MOERT_RETURN_IF_ERROR(grid->initialize());
  return std::unique_ptr<comm::GridCommunicators>(std::move(grid));
}

} // namespace cuda
} // namespace moert
