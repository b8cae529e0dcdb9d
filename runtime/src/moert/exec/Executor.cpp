//===- Executor.cpp - Runs a Program on a device --------------------------===//
#include "moert/exec/Executor.h"

#include "moert/Half.h"
#include "moert/backends/cpu/CpuDevice.h"
#include "moert/comm/Communicator.h"
#include "moert/exec/CollectiveQueue.h"
#include "moert/exec/DeviceErrors.h"
#include "moert/exec/GradientPairs.h"
#include "moert/exec/ShapeRules.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <set>

namespace moert {
namespace exec {

namespace {
/// Constants and staging slices start at multiples of this.
constexpr int64_t kAlignment = 64;

int64_t alignUp(int64_t bytes) {
  return (bytes + kAlignment - 1) / kAlignment * kAlignment;
}

/// Bytes of the operands / results a kernel wants on the host.
int64_t stagedBytes(const KernelInfo &info, const Instruction &inst,
                    const Program &program) {
  int64_t bytes = 0;
  for (size_t i = 0; i < inst.operands.size(); ++i)
    if (i < 32 && (info.hostOperands >> i & 1u))
      bytes += alignUp(program.buffers[inst.operands[i]].type.byteSize());
  for (size_t i = 0; i < inst.results.size(); ++i)
    if (i < 32 && (info.hostResults >> i & 1u))
      bytes += alignUp(program.buffers[inst.results[i]].type.byteSize());
  return bytes;
}

/// The splat value of a constant buffer as the bytes of its element type.
void materializeSplat(const Buffer &b, uint8_t *out) {
  int64_t n = b.type.numElements();
  for (int64_t e = 0; e < n; ++e) {
    switch (b.type.dtype) {
    case DType::F32: {
      float v = static_cast<float>(b.splat);
      std::memcpy(out + e * 4, &v, 4);
      break;
    }
    case DType::I32: {
      int32_t v = static_cast<int32_t>(b.splat);
      std::memcpy(out + e * 4, &v, 4);
      break;
    }
    case DType::I64: {
      int64_t v = static_cast<int64_t>(b.splat);
      std::memcpy(out + e * 8, &v, 8);
      break;
    }
    case DType::Bool:
      out[e] = b.splat != 0.0;
      break;
    case DType::BF16:
    case DType::F16: {
      const float v = static_cast<float>(b.splat);
      const uint16_t bits =
          b.type.dtype == DType::BF16 ? floatToBf16Bits(v) : floatToF16Bits(v);
      std::memcpy(out + e * 2, &bits, 2);
      break;
    }
    }
  }
}
/// Distinct keys for the runs of every executor of the process.
std::atomic<uint64_t> nextRunKey{1};

} // namespace

Executor::Executor(Program program, hal::Device &device)
    : program_(std::move(program)), device_(device),
      overlapHostWork_(!device.hostAccessible()) {}

Executor::~Executor() {
  // Copies into or out of the pinned memory may still be in flight on a
  // stream (the compute stream waits for the transfer stream's).
  if (!pinned_.empty())
    (void)device_.synchronize();
  for (void *host : pinned_)
    device_.unpinHostMemory(host);
}

Expected<std::unique_ptr<Executor>> Executor::create(Program program) {
  return create(std::move(program), cpu::hostDevice());
}

Expected<std::unique_ptr<Executor>> Executor::create(Program program,
                                                     hal::Device &device) {
  return make(std::move(program), device, nullptr);
}

Expected<std::unique_ptr<Executor>> Executor::createSharing(Program program,
                                                            Executor &owner) {
  // The regions belong to the executor that allocated them.
  Executor &root = owner.sharedOwner_ ? *owner.sharedOwner_ : owner;
  return make(std::move(program), root.device_, &root);
}

Expected<std::unique_ptr<Executor>>
Executor::make(Program program, hal::Device &device, Executor *owner) {
  MOERT_RETURN_IF_ERROR(program.verify());
  std::unique_ptr<Executor> executor(
      new Executor(std::move(program), device));
  const Program &p = executor->program_;
  const KernelRegistry &registry = kernelRegistry(device.backend());
  const char *backend = hal::backendName(device.backend());
  int64_t workspaceBytes = 0, stagingBytes = 0;
  for (size_t i = 0; i < p.instructions.size(); ++i) {
    const Instruction &inst = p.instructions[i];
    std::optional<Op> op = opFromName(inst.kernel);
    if (!op)
      return unimplemented(describeInstruction(i, inst) +
                           ": not an op of this runtime (Ops.def)");
    const OpInfo &opInfo = moert::opInfo(*op);
    int numOperands = static_cast<int>(inst.operands.size());
    if (numOperands < opInfo.minOperands || numOperands > opInfo.maxOperands)
      return invalidArgument(describeInstruction(i, inst) + ": expected " +
                             std::to_string(opInfo.minOperands) +
                             (opInfo.maxOperands != opInfo.minOperands
                                  ? " to " + std::to_string(opInfo.maxOperands)
                                  : std::string()) +
                             " operands, found " + std::to_string(numOperands));
    if (static_cast<int>(inst.results.size()) != opInfo.numResults)
      return invalidArgument(describeInstruction(i, inst) + ": expected " +
                             std::to_string(opInfo.numResults) +
                             " results, found " +
                             std::to_string(inst.results.size()));
    if (Status shapes = checkInstructionShapes(inst, p); !shapes.ok())
      return invalidArgument(describeInstruction(i, inst) + ": " +
                             shapes.message());
    const KernelInfo *info = registry.find(*op);
    if (!info)
      return unimplemented(describeInstruction(i, inst) + ": the " + backend +
                           " backend has no kernel for this op");
    executor->kernels_.push_back(info);
    if (info->workspace)
      workspaceBytes = std::max(workspaceBytes, info->workspace(inst, p));
    if (!device.hostAccessible())
      stagingBytes = std::max(stagingBytes, stagedBytes(*info, inst, p));
  }
  MOERT_RETURN_IF_ERROR(checkGradientPairs(p));
  // Where asynchronous collectives are waited for: the queues run them one
  // at a time in program order (CollectiveQueue.h).
  executor->schedule_ = scheduleCollectives(p, {}, p.stepEnd());
  // And the offload's host work, on a queue of its own.
  executor->hostSchedule_ = scheduleHostWork(p, p.stepEnd());
  executor->optimizerScalarsSteady_ = optimizerScalarsSteady(p);
  for (size_t i = 0; i < p.instructions.size(); ++i) {
    const WorkspaceFn workspace = executor->kernels_[i]->workspace;
    if (!workspace)
      continue;
    if (executor->schedule_.asynchronous[i])
      executor->collectiveWorkspaceBytes_ = std::max(
          executor->collectiveWorkspaceBytes_, workspace(p.instructions[i], p));
    if (executor->hostSchedule_.asynchronous[i])
      executor->hostWorkspaceBytes_ = std::max(executor->hostWorkspaceBytes_,
                                               workspace(p.instructions[i], p));
  }
  // The plan's memory against what the device has, before allocating: a
  // clear error instead of an allocation failure midway (or the host's OOM
  // killer later).
  int64_t constantBytesNeeded = 0;
  for (const Buffer &b : p.buffers)
    if (b.kind == BufferKind::Constant)
      constantBytesNeeded += alignUp(b.type.byteSize());
  // The collectives' and the host work's own workspaces (overlap) count
  // too: a run allocates them with their queues.
  const int64_t queueWorkspaceBytes =
      executor->collectiveWorkspaceBytes_ + executor->hostWorkspaceBytes_;
  // Sharing another executor's regions (createSharing) allocates none.
  const int64_t ownRegionBytes =
      owner ? 0
            : p.arenaBytes + p.persistentBytes +
                  (device.hostAccessible() ? p.hostBytes : 0);
  const uint64_t needed =
      static_cast<uint64_t>(ownRegionBytes + workspaceBytes +
                            queueWorkspaceBytes + constantBytesNeeded);
  // MOERT_MEMORY_LIMIT (bytes) replaces what the device reports: a job
  // that must stay below its share of a shared machine (moe-train
  // --memory-limit). A device that cannot say what it has is not checked.
  std::optional<uint64_t> available;
  std::string where = device.description();
  if (Expected<uint64_t> reported = device.availableMemory(); reported.ok())
    available = *reported;
  if (const char *limit = std::getenv("MOERT_MEMORY_LIMIT")) {
    char *end = nullptr;
    const unsigned long long cap = std::strtoull(limit, &end, 10);
    if (end && end != limit && *end == '\0' && cap > 0) {
      available = cap;
      where = "this rank (--memory-limit)";
    }
  }
  if (available) {
    auto mib = [](int64_t bytes) {
      char text[32];
      std::snprintf(text, sizeof(text), "%.1f MiB",
                    static_cast<double>(bytes) / (1 << 20));
      return std::string(text);
    };
    std::string detail = owner ? "shared arena and persistent region + "
                                 "workspace " +
                                     mib(workspaceBytes)
                               : "arena " + mib(p.arenaBytes) +
                                     " + persistent " + mib(p.persistentBytes) +
                                     " + workspace " + mib(workspaceBytes);
    if (queueWorkspaceBytes > 0)
      detail += " + queue workspace " + mib(queueWorkspaceBytes);
    if (constantBytesNeeded > 0)
      detail += " + constants " + mib(constantBytesNeeded);
    if (!owner && device.hostAccessible() && p.hostBytes > 0)
      detail += " + host " + mib(p.hostBytes);
    MOERT_RETURN_IF_ERROR(hal::checkMemoryFits(needed, detail + " per rank",
                                               *available, where));
  }
  // Every region starts zeroed: a kernel reading a buffer nobody wrote (a
  // bug) sees zeros rather than stale data, and fresh optimizer moments are
  // zero as AdamW expects.
  if (owner) {
    // Length buckets: the owner's regions, which must hold this program's.
    auto fits = [&](const char *region, int64_t needs, int64_t has) -> Status {
      if (needs <= has)
        return Status::success();
      return invalidArgument(
          std::string("the shared ") + region + " has " + std::to_string(has) +
          " bytes, the program needs " + std::to_string(needs));
    };
    MOERT_RETURN_IF_ERROR(fits("arena", p.arenaBytes,
                               static_cast<int64_t>(owner->arena_.size())));
    MOERT_RETURN_IF_ERROR(
        fits("persistent region", p.persistentBytes,
             static_cast<int64_t>(owner->persistent_.size())));
    MOERT_RETURN_IF_ERROR(
        fits("host region", p.hostBytes, owner->program_.hostBytes));
    executor->sharedOwner_ = owner;
    executor->arenaBase_ = owner->arena_.bytes();
    executor->persistentBase_ = owner->persistent_.bytes();
    executor->hostBase_ = owner->hostBase_;
  } else {
    MOERT_ASSIGN_OR_RETURN(
        executor->arena_,
        device.allocate(static_cast<size_t>(p.arenaBytes), "arena"));
    MOERT_ASSIGN_OR_RETURN(
        executor->persistent_,
        device.allocate(static_cast<size_t>(p.persistentBytes),
                        "persistent region"));
    executor->arenaBase_ = executor->arena_.bytes();
    executor->persistentBase_ = executor->persistent_.bytes();
  }
  MOERT_ASSIGN_OR_RETURN(
      executor->workspace_,
      device.allocate(static_cast<size_t>(workspaceBytes), "workspace"));
  if (!owner && p.hostBytes > 0) {
    // Zeroed like the device regions (fresh moments are zero).
    executor->hostRegion_.reset(
        new (std::nothrow) uint8_t[static_cast<size_t>(p.hostBytes) + 64]());
    if (!executor->hostRegion_)
      return failedPrecondition("cannot allocate the host region of " +
                               std::to_string(p.hostBytes) +
                               " bytes (offloaded optimizer state)");
    const uintptr_t base =
        reinterpret_cast<uintptr_t>(executor->hostRegion_.get());
    executor->hostBase_ = executor->hostRegion_.get() + (64 - base % 64) % 64;
  }
  executor->staging_.resize(static_cast<size_t>(stagingBytes));
  // The offloaded state and the staging copies move between host and device
  // every step: page-locked where the device can (pageable otherwise).
  // (A sharing executor's host region is its owner's, pinned there.)
  for (auto [host, bytes] :
       {std::make_pair(
            static_cast<void *>(owner ? nullptr : executor->hostBase_),
            static_cast<size_t>(p.hostBytes)),
        std::make_pair(static_cast<void *>(executor->staging_.data()),
                       executor->staging_.size())})
    if (host && bytes > 0 && !device.hostAccessible() &&
        device.pinHostMemory(host, bytes).ok())
      executor->pinned_.push_back(host);
  if (!device.hostAccessible()) {
    MOERT_ASSIGN_OR_RETURN(
        executor->errorRecord_,
        device.allocate(sizeof(DeviceErrorRecord), "error record"));
    DeviceErrorRecord clear{kNoDeviceError, 0, ~0ull};
    MOERT_RETURN_IF_ERROR(device.copyToDevice(executor->errorRecord_.data(),
                                              &clear, sizeof(clear)));
  }
  // Splat constants are materialized once, into one region.
  executor->constantOffsets_.assign(p.buffers.size(), -1);
  int64_t constantBytes = 0;
  for (size_t id = 0; id < p.buffers.size(); ++id)
    if (p.buffers[id].kind == BufferKind::Constant) {
      executor->constantOffsets_[id] = constantBytes;
      constantBytes += alignUp(p.buffers[id].type.byteSize());
    }
  if (constantBytes) {
    std::vector<uint8_t> host(static_cast<size_t>(constantBytes));
    for (size_t id = 0; id < p.buffers.size(); ++id)
      if (executor->constantOffsets_[id] >= 0)
        materializeSplat(p.buffers[id],
                         host.data() + executor->constantOffsets_[id]);
    MOERT_ASSIGN_OR_RETURN(
        executor->constants_,
        device.allocate(static_cast<size_t>(constantBytes), "constants"));
    MOERT_RETURN_IF_ERROR(device.copyToDevice(
        executor->constants_.data(), host.data(), host.size()));
  }
  return std::move(executor);
}

const void *Executor::deviceAddress(int32_t id) const {
  const Buffer &b = program_.buffers[id];
  switch (b.kind) {
  case BufferKind::Arena:
    return arenaBase_ + b.offset;
  case BufferKind::Persistent:
    return persistentBase_ + b.offset;
  case BufferKind::Constant:
    return constants_.bytes() + constantOffsets_[id];
  case BufferKind::Host:
    return hostBase_ + b.offset;
  }
  return nullptr;
}

void *Executor::deviceAddress(int32_t id) {
  return const_cast<void *>(
      static_cast<const Executor *>(this)->deviceAddress(id));
}

const void *Executor::bufferData(int32_t id) const {
  return device_.hostAccessible() ? deviceAddress(id) : nullptr;
}

void *Executor::bufferData(int32_t id) {
  return device_.hostAccessible() ? deviceAddress(id) : nullptr;
}

Status Executor::readBuffer(int32_t id, void *host, size_t bytes) const {
  if (id < 0 || id >= static_cast<int32_t>(program_.buffers.size()))
    return invalidArgument("buffer " + std::to_string(id) + " does not exist");
  const Buffer &b = program_.buffers[id];
  if (static_cast<int64_t>(bytes) != b.type.byteSize())
    return invalidArgument("reading " + std::to_string(bytes) +
                           " bytes of buffer '" + b.name + "' (" +
                           b.type.str() + ", " +
                           std::to_string(b.type.byteSize()) + " bytes)");
  if (b.kind == BufferKind::Host) {
    // Copies into host memory may still be in flight on the device's
    // transfer stream (the compute stream waits for them at the end of
    // each run).
    if (!device_.hostAccessible())
      MOERT_RETURN_IF_ERROR(device_.synchronize());
    std::memcpy(host, deviceAddress(id), bytes);
    return Status::success();
  }
  return device_.copyToHost(host, deviceAddress(id), bytes);
}

Status Executor::writeBuffer(int32_t id, const void *host, size_t bytes) {
  if (id < 0 || id >= static_cast<int32_t>(program_.buffers.size()))
    return invalidArgument("buffer " + std::to_string(id) + " does not exist");
  const Buffer &b = program_.buffers[id];
  if (b.kind == BufferKind::Constant)
    return invalidArgument("buffer '" + b.name + "' is a constant");
  if (static_cast<int64_t>(bytes) != b.type.byteSize())
    return invalidArgument("writing " + std::to_string(bytes) +
                           " bytes into buffer '" + b.name + "' (" +
                           b.type.str() + ", " +
                           std::to_string(b.type.byteSize()) + " bytes)");
  if (b.kind == BufferKind::Host) {
    if (!device_.hostAccessible())
      MOERT_RETURN_IF_ERROR(device_.synchronize());
    std::memcpy(deviceAddress(id), host, bytes);
    return Status::success();
  }
  return device_.copyToDevice(deviceAddress(id), host, bytes);
}

Status Executor::run(const RunContext &context) {
  if (context.grid && context.grid->gridShape() != program_.gridShape) {
    auto shapeText = [](const std::vector<int64_t> &shape) {
      std::string text = "[";
      for (size_t i = 0; i < shape.size(); ++i)
        text += (i ? ", " : "") + std::to_string(shape[i]);
      return text + "]";
    };
    return failedPrecondition(
        "the communicators are laid out on a grid of shape " +
        shapeText(context.grid->gridShape()) +
        ", the program was partitioned for " + shapeText(program_.gridShape));
  }
  lastRunOverlapped_ = false;
  lastRunHostWorkOverlapped_ = false;
  // Cleared on every return (also an early one).
  struct RunKey {
    uint64_t &key;
    ~RunKey() { key = 0; }
  } runKey{runKey_};
  runKey_ = optimizerScalarsSteady_ ? nextRunKey.fetch_add(1) : 0;
  CollectiveQueue *collectives = nullptr;
  if (overlapCollectives_ && context.grid && context.grid->worldSize() > 1 &&
      schedule_.numAsynchronous() > 0) {
    MOERT_ASSIGN_OR_RETURN(collectives, queueFor(*context.grid));
  }
  CollectiveQueue *hostWork = nullptr;
  if (overlapHostWork_ && hostSchedule_.numAsynchronous() > 0) {
    MOERT_ASSIGN_OR_RETURN(hostWork, hostWorkQueue());
  }
  if (!collectives && !hostWork) {
    for (size_t i = 0; i < program_.stepEnd(); ++i)
      MOERT_RETURN_IF_ERROR(runInstruction(i, context));
    return checkErrorRecord();
  }
  lastRunOverlapped_ = collectives != nullptr;
  lastRunHostWorkOverlapped_ = hostWork != nullptr;
  // The groups' communicators are made here, on this thread, before any
  // collective runs on the queue: a group's first request may be
  // collective (MPI_Comm_split), and the grid's cache of groups then only
  // is read while the queue runs.
  std::set<std::vector<int>> groups;
  for (size_t i = 0; collectives && i < program_.stepEnd(); ++i) {
    const Instruction &inst = program_.instructions[i];
    if (inst.collective && isCommunicatingCollective(inst.kernel) &&
        groups.insert(inst.collective->axes).second) {
      Expected<comm::Communicator *> group =
          context.grid->group(inst.collective->axes);
      if (!group.ok()) // as the instruction would report it
        return group.takeStatus().withContext(describeInstruction(i, inst));
    }
  }
  // Each instruction starts once what it depends on among the queues'
  // work has completed (for a queue on a stream: once the compute stream
  // waits for it); a queue's own instructions run in program order.
  auto waitFor = [](CollectiveQueue *queue,
                    const std::vector<size_t> &started) {
    for (size_t k = 0; queue && k < started.size(); ++k)
      MOERT_RETURN_IF_ERROR(queue->wait(started[k]));
    return Status::success();
  };
  Status status = Status::success();
  for (size_t i = 0; i < program_.stepEnd() && status.ok(); ++i) {
    status = waitFor(collectives, schedule_.waitBefore[i]);
    if (status.ok())
      status = waitFor(hostWork, hostSchedule_.waitBefore[i]);
    if (!status.ok())
      break;
    if (collectives && schedule_.asynchronous[i])
      status = startOn(i, context, *collectives, collectiveWorkspace_);
    else if (hostWork && hostSchedule_.asynchronous[i])
      status = startOn(i, context, *hostWork, hostWorkspace_);
    else
      status = runInstruction(i, context);
  }
  // Everything started is waited for, also after an error (the queues use
  // the executor's buffers). A queued instruction's error comes first: it
  // was started before any instruction that failed here.
  Status collectivesDrained =
      collectives ? collectives->drain() : Status::success();
  Status hostWorkDrained = hostWork ? hostWork->drain() : Status::success();
  MOERT_RETURN_IF_ERROR(collectivesDrained);
  MOERT_RETURN_IF_ERROR(hostWorkDrained);
  MOERT_RETURN_IF_ERROR(status);
  return checkErrorRecord();
}

Status Executor::run(const EntryPoint &entry, const RunContext &context) {
  if (entry.begin > entry.end || entry.end > program_.instructions.size())
    return invalidArgument("entry point '" + entry.name +
                           "' is not a range of the program's instructions");
  for (size_t i = entry.begin; i < entry.end; ++i)
    MOERT_RETURN_IF_ERROR(runInstruction(i, context));
  return checkErrorRecord();
}

Expected<CollectiveQueue *> Executor::queueFor(comm::GridCommunicators &grid) {
  if (queueGrid_ != &grid) {
    queue_.reset();
    queueGrid_ = nullptr;
    MOERT_ASSIGN_OR_RETURN(queue_, makeCollectiveQueue(device_, grid));
    queueGrid_ = &grid;
  }
  if (queue_ && collectiveWorkspaceBytes_ > 0 && !collectiveWorkspace_.data()) {
    MOERT_ASSIGN_OR_RETURN(
        collectiveWorkspace_,
        device_.allocate(static_cast<size_t>(collectiveWorkspaceBytes_),
                         "collective workspace"));
  }
  return queue_.get();
}

void Executor::addresses(const Instruction &inst, std::vector<void *> &operands,
                         std::vector<void *> &results) {
  operands.clear();
  results.clear();
  for (int32_t id : inst.operands)
    operands.push_back(deviceAddress(id));
  for (int32_t id : inst.results)
    results.push_back(deviceAddress(id));
}

Expected<CollectiveQueue *> Executor::hostWorkQueue() {
  if (!hostQueueMade_) {
    MOERT_ASSIGN_OR_RETURN(hostQueue_, makeHostWorkQueue(device_));
    hostQueueMade_ = true;
  }
  if (hostQueue_ && hostWorkspaceBytes_ > 0 && !hostWorkspace_.data()) {
    MOERT_ASSIGN_OR_RETURN(
        hostWorkspace_,
        device_.allocate(static_cast<size_t>(hostWorkspaceBytes_),
                         "host-work workspace"));
  }
  return hostQueue_.get();
}

Status Executor::startOn(size_t i, const RunContext &context,
                         CollectiveQueue &queue, hal::DeviceBuffer &scratch) {
  const Instruction &inst = program_.instructions[i];
  const KernelInfo &info = *kernels_[i];
  std::vector<void *> operands, results;
  addresses(inst, operands, results);
  // Scratch of its own: the compute kernels run meanwhile and use the
  // executor's workspace (the CPU's collective kernels ask for none).
  void *workspace = scratch.data();
  const size_t workspaceBytes = scratch.size();
  void *stream = queue.stream();
  const uint64_t key = runKey_;
  auto work = [this, i, &inst, &info, &context, operands, results, workspace,
               workspaceBytes, stream, key]() -> Status {
    KernelCall call(inst, program_, context, operands, results, device_,
                    workspace, workspaceBytes, errorRecord_.data(), stream);
    call.setScalarKey(key);
    Status status = info.fn(call);
    if (!status.ok())
      return status.withContext(describeInstruction(i, inst));
    return Status::success();
  };
  Status started = queue.start(i, std::move(work));
  if (!started.ok())
    return started.withContext(describeInstruction(i, inst));
  return Status::success();
}

Status Executor::checkErrorRecord() {
  if (!errorRecord_.data())
    return Status::success();
  DeviceErrorRecord record{};
  MOERT_RETURN_IF_ERROR(
      device_.copyToHost(&record, errorRecord_.data(), sizeof(record)));
  if (record.code == kNoDeviceError)
    return Status::success();
  DeviceErrorRecord clear{kNoDeviceError, 0, ~0ull};
  MOERT_RETURN_IF_ERROR(
      device_.copyToDevice(errorRecord_.data(), &clear, sizeof(clear)));
  // The first instruction that can report this kind of error names it: the
  // bad values come from the batch, which the first such op reads first.
  auto reports = [&](const std::string &kernel) {
    if (record.code == kTokenOutOfVocabulary)
      return kernel == "moe.embedding" || kernel == "moe.embedding_grad";
    if (record.code == kLabelOutOfRange)
      return kernel == "moe.cross_entropy" || kernel == "moe.cross_entropy_grad";
    if (record.code == kPositionOutOfRange)
      return kernel == "moe.embedding_at";
    if (record.code == kCacheOffsetOutOfRange)
      return kernel == "moe.cache_update";
    if (record.code == kExpertOutOfRange || record.code == kSlotOutOfRange ||
        record.code == kSlotTakenTwice)
      return kernel == "moe.dispatch" || kernel == "moe.combine" ||
             kernel == "moe.dispatch_grad" || kernel == "moe.combine_grad";
    return false;
  };
  std::string where = "a kernel on " + device_.description();
  for (size_t i = 0; i < program_.instructions.size(); ++i)
    if (reports(program_.instructions[i].kernel)) {
      where = describeInstruction(i, program_.instructions[i]);
      break;
    }
  std::string index = std::to_string(record.index);
  switch (record.code) {
  case kTokenOutOfVocabulary:
    return outOfRange(where + ": token #" + index +
                      " has an id outside the vocabulary");
  case kLabelOutOfRange:
    return outOfRange(where + ": label #" + index +
                      " is outside the vocabulary and not the ignore index");
  case kExpertOutOfRange:
    return outOfRange(where + ": routing entry #" + index +
                      " (token * top_k + choice) names an expert outside "
                      "the buffer");
  case kSlotOutOfRange:
    return outOfRange(where + ": routing entry #" + index +
                      " (token * top_k + choice) has a slot outside [-1, "
                      "capacity)");
  case kSlotTakenTwice:
    return invalidArgument(where + ": routing entry #" + index +
                           " (token * top_k + choice) takes an (expert, "
                           "slot) another entry already took");
  case kPositionOutOfRange:
  case kCacheOffsetOutOfRange:
    return outOfRange(where + ": position offset " +
                      std::to_string(static_cast<int64_t>(
                          static_cast<int32_t>(record.index))) +
                      " is negative or leaves no room for the new positions");
  default:
    return internalError(where + ": device error code " +
                         std::to_string(record.code) + " at element " + index);
  }
}

Status Executor::runInstruction(size_t i, const RunContext &context) {
  const bool staging = !device_.hostAccessible();
  const Instruction &inst = program_.instructions[i];
  const KernelInfo &info = *kernels_[i];
  std::vector<void *> operands, results;
  // Host-resident operands and results of a kernel on a device the host
  // cannot address go through staging_: operands are copied in (which
  // waits for the work before), results copied back after the call.
  int64_t stagingOffset = 0;
  auto stage = [&](int32_t id) {
    void *host = staging_.data() + stagingOffset;
    stagingOffset += alignUp(program_.buffers[id].type.byteSize());
    return host;
  };
  for (size_t k = 0; k < inst.operands.size(); ++k) {
    int32_t id = inst.operands[k];
    const bool inHostMemory = program_.buffers[id].kind == BufferKind::Host;
    if (staging && !inHostMemory && k < 32 && (info.hostOperands >> k & 1u)) {
      void *host = stage(id);
      Status copied = device_.copyToHost(
          host, deviceAddress(id),
          static_cast<size_t>(program_.buffers[id].type.byteSize()));
      if (!copied.ok())
        return copied.withContext(describeInstruction(i, inst));
      operands.push_back(host);
    } else {
      operands.push_back(deviceAddress(id));
    }
  }
  std::vector<std::pair<void *, int32_t>> stagedResults;
  for (size_t k = 0; k < inst.results.size(); ++k) {
    int32_t id = inst.results[k];
    const bool inHostMemory = program_.buffers[id].kind == BufferKind::Host;
    if (staging && !inHostMemory && k < 32 && (info.hostResults >> k & 1u)) {
      void *host = stage(id);
      // A result updated in place starts from the buffer's contents.
      Status copied = device_.copyToHost(
          host, deviceAddress(id),
          static_cast<size_t>(program_.buffers[id].type.byteSize()));
      if (!copied.ok())
        return copied.withContext(describeInstruction(i, inst));
      results.push_back(host);
      stagedResults.emplace_back(host, id);
    } else {
      results.push_back(deviceAddress(id));
    }
  }
  KernelCall call(inst, program_, context, std::move(operands),
                  std::move(results), device_, workspace_.data(),
                  workspace_.size(), errorRecord_.data());
  call.setScalarKey(runKey_);
  Status status = info.fn(call);
  if (!status.ok())
    return status.withContext(describeInstruction(i, inst));
  for (auto [host, id] : stagedResults) {
    Status copied = device_.copyToDevice(
        deviceAddress(id), host,
        static_cast<size_t>(program_.buffers[id].type.byteSize()));
    if (!copied.ok())
      return copied.withContext(describeInstruction(i, inst));
  }
  return Status::success();
}

//===----------------------------------------------------------------------===//
// KernelCall
//===----------------------------------------------------------------------===//

Status KernelCall::error(StatusCode code, const std::string &message) const {
  return Status(code, message);
}

Expected<int64_t> KernelCall::intAttr(const std::string &name) const {
  auto it = instruction_.attrs.find(name);
  if (it == instruction_.attrs.end())
    return invalidArgument("missing integer attribute '" + name + "'");
  if (const int64_t *v = std::get_if<int64_t>(&it->second))
    return *v;
  return invalidArgument("attribute '" + name + "' must be an integer");
}

Expected<double> KernelCall::floatAttr(const std::string &name) const {
  auto it = instruction_.attrs.find(name);
  if (it == instruction_.attrs.end())
    return invalidArgument("missing float attribute '" + name + "'");
  if (const double *v = std::get_if<double>(&it->second))
    return *v;
  if (const int64_t *v = std::get_if<int64_t>(&it->second))
    return static_cast<double>(*v);
  return invalidArgument("attribute '" + name + "' must be a number");
}

Expected<std::string> KernelCall::stringAttr(const std::string &name) const {
  auto it = instruction_.attrs.find(name);
  if (it == instruction_.attrs.end())
    return invalidArgument("missing string attribute '" + name + "'");
  if (const std::string *v = std::get_if<std::string>(&it->second))
    return *v;
  return invalidArgument("attribute '" + name + "' must be a string");
}

Expected<std::vector<int64_t>>
KernelCall::intVectorAttr(const std::string &name) const {
  auto it = instruction_.attrs.find(name);
  if (it == instruction_.attrs.end())
    return invalidArgument("missing integer-vector attribute '" + name + "'");
  if (const auto *v = std::get_if<std::vector<int64_t>>(&it->second))
    return *v;
  return invalidArgument("attribute '" + name +
                         "' must be a vector of integers");
}

Expected<GroupPosition>
KernelCall::groupPosition(const std::vector<int> &axes) const {
  const std::vector<int64_t> &shape = program_.gridShape;
  const comm::GridCommunicators *grid = context_.grid;
  GroupPosition position;
  for (size_t a = 0; a < axes.size(); ++a) {
    int axis = axes[a];
    if (axis < 0 || axis >= static_cast<int>(shape.size()) ||
        (a > 0 && axis <= axes[a - 1]))
      return invalidArgument("grid axis " + std::to_string(axis) +
                             " is not an increasing axis of the " +
                             std::to_string(shape.size()) + "-axis grid");
    int64_t coordinate = grid ? grid->coords()[axis] : 0;
    position.index = position.index * shape[axis] + coordinate;
    position.size *= shape[axis];
  }
  if (position.size > 1 && !grid)
    return failedPrecondition(
        "the instruction spans a group of " + std::to_string(position.size) +
        " ranks, but this process runs without grid communicators (a "
        "partitioned plan runs under mpirun)");
  return position;
}

Expected<GroupPosition> KernelCall::shardPosition() const {
  if (!hasAttr("shard_axes"))
    return GroupPosition();
  MOERT_ASSIGN_OR_RETURN(std::vector<int64_t> values,
                         intVectorAttr("shard_axes"));
  std::vector<int> axes;
  for (int64_t v : values) {
    if (v < 0 || v >= static_cast<int64_t>(program_.gridShape.size()))
      return invalidArgument("shard_axes names grid axis " + std::to_string(v) +
                             ", but the grid has " +
                             std::to_string(program_.gridShape.size()) +
                             " axes");
    axes.push_back(static_cast<int>(v));
  }
  Expected<GroupPosition> position = groupPosition(axes);
  if (!position.ok())
    return position.takeStatus().withContext("shard_axes");
  return position;
}

bool KernelCall::flag(const std::string &name) const {
  auto it = instruction_.attrs.find(name);
  if (it == instruction_.attrs.end())
    return false;
  if (const int64_t *v = std::get_if<int64_t>(&it->second))
    return *v != 0;
  return true;
}

Status KernelCall::expectOperand(size_t i, DType dtype) const {
  if (operandType(i).dtype == dtype)
    return Status::success();
  return invalidArgument("operand #" + std::to_string(i) + " must be " +
                         dtypeName(dtype) + ", found " + operandType(i).str());
}

Status KernelCall::expectResult(size_t i, DType dtype) const {
  if (resultType(i).dtype == dtype)
    return Status::success();
  return invalidArgument("result #" + std::to_string(i) + " must be " +
                         dtypeName(dtype) + ", found " + resultType(i).str());
}

} // namespace exec
} // namespace moert
