//===- Executor.h - Runs a Program on a device ----------------------------===//
//
// One arena (planned by the compiler) holds every step temporary; the
// persistent region holds what lives across steps (parameters, optimizer
// moments, the batch, the step counter), which the caller fills and reads
// with writeBuffer() / readBuffer(). Both are single allocations on the
// device the executor was made for (hal::Device: the CPU or a CUDA GPU),
// and so is the workspace, sized once for the largest scratch any kernel of
// the program asks for. Kernels are resolved by (op, backend) once, when
// the executor is made, so an unknown or malformed instruction, or an op
// the backend lacks, is reported before anything runs.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_EXECUTOR_H
#define MOERT_EXEC_EXECUTOR_H

#include "moert/exec/CollectiveSchedule.h"
#include "moert/exec/KernelRegistry.h"
#include "moert/exec/Program.h"
#include "moert/hal/Device.h"

#include <memory>
#include <utility>

namespace moert {
namespace comm {
class GridCommunicators;
} // namespace comm

namespace exec {

class CollectiveQueue;

/// Per-run values every kernel may read.
struct RunContext {
  uint64_t seed = 0;    // the run's random seed
  uint32_t step = 0;    // the training step (keys dropout and gate noise)
  bool training = true; // dropout active, gate noise drawn
  /// Evaluation on a plan compiled for training: its dispatch buffers hold
  /// the training capacity, so gates keep the training capacity factor
  /// (noise and dropout still off).
  bool trainingCapacity = false;
  /// This process's communicators on the program's grid (its shape must be
  /// Program::gridShape). Null for a single process: then collectives may
  /// only span axes of size 1 (they copy) and the process sits at
  /// coordinate 0 of every axis.
  comm::GridCommunicators *grid = nullptr;

  /// A run in evaluation mode (no dropout, no gate noise) keyed by `seed`.
  static RunContext evaluation(uint64_t seed) {
    RunContext context;
    context.seed = seed;
    context.step = 1;
    context.training = false;
    return context;
  }
};

/// Where this process sits in the group of some grid axes: `index` is the
/// row-major index of its coordinates over those axes (the group rank of
/// the communicator over them), `size` the product of their sizes.
struct GroupPosition {
  int64_t index = 0;
  int64_t size = 1;
};

/// The kernel the CPU backend registered for a dialect op name
/// ("moe.linear"), or null (benchmarks that time kernels one by one).
const KernelInfo *lookupKernel(const std::string &name);

class Executor {
public:
  /// Verifies `program`, resolves every instruction's kernel on `device`'s
  /// backend and allocates the arena, persistent region, constants and
  /// workspace there (zero-filled). `device` must outlive the executor.
  static Expected<std::unique_ptr<Executor>> create(Program program,
                                                    hal::Device &device);
  /// The same on the process's CPU device.
  static Expected<std::unique_ptr<Executor>> create(Program program);
  /// An executor of `program` on `owner`'s device that uses `owner`'s
  /// persistent region, host region and arena instead of allocating its own
  /// (length buckets: plans of one model at different batch shapes whose
  /// persistent state lies at the same offsets, run one at a time;
  /// runner/BucketTrainer.h checks the layouts). Each of the program's
  /// regions must fit in `owner`'s; the workspace, constants and staging
  /// copies are its own. `owner` must outlive the executor.
  static Expected<std::unique_ptr<Executor>> createSharing(Program program,
                                                           Executor &owner);

  ~Executor();

  /// Enqueues the training step (the instructions before the first entry
  /// point) once on the device's stream. Errors of asynchronous work
  /// surface here or at the next synchronizing call. With collective
  /// overlap (the default) and a grid of more than one rank, the step's
  /// collectives that communicate run on a queue of their own
  /// (CollectiveQueue.h) while the instructions after them compute, each
  /// waited for at its wait point (CollectiveSchedule.h) and all of them
  /// before run() returns; the results are the same bits as without.
  Status run(const RunContext &context);
  /// The same for the instructions of one entry point (Program.h); its
  /// collectives run in program order (no overlap).
  Status run(const EntryPoint &entry, const RunContext &context);
  /// Enqueues instruction `index` alone (run() is all of them in order;
  /// profilers time them one by one), collectives included (synchronous).
  /// The grid check is run()'s.
  Status runInstruction(size_t index, const RunContext &context);

  /// Whether run() overlaps collectives with compute where the grid and
  /// device allow it (see CollectiveQueue.h for where they stay
  /// synchronous). On by default.
  void setCollectiveOverlap(bool on) { overlapCollectives_ = on; }
  bool collectiveOverlap() const { return overlapCollectives_; }
  /// Whether the last run() started collectives asynchronously.
  bool lastRunOverlapped() const { return lastRunOverlapped_; }
  /// Where each collective of the training step is waited for.
  const CollectiveSchedule &collectiveSchedule() const { return schedule_; }

  /// Whether run() starts the offload's host work (the instructions that
  /// touch host memory: gradient copies to the host, the host AdamW, the
  /// rounding of host masters into their device copies) on a queue of its
  /// own so that it overlaps the device's work (makeHostWorkQueue: a
  /// thread on the CPU, a transfer stream on CUDA), each waited for at its
  /// wait point (scheduleHostWork); the results are the same bits either
  /// way. On by default on a device the host cannot address (a GPU: the
  /// copies run on a transfer stream while the host updates); off by
  /// default on the CPU backend, whose kernels already use the host's
  /// cores (a host-work thread beside them made the demo's offloaded step
  /// 1.1-1.3x slower on 2 cores: moe-bench-offload).
  void setHostWorkOverlap(bool on) { overlapHostWork_ = on; }
  bool hostWorkOverlap() const { return overlapHostWork_; }
  /// Whether the last run() started host work asynchronously.
  bool lastRunOverlappedHostWork() const { return lastRunHostWorkOverlapped_; }
  /// Where each host-work instruction of the training step is waited for.
  const CollectiveSchedule &hostWorkSchedule() const { return hostSchedule_; }

  /// Copies the whole of buffer `id` from / to host memory (`bytes` must be
  /// its size). Reading waits for the work enqueued before.
  Status readBuffer(int32_t id, void *host, size_t bytes) const;
  Status writeBuffer(int32_t id, const void *host, size_t bytes);
  /// The device address of buffer `id`.
  void *deviceAddress(int32_t id);
  const void *deviceAddress(int32_t id) const;
  /// The data of buffer `id` in host memory; only for a host-accessible
  /// device (the CPU), null otherwise.
  void *bufferData(int32_t id);
  const void *bufferData(int32_t id) const;

  const Program &program() const { return program_; }
  hal::Device &device() const { return device_; }
  /// Bytes allocated for the arena and the persistent region (the plan's;
  /// a sharing executor allocates none and uses at least these many of its
  /// owner's).
  int64_t arenaBytes() const { return program_.arenaBytes; }
  int64_t persistentBytes() const { return program_.persistentBytes; }
  /// Whether the arena, persistent and host regions are another executor's
  /// (createSharing).
  bool sharesMemory() const { return sharedOwner_ != nullptr; }
  /// Offloaded state kept in host memory (0 unless offloaded).
  int64_t hostBytes() const { return program_.hostBytes; }
  /// Scratch shared by the kernels (the largest any instruction asks for).
  int64_t workspaceBytes() const {
    return static_cast<int64_t>(workspace_.size());
  }

private:
  Executor(Program program, hal::Device &device);
  /// create() and createSharing(): verifies the program, resolves its
  /// kernels and allocates; with `owner`, the arena, persistent and host
  /// regions are `owner`'s.
  static Expected<std::unique_ptr<Executor>>
  make(Program program, hal::Device &device, Executor *owner);

  Program program_;
  hal::Device &device_;
  std::vector<const KernelInfo *> kernels_;
  hal::DeviceBuffer arena_, persistent_, constants_, workspace_;
  /// The host region (BufferKind::Host: offloaded optimizer state), in host
  /// memory whatever the device.
  std::unique_ptr<uint8_t[]> hostRegion_;
  uint8_t *hostBase_ = nullptr; // hostRegion_ aligned to 64 bytes
  /// createSharing: the executor whose arena, persistent and host regions
  /// this one uses (arena_, persistent_ and hostRegion_ stay empty), and
  /// their bases.
  Executor *sharedOwner_ = nullptr;
  uint8_t *arenaBase_ = nullptr, *persistentBase_ = nullptr;
  /// Where device kernels record data-dependent errors (DeviceErrors.h);
  /// read at the end of each run on devices the host cannot address.
  hal::DeviceBuffer errorRecord_;
  Status checkErrorRecord();
  /// Offset of each constant buffer in constants_ (-1 for other kinds).
  std::vector<int64_t> constantOffsets_;
  /// Host copies for kernels that need operands/results on the host, when
  /// the device is not host-accessible (sized for the largest such call).
  std::vector<uint8_t> staging_;
  /// Host memory the device page-locked (the host region, staging_),
  /// unpinned when the executor goes.
  std::vector<void *> pinned_;

  /// The operand and result addresses of instruction `i` (no staging).
  void addresses(const Instruction &inst, std::vector<void *> &operands,
                 std::vector<void *> &results);
  /// The queue for `grid` (made on first use, again for another grid);
  /// null when collectives stay synchronous there.
  Expected<CollectiveQueue *> queueFor(comm::GridCommunicators &grid);

  CollectiveSchedule schedule_;
  bool overlapCollectives_ = true;
  bool lastRunOverlapped_ = false;
  /// Scratch of the collectives started on a queue (their kernels run
  /// beside the compute kernels, which use workspace_): the largest any
  /// asynchronous collective asks for, allocated with the first queue.
  int64_t collectiveWorkspaceBytes_ = 0;
  hal::DeviceBuffer collectiveWorkspace_;
  comm::GridCommunicators *queueGrid_ = nullptr;
  /// Where the offload's host work of the step is waited for, whether it
  /// overlaps, and its queue (made on first use; null where the build has
  /// none for the device) with its scratch.
  CollectiveSchedule hostSchedule_;
  /// Whether no instruction between the first and the last moe.adamw
  /// writes a scalar operand of one (KernelCall::scalarKey), and the key
  /// of the run in progress (0 outside run()).
  bool optimizerScalarsSteady_ = false;
  uint64_t runKey_ = 0;
  bool overlapHostWork_ = true;
  bool lastRunHostWorkOverlapped_ = false;
  bool hostQueueMade_ = false;
  int64_t hostWorkspaceBytes_ = 0;
  hal::DeviceBuffer hostWorkspace_;
  /// The host-work queue, made on first use.
  Expected<CollectiveQueue *> hostWorkQueue();
  /// Starts instruction `i` on `queue` with `workspace` as its scratch.
  Status startOn(size_t i, const RunContext &context, CollectiveQueue &queue,
                 hal::DeviceBuffer &workspace);
  /// Last: destroyed (drained, their threads joined) before the buffers
  /// their instructions use.
  std::unique_ptr<CollectiveQueue> queue_;
  std::unique_ptr<CollectiveQueue> hostQueue_;
};

/// What a kernel sees of the instruction it runs.
class KernelCall {
public:
  KernelCall(const Instruction &instruction, const Program &program,
             const RunContext &context, std::vector<void *> operands,
             std::vector<void *> results, hal::Device &device,
             void *workspace = nullptr, size_t workspaceBytes = 0,
             void *errorRecord = nullptr, void *stream = nullptr)
      : instruction_(instruction), program_(program), context_(context),
        operands_(std::move(operands)), results_(std::move(results)),
        device_(device), workspace_(workspace), workspaceBytes_(workspaceBytes),
        errorRecord_(errorRecord), stream_(stream) {}

  const RunContext &context() const { return context_; }
  /// The device the kernel runs on, and the native stream it enqueues its
  /// work on (cudaStream_t on CUDA, null on the CPU): the device's, or the
  /// collective queue's for a collective started asynchronously.
  hal::Device &device() const { return device_; }
  void *stream() const { return stream_ ? stream_ : device_.nativeStream(); }
  /// Scratch for this call: the size the kernel's WorkspaceFn returned for
  /// this instruction (or more), on the device.
  void *workspace() const { return workspace_; }
  size_t workspaceBytes() const { return workspaceBytes_; }
  /// The run's DeviceErrorRecord (exec/DeviceErrors.h) on the device: a
  /// kernel that cannot return an error synchronously (a bad token id seen
  /// on the GPU) records it there and skips the element; the executor
  /// reports it at the end of the run. Null where the executor has none.
  void *errorRecord() const { return errorRecord_; }
  /// A key the calls of one run() share when no instruction between them
  /// writes the optimizer's scalar operands (AdamW's learning rate, clip
  /// scale and step; Executor checks the program once): a kernel that
  /// reads those on the host may read them once per key. 0: no promise.
  uint64_t scalarKey() const { return scalarKey_; }
  void setScalarKey(uint64_t key) { scalarKey_ = key; }
  const Instruction &instruction() const { return instruction_; }
  const Program &program() const { return program_; }
  size_t numOperands() const { return operands_.size(); }

  const TensorType &operandType(size_t i) const {
    return program_.buffers[instruction_.operands[i]].type;
  }
  const TensorType &resultType(size_t i) const {
    return program_.buffers[instruction_.results[i]].type;
  }
  template <typename T> const T *operand(size_t i) const {
    return static_cast<const T *>(operands_[i]);
  }
  template <typename T> T *result(size_t i) const {
    return static_cast<T *>(results_[i]);
  }

  /// Attributes, with an error naming the instruction when missing or of
  /// the wrong kind.
  Expected<int64_t> intAttr(const std::string &name) const;
  Expected<double> floatAttr(const std::string &name) const;
  Expected<std::string> stringAttr(const std::string &name) const;
  Expected<std::vector<int64_t>> intVectorAttr(const std::string &name) const;
  /// A unit/bool attribute: absent means false.
  bool flag(const std::string &name) const;
  bool hasAttr(const std::string &name) const {
    return instruction_.attrs.count(name) != 0;
  }

  /// This process's position in the group of grid `axes` (increasing, in
  /// range of the program's grid). A group of more than one rank needs
  /// the context's grid communicators.
  Expected<GroupPosition> groupPosition(const std::vector<int> &axes) const;
  /// The position over the optional attribute `shard_axes` (an operand
  /// that is one token-shard of a batch-major tensor); absent = {0, 1}.
  Expected<GroupPosition> shardPosition() const;

  /// An error about this instruction: "moe.linear at <loc>: <message>".
  Status error(StatusCode code, const std::string &message) const;
  /// Checks the element type of operand / result `i`.
  Status expectOperand(size_t i, DType dtype) const;
  Status expectResult(size_t i, DType dtype) const;

private:
  const Instruction &instruction_;
  const Program &program_;
  const RunContext &context_;
  std::vector<void *> operands_, results_;
  hal::Device &device_;
  void *workspace_;
  size_t workspaceBytes_;
  void *errorRecord_;
  void *stream_;
  uint64_t scalarKey_ = 0;
};

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_EXECUTOR_H
