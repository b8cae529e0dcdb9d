//===- CollectiveSchedule.h - Where async collectives end ---*- C++ -*-===//
//
// The executor may start a collective instruction (all_reduce, all_gather,
// reduce_scatter, all_to_all over a group of more than one rank) and go on
// with the instructions after it while the collective runs on a queue of
// its own (a communication thread on the CPU, a second stream on CUDA).
// This analysis says, once per program, where each such collective must
// have completed: before the first later instruction that
//   - reads bytes of its result (a later operand overlaps the result), or
//   - writes bytes of its operand or result (a later result overlaps
//     either: a write-after-read or write-after-write hazard),
// and at the latest at the end of the step. Overlap is decided on bytes,
// not buffer ids: the compiler's arena gives buffers whose live ranges are
// disjoint the same bytes, so a later instruction may write a collective's
// operand under another buffer's name. Buffers of different regions (arena,
// persistent, host) never share bytes; constants are never written.
//
// Later collectives on the same queue need no wait for an earlier one when
// the queue runs them one at a time in program order (the CPU thread's
// FIFO, one CUDA stream): they start after it has completed anyway. For a
// queue without that order, every hazard between collectives is a wait
// point too, and `oneAtATimePerGroup` adds one before the next collective
// over the same group of axes (a communicator that cannot run two
// collectives at once).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_COLLECTIVESCHEDULE_H
#define MOERT_EXEC_COLLECTIVESCHEDULE_H

#include "moert/exec/Program.h"

#include <cstddef>
#include <vector>

namespace moert {
namespace exec {

struct CollectiveScheduleOptions {
  /// The queue runs collectives one at a time in the order they were
  /// started (a FIFO thread or one stream).
  bool orderedQueue = true;
  /// Without an ordered queue: a group's communicator runs one collective
  /// at a time, so a collective must complete before the next one over the
  /// same axes starts.
  bool oneAtATimePerGroup = true;
};

/// For a program of n instructions.
struct CollectiveSchedule {
  /// Per instruction: whether it is started asynchronously (a collective
  /// that communicates: its group has more than one rank).
  std::vector<bool> asynchronous;
  /// Per instruction j: the asynchronous collectives (indices, increasing)
  /// that must have completed before j starts.
  std::vector<std::vector<size_t>> waitBefore;
  /// Per instruction: for an asynchronous collective, the index of the
  /// instruction before which it is waited for (the step's end index: at
  /// the end of the step); that end index for every other instruction too.
  std::vector<size_t> waitPoint;
  /// The asynchronous collectives still running at the end of the step
  /// (increasing); run() waits for them before it returns.
  std::vector<size_t> waitAtEnd;

  /// How many instructions are asynchronous.
  size_t numAsynchronous() const;
  /// Instructions each asynchronous collective overlaps with (waitPoint -
  /// index - 1), summed: 0 when every collective is waited for at once.
  size_t overlappedInstructions() const;
};

/// Whether `kernel` is one of the collectives that communicate
/// ("shard.all_reduce", "shard.all_gather", "shard.reduce_scatter",
/// "shard.all_to_all"; all_slice is a local copy).
bool isCommunicatingCollective(const std::string &kernel);

/// The bytes of buffer `id`: its region and [begin, end). Constants have
/// none (they are never written): `region` -1.
struct ByteRange {
  int region = -1;
  int64_t begin = 0, end = 0;
  bool overlaps(const ByteRange &other) const {
    return region >= 0 && region == other.region && begin < other.end &&
           other.begin < end;
  }
};
ByteRange bufferBytes(const Program &program, int32_t id);

/// The wait points of the collectives among `program`'s instructions
/// [0, end) (ids and offsets as verified by Program::verify): `end` is the
/// end of the step (the training step's instructions precede the entry
/// points, Program::stepEnd); instructions from `end` on are never
/// asynchronous. The vectors have one entry per instruction of the
/// program, and a wait point of `end` means the end of the step.
CollectiveSchedule
scheduleCollectives(const Program &program,
                    const CollectiveScheduleOptions &options = {},
                    size_t end = static_cast<size_t>(-1));

/// Whether `inst` reads or writes host memory (a BufferKind::Host operand
/// or result): the offload's host work, which the plan loader allows only
/// for moe.to_host (a gradient into its host buffer), moe.adamw (masters
/// and moments in host memory) and moe.convert of a host master into its
/// 16-bit device copy.
bool touchesHostMemory(const Instruction &inst, const Program &program);

/// The same analysis for the offload's host work: the instructions that
/// touch host memory are asynchronous (run() starts them on a queue of
/// their own, in program order, beside the compute and the collectives),
/// each waited for before the first later instruction that is not host
/// work and reads its result or writes its operand or result (a later
/// host-work instruction runs after it on the same queue).
CollectiveSchedule scheduleHostWork(const Program &program,
                                    size_t end = static_cast<size_t>(-1));

/// Whether the step's updates read their scalar operands (moe.adamw's
/// learning rate, clip scale and step, operands 4 to 6) unchanged: there is
/// an update, and no instruction between the first and the last update of
/// the step writes those bytes. Then a kernel that reads them on the host
/// may read them once per run (KernelCall::scalarKey).
bool optimizerScalarsSteady(const Program &program);

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_COLLECTIVESCHEDULE_H
