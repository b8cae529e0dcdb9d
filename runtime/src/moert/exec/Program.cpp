//===- Program.cpp - The executable form of a training plan ---------------===//
#include "moert/exec/Program.h"

#include <sstream>

namespace moert {
namespace exec {

int64_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::I64:
    return 8;
  case DType::Bool:
    return 1;
  case DType::BF16:
  case DType::F16:
    return 2;
  }
  return 0;
}

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "f32";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  case DType::Bool:
    return "i1";
  case DType::BF16:
    return "bf16";
  case DType::F16:
    return "f16";
  }
  return "?";
}

const char *reductionName(Reduction reduction) {
  switch (reduction) {
  case Reduction::None:
    return "none";
  case Reduction::Sum:
    return "sum";
  case Reduction::Mean:
    return "mean";
  case Reduction::Max:
    return "max";
  case Reduction::Min:
    return "min";
  }
  return "?";
}

int64_t TensorType::numElements() const {
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  return count;
}

std::string describeInstruction(size_t index, const Instruction &inst) {
  std::ostringstream os;
  os << "instruction #" << index << " (" << inst.kernel << ")";
  if (!inst.location.empty())
    os << " at " << inst.location;
  return os.str();
}

std::string TensorType::str() const {
  std::ostringstream os;
  os << dtypeName(dtype) << "[";
  for (size_t i = 0; i < shape.size(); ++i)
    os << (i ? "x" : "") << shape[i];
  os << "]";
  return os.str();
}

Status Program::verify() const {
  const int64_t numBuffers = static_cast<int64_t>(buffers.size());
  auto where = [](size_t index, const Instruction &inst) {
    std::ostringstream os;
    os << "instruction #" << index << " (" << inst.kernel << ")";
    if (!inst.location.empty())
      os << " at " << inst.location;
    return os.str();
  };
  for (int64_t id = 0; id < numBuffers; ++id) {
    const Buffer &b = buffers[id];
    for (int64_t d : b.type.shape)
      if (d < 0)
        return invalidArgument("buffer " + std::to_string(id) +
                               " has a negative dimension: " + b.type.str());
    if (b.kind == BufferKind::Constant)
      continue;
    const bool arena = b.kind == BufferKind::Arena;
    const bool host = b.kind == BufferKind::Host;
    const int64_t regionBytes =
        arena ? arenaBytes : host ? hostBytes : persistentBytes;
    if (b.offset < 0 || b.offset + b.type.byteSize() > regionBytes)
      return invalidArgument(
          "buffer " + std::to_string(id) + " (" + b.type.str() + ", bytes [" +
          std::to_string(b.offset) + ", " +
          std::to_string(b.offset + b.type.byteSize()) + ")) lies outside the " +
          (arena ? "arena" : host ? "host region" : "persistent region") +
          " of " + std::to_string(regionBytes) + " bytes");
  }
  for (size_t i = 0; i < instructions.size(); ++i) {
    const Instruction &inst = instructions[i];
    for (const std::vector<int32_t> *ids : {&inst.operands, &inst.results})
      for (int32_t id : *ids)
        if (id < 0 || id >= numBuffers)
          return invalidArgument(
              where(i, inst) + ": " +
              (ids == &inst.operands ? "operand" : "result") +
              " refers to buffer " + std::to_string(id) +
              ", but the program has " + std::to_string(numBuffers) +
              " buffers");
    for (int32_t id : inst.results)
      if (buffers[id].kind == BufferKind::Constant)
        return invalidArgument(where(i, inst) + ": result buffer " +
                               std::to_string(id) + " is a constant");
    if (inst.collective) {
      const std::vector<int> &axes = inst.collective->axes;
      for (size_t a = 0; a < axes.size(); ++a)
        if (axes[a] < 0 || axes[a] >= static_cast<int>(gridShape.size()) ||
            (a > 0 && axes[a] <= axes[a - 1]))
          return invalidArgument(
              where(i, inst) + ": collective over grid axis " +
              std::to_string(axes[a]) +
              ", expected increasing axes of the program's " +
              std::to_string(gridShape.size()) + "-axis grid");
    }
  }
  return Status::success();
}

Expected<int64_t> offloadOptimizerState(Program &program, int64_t alignment) {
  if (alignment < 1)
    return invalidArgument("offload alignment must be positive");
  std::vector<bool> moment(program.buffers.size(), false);
  for (size_t i = 0; i < program.instructions.size(); ++i) {
    const Instruction &inst = program.instructions[i];
    if (inst.kernel != "moe.adamw")
      continue;
    if (inst.operands.size() != 7 || inst.results.size() != 3)
      return invalidArgument("instruction #" + std::to_string(i) +
                             " (moe.adamw): expected 7 operands and 3 "
                             "results");
    for (int k : {2, 3}) {
      const int32_t id = inst.operands[k];
      if (id < 0 || id >= static_cast<int32_t>(program.buffers.size()))
        return invalidArgument("instruction #" + std::to_string(i) +
                               " (moe.adamw): operand " + std::to_string(k) +
                               " refers to buffer " + std::to_string(id) +
                               ", which does not exist");
      if (program.buffers[id].kind != BufferKind::Persistent &&
          program.buffers[id].kind != BufferKind::Host) // (already moved)
        return invalidArgument(
            "instruction #" + std::to_string(i) + " (moe.adamw): moment '" +
            program.buffers[id].name +
            "' is not persistent state; only persistent moments can move "
            "to the host");
      if (inst.results[k - 1] != id)
        return invalidArgument("instruction #" + std::to_string(i) +
                               " (moe.adamw): moment '" +
                               program.buffers[id].name +
                               "' is not updated in place");
      moment[id] = true;
    }
  }
  int64_t moved = 0;
  for (size_t id = 0; id < program.buffers.size(); ++id)
    if (moment[id] && program.buffers[id].kind == BufferKind::Persistent) {
      program.buffers[id].kind = BufferKind::Host;
      moved += program.buffers[id].type.byteSize();
    }
  layOutPersistentState(program, alignment);
  return moved;
}

void layOutPersistentState(Program &program, int64_t alignment) {
  auto align = [alignment](int64_t value) {
    return (value + alignment - 1) / alignment * alignment;
  };
  int64_t persistent = 0, host = 0;
  for (Buffer &b : program.buffers) {
    int64_t *end = b.kind == BufferKind::Persistent ? &persistent
                   : b.kind == BufferKind::Host     ? &host
                                                    : nullptr;
    if (!end)
      continue;
    b.offset = align(*end);
    *end = b.offset + b.type.byteSize();
  }
  program.persistentBytes = persistent;
  program.hostBytes = host;
}

const Executable *Program::selectExecutable(int computeCapability,
                                            const std::string &kernel) const {
  const Executable *best = nullptr;
  for (const Executable &executable : executables) {
    if (executable.sm > computeCapability ||
        (best && executable.sm <= best->sm))
      continue;
    for (const std::string &name : executable.kernels)
      if (name == kernel) {
        best = &executable;
        break;
      }
  }
  return best;
}

} // namespace exec
} // namespace moert
