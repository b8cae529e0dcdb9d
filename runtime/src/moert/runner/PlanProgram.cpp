//===- PlanProgram.cpp - A verified plan as an executable Program ---------===//
#include "moert/runner/PlanProgram.h"

#include "moert/Ops.h"

#include <algorithm>

namespace moert {
namespace runner {

namespace fb = plan::fb;

namespace {

Expected<exec::DType> programDType(fb::DType dtype, const std::string &where) {
  switch (dtype) {
  case fb::DType::f32:
    return exec::DType::F32;
  case fb::DType::i32:
    return exec::DType::I32;
  case fb::DType::i64:
    return exec::DType::I64;
  case fb::DType::i1:
    return exec::DType::Bool;
  case fb::DType::bf16:
    return exec::DType::BF16;
  case fb::DType::f16:
    return exec::DType::F16;
  default:
    return unimplemented(where + ": element type " + plan::dtypeName(dtype) +
                         " is not supported by the CPU executor");
  }
}

Expected<exec::AttrValue> attrValue(const fb::Attribute &attr,
                                    const std::string &where) {
  switch (attr.value_type()) {
  case fb::AttrValue::IntValue:
    return exec::AttrValue(
        static_cast<int64_t>(attr.value_as_IntValue()->value()));
  case fb::AttrValue::FloatValue:
    return exec::AttrValue(attr.value_as_FloatValue()->value());
  case fb::AttrValue::BoolValue:
    return exec::AttrValue(
        static_cast<int64_t>(attr.value_as_BoolValue()->value() ? 1 : 0));
  case fb::AttrValue::StringValue: {
    const flatbuffers::String *text = attr.value_as_StringValue()->value();
    return exec::AttrValue(text ? text->str() : std::string());
  }
  case fb::AttrValue::IntVectorValue: {
    const flatbuffers::Vector<int64_t> *values =
        attr.value_as_IntVectorValue()->values();
    std::vector<int64_t> vector;
    if (values)
      vector.assign(values->begin(), values->end());
    return exec::AttrValue(std::move(vector));
  }
  default:
    return unimplemented(where + ": attribute '" + attr.name()->str() +
                         "' has a kind the CPU executor does not read");
  }
}

exec::Reduction reduction(fb::ReductionKind kind) {
  switch (kind) {
  case fb::ReductionKind::sum:
    return exec::Reduction::Sum;
  case fb::ReductionKind::mean:
    return exec::Reduction::Mean;
  case fb::ReductionKind::max:
    return exec::Reduction::Max;
  case fb::ReductionKind::min:
    return exec::Reduction::Min;
  default:
    return exec::Reduction::None;
  }
}

exec::CollectiveInfo collectiveInfo(const fb::Collective &collective) {
  exec::CollectiveInfo info;
  if (collective.axes())
    info.axes.assign(collective.axes()->begin(), collective.axes()->end());
  info.reduction = reduction(collective.reduction());
  info.splitDim = collective.split_dim();
  info.concatDim = collective.concat_dim();
  return info;
}

} // namespace

Expected<exec::Program> programFromPlan(const fb::Plan &plan) {
  exec::Program program;
  program.arenaBytes = static_cast<int64_t>(plan.arena_bytes());
  program.persistentBytes = static_cast<int64_t>(plan.persistent_bytes());
  if (plan.grid() && plan.grid()->axes())
    for (const fb::GridAxis *axis : *plan.grid()->axes())
      program.gridShape.push_back(axis->size());
  if (const auto *executables = plan.executables())
    for (const fb::Executable *e : *executables) {
      exec::Executable executable;
      executable.sm = e->sm();
      if (e->format())
        executable.format = e->format()->str();
      if (e->image())
        executable.image.assign(e->image()->begin(), e->image()->end());
      if (e->kernels())
        for (const flatbuffers::String *name : *e->kernels())
          executable.kernels.push_back(name->str());
      program.executables.push_back(std::move(executable));
    }
  if (const auto *programs = plan.programs())
    for (const fb::Program *p : *programs) {
      exec::EntryPoint entry;
      entry.name = p->name()->str();
      entry.begin = static_cast<size_t>(p->begin());
      entry.end = static_cast<size_t>(p->end());
      if (p->inputs())
        entry.inputs.assign(p->inputs()->begin(), p->inputs()->end());
      if (p->outputs())
        entry.outputs.assign(p->outputs()->begin(), p->outputs()->end());
      program.entryPoints.push_back(std::move(entry));
    }
  bool anyHost = false;
  if (const auto *buffers = plan.buffers()) {
    for (const fb::Buffer *b : *buffers) {
      std::string where = "buffer " + std::to_string(b->id());
      exec::Buffer buffer;
      MOERT_ASSIGN_OR_RETURN(buffer.type.dtype,
                             programDType(b->dtype(), where));
      if (b->shape())
        buffer.type.shape.assign(b->shape()->begin(), b->shape()->end());
      switch (b->region()) {
      case fb::BufferRegion::arena:
        buffer.kind = exec::BufferKind::Arena;
        break;
      case fb::BufferRegion::persistent:
        buffer.kind =
            b->host() ? exec::BufferKind::Host : exec::BufferKind::Persistent;
        anyHost = anyHost || b->host();
        break;
      case fb::BufferRegion::constant:
        buffer.kind = exec::BufferKind::Constant;
        buffer.splat = b->splat();
        break;
      default:
        return unimplemented(where + ": unknown buffer region");
      }
      buffer.offset = static_cast<int64_t>(b->offset());
      if (b->name())
        buffer.name = b->name()->str();
      program.buffers.push_back(std::move(buffer));
    }
  }
  // Host state (E+Z-Offload) gets a region of its own; the device's
  // persistent region keeps the rest, in plan order.
  if (anyHost)
    exec::layOutPersistentState(program,
                                std::max<int64_t>(plan.arena_alignment(), 1));
  if (const auto *instructions = plan.instructions()) {
    int index = 0;
    for (const fb::Instruction *inst : *instructions) {
      std::string name = plan::opcodeName(inst->opcode());
      std::string where =
          "instruction #" + std::to_string(index++) + " (" + name + ")";
      std::optional<Op> op =
          opFromValue(static_cast<uint32_t>(inst->opcode()));
      if (!op)
        return unimplemented(where + ": not an op of this runtime");
      exec::Instruction instruction;
      instruction.kernel = opInfo(*op).dialectName;
      if (opInfo(*op).collective) {
        if (!inst->collective())
          return invalidArgument(where + ": a collective without collective "
                                         "parameters");
        instruction.collective = collectiveInfo(*inst->collective());
      }
      if (inst->operands())
        instruction.operands.assign(inst->operands()->begin(),
                                    inst->operands()->end());
      if (inst->results())
        instruction.results.assign(inst->results()->begin(),
                                   inst->results()->end());
      if (inst->attributes())
        for (const fb::Attribute *attr : *inst->attributes()) {
          MOERT_ASSIGN_OR_RETURN(exec::AttrValue value,
                                 attrValue(*attr, where));
          instruction.attrs[attr->name()->str()] = std::move(value);
        }
      if (inst->location())
        instruction.location = inst->location()->str();
      program.instructions.push_back(std::move(instruction));
    }
  }
  return program;
}

} // namespace runner
} // namespace moert
