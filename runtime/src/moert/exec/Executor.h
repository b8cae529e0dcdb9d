//===- Executor.h - Runs a Program on the CPU -----------------------------===//
//
// One arena (planned by the compiler) holds every step temporary; the
// persistent region holds what lives across steps (parameters, optimizer
// moments, the batch, the step counter), which the caller fills and reads
// through bufferData(). Kernels are resolved by name once, when the executor
// is made, so an unknown or malformed instruction is reported before
// anything runs.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_EXECUTOR_H
#define MOERT_EXEC_EXECUTOR_H

#include "moert/exec/Program.h"

#include <memory>
#include <utility>

namespace moert {
namespace comm {
class GridCommunicators;
} // namespace comm

namespace exec {

/// Per-run values every kernel may read.
struct RunContext {
  uint64_t seed = 0;    // the run's random seed
  uint32_t step = 0;    // the training step (keys dropout and gate noise)
  bool training = true; // dropout active, gate noise drawn
  /// This process's communicators on the program's grid (its shape must be
  /// Program::gridShape). Null for a single process: then collectives may
  /// only span axes of size 1 (they copy) and the process sits at
  /// coordinate 0 of every axis.
  comm::GridCommunicators *grid = nullptr;
};

/// Where this process sits in the group of some grid axes: `index` is the
/// row-major index of its coordinates over those axes (the group rank of
/// the communicator over them), `size` the product of their sizes.
struct GroupPosition {
  int64_t index = 0;
  int64_t size = 1;
};

class KernelCall;
using KernelFn = Status (*)(KernelCall &call);

/// One kernel of the table: its function and how many operands and results
/// an instruction of it has.
struct KernelInfo {
  KernelFn fn = nullptr;
  int minOperands = 0, maxOperands = 0, numResults = 0;
};

/// The kernel registered for a dialect op name, or null.
const KernelInfo *lookupKernel(const std::string &name);

class Executor {
public:
  /// Verifies `program` and resolves every instruction's kernel.
  static Expected<std::unique_ptr<Executor>> create(Program program);

  /// Runs the instruction stream once.
  Status run(const RunContext &context);

  /// The data of buffer `id` (writable for arena and persistent buffers).
  void *bufferData(int32_t id);
  const void *bufferData(int32_t id) const;
  const Program &program() const { return program_; }
  /// Bytes allocated for the arena and the persistent region (the plan's).
  int64_t arenaBytes() const { return program_.arenaBytes; }
  int64_t persistentBytes() const { return program_.persistentBytes; }

private:
  explicit Executor(Program program);

  Program program_;
  std::vector<const KernelInfo *> kernels_;
  std::unique_ptr<uint8_t[], void (*)(void *)> arena_{nullptr, nullptr};
  std::unique_ptr<uint8_t[], void (*)(void *)> persistent_{nullptr, nullptr};
  std::vector<std::vector<uint8_t>> constants_;
};

/// What a kernel sees of the instruction it runs.
class KernelCall {
public:
  KernelCall(const Instruction &instruction, const Program &program,
             const RunContext &context, std::vector<void *> operands,
             std::vector<void *> results)
      : instruction_(instruction), program_(program), context_(context),
        operands_(std::move(operands)), results_(std::move(results)) {}

  const RunContext &context() const { return context_; }
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
};

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_EXECUTOR_H
