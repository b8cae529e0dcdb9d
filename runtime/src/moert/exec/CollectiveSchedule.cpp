//===- CollectiveSchedule.cpp - Where asynchronous collectives end --------===//
#include "moert/exec/CollectiveSchedule.h"

#include <algorithm>
#include <functional>

namespace moert {
namespace exec {

bool isCommunicatingCollective(const std::string &kernel) {
  return kernel == "shard.all_reduce" || kernel == "shard.all_gather" ||
         kernel == "shard.reduce_scatter" || kernel == "shard.all_to_all";
}

ByteRange bufferBytes(const Program &program, int32_t id) {
  const Buffer &b = program.buffers[static_cast<size_t>(id)];
  ByteRange range;
  if (b.kind == BufferKind::Constant)
    return range;
  range.region = static_cast<int>(b.kind);
  range.begin = b.offset;
  range.end = b.offset + b.type.byteSize();
  return range;
}

size_t CollectiveSchedule::numAsynchronous() const {
  size_t count = 0;
  for (bool a : asynchronous)
    count += a ? 1 : 0;
  return count;
}

size_t CollectiveSchedule::overlappedInstructions() const {
  size_t total = 0;
  for (size_t i = 0; i < asynchronous.size(); ++i)
    if (asynchronous[i])
      total += waitPoint[i] - i - 1;
  return total;
}

namespace {

/// Whether the group over the collective's axes has more than one rank.
bool communicates(const Instruction &inst, const Program &program) {
  if (!inst.collective || !isCommunicatingCollective(inst.kernel))
    return false;
  int64_t size = 1;
  for (int axis : inst.collective->axes)
    if (axis >= 0 && axis < static_cast<int>(program.gridShape.size()))
      size *= program.gridShape[static_cast<size_t>(axis)];
  return size > 1;
}

/// Whether instruction `later` must not start before the collective
/// `earlier` (asynchronous) has completed: it reads bytes the collective
/// writes, or writes bytes the collective reads or writes.
bool conflicts(const Program &program, const Instruction &earlier,
               const Instruction &later) {
  std::vector<ByteRange> reads, writes;
  for (int32_t id : earlier.operands)
    reads.push_back(bufferBytes(program, id));
  for (int32_t id : earlier.results)
    writes.push_back(bufferBytes(program, id));
  for (int32_t id : later.operands) {
    const ByteRange r = bufferBytes(program, id);
    for (const ByteRange &w : writes)
      if (r.overlaps(w))
        return true;
  }
  for (int32_t id : later.results) {
    const ByteRange w = bufferBytes(program, id);
    for (const ByteRange &r : reads)
      if (w.overlaps(r))
        return true;
    for (const ByteRange &other : writes)
      if (w.overlaps(other))
        return true;
  }
  return false;
}

std::vector<int> sortedAxes(const Instruction &inst) {
  std::vector<int> axes = inst.collective->axes;
  std::sort(axes.begin(), axes.end());
  return axes;
}

/// Wait points of the instructions among [0, end) that `queued` marks (see
/// scheduleCollectives and scheduleHostWork).
CollectiveSchedule
waitPoints(const Program &program, const CollectiveScheduleOptions &options,
           size_t end, const std::function<bool(const Instruction &)> &queued) {
  const size_t size = program.instructions.size();
  const size_t n = std::min(end, size);
  CollectiveSchedule result;
  result.asynchronous.assign(size, false);
  for (size_t i = 0; i < n; ++i)
    result.asynchronous[i] = queued(program.instructions[i]);
  result.waitBefore.assign(size, {});
  result.waitPoint.assign(size, n);
  for (size_t i = 0; i < n; ++i) {
    if (!result.asynchronous[i])
      continue;
    const Instruction &started = program.instructions[i];
    size_t point = n;
    for (size_t j = i + 1; j < n && point == n; ++j) {
      const Instruction &later = program.instructions[j];
      if (options.orderedQueue && result.asynchronous[j])
        continue; // runs after it on the same queue
      if (conflicts(program, started, later))
        point = j;
      else if (!options.orderedQueue && options.oneAtATimePerGroup &&
               result.asynchronous[j] &&
               sortedAxes(later) == sortedAxes(started))
        point = j;
    }
    result.waitPoint[i] = point;
    if (point == n)
      result.waitAtEnd.push_back(i);
    else
      result.waitBefore[point].push_back(i);
  }
  return result;
}

} // namespace

CollectiveSchedule scheduleCollectives(const Program &program,
                                       const CollectiveScheduleOptions &options,
                                       size_t end) {
  return waitPoints(program, options, end, [&](const Instruction &inst) {
    return communicates(inst, program);
  });
}

bool touchesHostMemory(const Instruction &inst, const Program &program) {
  for (const std::vector<int32_t> *ids : {&inst.operands, &inst.results})
    for (int32_t id : *ids)
      if (program.buffers[static_cast<size_t>(id)].kind == BufferKind::Host)
        return true;
  return false;
}

CollectiveSchedule scheduleHostWork(const Program &program, size_t end) {
  return waitPoints(program, {}, end, [&](const Instruction &inst) {
    return touchesHostMemory(inst, program);
  });
}

bool optimizerScalarsSteady(const Program &p) {
  const size_t end = p.stepEnd();
  size_t first = end, last = end;
  std::vector<ByteRange> scalars;
  for (size_t i = 0; i < end; ++i) {
    const Instruction &inst = p.instructions[i];
    if (inst.kernel != "moe.adamw" || inst.operands.size() < 7)
      continue;
    if (first == end)
      first = i;
    last = i;
    for (size_t k = 4; k < 7; ++k)
      scalars.push_back(bufferBytes(p, inst.operands[k]));
  }
  for (size_t i = first; i < last; ++i)
    for (int32_t id : p.instructions[i].results) {
      const ByteRange written = bufferBytes(p, id);
      for (const ByteRange &scalar : scalars)
        if (written.overlaps(scalar))
          return false;
    }
  return first != end;
}

} // namespace exec
} // namespace moert
