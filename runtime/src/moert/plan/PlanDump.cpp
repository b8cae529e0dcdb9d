//===- PlanDump.cpp - Human-readable listing of a plan --------------------===//

#include "moert/plan/PlanDump.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <sstream>

namespace moert::plan {
namespace {

std::string shapeOf(const flatbuffers::Vector<int64_t> *dims) {
  if (!dims)
    return "[]";
  return formatShape(std::vector<int64_t>(dims->begin(), dims->end()));
}

std::string axisList(const fb::DeviceGrid &grid,
                     const flatbuffers::Vector<uint8_t> *axes) {
  std::string text;
  if (!axes)
    return text;
  for (uint8_t axis : *axes) {
    if (!text.empty())
      text += " x ";
    text += grid.axes() && axis < grid.axes()->size()
                ? grid.axes()->Get(axis)->name()->str()
                : fmt::format("axis{}", axis);
  }
  return text;
}

/// "[-, dp x ep]"; "replicated" for no sharding.
std::string shardingOf(
    const fb::DeviceGrid &grid,
    const flatbuffers::Vector<flatbuffers::Offset<fb::DimSharding>> *sharding) {
  if (!sharding || sharding->size() == 0)
    return "replicated";
  std::string text = "[";
  for (uint32_t dim = 0; dim < sharding->size(); ++dim) {
    std::string axes = axisList(grid, sharding->Get(dim)->axes());
    text += (dim ? ", " : "") + (axes.empty() ? "-" : axes);
  }
  return text + "]";
}

std::string bufferList(const flatbuffers::Vector<int32_t> *ids) {
  std::string text;
  if (!ids)
    return text;
  for (int32_t id : *ids)
    text += fmt::format("{}%{}", text.empty() ? "" : ", ", id);
  return text;
}

std::string attributeValue(const fb::Attribute &attribute) {
  switch (attribute.value_type()) {
  case fb::AttrValue::IntValue:
    return std::to_string(attribute.value_as_IntValue()->value());
  case fb::AttrValue::FloatValue:
    return fmt::format("{}", attribute.value_as_FloatValue()->value());
  case fb::AttrValue::BoolValue:
    return attribute.value_as_BoolValue()->value() ? "true" : "false";
  case fb::AttrValue::StringValue: {
    const flatbuffers::String *text = attribute.value_as_StringValue()->value();
    return "\"" + (text ? text->str() : std::string()) + "\"";
  }
  case fb::AttrValue::IntVectorValue: {
    const auto *values = attribute.value_as_IntVectorValue()->values();
    return shapeOf(values);
  }
  case fb::AttrValue::NONE:
    break;
  }
  return "?";
}

} // namespace

void printPlan(const fb::Plan &plan, std::ostream &out) {
  const fb::DeviceGrid &grid = *plan.grid();
  fmt::print(out, "plan '{}' (schema {}.{})\n",
             plan.model_name() ? plan.model_name()->str() : "",
             plan.version()->major(), plan.version()->minor());

  std::string axes;
  if (grid.axes())
    for (const fb::GridAxis *axis : *grid.axes())
      axes += fmt::format("{}{}={} ({})", axes.empty() ? "" : " x ",
                          axis->name()->str(), axis->size(),
                          fb::EnumNameAxisRole(axis->role()));
  fmt::print(out, "grid: {} = {} ranks, ZeRO stage {}\n",
             axes.empty() ? "single rank" : axes, numRanks(grid),
             grid.zero_stage());

  if (const fb::TrainingConfig *training = plan.training())
    fmt::print(out,
               "training: seed {}, lr {}, betas ({}, {}), eps {}, weight "
               "decay {}, warmup {} steps, clip norm {}, aux loss coef {}, "
               "{} steps\n",
               training->seed(), training->learning_rate(), training->beta1(),
               training->beta2(), training->epsilon(), training->weight_decay(),
               training->warmup_steps(), training->clip_norm(),
               training->aux_loss_coefficient(), training->steps());

  if (plan.executables())
    for (const fb::Executable *executable : *plan.executables()) {
      std::string kernels;
      if (executable->kernels())
        for (const flatbuffers::String *name : *executable->kernels())
          kernels += (kernels.empty() ? "" : ", ") + name->str();
      fmt::print(out, "executable: sm_{} {} ({} bytes): {}\n",
                 executable->sm(),
                 executable->format() ? executable->format()->str() : "?",
                 executable->image() ? executable->image()->size() : 0,
                 kernels);
    }

  if (plan.programs())
    for (const fb::Program *program : *plan.programs())
      fmt::print(out,
                 "program: {} instructions [{}, {}), inputs {}, outputs {}\n",
                 program->name()->str(), program->begin(), program->end(),
                 bufferList(program->inputs()), bufferList(program->outputs()));

  uint32_t numParameters = plan.parameters() ? plan.parameters()->size() : 0;
  fmt::print(out, "parameters ({}):\n", numParameters);
  for (uint32_t i = 0; i < numParameters; ++i) {
    const fb::Parameter &param = *plan.parameters()->Get(i);
    fmt::print(out, "  #{} {} {} {} {} init {}({}) {}", i, param.name()->str(),
               shapeOf(param.shape()), dtypeName(param.dtype()),
               shardingOf(grid, param.sharding()),
               fb::EnumNameInitKind(param.init()), param.init_scale(),
               fb::EnumNameParamGroup(param.group()));
    if (param.buffer() >= 0)
      fmt::print(out, " -> %{}", param.buffer());
    if (param.grad_buffer() >= 0)
      fmt::print(out, " grad %{}", param.grad_buffer());
    if (param.exp_avg_buffer() >= 0 || param.exp_avg_sq_buffer() >= 0)
      fmt::print(out, " moments %{}, %{}", param.exp_avg_buffer(),
                 param.exp_avg_sq_buffer());
    if (param.state_sharding() && param.state_sharding()->size() > 0)
      fmt::print(out, " state {}", shardingOf(grid, param.state_sharding()));
    out << "\n";
  }

  uint32_t numInputs = plan.batch_inputs() ? plan.batch_inputs()->size() : 0;
  fmt::print(out, "batch inputs ({}):\n", numInputs);
  for (uint32_t i = 0; i < numInputs; ++i) {
    const fb::BatchInput &input = *plan.batch_inputs()->Get(i);
    fmt::print(out, "  #{} {} {} {} {}", i, input.name()->str(),
               shapeOf(input.shape()), dtypeName(input.dtype()),
               shardingOf(grid, input.sharding()));
    if (input.buffer() >= 0)
      fmt::print(out, " -> %{}", input.buffer());
    out << "\n";
  }

  uint32_t numBuffers = plan.buffers() ? plan.buffers()->size() : 0;
  fmt::print(out,
             "buffers ({}): arena {} bytes (alignment {}), persistent {} "
             "bytes\n",
             numBuffers, plan.arena_bytes(), plan.arena_alignment(),
             plan.persistent_bytes());
  for (uint32_t i = 0; i < numBuffers; ++i) {
    const fb::Buffer &buf = *plan.buffers()->Get(i);
    fmt::print(out, "  %{} {} {} {}", buf.id(), shapeOf(buf.shape()),
               dtypeName(buf.dtype()), fb::EnumNameBufferRegion(buf.region()));
    if (buf.region() == fb::BufferRegion::constant)
      fmt::print(out, " splat {}", buf.splat());
    else
      fmt::print(out, " [{}, {})", buf.offset(), buf.offset() + buf.size());
    if (buf.host())
      out << " host";
    if (buf.region() == fb::BufferRegion::arena)
      fmt::print(out, " live [{}, {}]", buf.live_begin(),
                 buf.live_end() < 0 ? std::string("end")
                                    : std::to_string(buf.live_end()));
    if (buf.name() && buf.name()->size())
      fmt::print(out, " '{}'", buf.name()->str());
    out << "\n";
  }

  uint32_t numInstructions =
      plan.instructions() ? plan.instructions()->size() : 0;
  fmt::print(out, "instructions ({}):\n", numInstructions);
  for (uint32_t i = 0; i < numInstructions; ++i) {
    const fb::Instruction &instruction = *plan.instructions()->Get(i);
    fmt::print(out, "  #{} {} {} -> {}", i, opcodeName(instruction.opcode()),
               bufferList(instruction.operands()),
               bufferList(instruction.results()));
    if (const fb::Collective *collective = instruction.collective()) {
      fmt::print(out, " over [{}]", axisList(grid, collective->axes()));
      if (collective->reduction() != fb::ReductionKind::none)
        fmt::print(out, " {}",
                   fb::EnumNameReductionKind(collective->reduction()));
      if (collective->split_dim() >= 0)
        fmt::print(out, " split {}", collective->split_dim());
      if (collective->concat_dim() >= 0)
        fmt::print(out, " concat {}", collective->concat_dim());
    }
    if (instruction.attributes() && instruction.attributes()->size()) {
      std::string attributes;
      for (const fb::Attribute *attribute : *instruction.attributes())
        attributes +=
            fmt::format("{}{} = {}", attributes.empty() ? "" : ", ",
                        attribute->name()->str(), attributeValue(*attribute));
      fmt::print(out, " {{{}}}", attributes);
    }
    if (instruction.location() && instruction.location()->size())
      fmt::print(out, "  // {}", instruction.location()->str());
    out << "\n";
  }
}

std::string dumpPlan(const fb::Plan &plan) {
  std::ostringstream out;
  printPlan(plan, out);
  return out.str();
}

} // namespace moert::plan
