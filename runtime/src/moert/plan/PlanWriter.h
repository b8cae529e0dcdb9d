//===- PlanWriter.h - Builds execution plans --------------------*- C++ -*-===//
//
// The API the compiler's plan emitter and the tests use to write plans. It
// fills the FlatBuffers object API (fb::PlanT) with helpers that keep the
// easy-to-get-wrong parts consistent: buffer ids are positions, buffer sizes
// follow from shape and dtype, persistent buffers are packed one after
// another, the arena grows to cover every arena buffer. The writer does not
// validate; `finish()` output goes through the same loader checks as any
// other plan, so tests can also write deliberately broken plans (directly
// through `mutablePlan()`).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_PLAN_PLANWRITER_H
#define MOERT_PLAN_PLANWRITER_H

#include "moert/Status.h"
#include "moert/plan/Plan.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moert::plan {

/// The grid axes that split each dimension of a tensor; an empty outer
/// vector means replicated, an empty inner vector a replicated dimension.
using ShardSpec = std::vector<std::vector<int>>;

struct ParameterSpec {
  std::string name;
  std::vector<int64_t> shape; // logical
  fb::DType dtype = fb::DType::f32;
  ShardSpec sharding;
  fb::InitKind init = fb::InitKind::zeros;
  double initScale = 1.0;
  fb::ParamGroup group = fb::ParamGroup::dense;
  int buffer = -1;
  int gradBuffer = -1;
  int expAvgBuffer = -1;
  int expAvgSqBuffer = -1;
  /// Sharding of the moments when ZeRO partitions them further than the
  /// parameter; empty = as `sharding`.
  ShardSpec stateSharding;
};

struct BatchInputSpec {
  std::string name;
  std::vector<int64_t> shape; // logical
  fb::DType dtype = fb::DType::i32;
  ShardSpec sharding;
  int buffer = -1;
};

/// Fluent access to one instruction just added to a PlanWriter. Valid until
/// the next instruction is added.
class InstructionEditor {
public:
  explicit InstructionEditor(fb::InstructionT &instruction)
      : instruction_(instruction) {}

  InstructionEditor &intAttr(const std::string &name, int64_t value);
  InstructionEditor &floatAttr(const std::string &name, double value);
  InstructionEditor &boolAttr(const std::string &name, bool value);
  InstructionEditor &stringAttr(const std::string &name, std::string value);
  InstructionEditor &intVectorAttr(const std::string &name,
                                   std::vector<int64_t> values);
  /// For the collective opcodes: the grid axes of the group, the reduction
  /// (all_reduce, reduce_scatter), the split and concatenated dimensions.
  InstructionEditor &collective(std::vector<int> axes,
                                fb::ReductionKind reduction, int splitDim = -1,
                                int concatDim = -1);
  InstructionEditor &location(std::string location);

  fb::InstructionT &raw() { return instruction_; }

private:
  fb::InstructionT &instruction_;
};

class PlanWriter {
public:
  explicit PlanWriter(std::string modelName);

  /// Appends a grid axis; returns its index (what shard specs refer to).
  int addGridAxis(std::string name, int size, fb::AxisRole role);
  void setZeroStage(int stage);

  /// A step temporary at `offset` in the arena, live over instructions
  /// [liveBegin, liveEnd] (liveEnd = -1: until the end). Grows the arena
  /// to cover it. Returns the buffer id.
  int addArenaBuffer(std::vector<int64_t> shape, fb::DType dtype,
                     uint64_t offset, int liveBegin = 0, int liveEnd = -1,
                     std::string name = "");
  /// A buffer that persists across steps, placed after the previous
  /// persistent buffer (aligned to the arena alignment). Returns its id.
  int addPersistentBuffer(std::vector<int64_t> shape, fb::DType dtype,
                          std::string name = "");
  /// Marks persistent buffer `id` as kept in host memory (fb::Buffer::host).
  void placeOnHost(int id) { plan_.buffers[id]->host = true; }

  /// A read-only buffer whose elements all equal `splat`.
  int addConstantBuffer(std::vector<int64_t> shape, fb::DType dtype,
                        double splat, std::string name = "");

  /// Returns the parameter's index.
  int addParameter(const ParameterSpec &spec);
  /// Returns the batch input's index.
  int addBatchInput(const BatchInputSpec &spec);

  InstructionEditor addInstruction(fb::Opcode opcode, std::vector<int> operands,
                                   std::vector<int> results);

  /// Replaces the training configuration (absent until set).
  void setTrainingConfig(const fb::TrainingConfigT &config);

  /// Device code for GPUs of compute capability `sm` and up (format "ptx").
  void addExecutable(int sm, std::string format, std::vector<uint8_t> image,
                     std::vector<std::string> kernels);

  /// A program after the training step: instructions [begin, end), the
  /// persistent buffers its caller fills and the buffers it reads after.
  void addProgram(std::string name, int begin, int end, std::vector<int> inputs,
                  std::vector<int> outputs);

  /// Overrides the derived arena size (e.g. the compiler's own peak).
  void setArenaBytes(uint64_t bytes) { plan_.arena_bytes = bytes; }
  void setArenaAlignment(uint32_t alignment) {
    plan_.arena_alignment = alignment;
  }

  /// Number of instructions so far (the index the next one gets).
  int numInstructions() const {
    return static_cast<int>(plan_.instructions.size());
  }

  /// Direct access, for what the helpers do not cover (and for tests that
  /// need to write invalid plans).
  fb::PlanT &mutablePlan() { return plan_; }
  const fb::PlanT &plan() const { return plan_; }

  /// Serializes the plan (with the "MOEP" file identifier).
  std::vector<uint8_t> finish() const;

private:
  fb::PlanT plan_;
};

/// Serializes `plan` (any fb::PlanT, e.g. one unpacked from a loaded plan).
std::vector<uint8_t> serializePlan(const fb::PlanT &plan);

/// Writes plan bytes to `path` atomically: a temporary file in the same
/// directory, fsync, rename; on failure nothing is left behind and an
/// existing file at `path` is untouched.
Status writePlanFile(const std::string &path,
                     const std::vector<uint8_t> &bytes);

} // namespace moert::plan

#endif // MOERT_PLAN_PLANWRITER_H
