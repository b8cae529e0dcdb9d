//===- Executor.cpp - Runs a Program on the CPU ---------------------------===//
#include "moert/exec/Executor.h"

#include "moert/comm/Communicator.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

namespace moert {
namespace exec {

namespace {
constexpr size_t kArenaAlignment = 64;

std::string describe(size_t index, const Instruction &inst) {
  std::ostringstream os;
  os << "instruction #" << index << " (" << inst.kernel << ")";
  if (!inst.location.empty())
    os << " at " << inst.location;
  return os.str();
}
} // namespace

Executor::Executor(Program program) : program_(std::move(program)) {}

Expected<std::unique_ptr<Executor>> Executor::create(Program program) {
  MOERT_RETURN_IF_ERROR(program.verify());
  std::unique_ptr<Executor> executor(new Executor(std::move(program)));
  const Program &p = executor->program_;
  for (size_t i = 0; i < p.instructions.size(); ++i) {
    const Instruction &inst = p.instructions[i];
    const KernelInfo *info = lookupKernel(inst.kernel);
    if (!info)
      return unimplemented(describe(i, inst) + ": no CPU kernel for this op");
    int numOperands = static_cast<int>(inst.operands.size());
    if (numOperands < info->minOperands || numOperands > info->maxOperands)
      return invalidArgument(describe(i, inst) + ": expected " +
                             std::to_string(info->minOperands) +
                             (info->maxOperands != info->minOperands
                                  ? " to " + std::to_string(info->maxOperands)
                                  : std::string()) +
                             " operands, found " + std::to_string(numOperands));
    if (static_cast<int>(inst.results.size()) != info->numResults)
      return invalidArgument(
          describe(i, inst) + ": expected " + std::to_string(info->numResults) +
          " results, found " + std::to_string(inst.results.size()));
    executor->kernels_.push_back(info);
  }
  // Both regions start zeroed: a kernel reading a buffer nobody wrote (a
  // bug) sees zeros rather than stale data, and fresh optimizer moments are
  // zero as AdamW expects.
  auto allocate = [](int64_t bytes, const char *what)
      -> Expected<std::unique_ptr<uint8_t[], void (*)(void *)>> {
    size_t rounded = (static_cast<size_t>(bytes) + kArenaAlignment - 1) /
                     kArenaAlignment * kArenaAlignment;
    void *data =
        rounded ? std::aligned_alloc(kArenaAlignment, rounded) : nullptr;
    if (rounded && !data)
      return Status(StatusCode::ResourceExhausted,
                    std::string("cannot allocate the ") + what + " of " +
                        std::to_string(bytes) + " bytes");
    if (data)
      std::memset(data, 0, rounded);
    return std::unique_ptr<uint8_t[], void (*)(void *)>(
        static_cast<uint8_t *>(data), std::free);
  };
  MOERT_ASSIGN_OR_RETURN(executor->arena_, allocate(p.arenaBytes, "arena"));
  MOERT_ASSIGN_OR_RETURN(executor->persistent_,
                         allocate(p.persistentBytes, "persistent region"));
  // Splat constants are materialized once.
  executor->constants_.resize(p.buffers.size());
  for (size_t id = 0; id < p.buffers.size(); ++id) {
    const Buffer &b = p.buffers[id];
    if (b.kind != BufferKind::Constant)
      continue;
    std::vector<uint8_t> &data = executor->constants_[id];
    data.resize(static_cast<size_t>(b.type.byteSize()));
    int64_t n = b.type.numElements();
    for (int64_t e = 0; e < n; ++e) {
      switch (b.type.dtype) {
      case DType::F32: {
        float v = static_cast<float>(b.splat);
        std::memcpy(data.data() + e * 4, &v, 4);
        break;
      }
      case DType::I32: {
        int32_t v = static_cast<int32_t>(b.splat);
        std::memcpy(data.data() + e * 4, &v, 4);
        break;
      }
      case DType::I64: {
        int64_t v = static_cast<int64_t>(b.splat);
        std::memcpy(data.data() + e * 8, &v, 8);
        break;
      }
      case DType::Bool:
        data[e] = b.splat != 0.0;
        break;
      }
    }
  }
  return std::move(executor);
}

const void *Executor::bufferData(int32_t id) const {
  const Buffer &b = program_.buffers[id];
  switch (b.kind) {
  case BufferKind::Arena:
    return arena_.get() + b.offset;
  case BufferKind::Persistent:
    return persistent_.get() + b.offset;
  case BufferKind::Constant:
    return constants_[id].data();
  }
  return nullptr;
}

void *Executor::bufferData(int32_t id) {
  return const_cast<void *>(
      static_cast<const Executor *>(this)->bufferData(id));
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
  for (size_t i = 0; i < program_.instructions.size(); ++i) {
    const Instruction &inst = program_.instructions[i];
    std::vector<void *> operands, results;
    for (int32_t id : inst.operands)
      operands.push_back(bufferData(id));
    for (int32_t id : inst.results)
      results.push_back(bufferData(id));
    KernelCall call(inst, program_, context, std::move(operands),
                    std::move(results));
    Status status = kernels_[i]->fn(call);
    if (!status.ok())
      return status.withContext(describe(i, inst));
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
