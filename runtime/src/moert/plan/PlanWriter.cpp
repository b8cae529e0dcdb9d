//===- PlanWriter.cpp - Builds execution plans ----------------------------===//

#include "moert/plan/PlanWriter.h"

#include "moert/checkpoint/AtomicFile.h"

#include <algorithm>

namespace moert::plan {
namespace {

uint64_t bytesOf(const std::vector<int64_t> &shape, fb::DType dtype) {
  int64_t elements = 1;
  for (int64_t dim : shape)
    elements *= dim;
  return static_cast<uint64_t>(elements * dtypeSize(dtype));
}

uint64_t alignUp(uint64_t value, uint64_t alignment) {
  if (alignment == 0)
    return value;
  return (value + alignment - 1) / alignment * alignment;
}

std::vector<std::unique_ptr<fb::DimShardingT>>
toDimShardings(const ShardSpec &spec) {
  std::vector<std::unique_ptr<fb::DimShardingT>> result;
  for (const std::vector<int> &axes : spec) {
    auto dim = std::make_unique<fb::DimShardingT>();
    for (int axis : axes)
      dim->axes.push_back(static_cast<uint8_t>(axis));
    result.push_back(std::move(dim));
  }
  return result;
}

} // namespace

InstructionEditor &InstructionEditor::intAttr(const std::string &name,
                                              int64_t value) {
  auto attribute = std::make_unique<fb::AttributeT>();
  attribute->name = name;
  fb::IntValueT payload;
  payload.value = value;
  attribute->value.Set(std::move(payload));
  instruction_.attributes.push_back(std::move(attribute));
  return *this;
}

InstructionEditor &InstructionEditor::floatAttr(const std::string &name,
                                                double value) {
  auto attribute = std::make_unique<fb::AttributeT>();
  attribute->name = name;
  fb::FloatValueT payload;
  payload.value = value;
  attribute->value.Set(std::move(payload));
  instruction_.attributes.push_back(std::move(attribute));
  return *this;
}

InstructionEditor &InstructionEditor::boolAttr(const std::string &name,
                                               bool value) {
  auto attribute = std::make_unique<fb::AttributeT>();
  attribute->name = name;
  fb::BoolValueT payload;
  payload.value = value;
  attribute->value.Set(std::move(payload));
  instruction_.attributes.push_back(std::move(attribute));
  return *this;
}

InstructionEditor &InstructionEditor::stringAttr(const std::string &name,
                                                 std::string value) {
  auto attribute = std::make_unique<fb::AttributeT>();
  attribute->name = name;
  fb::StringValueT payload;
  payload.value = std::move(value);
  attribute->value.Set(std::move(payload));
  instruction_.attributes.push_back(std::move(attribute));
  return *this;
}

InstructionEditor &
InstructionEditor::intVectorAttr(const std::string &name,
                                 std::vector<int64_t> values) {
  auto attribute = std::make_unique<fb::AttributeT>();
  attribute->name = name;
  fb::IntVectorValueT payload;
  payload.values = std::move(values);
  attribute->value.Set(std::move(payload));
  instruction_.attributes.push_back(std::move(attribute));
  return *this;
}

InstructionEditor &InstructionEditor::collective(std::vector<int> axes,
                                                 fb::ReductionKind reduction,
                                                 int splitDim, int concatDim) {
  auto collective = std::make_unique<fb::CollectiveT>();
  for (int axis : axes)
    collective->axes.push_back(static_cast<uint8_t>(axis));
  collective->reduction = reduction;
  collective->split_dim = splitDim;
  collective->concat_dim = concatDim;
  instruction_.collective = std::move(collective);
  return *this;
}

InstructionEditor &InstructionEditor::location(std::string location) {
  instruction_.location = std::move(location);
  return *this;
}

PlanWriter::PlanWriter(std::string modelName) {
  plan_.version = std::make_unique<fb::SchemaVersion>(kSchemaMajorVersion,
                                                      kSchemaMinorVersion);
  plan_.model_name = std::move(modelName);
  plan_.grid = std::make_unique<fb::DeviceGridT>();
}

int PlanWriter::addGridAxis(std::string name, int size, fb::AxisRole role) {
  auto axis = std::make_unique<fb::GridAxisT>();
  axis->name = std::move(name);
  axis->size = size;
  axis->role = role;
  plan_.grid->axes.push_back(std::move(axis));
  return static_cast<int>(plan_.grid->axes.size()) - 1;
}

void PlanWriter::setZeroStage(int stage) {
  plan_.grid->zero_stage = static_cast<uint8_t>(stage);
}

int PlanWriter::addArenaBuffer(std::vector<int64_t> shape, fb::DType dtype,
                               uint64_t offset, int liveBegin, int liveEnd,
                               std::string name) {
  auto buffer = std::make_unique<fb::BufferT>();
  buffer->id = static_cast<int32_t>(plan_.buffers.size());
  buffer->size = bytesOf(shape, dtype);
  buffer->shape = std::move(shape);
  buffer->dtype = dtype;
  buffer->region = fb::BufferRegion::arena;
  buffer->offset = offset;
  buffer->live_begin = liveBegin;
  buffer->live_end = liveEnd;
  buffer->name = std::move(name);
  plan_.arena_bytes = std::max<uint64_t>(
      plan_.arena_bytes, alignUp(offset + buffer->size, plan_.arena_alignment));
  plan_.buffers.push_back(std::move(buffer));
  return static_cast<int>(plan_.buffers.size()) - 1;
}

int PlanWriter::addPersistentBuffer(std::vector<int64_t> shape, fb::DType dtype,
                                    std::string name) {
  auto buffer = std::make_unique<fb::BufferT>();
  buffer->id = static_cast<int32_t>(plan_.buffers.size());
  buffer->size = bytesOf(shape, dtype);
  buffer->shape = std::move(shape);
  buffer->dtype = dtype;
  buffer->region = fb::BufferRegion::persistent;
  buffer->offset = alignUp(plan_.persistent_bytes, plan_.arena_alignment);
  buffer->name = std::move(name);
  plan_.persistent_bytes = buffer->offset + buffer->size;
  plan_.buffers.push_back(std::move(buffer));
  return static_cast<int>(plan_.buffers.size()) - 1;
}

int PlanWriter::addConstantBuffer(std::vector<int64_t> shape, fb::DType dtype,
                                  double splat, std::string name) {
  auto buffer = std::make_unique<fb::BufferT>();
  buffer->id = static_cast<int32_t>(plan_.buffers.size());
  buffer->size = bytesOf(shape, dtype);
  buffer->shape = std::move(shape);
  buffer->dtype = dtype;
  buffer->region = fb::BufferRegion::constant;
  buffer->splat = splat;
  buffer->name = std::move(name);
  plan_.buffers.push_back(std::move(buffer));
  return static_cast<int>(plan_.buffers.size()) - 1;
}

int PlanWriter::addParameter(const ParameterSpec &spec) {
  auto parameter = std::make_unique<fb::ParameterT>();
  parameter->name = spec.name;
  parameter->shape = spec.shape;
  parameter->dtype = spec.dtype;
  parameter->sharding = toDimShardings(spec.sharding);
  parameter->init = spec.init;
  parameter->init_scale = spec.initScale;
  parameter->group = spec.group;
  parameter->buffer = spec.buffer;
  parameter->grad_buffer = spec.gradBuffer;
  parameter->exp_avg_buffer = spec.expAvgBuffer;
  parameter->exp_avg_sq_buffer = spec.expAvgSqBuffer;
  parameter->state_sharding = toDimShardings(spec.stateSharding);
  plan_.parameters.push_back(std::move(parameter));
  return static_cast<int>(plan_.parameters.size()) - 1;
}

int PlanWriter::addBatchInput(const BatchInputSpec &spec) {
  auto input = std::make_unique<fb::BatchInputT>();
  input->name = spec.name;
  input->shape = spec.shape;
  input->dtype = spec.dtype;
  input->sharding = toDimShardings(spec.sharding);
  input->buffer = spec.buffer;
  plan_.batch_inputs.push_back(std::move(input));
  return static_cast<int>(plan_.batch_inputs.size()) - 1;
}

InstructionEditor PlanWriter::addInstruction(fb::Opcode opcode,
                                             std::vector<int> operands,
                                             std::vector<int> results) {
  auto instruction = std::make_unique<fb::InstructionT>();
  instruction->opcode = opcode;
  instruction->operands.assign(operands.begin(), operands.end());
  instruction->results.assign(results.begin(), results.end());
  plan_.instructions.push_back(std::move(instruction));
  return InstructionEditor(*plan_.instructions.back());
}

void PlanWriter::setTrainingConfig(const fb::TrainingConfigT &config) {
  plan_.training = std::make_unique<fb::TrainingConfigT>(config);
}

void PlanWriter::addExecutable(int sm, std::string format,
                               std::vector<uint8_t> image,
                               std::vector<std::string> kernels) {
  auto executable = std::make_unique<fb::ExecutableT>();
  executable->sm = sm;
  executable->format = std::move(format);
  executable->image = std::move(image);
  executable->kernels = std::move(kernels);
  plan_.executables.push_back(std::move(executable));
}

void PlanWriter::addProgram(std::string name, int begin, int end,
                            std::vector<int> inputs, std::vector<int> outputs) {
  auto program = std::make_unique<fb::ProgramT>();
  program->name = std::move(name);
  program->begin = begin;
  program->end = end;
  program->inputs = std::move(inputs);
  program->outputs = std::move(outputs);
  plan_.programs.push_back(std::move(program));
}

std::vector<uint8_t> PlanWriter::finish() const { return serializePlan(plan_); }

std::vector<uint8_t> serializePlan(const fb::PlanT &plan) {
  flatbuffers::FlatBufferBuilder builder(4096);
  fb::FinishPlanBuffer(builder, fb::Plan::Pack(builder, &plan));
  return std::vector<uint8_t>(builder.GetBufferPointer(),
                              builder.GetBufferPointer() + builder.GetSize());
}

Status writePlanFile(const std::string &path,
                     const std::vector<uint8_t> &bytes) {
  Status status =
      checkpoint::writeFileAtomically(path, bytes.data(), bytes.size());
  if (!status.ok())
    status.withContext("writing plan");
  return status;
}

} // namespace moert::plan
