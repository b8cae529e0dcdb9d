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
    bool arena = b.kind == BufferKind::Arena;
    int64_t regionBytes = arena ? arenaBytes : persistentBytes;
    if (b.offset < 0 || b.offset + b.type.byteSize() > regionBytes)
      return invalidArgument(
          "buffer " + std::to_string(id) + " (" + b.type.str() + ", bytes [" +
          std::to_string(b.offset) + ", " +
          std::to_string(b.offset + b.type.byteSize()) +
          ")) lies outside the " + (arena ? "arena" : "persistent region") +
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

} // namespace exec
} // namespace moert
