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
  std::vector<int> boundAs(buffers.size(), -1);
  for (size_t i = 0; i < inputs.size(); ++i) {
    int32_t id = inputs[i];
    if (id < 0 || id >= numBuffers)
      return invalidArgument("input #" + std::to_string(i) +
                             " refers to buffer " + std::to_string(id) +
                             ", but the program has " +
                             std::to_string(numBuffers) + " buffers");
    if (buffers[id].kind != BufferKind::Input ||
        buffers[id].input != static_cast<int32_t>(i))
      return invalidArgument("input #" + std::to_string(i) +
                             " refers to buffer " + std::to_string(id) +
                             ", which is not bound as that input");
    boundAs[id] = static_cast<int>(i);
  }
  for (int64_t id = 0; id < numBuffers; ++id) {
    const Buffer &b = buffers[id];
    for (int64_t d : b.type.shape)
      if (d < 0)
        return invalidArgument("buffer " + std::to_string(id) +
                               " has a negative dimension: " + b.type.str());
    if (b.kind == BufferKind::Arena &&
        (b.offset < 0 || b.offset + b.type.byteSize() > arenaBytes))
      return invalidArgument("buffer " + std::to_string(id) + " (" +
                             b.type.str() + ", bytes [" +
                             std::to_string(b.offset) + ", " +
                             std::to_string(b.offset + b.type.byteSize()) +
                             ")) lies outside the arena of " +
                             std::to_string(arenaBytes) + " bytes");
    if (b.kind == BufferKind::Input && boundAs[id] < 0)
      return invalidArgument("buffer " + std::to_string(id) +
                             " is an input that no input binds");
  }
  for (size_t i = 0; i < instructions.size(); ++i) {
    const Instruction &inst = instructions[i];
    for (int32_t id : inst.operands)
      if (id < 0 || id >= numBuffers)
        return invalidArgument(where(i, inst) + ": operand refers to buffer " +
                               std::to_string(id) + ", but the program has " +
                               std::to_string(numBuffers) + " buffers");
    for (int32_t id : inst.results) {
      if (id < 0 || id >= numBuffers)
        return invalidArgument(where(i, inst) + ": result refers to buffer " +
                               std::to_string(id) + ", but the program has " +
                               std::to_string(numBuffers) + " buffers");
      if (buffers[id].kind != BufferKind::Arena)
        return invalidArgument(where(i, inst) + ": result buffer " +
                               std::to_string(id) +
                               " is an input or a constant");
    }
  }
  for (int32_t id : outputs)
    if (id < 0 || id >= numBuffers)
      return invalidArgument("output refers to buffer " + std::to_string(id) +
                             ", but the program has " +
                             std::to_string(numBuffers) + " buffers");
  return Status::success();
}

} // namespace exec
} // namespace moert
