//===- PlanLoaderErrorTest.cpp - Each loader check, one broken plan each --===//
//
// Every test breaks one thing in an otherwise valid plan and checks that the
// loader refuses it with a message that names what was expected, what was
// found and where.
//
//===----------------------------------------------------------------------===//

#include "SmallPlan.h"

#include "moert/plan/PlanLoader.h"

#include <gtest/gtest.h>

namespace moert::plan {
namespace {

using testing::makeSmallPlan;
using testing::SmallPlanIds;

/// Loads `bytes` and expects a failure whose message contains `fragment`.
void expectLoadError(std::vector<uint8_t> bytes, StatusCode code,
                     const std::string &fragment) {
  Expected<LoadedPlan> loaded = loadPlanFromBytes(std::move(bytes));
  ASSERT_FALSE(loaded.ok()) << "expected an error containing: " << fragment;
  EXPECT_EQ(loaded.status().code(), code) << loaded.status().toString();
  EXPECT_NE(loaded.status().message().find(fragment), std::string::npos)
      << "message: " << loaded.status().message()
      << "\nexpected to contain: " << fragment;
}

void expectLoadError(const PlanWriter &writer, const std::string &fragment) {
  expectLoadError(writer.finish(), StatusCode::InvalidArgument, fragment);
}

// Generated device code (schema 1.2): each executable names its target,
// format and kernels, and is not empty.
TEST(PlanLoaderErrors, MalformedExecutables) {
  const std::vector<uint8_t> ptx = {'.', 'v', 'e', 'r'};
  {
    PlanWriter writer = makeSmallPlan();
    writer.addExecutable(90, "ptx", ptx, {"moe_dispatch"});
    EXPECT_TRUE(loadPlanFromBytes(writer.finish()).ok());
  }
  {
    PlanWriter writer = makeSmallPlan();
    writer.addExecutable(9, "ptx", ptx, {"moe_dispatch"});
    expectLoadError(writer, "executable #0: expected a compute capability "
                            "(10 * major + minor) in [50, 200], found sm 9");
  }
  {
    PlanWriter writer = makeSmallPlan();
    writer.addExecutable(80, "ptx", ptx, {"moe_dispatch"});
    writer.addExecutable(90, "cubin", ptx, {"moe_dispatch"});
    expectLoadError(writer,
                    "executable #1 (sm_90): expected format 'ptx', found "
                    "'cubin'");
  }
  {
    PlanWriter writer = makeSmallPlan();
    writer.addExecutable(90, "ptx", {}, {"moe_dispatch"});
    expectLoadError(writer, "executable #0 (sm_90): the image is empty");
  }
  {
    PlanWriter writer = makeSmallPlan();
    writer.addExecutable(90, "ptx", ptx, {});
    expectLoadError(writer, "executable #0 (sm_90): expected the names of "
                            "its kernels, found none");
  }
}

// Programs after the training step (schema 1.4): ranges that follow the
// step back to back to the end, persistent inputs, outputs that live within
// the program, no arena buffer living from one into the next.
TEST(PlanLoaderErrors, MalformedPrograms) {
  struct Ids {
    int input = -1, output = -1;
  };
  // The small plan's step (instructions 0..3) and one program at 4: the
  // padding mask of a persistent input.
  auto withProgram = [](Ids *ids, SmallPlanIds *small = nullptr) {
    SmallPlanIds local;
    PlanWriter writer = makeSmallPlan(&local);
    writer.mutablePlan().buffers[local.summed]->live_end = 3;
    ids->input =
        writer.addPersistentBuffer({2, 1}, fb::DType::i32, "decode:tokens");
    ids->output =
        writer.addArenaBuffer({2, 1}, fb::DType::i1, 0, 4, 4, "decode:mask");
    writer.addInstruction(fb::Opcode::padding_mask, {ids->input}, {ids->output})
        .intAttr("pad_id", 0);
    if (small)
      *small = local;
    return writer;
  };
  {
    Ids ids;
    PlanWriter writer = withProgram(&ids);
    writer.addProgram("decode", 4, 5, {ids.input}, {ids.output});
    Expected<LoadedPlan> loaded = loadPlanFromBytes(writer.finish());
    ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  }
  {
    Ids ids;
    PlanWriter writer = withProgram(&ids);
    writer.addProgram("decode", 4, 4, {ids.input}, {});
    expectLoadError(writer, "the last program ends at instruction 4, "
                            "expected the end of the plan (5)");
  }
  {
    Ids ids;
    PlanWriter writer = withProgram(&ids);
    writer.addProgram("train_step", 4, 5, {ids.input}, {ids.output});
    expectLoadError(writer, "program #0 ('train_step'): expected a unique "
                            "name other than 'train_step'");
  }
  {
    Ids ids;
    PlanWriter writer = withProgram(&ids);
    writer.addProgram("decode", 4, 6, {ids.input}, {ids.output});
    expectLoadError(writer, "program #0 ('decode'): expected instructions "
                            "[4, end) with end <= 5");
  }
  {
    Ids ids;
    PlanWriter writer = withProgram(&ids);
    writer.addProgram("decode", 4, 5, {ids.output}, {ids.output});
    expectLoadError(writer, "program #0 ('decode'): input #0 is buffer");
  }
  {
    // The step's last result left "until the end" (-1) lives into the
    // program, where its bytes are reused.
    Ids ids;
    SmallPlanIds small;
    PlanWriter writer = withProgram(&ids, &small);
    writer.mutablePlan().buffers[small.summed]->live_end = -1;
    writer.addProgram("decode", 4, 5, {ids.input}, {ids.output});
    expectLoadError(writer, "past the end of the training step (3)");
  }
}

TEST(PlanLoaderErrors, TooShortForAHeader) {
  expectLoadError({0x08, 0, 0}, StatusCode::DataLoss,
                  "the file has 3 bytes, expected at least 8");
}

TEST(PlanLoaderErrors, SizeNotAMultipleOfFour) {
  std::vector<uint8_t> bytes = makeSmallPlan().finish();
  bytes.pop_back();
  expectLoadError(bytes, StatusCode::DataLoss,
                  "expected a multiple of 4 (a FlatBuffer's size always is; "
                  "truncated file?)");
}

TEST(PlanLoaderErrors, WrongFileIdentifier) {
  std::vector<uint8_t> bytes = makeSmallPlan().finish();
  bytes[4] = 'J';
  bytes[5] = 'U';
  bytes[6] = 'N';
  bytes[7] = 0x01;
  expectLoadError(bytes, StatusCode::DataLoss,
                  "file identifier is \"JUN\\x01\", expected \"MOEP\"");
}

TEST(PlanLoaderErrors, RootOffsetOutOfRange) {
  std::vector<uint8_t> bytes = makeSmallPlan().finish();
  bytes[0] = bytes[1] = bytes[2] = bytes[3] = 0xff;
  expectLoadError(bytes, StatusCode::DataLoss, "root table is corrupt");
}

TEST(PlanLoaderErrors, NewerMajorVersionNamesBothVersions) {
  PlanWriter writer = makeSmallPlan();
  *writer.mutablePlan().version = fb::SchemaVersion(kSchemaMajorVersion + 1, 3);
  expectLoadError(writer.finish(), StatusCode::FailedPrecondition,
                  "plan schema version 2.3 is not supported: this runtime "
                  "reads schema 1.x (it was built with 1." + std::to_string(kSchemaMinorVersion) + "); the plan comes "
                  "from a newer compiler");
}

TEST(PlanLoaderErrors, OlderMajorVersion) {
  PlanWriter writer = makeSmallPlan();
  *writer.mutablePlan().version = fb::SchemaVersion(0, 0);
  expectLoadError(writer.finish(), StatusCode::FailedPrecondition,
                  "from an older compiler");
}

TEST(PlanLoaderErrors, MissingVersion) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().version.reset();
  expectLoadError(writer.finish(), StatusCode::DataLoss, "no schema version");
}

TEST(PlanLoaderErrors, VerifierRejectsABadVectorLength) {
  std::vector<uint8_t> bytes = makeSmallPlan().finish();
  // The model name is a string near the end of the buffer: give it a
  // length far beyond the buffer.
  std::string name = "small-test-model";
  auto it = std::search(bytes.begin(), bytes.end(), name.begin(), name.end());
  ASSERT_NE(it, bytes.end());
  size_t lengthPosition = static_cast<size_t>(it - bytes.begin()) - 4;
  bytes[lengthPosition + 3] = 0x7f;
  expectLoadError(bytes, StatusCode::DataLoss,
                  "the FlatBuffers verifier rejects");
}

TEST(PlanLoaderErrors, BufferOutsideArena) {
  PlanWriter writer = makeSmallPlan();
  writer.setArenaBytes(3000);
  expectLoadError(writer, "buffer 6 ('summed') occupies bytes [2560, 3840), "
                          "outside the arena of 3000 bytes");
}

TEST(PlanLoaderErrors, BufferOutsidePersistentRegion) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().persistent_bytes = 100;
  expectLoadError(writer, "outside the persistent region of 100 bytes");
}

TEST(PlanLoaderErrors, BufferSizeDoesNotMatchShape) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  writer.mutablePlan().buffers[ids.activated]->size = 1024;
  expectLoadError(writer, "buffer 4 ('activated') has size 1024 bytes, but "
                          "shape [2, 10, 16] of f32 needs 1280 bytes");
}

TEST(PlanLoaderErrors, BufferIdIsNotItsPosition) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().buffers[2]->id = 7;
  expectLoadError(writer, "buffer #2 has id 7, expected ids equal to "
                          "positions");
}

TEST(PlanLoaderErrors, NegativeBufferDimension) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().buffers[3]->shape = {2, -10, 16};
  expectLoadError(writer, "has shape [2, -10, 16], expected non-negative");
}

TEST(PlanLoaderErrors, MisalignedArenaOffset) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  writer.mutablePlan().buffers[ids.summed]->offset = 2564;
  writer.setArenaBytes(4096);
  expectLoadError(writer, "starts at arena byte 2564, expected a multiple of "
                          "the arena alignment 64");
}

TEST(PlanLoaderErrors, ArenaBuffersShareBytesWhileBothLive) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  // `reduced` reuses the bytes of `embedded`; keep `embedded` alive longer.
  writer.mutablePlan().buffers[ids.embedded]->live_end = 2;
  expectLoadError(writer, "buffer 3 ('embedded') (bytes [0, 1280), live [0, "
                          "2]) and buffer 5 ('reduced') (bytes [0, 1280), "
                          "live [2, 3]) share arena bytes while both are live");
}

TEST(PlanLoaderErrors, PersistentBuffersOverlap) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  writer.mutablePlan().buffers[ids.expertBuffer]->offset = 64;
  expectLoadError(writer, "persistent buffers never share bytes");
}

TEST(PlanLoaderErrors, UseOutsideTheLiveRange) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  writer.mutablePlan().buffers[ids.activated]->live_end = 2;
  // `activated` is read by instruction 3 (add); `reduced` now may overlap
  // nothing else, so the first complaint is the use.
  expectLoadError(writer, "instruction #3 (add): operand 1 is buffer 4 "
                          "('activated'), which is live only over "
                          "instructions [1, 2]");
}

TEST(PlanLoaderErrors, BadOperandId) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().instructions[1]->operands[0] = 99;
  expectLoadError(writer, "instruction #1 (activation): operand 0 refers to "
                          "buffer 99, but the plan has 7 buffers");
}

TEST(PlanLoaderErrors, BadResultId) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().instructions[0]->results[0] = -2;
  expectLoadError(writer, "instruction #0 (embedding) at model.mlir:12:5: "
                          "result 0 refers to buffer -2");
}

TEST(PlanLoaderErrors, WrongOperandCount) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().instructions[3]->operands.push_back(3);
  expectLoadError(writer, "instruction #3 (add): has 3 operands, expected 2");
}

TEST(PlanLoaderErrors, UnknownOpcode) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().instructions[1]->opcode = static_cast<fb::Opcode>(500);
  expectLoadError(writer.finish(), StatusCode::Unimplemented,
                  "instruction #1 (opcode(500)): opcode 500 is unknown");
}

TEST(PlanLoaderErrors, MissingRequiredAttribute) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().instructions[1]->attributes.clear();
  expectLoadError(writer, "instruction #1 (activation): missing the required "
                          "string attribute 'kind'");
}

TEST(PlanLoaderErrors, AttributeOfTheWrongType) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().instructions[1]->attributes.clear();
  InstructionEditor(*writer.mutablePlan().instructions[1]).intAttr("kind", 1);
  expectLoadError(writer, "attribute 'kind' is of type int, expected string");
}

TEST(PlanLoaderErrors, EnumAttributeWithUnknownSpelling) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().instructions[1]->attributes.clear();
  InstructionEditor(*writer.mutablePlan().instructions[1])
      .stringAttr("kind", "swish");
  expectLoadError(writer, "attribute 'kind' is 'swish', expected one of "
                          "relu, gelu, gelu_tanh, silu");
}

TEST(PlanLoaderErrors, UnknownAttributeInTheSameMinorVersion) {
  PlanWriter writer = makeSmallPlan();
  InstructionEditor(*writer.mutablePlan().instructions[0])
      .boolAttr("scaledd", true);
  expectLoadError(writer, "unknown attribute 'scaledd' (of type bool)");
}

TEST(PlanLoaderErrors, DuplicateAttribute) {
  PlanWriter writer = makeSmallPlan();
  InstructionEditor(*writer.mutablePlan().instructions[0])
      .boolAttr("scaled", false);
  expectLoadError(writer, "attribute 'scaled' appears twice");
}

TEST(PlanLoaderErrors, AttributeWithoutValue) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().instructions[0]->attributes[1]->value.Reset();
  expectLoadError(writer, "attribute 'scaled' has no value");
}

TEST(PlanLoaderErrors, ShardAxisDoesNotDivideTheDimension) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().parameters[1]->shape = {5, 16, 32};
  expectLoadError(writer, "parameter #1 ('encoder.layers.0.moe.w1'): "
                          "dimension 0 has size 5, which the grid axes ep "
                          "(2) (2 parts) do not divide");
}

TEST(PlanLoaderErrors, ShardOverSeveralAxesDoesNotDivide) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().batch_inputs[0]->shape = {6, 10};
  expectLoadError(writer, "batch input #0 ('tokens'): dimension 0 has size "
                          "6, which the grid axes dp (2) x ep (2) (4 parts) "
                          "do not divide");
}

TEST(PlanLoaderErrors, ShardSpecOfTheWrongRank) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().parameters[1]->sharding.pop_back();
  expectLoadError(writer, "the shard spec has 2 entries, expected one per "
                          "dimension (3)");
}

TEST(PlanLoaderErrors, ShardAxisOutsideTheGrid) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().parameters[1]->sharding[0]->axes = {7};
  expectLoadError(writer, "dimension 0 is split over grid axis 7, but the "
                          "grid has 3 axes");
}

TEST(PlanLoaderErrors, ParameterBufferIsNotTheLocalShard) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  writer.mutablePlan().parameters[1]->sharding[0]->axes.clear();
  expectLoadError(writer, "its buffer is buffer 1 ('expert.w1') of shape "
                          "[2, 16, 32], expected the local shard shape "
                          "[4, 16, 32]");
}

TEST(PlanLoaderErrors, NonPositiveParameterDimension) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().parameters[0]->shape = {100, 0};
  expectLoadError(writer, "parameter #0 ('embed.table'): shape [100, 0] has "
                          "dimension 1 of size 0, expected > 0");
}

TEST(PlanLoaderErrors, DuplicateParameterName) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().parameters[1]->name = "embed.table";
  expectLoadError(writer, "parameter #1 ('embed.table'): the name is used "
                          "twice");
}

TEST(PlanLoaderErrors, GridAxisOfSizeZero) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().grid->axes[2]->size = 0;
  expectLoadError(writer, "grid axis #2 ('tp') has size 0, expected >= 1");
}

TEST(PlanLoaderErrors, UnsupportedZeroStage) {
  PlanWriter writer = makeSmallPlan();
  writer.setZeroStage(3);
  expectLoadError(writer, "ZeRO stage 3 is not supported, expected 0, 1 or 2");
}

TEST(PlanLoaderErrors, CollectiveWithoutReduction) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().instructions[2]->collective->reduction =
      fb::ReductionKind::none;
  expectLoadError(writer, "instruction #2 (all_reduce): needs a reduction");
}

TEST(PlanLoaderErrors, CollectiveWithoutParameters) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().instructions[2]->collective.reset();
  expectLoadError(writer, "a collective without collective parameters");
}

TEST(PlanLoaderErrors, CollectiveResultShape) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  // An all_gather over ep along dimension 0 doubles it: [4, 10, 16].
  writer.mutablePlan().instructions[2]->opcode = fb::Opcode::all_gather;
  writer.mutablePlan().instructions[2]->collective->reduction =
      fb::ReductionKind::none;
  writer.mutablePlan().instructions[2]->collective->concat_dim = 0;
  expectLoadError(writer, "instruction #2 (all_gather): result has shape "
                          "[2, 10, 16], expected [4, 10, 16] for operand "
                          "shape [2, 10, 16] over a group of 2 ranks");
}

TEST(PlanLoaderErrors, KernelWithCollectiveParameters) {
  PlanWriter writer = makeSmallPlan();
  InstructionEditor(*writer.mutablePlan().instructions[3])
      .collective({0}, fb::ReductionKind::sum);
  expectLoadError(writer, "instruction #3 (add): has collective parameters, "
                          "but is not a collective");
}

TEST(PlanLoaderErrors, AddOperandShapeMismatch) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  writer.mutablePlan().instructions[3]->operands[0] = ids.tableBuffer;
  expectLoadError(writer, "instruction #3 (add): operand 0 has shape "
                          "[100, 16], expected the result shape [2, 10, 16]");
}

TEST(PlanLoaderErrors, InstructionWritesAConstant) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  int zeros =
      writer.addConstantBuffer({2, 10, 16}, fb::DType::f32, 0.0, "zeros");
  writer.mutablePlan().instructions[3]->results[0] = zeros;
  expectLoadError(writer, "instruction #3 (add): result 0 is buffer 7 "
                          "('zeros'), a constant; constants are read-only");
}

TEST(PlanLoaderErrors, ParameterInTheArena) {
  SmallPlanIds ids;
  PlanWriter writer = makeSmallPlan(&ids);
  writer.mutablePlan().parameters[0]->buffer = ids.embedded;
  expectLoadError(writer, "parameter #0 ('embed.table'): its buffer is "
                          "buffer 3 ('embedded'), which is not in the "
                          "persistent region");
}

TEST(PlanLoaderErrors, TrainingConfigOutOfRange) {
  PlanWriter writer = makeSmallPlan();
  writer.mutablePlan().training->beta1 = 1.0;
  expectLoadError(writer, "training config: beta1 is 1, expected in [0, 1)");
}

// E+Z-Offload (schema 1.5): host buffers are persistent state that only
// AdamW (and the conversion making a 16-bit device copy) touches; 16-bit
// buffers only go through convert and the collectives that move data.
TEST(PlanLoaderErrors, MalformedOffload) {
  {
    // The accepted form: a persistent f32 master on the host, converted
    // into a bf16 device buffer.
    PlanWriter writer = makeSmallPlan();
    int master = writer.addPersistentBuffer({4, 8}, fb::DType::f32, "w");
    writer.placeOnHost(master);
    int copy =
        writer.addPersistentBuffer({4, 8}, fb::DType::bf16, "device_copy:w");
    writer.addInstruction(fb::Opcode::convert, {master}, {copy});
    Expected<LoadedPlan> loaded = loadPlanFromBytes(writer.finish());
    ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  }
  {
    SmallPlanIds ids;
    PlanWriter writer = makeSmallPlan(&ids);
    writer.mutablePlan().buffers[ids.embedded]->host = true;
    expectLoadError(writer, "buffer 3 ('embedded') is an arena buffer marked "
                            "host; only persistent buffers live in host "
                            "memory");
  }
  {
    // A host table read by the embedding kernel (a device kernel).
    SmallPlanIds ids;
    PlanWriter writer = makeSmallPlan(&ids);
    writer.placeOnHost(ids.tableBuffer);
    expectLoadError(writer, "instruction #0 (embedding) at model.mlir:12:5: "
                            "operand 1 is buffer 0 ('embed.table'), kept in "
                            "host memory; only adamw, the operand of convert "
                            "and the destination of to_host are host "
                            "buffers");
  }
  {
    // The result of a conversion cannot be a host buffer.
    PlanWriter writer = makeSmallPlan();
    int master = writer.addPersistentBuffer({4, 8}, fb::DType::bf16, "w16");
    int copy = writer.addPersistentBuffer({4, 8}, fb::DType::f32, "w");
    writer.placeOnHost(copy);
    writer.addInstruction(fb::Opcode::convert, {master}, {copy});
    expectLoadError(writer, "result 0 is buffer 8 ('w'), kept in host memory");
  }
  {
    // A bf16 buffer fed to an element-wise kernel that reads f32.
    PlanWriter writer = makeSmallPlan();
    int a = writer.addPersistentBuffer({4, 8}, fb::DType::bf16, "a");
    int sum = writer.addPersistentBuffer({4, 8}, fb::DType::f32, "sum");
    writer.addInstruction(fb::Opcode::add, {a, a}, {sum});
    expectLoadError(writer, "instruction #4 (add): operand 0 is buffer 7 "
                            "('a') of bf16; only convert, all_gather, "
                            "all_to_all, all_slice, pack and unpack take "
                            "bf16/f16 buffers");
  }
  {
    // A gradient streamed into a device buffer, and into one of another
    // shape.
    SmallPlanIds ids;
    PlanWriter writer = makeSmallPlan(&ids);
    int into = writer.addPersistentBuffer({2, 10, 16}, fb::DType::f32, "g");
    writer.addInstruction(fb::Opcode::to_host, {ids.summed, into}, {into});
    expectLoadError(writer, "instruction #4 (to_host): expected its result to "
                            "be operand 1, a host buffer; found buffer 7 "
                            "('g')");
  }
  {
    SmallPlanIds ids;
    PlanWriter writer = makeSmallPlan(&ids);
    writer.mutablePlan().buffers[ids.summed]->live_end = 4;
    int into = writer.addPersistentBuffer({2, 16, 10}, fb::DType::f32, "g");
    writer.placeOnHost(into);
    writer.addInstruction(fb::Opcode::to_host, {ids.summed, into}, {into});
    expectLoadError(writer, "instruction #4 (to_host): copies [2, 10, 16] of "
                            "f32 into [2, 16, 10] of f32, expected the same "
                            "type");
  }
  {
    PlanWriter writer = makeSmallPlan();
    int a = writer.addPersistentBuffer({4, 8}, fb::DType::bf16, "a");
    int b = writer.addPersistentBuffer({4, 8}, fb::DType::f16, "b");
    writer.addInstruction(fb::Opcode::convert, {a}, {b});
    expectLoadError(writer, "instruction #4 (convert): converts bf16 to f16, "
                            "expected f32 to bf16/f16 or back");
  }
  {
    PlanWriter writer = makeSmallPlan();
    int a = writer.addPersistentBuffer({4, 8}, fb::DType::f32, "a");
    int b = writer.addPersistentBuffer({8, 4}, fb::DType::bf16, "b");
    writer.addInstruction(fb::Opcode::convert, {a}, {b});
    expectLoadError(writer, "instruction #4 (convert): operand has shape "
                            "[4, 8], result [8, 4], expected the same shape");
  }
}

} // namespace
} // namespace moert::plan
