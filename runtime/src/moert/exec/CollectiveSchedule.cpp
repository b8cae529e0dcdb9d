//===- CollectiveSchedule.cpp - Where asynchronous collectives end --------===//
#include "moert/exec/CollectiveSchedule.h"

#include <algorithm>

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

} // namespace

CollectiveSchedule scheduleCollectives(const Program &program,
                                       const CollectiveScheduleOptions &options,
                                       size_t end) {
  const size_t size = program.instructions.size();
  const size_t n = std::min(end, size);
  CollectiveSchedule schedule;
  schedule.asynchronous.assign(size, false);
  schedule.waitBefore.assign(size, {});
  schedule.waitPoint.assign(size, n);
  for (size_t i = 0; i < n; ++i)
    schedule.asynchronous[i] = communicates(program.instructions[i], program);
  for (size_t i = 0; i < n; ++i) {
    if (!schedule.asynchronous[i])
      continue;
    const Instruction &collective = program.instructions[i];
    size_t point = n;
    for (size_t j = i + 1; j < n && point == n; ++j) {
      const Instruction &later = program.instructions[j];
      if (options.orderedQueue && schedule.asynchronous[j])
        continue; // runs after it on the same queue
      if (conflicts(program, collective, later))
        point = j;
      else if (!options.orderedQueue && options.oneAtATimePerGroup &&
               schedule.asynchronous[j] &&
               sortedAxes(later) == sortedAxes(collective))
        point = j;
    }
    schedule.waitPoint[i] = point;
    if (point == n)
      schedule.waitAtEnd.push_back(i);
    else
      schedule.waitBefore[point].push_back(i);
  }
  return schedule;
}

} // namespace exec
} // namespace moert
