//===- PlanLoader.cpp - Loads and verifies execution plans ----------------===//

#include "moert/plan/PlanLoader.h"

#include "moert/plan/KernelSignatures.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace moert::plan {
namespace {

using BufferVector = flatbuffers::Vector<flatbuffers::Offset<fb::Buffer>>;
using ShardingVector =
    flatbuffers::Vector<flatbuffers::Offset<fb::DimSharding>>;

// Sizes are at most 2^62 so that sums of two of them cannot overflow.
constexpr uint64_t kMaxBytes = uint64_t(1) << 62;

std::vector<int64_t> toShape(const flatbuffers::Vector<int64_t> *dims) {
  if (!dims)
    return {};
  return std::vector<int64_t>(dims->begin(), dims->end());
}

bool isValidDType(fb::DType dtype) {
  return !flatbuffers::IsOutRange(dtype, fb::DType::MIN, fb::DType::MAX);
}

/// product(shape) * elementSize, or nothing on a negative dimension or an
/// overflow past kMaxBytes.
bool byteSize(const std::vector<int64_t> &shape, int64_t elementSize,
              uint64_t &bytes) {
  uint64_t total = static_cast<uint64_t>(elementSize);
  for (int64_t dim : shape) {
    if (dim < 0)
      return false;
    if (dim != 0 && total > kMaxBytes / static_cast<uint64_t>(dim))
      return false;
    total *= static_cast<uint64_t>(dim);
  }
  bytes = total;
  return true;
}

/// Semantic checks of a verified plan; each returns the first problem.
class PlanChecker {
public:
  explicit PlanChecker(const fb::Plan &plan) : plan_(plan) {}

  Status run() {
    MOERT_RETURN_IF_ERROR(checkGrid());
    MOERT_RETURN_IF_ERROR(checkBuffers());
    MOERT_RETURN_IF_ERROR(checkParameters());
    MOERT_RETURN_IF_ERROR(checkBatchInputs());
    MOERT_RETURN_IF_ERROR(checkInstructions());
    MOERT_RETURN_IF_ERROR(checkExecutables());
    MOERT_RETURN_IF_ERROR(checkPrograms());
    return checkTraining();
  }

private:
  uint32_t numBuffers() const {
    return plan_.buffers() ? plan_.buffers()->size() : 0;
  }
  uint32_t numAxes() const {
    return plan_.grid()->axes() ? plan_.grid()->axes()->size() : 0;
  }
  const fb::GridAxis &axis(uint32_t index) const {
    return *plan_.grid()->axes()->Get(index);
  }
  uint32_t numInstructions() const {
    return plan_.instructions() ? plan_.instructions()->size() : 0;
  }
  const fb::Buffer &buffer(int32_t id) const {
    return *plan_.buffers()->Get(static_cast<uint32_t>(id));
  }
  /// The last instruction index an arena buffer is live at.
  int64_t liveEnd(const fb::Buffer &buffer) const {
    return buffer.live_end() < 0 ? int64_t(numInstructions()) - 1
                                 : buffer.live_end();
  }
  std::string bufferLabel(const fb::Buffer &buffer) const {
    if (buffer.name() && buffer.name()->size())
      return fmt::format("buffer {} ('{}')", buffer.id(), buffer.name()->str());
    return fmt::format("buffer {}", buffer.id());
  }

  Status checkGrid();
  Status checkBuffers();
  Status checkArenaSharing();
  Status checkSharding(const std::string &where,
                       const std::vector<int64_t> &shape,
                       const ShardingVector *sharding);
  Status checkTensorBuffer(const std::string &where, const char *role,
                           int32_t id, fb::DType dtype,
                           const std::vector<int64_t> *expectedShape);
  Status checkParameters();
  Status checkBatchInputs();
  Status checkInstructions();
  Status checkInstruction(uint32_t index, const fb::Instruction &instruction);
  Status checkAttributes(const std::string &where,
                         const KernelSignature &signature,
                         const fb::Instruction &instruction);
  Status checkCollective(const std::string &where,
                         const fb::Instruction &instruction);
  Status checkShardAxes(const std::string &where,
                        const fb::Instruction &instruction);
  Status checkTraining();
  Status checkExecutables();
  Status checkPrograms();

  const fb::Plan &plan_;
};

Status PlanChecker::checkGrid() {
  const fb::DeviceGrid *grid = plan_.grid();
  if (!grid)
    return invalidArgument("the plan has no device grid");
  std::set<std::string> names;
  std::set<fb::AxisRole> roles;
  int64_t ranks = 1;
  for (uint32_t i = 0; i < numAxes(); ++i) {
    const fb::GridAxis &gridAxis = axis(i);
    std::string name = gridAxis.name()->str();
    if (name.empty())
      return invalidArgument(fmt::format("grid axis #{} has an empty name", i));
    if (!names.insert(name).second)
      return invalidArgument(
          fmt::format("grid axis #{}: the name '{}' is used twice", i, name));
    if (gridAxis.size() < 1)
      return invalidArgument(
          fmt::format("grid axis #{} ('{}') has size {}, expected >= 1", i,
                      name, gridAxis.size()));
    if (flatbuffers::IsOutRange(gridAxis.role(), fb::AxisRole::MIN,
                                fb::AxisRole::MAX))
      return invalidArgument(fmt::format(
          "grid axis #{} ('{}') has role {}, expected data, expert or tensor",
          i, name, static_cast<int>(gridAxis.role())));
    if (!roles.insert(gridAxis.role()).second)
      return invalidArgument(
          fmt::format("grid axis #{} ('{}'): a second axis with role {}", i,
                      name, fb::EnumNameAxisRole(gridAxis.role())));
    ranks *= gridAxis.size();
    if (ranks > std::numeric_limits<int32_t>::max())
      return invalidArgument(fmt::format("the grid has more than {} ranks",
                                         std::numeric_limits<int32_t>::max()));
  }
  if (grid->zero_stage() > 2)
    return invalidArgument(
        fmt::format("ZeRO stage {} is not supported, expected 0, 1 or 2",
                    grid->zero_stage()));
  return Status::success();
}

Status PlanChecker::checkBuffers() {
  uint32_t alignment = plan_.arena_alignment();
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    return invalidArgument(fmt::format(
        "arena alignment is {}, expected a power of two", alignment));
  if (plan_.arena_bytes() > kMaxBytes || plan_.persistent_bytes() > kMaxBytes)
    return invalidArgument(fmt::format(
        "arena ({} bytes) or persistent region ({} bytes) exceeds {} bytes",
        plan_.arena_bytes(), plan_.persistent_bytes(), kMaxBytes));
  if (numBuffers() > uint32_t(std::numeric_limits<int32_t>::max()))
    return invalidArgument("the plan has too many buffers");
  for (uint32_t i = 0; i < numBuffers(); ++i) {
    const fb::Buffer &buf = *plan_.buffers()->Get(i);
    if (buf.id() != static_cast<int32_t>(i))
      return invalidArgument(
          fmt::format("buffer #{} has id {}, expected ids equal to positions",
                      i, buf.id()));
    std::string label = bufferLabel(buf);
    if (!isValidDType(buf.dtype()))
      return invalidArgument(fmt::format("{} has unknown dtype {}", label,
                                         static_cast<int>(buf.dtype())));
    std::vector<int64_t> shape = toShape(buf.shape());
    uint64_t expectedBytes = 0;
    if (!byteSize(shape, dtypeSize(buf.dtype()), expectedBytes))
      return invalidArgument(fmt::format(
          "{} has shape {}, expected non-negative dimensions of at most {} "
          "bytes in all",
          label, formatShape(shape), kMaxBytes));
    if (buf.size() != expectedBytes)
      return invalidArgument(
          fmt::format("{} has size {} bytes, but shape {} of {} needs {} bytes",
                      label, buf.size(), formatShape(shape),
                      dtypeName(buf.dtype()), expectedBytes));
    uint64_t regionBytes;
    const char *regionName;
    switch (buf.region()) {
    case fb::BufferRegion::arena:
      if (buf.host())
        return invalidArgument(label +
                               " is an arena buffer marked host; only "
                               "persistent buffers live in host memory");
      regionBytes = plan_.arena_bytes();
      regionName = "arena";
      break;
    case fb::BufferRegion::persistent:
      regionBytes = plan_.persistent_bytes();
      regionName = "persistent region";
      break;
    case fb::BufferRegion::constant:
      if (buf.host())
        return invalidArgument(label +
                               " is a constant marked host; only "
                               "persistent buffers live in host memory");
      if (buf.offset() != 0)
        return invalidArgument(fmt::format(
            "{} is a constant with offset {}, expected 0 (constants occupy "
            "no region)",
            label, buf.offset()));
      if (std::isnan(buf.splat()))
        return invalidArgument(label + " is a constant with a NaN value");
      continue;
    default:
      return invalidArgument(fmt::format("{} has unknown region {}", label,
                                         static_cast<int>(buf.region())));
    }
    if (buf.offset() > regionBytes || buf.size() > regionBytes - buf.offset())
      return invalidArgument(fmt::format(
          "{} occupies bytes [{}, {}), outside the {} of {} bytes", label,
          buf.offset(), buf.offset() + buf.size(), regionName, regionBytes));
    if (buf.offset() % static_cast<uint64_t>(dtypeSize(buf.dtype())) != 0)
      return invalidArgument(fmt::format(
          "{} starts at byte {}, not aligned to its {}-byte elements", label,
          buf.offset(), dtypeSize(buf.dtype())));
    if (buf.region() == fb::BufferRegion::arena) {
      if (buf.offset() % alignment != 0)
        return invalidArgument(fmt::format(
            "{} starts at arena byte {}, expected a multiple of the arena "
            "alignment {}",
            label, buf.offset(), alignment));
      int64_t end = liveEnd(buf);
      if (buf.live_begin() < 0 || buf.live_end() < -1 ||
          (numInstructions() > 0 && end >= int64_t(numInstructions())) ||
          (numInstructions() > 0 && buf.live_begin() > end))
        return invalidArgument(fmt::format(
            "{} is live over instructions [{}, {}], expected a range inside "
            "[0, {}]",
            label, buf.live_begin(), buf.live_end(),
            int64_t(numInstructions()) - 1));
    }
  }
  return checkArenaSharing();
}

// Buffers are sorted by start offset; each is compared with the later ones
// that start before it ends, so the cost is proportional to the number of
// overlapping pairs (what a memory plan with reuse has), not n^2.
Status PlanChecker::checkArenaSharing() {
  for (fb::BufferRegion region :
       {fb::BufferRegion::arena, fb::BufferRegion::persistent}) {
    std::vector<const fb::Buffer *> sorted;
    for (uint32_t i = 0; i < numBuffers(); ++i) {
      const fb::Buffer *buf = plan_.buffers()->Get(i);
      if (buf->region() == region && buf->size() > 0)
        sorted.push_back(buf);
    }
    std::sort(sorted.begin(), sorted.end(),
              [](const fb::Buffer *a, const fb::Buffer *b) {
                return a->offset() < b->offset() ||
                       (a->offset() == b->offset() && a->id() < b->id());
              });
    for (size_t i = 0; i < sorted.size(); ++i) {
      const fb::Buffer &first = *sorted[i];
      uint64_t firstEnd = first.offset() + first.size();
      for (size_t j = i + 1;
           j < sorted.size() && sorted[j]->offset() < firstEnd; ++j) {
        const fb::Buffer &second = *sorted[j];
        if (region == fb::BufferRegion::persistent)
          return invalidArgument(fmt::format(
              "persistent {} (bytes [{}, {})) and {} (bytes [{}, {})) "
              "overlap; persistent buffers never share bytes",
              bufferLabel(first), first.offset(), firstEnd, bufferLabel(second),
              second.offset(), second.offset() + second.size()));
        bool disjointLifetimes = liveEnd(first) < second.live_begin() ||
                                 liveEnd(second) < first.live_begin();
        if (!disjointLifetimes)
          return invalidArgument(fmt::format(
              "{} (bytes [{}, {}), live [{}, {}]) and {} (bytes [{}, {}), "
              "live [{}, {}]) share arena bytes while both are live",
              bufferLabel(first), first.offset(), firstEnd, first.live_begin(),
              liveEnd(first), bufferLabel(second), second.offset(),
              second.offset() + second.size(), second.live_begin(),
              liveEnd(second)));
      }
    }
  }
  return Status::success();
}

Status PlanChecker::checkSharding(const std::string &where,
                                  const std::vector<int64_t> &shape,
                                  const ShardingVector *sharding) {
  if (!sharding || sharding->size() == 0)
    return Status::success();
  if (sharding->size() != shape.size())
    return invalidArgument(fmt::format(
        "{}: the shard spec has {} entries, expected one per dimension ({})",
        where, sharding->size(), shape.size()));
  std::set<uint32_t> usedAxes;
  for (uint32_t dim = 0; dim < sharding->size(); ++dim) {
    const fb::DimSharding *split = sharding->Get(dim);
    if (!split->axes())
      continue;
    int64_t parts = 1;
    std::string axisNames;
    for (uint8_t axisIndex : *split->axes()) {
      if (axisIndex >= numAxes())
        return invalidArgument(fmt::format(
            "{}: dimension {} is split over grid axis {}, but the grid has "
            "{} axes",
            where, dim, axisIndex, numAxes()));
      if (!usedAxes.insert(axisIndex).second)
        return invalidArgument(fmt::format(
            "{}: grid axis '{}' splits more than one dimension (again at "
            "dimension {})",
            where, axis(axisIndex).name()->str(), dim));
      parts *= axis(axisIndex).size();
      axisNames +=
          fmt::format("{}{} ({})", axisNames.empty() ? "" : " x ",
                      axis(axisIndex).name()->str(), axis(axisIndex).size());
    }
    if (shape[dim] % parts != 0)
      return invalidArgument(fmt::format(
          "{}: dimension {} has size {}, which the grid axes {} ({} parts) "
          "do not divide",
          where, dim, shape[dim], axisNames, parts));
  }
  return Status::success();
}

Status
PlanChecker::checkTensorBuffer(const std::string &where, const char *role,
                               int32_t id, fb::DType dtype,
                               const std::vector<int64_t> *expectedShape) {
  if (id == -1)
    return Status::success();
  if (id < 0 || static_cast<uint32_t>(id) >= numBuffers())
    return invalidArgument(
        fmt::format("{}: {} refers to buffer {}, but the plan has {} buffers",
                    where, role, id, numBuffers()));
  const fb::Buffer &buf = buffer(id);
  if (buf.region() != fb::BufferRegion::persistent)
    return invalidArgument(
        fmt::format("{}: {} is {}, which is not in the persistent region",
                    where, role, bufferLabel(buf)));
  if (buf.dtype() != dtype)
    return invalidArgument(fmt::format(
        "{}: {} is {} of {}, expected {}", where, role, bufferLabel(buf),
        dtypeName(buf.dtype()), dtypeName(dtype)));
  if (expectedShape && toShape(buf.shape()) != *expectedShape)
    return invalidArgument(fmt::format(
        "{}: {} is {} of shape {}, expected the local shard shape {}", where,
        role, bufferLabel(buf), formatShape(toShape(buf.shape())),
        formatShape(*expectedShape)));
  return Status::success();
}

Status PlanChecker::checkParameters() {
  if (!plan_.parameters())
    return Status::success();
  std::set<std::string> names;
  for (uint32_t i = 0; i < plan_.parameters()->size(); ++i) {
    const fb::Parameter &param = *plan_.parameters()->Get(i);
    std::string name = param.name()->str();
    std::string where = fmt::format("parameter #{} ('{}')", i, name);
    if (name.empty())
      return invalidArgument(fmt::format("parameter #{} has an empty name", i));
    if (!names.insert(name).second)
      return invalidArgument(where + ": the name is used twice");
    std::vector<int64_t> shape = toShape(param.shape());
    for (size_t dim = 0; dim < shape.size(); ++dim)
      if (shape[dim] <= 0)
        return invalidArgument(fmt::format(
            "{}: shape {} has dimension {} of size {}, expected > 0", where,
            formatShape(shape), dim, shape[dim]));
    uint64_t bytes;
    if (!isValidDType(param.dtype()) ||
        !byteSize(shape, dtypeSize(param.dtype()), bytes))
      return invalidArgument(
          fmt::format("{}: dtype {} with shape {} is not a valid tensor", where,
                      dtypeName(param.dtype()), formatShape(shape)));
    MOERT_RETURN_IF_ERROR(checkSharding(where, shape, param.sharding()));
    if (flatbuffers::IsOutRange(param.init(), fb::InitKind::MIN,
                                fb::InitKind::MAX))
      return invalidArgument(fmt::format("{}: unknown initializer {}", where,
                                         static_cast<int>(param.init())));
    if (!std::isfinite(param.init_scale()) || param.init_scale() < 0)
      return invalidArgument(
          fmt::format("{}: initializer scale {}, expected a finite value >= 0",
                      where, param.init_scale()));
    if (flatbuffers::IsOutRange(param.group(), fb::ParamGroup::MIN,
                                fb::ParamGroup::MAX))
      return invalidArgument(fmt::format("{}: unknown parameter group {}",
                                         where,
                                         static_cast<int>(param.group())));
    // The optimizer state may be partitioned further than the parameter
    // (ZeRO); an empty state spec means "as the parameter".
    const ShardingVector *stateSharding = param.sharding();
    if (param.state_sharding() && param.state_sharding()->size() > 0) {
      MOERT_RETURN_IF_ERROR(checkSharding(where + " (state_sharding)", shape,
                                          param.state_sharding()));
      stateSharding = param.state_sharding();
    }
    std::vector<int64_t> local =
        localShape(*plan_.grid(), shape, param.sharding());
    std::vector<int64_t> stateLocal =
        localShape(*plan_.grid(), shape, stateSharding);
    MOERT_RETURN_IF_ERROR(checkTensorBuffer(where, "its buffer", param.buffer(),
                                            param.dtype(), &local));
    // The gradient is the parameter's shard, or the state's under ZeRO-2.
    MOERT_RETURN_IF_ERROR(checkTensorBuffer(
        where, "its gradient buffer", param.grad_buffer(), param.dtype(),
        param.grad_buffer() >= 0 &&
                static_cast<uint32_t>(param.grad_buffer()) < numBuffers() &&
                toShape(buffer(param.grad_buffer()).shape()) == stateLocal
            ? &stateLocal
            : &local));
    // The AdamW moments are fp32 whatever the parameter's type.
    MOERT_RETURN_IF_ERROR(checkTensorBuffer(where, "its exp_avg buffer",
                                            param.exp_avg_buffer(),
                                            fb::DType::f32, &stateLocal));
    MOERT_RETURN_IF_ERROR(checkTensorBuffer(where, "its exp_avg_sq buffer",
                                            param.exp_avg_sq_buffer(),
                                            fb::DType::f32, &stateLocal));
    if ((param.exp_avg_buffer() < 0) != (param.exp_avg_sq_buffer() < 0))
      return invalidArgument(fmt::format(
          "{}: has exp_avg buffer {} and exp_avg_sq buffer {}, expected both "
          "or neither",
          where, param.exp_avg_buffer(), param.exp_avg_sq_buffer()));
  }
  return Status::success();
}

Status PlanChecker::checkBatchInputs() {
  if (!plan_.batch_inputs())
    return Status::success();
  std::set<std::string> names;
  for (uint32_t i = 0; i < plan_.batch_inputs()->size(); ++i) {
    const fb::BatchInput &input = *plan_.batch_inputs()->Get(i);
    std::string name = input.name()->str();
    std::string where = fmt::format("batch input #{} ('{}')", i, name);
    if (name.empty())
      return invalidArgument(
          fmt::format("batch input #{} has an empty name", i));
    if (!names.insert(name).second)
      return invalidArgument(where + ": the name is used twice");
    std::vector<int64_t> shape = toShape(input.shape());
    for (size_t dim = 0; dim < shape.size(); ++dim)
      if (shape[dim] <= 0)
        return invalidArgument(fmt::format(
            "{}: shape {} has dimension {} of size {}, expected > 0", where,
            formatShape(shape), dim, shape[dim]));
    uint64_t bytes;
    if (!isValidDType(input.dtype()) ||
        !byteSize(shape, dtypeSize(input.dtype()), bytes))
      return invalidArgument(
          fmt::format("{}: dtype {} with shape {} is not a valid tensor", where,
                      dtypeName(input.dtype()), formatShape(shape)));
    MOERT_RETURN_IF_ERROR(checkSharding(where, shape, input.sharding()));
    std::vector<int64_t> local =
        localShape(*plan_.grid(), shape, input.sharding());
    MOERT_RETURN_IF_ERROR(checkTensorBuffer(where, "its buffer", input.buffer(),
                                            input.dtype(), &local));
  }
  return Status::success();
}

Status PlanChecker::checkInstructions() {
  for (uint32_t i = 0; i < numInstructions(); ++i)
    MOERT_RETURN_IF_ERROR(checkInstruction(i, *plan_.instructions()->Get(i)));
  return Status::success();
}

Status PlanChecker::checkInstruction(uint32_t index,
                                     const fb::Instruction &instruction) {
  std::string where = fmt::format("instruction #{} ({})", index,
                                  opcodeName(instruction.opcode()));
  if (instruction.location() && instruction.location()->size())
    where += fmt::format(" at {}", instruction.location()->str());
  const KernelSignature *signature = kernelSignature(instruction.opcode());
  if (!signature)
    return unimplemented(fmt::format(
        "{}: opcode {} is unknown to this runtime (plan schema {}.{}); the "
        "plan was written for schema {}.{}",
        where, static_cast<int>(instruction.opcode()), kSchemaMajorVersion,
        kSchemaMinorVersion, plan_.version()->major(),
        plan_.version()->minor()));

  struct Operands {
    const flatbuffers::Vector<int32_t> *ids;
    const char *kind;
    int minCount, maxCount;
  };
  for (const Operands &list :
       {Operands{instruction.operands(), "operand", signature->minOperands,
                 signature->maxOperands},
        Operands{instruction.results(), "result", signature->minResults,
                 signature->maxResults}}) {
    int count = list.ids ? static_cast<int>(list.ids->size()) : 0;
    if (count < list.minCount || count > list.maxCount) {
      std::string expected =
          list.minCount == list.maxCount
              ? std::to_string(list.minCount)
              : fmt::format("{} to {}", list.minCount, list.maxCount);
      return invalidArgument(fmt::format("{}: has {} {}s, expected {}", where,
                                         count, list.kind, expected));
    }
    for (int position = 0; position < count; ++position) {
      int32_t id = list.ids->Get(static_cast<uint32_t>(position));
      if (id < 0 || static_cast<uint32_t>(id) >= numBuffers())
        return invalidArgument(fmt::format(
            "{}: {} {} refers to buffer {}, but the plan has {} buffers", where,
            list.kind, position, id, numBuffers()));
      const fb::Buffer &buf = buffer(id);
      // 16-bit floats are bit patterns only moe.convert and the
      // collectives that move data without arithmetic handle.
      if ((buf.dtype() == fb::DType::bf16 || buf.dtype() == fb::DType::f16) &&
          instruction.opcode() != fb::Opcode::convert &&
          instruction.opcode() != fb::Opcode::all_gather &&
          instruction.opcode() != fb::Opcode::all_to_all &&
          instruction.opcode() != fb::Opcode::all_slice &&
          instruction.opcode() != fb::Opcode::pack &&
          instruction.opcode() != fb::Opcode::unpack)
        return invalidArgument(fmt::format(
            "{}: {} {} is {} of {}; only convert, all_gather, all_to_all, "
            "all_slice, pack and unpack take bf16/f16 buffers",
            where, list.kind, position, bufferLabel(buf),
            dtypeName(buf.dtype())));
      // Host state is read and written by the optimizer, and read by the
      // conversion that makes a master weight's 16-bit device copy (on a
      // GPU, no other kernel can address it).
      const bool hostAllowed =
          instruction.opcode() == fb::Opcode::adamw ||
          (instruction.opcode() == fb::Opcode::convert &&
           list.ids == instruction.operands()) ||
          (instruction.opcode() == fb::Opcode::to_host &&
           !(list.ids == instruction.operands() && position == 0));
      if (buf.host() && !hostAllowed)
        return invalidArgument(fmt::format(
            "{}: {} {} is {}, kept in host memory; only adamw, the operand "
            "of convert and the destination of to_host are host buffers",
            where, list.kind, position, bufferLabel(buf)));
      if (list.ids == instruction.results() &&
          buf.region() == fb::BufferRegion::constant)
        return invalidArgument(fmt::format(
            "{}: result {} is {}, a constant; constants are read-only", where,
            position, bufferLabel(buf)));
      if (buf.region() == fb::BufferRegion::arena &&
          (int64_t(index) < buf.live_begin() || int64_t(index) > liveEnd(buf)))
        return invalidArgument(fmt::format(
            "{}: {} {} is {}, which is live only over instructions [{}, {}]",
            where, list.kind, position, bufferLabel(buf), buf.live_begin(),
            liveEnd(buf)));
    }
  }

  MOERT_RETURN_IF_ERROR(checkAttributes(where, *signature, instruction));

  if (isCollective(instruction.opcode()))
    return checkCollective(where, instruction);
  if (instruction.collective())
    return invalidArgument(
        where + ": has collective parameters, but is not a collective");

  auto operandBuffer = [&](uint32_t position) -> const fb::Buffer & {
    return buffer(instruction.operands()->Get(position));
  };
  auto resultBuffer = [&](uint32_t position) -> const fb::Buffer & {
    return buffer(instruction.results()->Get(position));
  };
  if (instruction.opcode() == fb::Opcode::add) {
    std::vector<int64_t> resultShape = toShape(resultBuffer(0).shape());
    for (uint32_t position = 0; position < 2; ++position)
      if (toShape(operandBuffer(position).shape()) != resultShape)
        return invalidArgument(fmt::format(
            "{}: operand {} has shape {}, expected the result shape {}", where,
            position, formatShape(toShape(operandBuffer(position).shape())),
            formatShape(resultShape)));
  }
  MOERT_RETURN_IF_ERROR(checkShardAxes(where, instruction));
  auto shapeOf = [&](const fb::Buffer &buf) { return toShape(buf.shape()); };
  auto expectDType = [&](const char *role, uint32_t position,
                         const fb::Buffer &buf, fb::DType dtype) -> Status {
    if (buf.dtype() == dtype)
      return Status::success();
    return invalidArgument(fmt::format("{}: {} {} is {}, expected {}", where,
                                       role, position, dtypeName(buf.dtype()),
                                       dtypeName(dtype)));
  };
  switch (instruction.opcode()) {
  case fb::Opcode::to_host: {
    const fb::Buffer &from = operandBuffer(0), &into = operandBuffer(1);
    if (!into.host() ||
        instruction.results()->Get(0) != instruction.operands()->Get(1))
      return invalidArgument(fmt::format(
          "{}: expected its result to be operand 1, a host buffer; found {} "
          "and result buffer {}",
          where, bufferLabel(into), instruction.results()->Get(0)));
    if (from.dtype() != into.dtype() || shapeOf(from) != shapeOf(into))
      return invalidArgument(fmt::format(
          "{}: copies {} of {} into {} of {}, expected the same type", where,
          formatShape(shapeOf(from)), dtypeName(from.dtype()),
          formatShape(shapeOf(into)), dtypeName(into.dtype())));
    break;
  }
  case fb::Opcode::convert: {
    const fb::DType from = operandBuffer(0).dtype();
    const fb::DType to = resultBuffer(0).dtype();
    auto half = [](fb::DType t) {
      return t == fb::DType::bf16 || t == fb::DType::f16;
    };
    if (!((from == fb::DType::f32 && half(to)) ||
          (half(from) && to == fb::DType::f32)))
      return invalidArgument(
          fmt::format("{}: converts {} to {}, expected f32 to bf16/f16 or back",
                      where, dtypeName(from), dtypeName(to)));
    if (shapeOf(operandBuffer(0)) != shapeOf(resultBuffer(0)))
      return invalidArgument(fmt::format(
          "{}: operand has shape {}, result {}, expected the same shape", where,
          formatShape(shapeOf(operandBuffer(0))),
          formatShape(shapeOf(resultBuffer(0)))));
    break;
  }
  case fb::Opcode::token_count: {
    MOERT_RETURN_IF_ERROR(
        expectDType("operand", 0, operandBuffer(0), fb::DType::i32));
    MOERT_RETURN_IF_ERROR(
        expectDType("result", 0, resultBuffer(0), fb::DType::f32));
    if (resultBuffer(0).size() != 4)
      return invalidArgument(
          fmt::format("{}: result has shape {}, expected a scalar", where,
                      formatShape(shapeOf(resultBuffer(0)))));
    break;
  }
  case fb::Opcode::bias_add: {
    std::vector<int64_t> x = shapeOf(operandBuffer(0));
    std::vector<int64_t> bias = shapeOf(operandBuffer(1));
    if (x.empty() || bias.size() != 1 || bias[0] != x.back() ||
        shapeOf(resultBuffer(0)) != x)
      return invalidArgument(fmt::format(
          "{}: operands {} and {} with result {}, expected x [..., N], "
          "bias [N] and a result shaped like x",
          where, formatShape(x), formatShape(bias),
          formatShape(shapeOf(resultBuffer(0)))));
    for (uint32_t position = 0; position < 2; ++position)
      MOERT_RETURN_IF_ERROR(expectDType(
          "operand", position, operandBuffer(position), fb::DType::f32));
    MOERT_RETURN_IF_ERROR(
        expectDType("result", 0, resultBuffer(0), fb::DType::f32));
    break;
  }
  case fb::Opcode::mul:
  case fb::Opcode::div: {
    std::vector<int64_t> resultShape = shapeOf(resultBuffer(0));
    for (uint32_t position = 0; position < 2; ++position) {
      if (shapeOf(operandBuffer(position)) != resultShape)
        return invalidArgument(fmt::format(
            "{}: operand {} has shape {}, expected the result shape {}", where,
            position, formatShape(shapeOf(operandBuffer(position))),
            formatShape(resultShape)));
      MOERT_RETURN_IF_ERROR(expectDType(
          "operand", position, operandBuffer(position), fb::DType::f32));
    }
    MOERT_RETURN_IF_ERROR(
        expectDType("result", 0, resultBuffer(0), fb::DType::f32));
    break;
  }
  default:
    break;
  }
  return Status::success();
}

Status PlanChecker::checkShardAxes(const std::string &where,
                                   const fb::Instruction &instruction) {
  if (!instruction.attributes())
    return Status::success();
  for (const fb::Attribute *attribute : *instruction.attributes()) {
    if (attribute->name()->str() != "shard_axes")
      continue;
    const fb::IntVectorValue *value = attribute->value_as_IntVectorValue();
    if (!value || !value->values())
      return Status::success(); // typed and present: checkAttributes did it
    int64_t previous = -1;
    for (int64_t axisIndex : *value->values()) {
      if (axisIndex < 0 || axisIndex >= int64_t(numAxes()))
        return invalidArgument(fmt::format(
            "{}: shard_axes names grid axis {}, but the grid has {} axes",
            where, axisIndex, numAxes()));
      if (axisIndex <= previous)
        return invalidArgument(fmt::format(
            "{}: shard_axes has axis {} after {}, expected increasing axes",
            where, axisIndex, previous));
      previous = axisIndex;
    }
  }
  return Status::success();
}

Status PlanChecker::checkAttributes(const std::string &where,
                                    const KernelSignature &signature,
                                    const fb::Instruction &instruction) {
  // Attributes this build does not know are typos of the emitter, unless
  // the plan is of a newer minor version that may have added them.
  bool toleratesUnknown = plan_.version()->minor() > kSchemaMinorVersion;
  std::set<std::string> seen;
  if (instruction.attributes()) {
    for (const fb::Attribute *attribute : *instruction.attributes()) {
      std::string name = attribute->name()->str();
      if (!seen.insert(name).second)
        return invalidArgument(
            fmt::format("{}: attribute '{}' appears twice", where, name));
      if (attribute->value_type() == fb::AttrValue::NONE || !attribute->value())
        return invalidArgument(
            fmt::format("{}: attribute '{}' has no value", where, name));
      const AttributeSignature *expected = signature.findAttribute(name);
      if (!expected) {
        if (toleratesUnknown)
          continue;
        return invalidArgument(
            fmt::format("{}: unknown attribute '{}' (of type {})", where, name,
                        attributeTypeName(attribute->value_type())));
      }
      if (attribute->value_type() != expected->type)
        return invalidArgument(
            fmt::format("{}: attribute '{}' is of type {}, expected {}", where,
                        name, attributeTypeName(attribute->value_type()),
                        attributeTypeName(expected->type)));
      if (attribute->value_type() == fb::AttrValue::IntValue) {
        int64_t value = attribute->value_as_IntValue()->value();
        if (!expected->inRange(static_cast<double>(value)))
          return invalidArgument(
              fmt::format("{}: attribute '{}' is {}, expected a value in {}",
                          where, name, value, expected->rangeText()));
      }
      if (attribute->value_type() == fb::AttrValue::FloatValue) {
        double value = attribute->value_as_FloatValue()->value();
        if (expected->finite && !std::isfinite(value))
          return invalidArgument(
              fmt::format("{}: attribute '{}' is {}, expected a finite value "
                          "in {}",
                          where, name, value, expected->rangeText()));
        if (!expected->inRange(value))
          return invalidArgument(
              fmt::format("{}: attribute '{}' is {}, expected a value in {}",
                          where, name, value, expected->rangeText()));
      }
      if (!expected->allowedValues.empty()) {
        const flatbuffers::String *text =
            attribute->value_as_StringValue()->value();
        std::string value = text ? text->str() : "";
        if (std::find(expected->allowedValues.begin(),
                      expected->allowedValues.end(),
                      value) == expected->allowedValues.end()) {
          std::string allowed;
          for (const std::string &option : expected->allowedValues)
            allowed += (allowed.empty() ? "" : ", ") + option;
          return invalidArgument(
              fmt::format("{}: attribute '{}' is '{}', expected one of {}",
                          where, name, value, allowed));
        }
      }
    }
  }
  for (const AttributeSignature &expected : signature.attributes)
    if (expected.required && !seen.count(expected.name))
      return invalidArgument(
          fmt::format("{}: missing the required {} attribute '{}'", where,
                      attributeTypeName(expected.type), expected.name));
  return Status::success();
}

Status PlanChecker::checkCollective(const std::string &where,
                                    const fb::Instruction &instruction) {
  const fb::Collective *collective = instruction.collective();
  if (!collective)
    return invalidArgument(where +
                           ": a collective without collective parameters "
                           "(grid axes, reduction)");
  if (!collective->axes() || collective->axes()->size() == 0)
    return invalidArgument(where + ": the collective names no grid axes");
  int64_t groupSize = 1;
  std::set<uint8_t> axes;
  int previous = -1;
  for (uint8_t axisIndex : *collective->axes()) {
    if (axisIndex >= numAxes())
      return invalidArgument(fmt::format(
          "{}: collective over grid axis {}, but the grid has {} axes", where,
          axisIndex, numAxes()));
    if (!axes.insert(axisIndex).second)
      return invalidArgument(fmt::format("{}: grid axis '{}' is named twice",
                                         where, axis(axisIndex).name()->str()));
    // The group rank is the row-major index over the axes in this order,
    // which is the communicators' order only for increasing axes.
    if (axisIndex < previous)
      return invalidArgument(
          fmt::format("{}: grid axes {} after {}, expected increasing axes",
                      where, axisIndex, previous));
    previous = axisIndex;
    groupSize *= axis(axisIndex).size();
  }

  fb::Opcode opcode = instruction.opcode();
  bool reduces =
      opcode == fb::Opcode::all_reduce || opcode == fb::Opcode::reduce_scatter;
  if (flatbuffers::IsOutRange(collective->reduction(), fb::ReductionKind::MIN,
                              fb::ReductionKind::MAX))
    return invalidArgument(
        fmt::format("{}: unknown reduction {}", where,
                    static_cast<int>(collective->reduction())));
  if (reduces && collective->reduction() == fb::ReductionKind::none)
    return invalidArgument(where + ": needs a reduction (sum, mean, max or "
                                   "min), found none");
  if (!reduces && collective->reduction() != fb::ReductionKind::none)
    return invalidArgument(
        fmt::format("{}: has reduction {}, but this collective does not reduce",
                    where, fb::EnumNameReductionKind(collective->reduction())));

  const fb::Buffer &input = buffer(instruction.operands()->Get(0));
  const fb::Buffer &output = buffer(instruction.results()->Get(0));
  if (input.dtype() != output.dtype())
    return invalidArgument(fmt::format(
        "{}: operand is {}, result is {}, expected the same dtype", where,
        dtypeName(input.dtype()), dtypeName(output.dtype())));
  std::vector<int64_t> inShape = toShape(input.shape());
  std::vector<int64_t> outShape = toShape(output.shape());
  int64_t rank = static_cast<int64_t>(inShape.size());
  bool needsSplit = opcode == fb::Opcode::reduce_scatter ||
                    opcode == fb::Opcode::all_to_all ||
                    opcode == fb::Opcode::all_slice;
  bool needsConcat =
      opcode == fb::Opcode::all_gather || opcode == fb::Opcode::all_to_all;
  auto checkDim = [&](const char *role, int32_t dim, bool needed) -> Status {
    if (!needed) {
      if (dim != -1)
        return invalidArgument(
            fmt::format("{}: has {} {}, which this collective does not use",
                        where, role, dim));
      return Status::success();
    }
    if (dim < 0 || dim >= rank)
      return invalidArgument(
          fmt::format("{}: {} is {}, expected a dimension of the rank-{} "
                      "operand",
                      where, role, dim, rank));
    return Status::success();
  };
  MOERT_RETURN_IF_ERROR(
      checkDim("split_dim", collective->split_dim(), needsSplit));
  MOERT_RETURN_IF_ERROR(
      checkDim("concat_dim", collective->concat_dim(), needsConcat));

  // The result shape follows from the operand shape and the group size.
  std::vector<int64_t> expected = inShape;
  if (needsSplit) {
    int32_t dim = collective->split_dim();
    if (expected[dim] % groupSize != 0)
      return invalidArgument(fmt::format(
          "{}: split dimension {} has size {}, which the group of {} ranks "
          "does not divide",
          where, dim, expected[dim], groupSize));
    expected[dim] /= groupSize;
  }
  if (needsConcat)
    expected[collective->concat_dim()] *= groupSize;
  if (outShape != expected)
    return invalidArgument(fmt::format(
        "{}: result has shape {}, expected {} for operand shape {} over a "
        "group of {} ranks",
        where, formatShape(outShape), formatShape(expected),
        formatShape(inShape), groupSize));
  return Status::success();
}

Status PlanChecker::checkExecutables() {
  if (!plan_.executables())
    return Status::success();
  for (uint32_t i = 0; i < plan_.executables()->size(); ++i) {
    const fb::Executable *executable = plan_.executables()->Get(i);
    const std::string where = fmt::format("executable #{}", i);
    if (executable->sm() < 50 || executable->sm() > 200)
      return invalidArgument(fmt::format(
          "{}: expected a compute capability (10 * major + minor) in [50, "
          "200], found sm {}",
          where, executable->sm()));
    if (!executable->format() || executable->format()->str() != "ptx")
      return invalidArgument(fmt::format(
          "{} (sm_{}): expected format 'ptx', found '{}'", where,
          executable->sm(),
          executable->format() ? executable->format()->str() : ""));
    if (!executable->image() || executable->image()->size() == 0)
      return invalidArgument(
          fmt::format("{} (sm_{}): the image is empty", where,
                      executable->sm()));
    if (!executable->kernels() || executable->kernels()->size() == 0)
      return invalidArgument(fmt::format(
          "{} (sm_{}): expected the names of its kernels, found none", where,
          executable->sm()));
    for (const flatbuffers::String *name : *executable->kernels())
      if (!name || name->size() == 0)
        return invalidArgument(fmt::format(
            "{} (sm_{}): a kernel without a name", where, executable->sm()));
  }
  return Status::success();
}

Status PlanChecker::checkPrograms() {
  if (!plan_.programs() || plan_.programs()->size() == 0)
    return Status::success();
  std::set<std::string> names;
  int64_t next = -1; // where the next program must begin
  for (uint32_t i = 0; i < plan_.programs()->size(); ++i) {
    const fb::Program *program = plan_.programs()->Get(i);
    const std::string name = program->name()->str();
    const std::string where = fmt::format("program #{} ('{}')", i, name);
    if (name.empty() || name == "train_step" || !names.insert(name).second)
      return invalidArgument(fmt::format(
          "{}: expected a unique name other than 'train_step'", where));
    if (next < 0)
      next = program->begin();
    if (program->begin() != next || program->begin() < 0 ||
        program->end() < program->begin() ||
        program->end() > static_cast<int64_t>(numInstructions()))
      return invalidArgument(fmt::format(
          "{}: expected instructions [{}, end) with end <= {} (programs "
          "follow the training step back to back), found [{}, {})",
          where, next, numInstructions(), program->begin(), program->end()));
    next = program->end();
    for (const auto &[list, kind] :
         {std::make_pair(program->inputs(), "input"),
          std::make_pair(program->outputs(), "output")}) {
      if (!list)
        continue;
      for (uint32_t j = 0; j < list->size(); ++j) {
        int32_t id = list->Get(j);
        if (id < 0 || static_cast<uint32_t>(id) >= numBuffers())
          return invalidArgument(
              fmt::format("{}: {} #{} is buffer {}, expected an id in [0, {})",
                          where, kind, j, id, numBuffers()));
        const fb::Buffer &buf = buffer(id);
        bool persistent = buf.region() == fb::BufferRegion::persistent;
        bool inside = buf.region() == fb::BufferRegion::arena &&
                      buf.live_begin() >= program->begin() &&
                      liveEnd(buf) < program->end();
        if (std::string(kind) == "input" ? !persistent
                                         : !(persistent || inside))
          return invalidArgument(
              fmt::format("{}: {} #{} is {}, expected a persistent buffer{}",
                          where, kind, j, bufferLabel(buf),
                          std::string(kind) == "input"
                              ? ""
                              : " or an arena buffer live within the program"));
      }
    }
  }
  if (next != static_cast<int64_t>(numInstructions()))
    return invalidArgument(fmt::format(
        "the last program ends at instruction {}, expected the end of the "
        "plan ({})",
        next, numInstructions()));
  // No arena buffer may live from one program into the next (a program's
  // results are read before another one runs).
  struct Range {
    std::string name;
    int64_t begin, end;
  };
  std::vector<Range> ranges = {
      {"the training step", 0, plan_.programs()->Get(0)->begin()}};
  for (const fb::Program *program : *plan_.programs())
    ranges.push_back({"program '" + program->name()->str() + "'",
                      program->begin(), program->end()});
  for (uint32_t id = 0; id < numBuffers(); ++id) {
    const fb::Buffer &buf = buffer(static_cast<int32_t>(id));
    if (buf.region() != fb::BufferRegion::arena)
      continue;
    for (const Range &range : ranges)
      if (buf.live_begin() >= range.begin && buf.live_begin() < range.end &&
          liveEnd(buf) >= range.end)
        return invalidArgument(fmt::format(
            "{} is live over instructions [{}, {}], past the end of {} ({})",
            bufferLabel(buf), buf.live_begin(), liveEnd(buf), range.name,
            range.end - 1));
  }
  return Status::success();
}

Status PlanChecker::checkTraining() {
  const fb::TrainingConfig *training = plan_.training();
  if (!training)
    return Status::success();
  auto check = [](bool ok, const std::string &message) {
    return ok ? Status::success()
              : invalidArgument("training config: " + message);
  };
  MOERT_RETURN_IF_ERROR(check(std::isfinite(training->learning_rate()) &&
                                  training->learning_rate() >= 0,
                              fmt::format("learning_rate is {}, expected >= 0",
                                          training->learning_rate())));
  MOERT_RETURN_IF_ERROR(
      check(training->beta1() >= 0 && training->beta1() < 1,
            fmt::format("beta1 is {}, expected in [0, 1)", training->beta1())));
  MOERT_RETURN_IF_ERROR(
      check(training->beta2() >= 0 && training->beta2() < 1,
            fmt::format("beta2 is {}, expected in [0, 1)", training->beta2())));
  MOERT_RETURN_IF_ERROR(
      check(training->epsilon() > 0 && std::isfinite(training->epsilon()),
            fmt::format("epsilon is {}, expected > 0", training->epsilon())));
  MOERT_RETURN_IF_ERROR(check(training->weight_decay() >= 0 &&
                                  std::isfinite(training->weight_decay()),
                              fmt::format("weight_decay is {}, expected >= 0",
                                          training->weight_decay())));
  MOERT_RETURN_IF_ERROR(check(training->warmup_steps() >= 0,
                              fmt::format("warmup_steps is {}, expected >= 0",
                                          training->warmup_steps())));
  MOERT_RETURN_IF_ERROR(
      check(training->clip_norm() >= 0 && std::isfinite(training->clip_norm()),
            fmt::format("clip_norm is {}, expected >= 0 (0 disables clipping)",
                        training->clip_norm())));
  MOERT_RETURN_IF_ERROR(
      check(training->aux_loss_coefficient() >= 0 &&
                std::isfinite(training->aux_loss_coefficient()),
            fmt::format("aux_loss_coefficient is {}, expected >= 0",
                        training->aux_loss_coefficient())));
  return check(training->steps() >= 0,
               fmt::format("steps is {}, expected >= 0", training->steps()));
}

/// The FlatBuffers 2.0.8 verifier checks a vector's length field for 4-byte
/// alignment but not its elements for their own alignment; a corrupt offset
/// can leave a vector of 64-bit values misaligned, and reading it is
/// undefined behaviour. The builder always aligns them, so a misaligned one
/// means corruption.
Status checkWideVectorAlignment(const fb::Plan &plan) {
  auto aligned = [](const flatbuffers::Vector<int64_t> *values) {
    return !values ||
           reinterpret_cast<uintptr_t>(values->Data()) % alignof(int64_t) == 0;
  };
  auto misaligned = [](const std::string &where) {
    return dataLoss(where + ": a vector of 64-bit values is misaligned "
                            "(corrupt plan)");
  };
  if (plan.parameters())
    for (uint32_t i = 0; i < plan.parameters()->size(); ++i)
      if (!aligned(plan.parameters()->Get(i)->shape()))
        return misaligned(fmt::format("parameter #{}", i));
  if (plan.batch_inputs())
    for (uint32_t i = 0; i < plan.batch_inputs()->size(); ++i)
      if (!aligned(plan.batch_inputs()->Get(i)->shape()))
        return misaligned(fmt::format("batch input #{}", i));
  if (plan.buffers())
    for (uint32_t i = 0; i < plan.buffers()->size(); ++i)
      if (!aligned(plan.buffers()->Get(i)->shape()))
        return misaligned(fmt::format("buffer #{}", i));
  if (plan.instructions())
    for (uint32_t i = 0; i < plan.instructions()->size(); ++i) {
      const auto *attributes = plan.instructions()->Get(i)->attributes();
      if (!attributes)
        continue;
      for (const fb::Attribute *attribute : *attributes)
        if (const fb::IntVectorValue *vector =
                attribute->value_as_IntVectorValue())
          if (!aligned(vector->values()))
            return misaligned(fmt::format("instruction #{}", i));
    }
  return Status::success();
}

/// Reads only the root table's version field, with just enough verification
/// to make that read safe.
Status readVersion(const std::vector<uint8_t> &bytes, uint16_t &major,
                   uint16_t &minor) {
  flatbuffers::Verifier verifier(bytes.data(), bytes.size());
  const auto *root = flatbuffers::GetRoot<flatbuffers::Table>(bytes.data());
  if (flatbuffers::ReadScalar<flatbuffers::uoffset_t>(bytes.data()) >=
          bytes.size() ||
      !root->VerifyTableStart(verifier) ||
      !root->VerifyField<fb::SchemaVersion>(verifier, fb::Plan::VT_VERSION,
                                            alignof(fb::SchemaVersion)))
    return dataLoss("the root table is corrupt (cannot read the schema "
                    "version)");
  const auto *version =
      root->GetStruct<const fb::SchemaVersion *>(fb::Plan::VT_VERSION);
  if (!version)
    return dataLoss("the plan has no schema version");
  major = version->major();
  minor = version->minor();
  return Status::success();
}

} // namespace

fb::PlanT LoadedPlan::unpack() const {
  fb::PlanT unpacked;
  plan().UnPackTo(&unpacked);
  return unpacked;
}

Status checkPlanSemantics(const fb::Plan &plan) {
  if (!plan.version())
    return dataLoss("the plan has no schema version");
  return PlanChecker(plan).run();
}

Expected<LoadedPlan> loadPlanFromBytes(std::vector<uint8_t> bytes,
                                       const std::string &source) {
  auto fail = [&](Status status) -> Status {
    return std::move(status.withContext("plan '" + source + "'"));
  };
  // Root offset (4 bytes) + file identifier (4 bytes).
  constexpr size_t kHeaderBytes = 8;
  if (bytes.size() < kHeaderBytes)
    return fail(dataLoss(fmt::format(
        "the file has {} bytes, expected at least {} (root offset and file "
        "identifier)",
        bytes.size(), kHeaderBytes)));
  // The builder pads every buffer to its alignment (at least that of the
  // 4-byte offsets), so a size that is not a multiple of 4 means the file
  // lost bytes, even if what is left still happens to verify.
  if (bytes.size() % sizeof(flatbuffers::uoffset_t) != 0)
    return fail(dataLoss(fmt::format(
        "the file has {} bytes, expected a multiple of 4 (a FlatBuffer's size "
        "always is; truncated file?)",
        bytes.size())));
  if (bytes.size() > FLATBUFFERS_MAX_BUFFER_SIZE)
    return fail(dataLoss(
        fmt::format("the file has {} bytes, more than a FlatBuffer can hold",
                    bytes.size())));
  if (!fb::PlanBufferHasIdentifier(bytes.data())) {
    std::string found;
    for (size_t i = 4; i < kHeaderBytes; ++i) {
      char c = static_cast<char>(bytes[i]);
      found += (c >= 32 && c < 127) ? std::string(1, c)
                                    : fmt::format("\\x{:02x}", bytes[i]);
    }
    return fail(dataLoss(fmt::format(
        "file identifier is \"{}\", expected \"{}\" (not a plan file)", found,
        fb::PlanIdentifier())));
  }

  uint16_t major = 0, minor = 0;
  if (Status status = readVersion(bytes, major, minor); !status.ok())
    return fail(std::move(status));
  if (major != kSchemaMajorVersion)
    return fail(failedPrecondition(fmt::format(
        "plan schema version {}.{} is not supported: this runtime reads "
        "schema {}.x (it was built with {}.{}); {}",
        major, minor, kSchemaMajorVersion, kSchemaMajorVersion,
        kSchemaMinorVersion,
        major > kSchemaMajorVersion
            ? "the plan comes from a newer compiler, update the runtime"
            : "the plan comes from an older compiler, recompile the model")));

  // Every table takes at least 4 bytes, so this bound never rejects a
  // valid plan while still bounding the work on a hostile one.
  flatbuffers::Verifier::Options options;
  options.max_tables = std::max<flatbuffers::uoffset_t>(
      options.max_tables,
      static_cast<flatbuffers::uoffset_t>(bytes.size() / 4));
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), options);
  if (!fb::VerifyPlanBuffer(verifier))
    return fail(dataLoss(
        fmt::format("the FlatBuffers verifier rejects the {} bytes (corrupt "
                    "or truncated plan, or not written with schema {}.x)",
                    bytes.size(), kSchemaMajorVersion)));

  if (Status status = checkWideVectorAlignment(*fb::GetPlan(bytes.data()));
      !status.ok())
    return fail(std::move(status));
  if (Status status = checkPlanSemantics(*fb::GetPlan(bytes.data()));
      !status.ok())
    return fail(std::move(status));
  return LoadedPlan(std::move(bytes), source);
}

Expected<LoadedPlan> loadPlan(const std::string &path) {
  // Only a regular file: a directory, a FIFO (which would block) or a
  // device such as /dev/zero (read without end) is refused by type, and a
  // file over the FlatBuffers limit of 2 GiB by size, before reading.
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    return Status(errno == ENOENT ? StatusCode::NotFound
                                  : StatusCode::FailedPrecondition,
                  "plan '" + path + "': cannot open the file (" +
                      std::strerror(errno) + ")");
  if (!S_ISREG(info.st_mode))
    return failedPrecondition(
        "plan '" + path + "': expected a regular file, found " +
        (S_ISDIR(info.st_mode)    ? "a directory"
         : S_ISFIFO(info.st_mode) ? "a FIFO"
         : S_ISCHR(info.st_mode)  ? "a character device"
                                  : "another kind of file"));
  if (static_cast<uint64_t>(info.st_size) > (uint64_t(1) << 31))
    return dataLoss(fmt::format("plan '{}': the file has {} bytes, more "
                                "than a plan can have (2 GiB)",
                                path, static_cast<uint64_t>(info.st_size)));
  std::ifstream file(path, std::ios::binary);
  if (!file)
    return Status(StatusCode::NotFound,
                  "plan '" + path + "': cannot open the file");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                             std::istreambuf_iterator<char>());
  if (file.bad())
    return dataLoss("plan '" + path + "': read error");
  return loadPlanFromBytes(std::move(bytes), path);
}

} // namespace moert::plan
