//===- SafetensorsTest.cpp - Checkpoint round trip and reader errors ------===//

#include "TempDir.h"

#include "moert/checkpoint/Safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

namespace moert::checkpoint {
namespace {

using testing::readFileBytes;
using testing::TempDir;

/// Tensors with awkward values (NaN payloads, -0, denormals, infinities)
/// and awkward shapes (scalar, empty, odd byte counts).
struct Fixture {
  std::vector<float> weights;
  std::vector<int32_t> ids = {-3, -2, -1, 0, 1, 2};
  std::vector<int64_t> steps = {int64_t(1) << 40, -7};
  std::vector<uint8_t> mask = {1, 0, 1};
  std::vector<uint16_t> half = {0x3e00, 0xc000, 0x7c01};
  float scalar = 3.25f;

  Fixture() {
    for (int i = 0; i < 12; ++i)
      weights.push_back(0.5f * float(i) - 1.0f);
    uint32_t nanBits = 0x7fc01234u;
    std::memcpy(&weights[3], &nanBits, sizeof(float));
    weights[4] = -0.0f;
    weights[5] = std::numeric_limits<float>::denorm_min();
    weights[6] = -std::numeric_limits<float>::infinity();
  }

  Status addTo(CheckpointWriter &writer) const {
    MOERT_RETURN_IF_ERROR(writer.addF32("encoder.w", {3, 4}, weights.data()));
    MOERT_RETURN_IF_ERROR(writer.addTensor("a.ids", DType::I32, {2, 3},
                                           ids.data(), ids.size() * 4));
    MOERT_RETURN_IF_ERROR(
        writer.addTensor("steps", DType::I64, {2}, steps.data(), 16));
    MOERT_RETURN_IF_ERROR(
        writer.addTensor("mask", DType::Bool, {3}, mask.data(), 3));
    MOERT_RETURN_IF_ERROR(
        writer.addTensor("half", DType::F16, {3}, half.data(), 6));
    MOERT_RETURN_IF_ERROR(writer.addF32("scalar", {}, &scalar));
    return writer.addTensor("empty", DType::F32, {0, 5}, nullptr, 0);
  }
};

TEST(Safetensors, RoundTripIsBitwise) {
  TempDir dir;
  Fixture fixture;
  CheckpointWriter writer;
  ASSERT_TRUE(fixture.addTo(writer).ok());
  writer.setStep(1200);
  ASSERT_TRUE(writer.setMetadata("note", "a \"quoted\" note").ok());
  std::string path = dir.file("model.safetensors");
  Status written = writer.write(path);
  ASSERT_TRUE(written.ok()) << written.toString();

  Expected<Checkpoint> loaded = Checkpoint::open(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_EQ(loaded->tensorNames(),
            (std::vector<std::string>{"a.ids", "empty", "encoder.w", "half",
                                      "mask", "scalar", "steps"}));
  auto expectBytes = [&](const std::string &name, const void *data,
                         size_t bytes) {
    Expected<TensorView> view = loaded->tensor(name);
    ASSERT_TRUE(view.ok()) << view.status().toString();
    ASSERT_EQ(view->bytes, bytes) << name;
    if (bytes)
      EXPECT_EQ(std::memcmp(view->data, data, bytes), 0) << name;
  };
  expectBytes("encoder.w", fixture.weights.data(), 48);
  expectBytes("a.ids", fixture.ids.data(), 24);
  expectBytes("steps", fixture.steps.data(), 16);
  expectBytes("mask", fixture.mask.data(), 3);
  expectBytes("half", fixture.half.data(), 6);
  expectBytes("scalar", &fixture.scalar, 4);
  expectBytes("empty", nullptr, 0);

  Expected<TensorView> ids = loaded->tensor("a.ids", DType::I32, {2, 3});
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->numElements(), 6);
  Expected<std::vector<float>> weights = loaded->readF32("encoder.w", {3, 4});
  ASSERT_TRUE(weights.ok()) << weights.status().toString();
  EXPECT_EQ(std::memcmp(weights->data(), fixture.weights.data(), 48), 0);

  Expected<int64_t> step = loaded->step();
  ASSERT_TRUE(step.ok());
  EXPECT_EQ(*step, 1200);
  EXPECT_EQ(loaded->metadata().at("note"), "a \"quoted\" note");
  EXPECT_EQ(loaded->metadata().at(kLayoutKey), kLayoutLogical);
  EXPECT_EQ(loaded->metadata().at(kManifestKey), kManifestNote);
}

TEST(Safetensors, LayoutIsDeterministicAlignedAndSorted) {
  TempDir dir;
  Fixture fixture;
  CheckpointWriter first, second;
  ASSERT_TRUE(fixture.addTo(first).ok());
  // The same tensors added in another order give the same file.
  ASSERT_TRUE(
      second.addTensor("steps", DType::I64, {2}, fixture.steps.data(), 16)
          .ok());
  ASSERT_TRUE(second.addTensor("empty", DType::F32, {0, 5}, nullptr, 0).ok());
  ASSERT_TRUE(second.addF32("scalar", {}, &fixture.scalar).ok());
  ASSERT_TRUE(
      second.addTensor("half", DType::F16, {3}, fixture.half.data(), 6).ok());
  ASSERT_TRUE(
      second.addTensor("mask", DType::Bool, {3}, fixture.mask.data(), 3).ok());
  ASSERT_TRUE(
      second.addTensor("a.ids", DType::I32, {2, 3}, fixture.ids.data(), 24)
          .ok());
  ASSERT_TRUE(second.addF32("encoder.w", {3, 4}, fixture.weights.data()).ok());
  ASSERT_TRUE(first.write(dir.file("first")).ok());
  ASSERT_TRUE(second.write(dir.file("second")).ok());
  std::vector<uint8_t> bytes = readFileBytes(dir.file("first"));
  EXPECT_EQ(bytes, readFileBytes(dir.file("second")));

  uint64_t headerLength = 0;
  for (int i = 0; i < 8; ++i)
    headerLength |= uint64_t(bytes[i]) << (8 * i);
  EXPECT_EQ((8 + headerLength) % 8, 0u) << "data must start 8-byte aligned";
  std::string header(bytes.begin() + 8, bytes.begin() + 8 + headerLength);
  EXPECT_EQ(header.rfind("{\"__metadata__\":{", 0), 0u) << header;
  // Offsets increase in name order.
  EXPECT_NE(header.find("\"a.ids\":{\"dtype\":\"I32\",\"shape\":[2,3],"
                        "\"data_offsets\":[0,24]}"),
            std::string::npos)
      << header;
  EXPECT_NE(header.find("\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],"
                        "\"data_offsets\":[24,24]}"),
            std::string::npos);
  EXPECT_NE(header.find("\"moert.layout\":\"logical\""), std::string::npos);
  EXPECT_EQ(bytes.size(), 8 + headerLength + 24 + 48 + 6 + 3 + 4 + 16);
}

TEST(Safetensors, WriterRejectsInconsistentTensors) {
  CheckpointWriter writer;
  float data[4] = {};
  EXPECT_FALSE(writer.addTensor("x", DType::F32, {2, 2}, data, 12).ok());
  EXPECT_FALSE(writer.addTensor("__metadata__", DType::F32, {1}, data, 4).ok());
  EXPECT_FALSE(writer.addTensor("", DType::F32, {1}, data, 4).ok());
  EXPECT_FALSE(writer.addTensor("n", DType::F32, {-1}, data, 4).ok());
  EXPECT_FALSE(writer.addTensor("p", DType::F32, {1}, nullptr, 4).ok());
  ASSERT_TRUE(writer.addTensor("x", DType::F32, {4}, data, 16).ok());
  Status duplicate = writer.addTensor("x", DType::F32, {4}, data, 16);
  ASSERT_FALSE(duplicate.ok());
  EXPECT_NE(duplicate.message().find("added twice"), std::string::npos);
}

TEST(Safetensors, TypedGetterNamesBothShapes) {
  std::vector<float> weight(128 * 512, 0.0f);
  CheckpointWriter writer;
  ASSERT_TRUE(
      writer
          .addF32("encoder.layers.0.ffn.fc1.weight", {128, 512}, weight.data())
          .ok());
  TempDir dir;
  ASSERT_TRUE(writer.write(dir.file("c")).ok());
  Expected<Checkpoint> loaded = Checkpoint::open(dir.file("c"));
  ASSERT_TRUE(loaded.ok());
  Expected<std::vector<float>> wrongShape =
      loaded->readF32("encoder.layers.0.ffn.fc1.weight", {128, 256});
  ASSERT_FALSE(wrongShape.ok());
  EXPECT_EQ(wrongShape.status().message(),
            "checkpoint tensor 'encoder.layers.0.ffn.fc1.weight' has shape "
            "[128, 512], the plan expects [128, 256]");
  Expected<TensorView> wrongType = loaded->tensor(
      "encoder.layers.0.ffn.fc1.weight", DType::BF16, {128, 512});
  ASSERT_FALSE(wrongType.ok());
  EXPECT_NE(
      wrongType.status().message().find("has dtype F32, the plan expects BF16"),
      std::string::npos);
  Expected<TensorView> missing = loaded->tensor("decoder.w");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::NotFound);
  EXPECT_EQ(loaded->step().status().code(), StatusCode::NotFound);
}

TEST(Safetensors, MissingFileIsNotFound) {
  Expected<Checkpoint> loaded = Checkpoint::open("/nonexistent/x.safetensors");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::NotFound);
}

//===----------------------------------------------------------------------===//
// Reader errors, on hand-made files
//===----------------------------------------------------------------------===//

std::vector<uint8_t> makeFile(const std::string &header, size_t dataBytes,
                              uint64_t declaredLength = UINT64_MAX) {
  uint64_t length =
      declaredLength == UINT64_MAX ? header.size() : declaredLength;
  std::vector<uint8_t> bytes;
  for (int i = 0; i < 8; ++i)
    bytes.push_back(uint8_t(length >> (8 * i)));
  bytes.insert(bytes.end(), header.begin(), header.end());
  for (size_t i = 0; i < dataBytes; ++i)
    bytes.push_back(uint8_t(i));
  return bytes;
}

void expectReadError(std::vector<uint8_t> bytes, const std::string &fragment) {
  Expected<Checkpoint> loaded = Checkpoint::fromBytes(std::move(bytes));
  ASSERT_FALSE(loaded.ok()) << "expected an error containing: " << fragment;
  EXPECT_EQ(loaded.status().code(), StatusCode::DataLoss);
  EXPECT_NE(loaded.status().message().find(fragment), std::string::npos)
      << "message: " << loaded.status().message()
      << "\nexpected to contain: " << fragment;
}

const std::string kOneTensor =
    R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

TEST(SafetensorsReaderErrors, AcceptsAMinimalFile) {
  Expected<Checkpoint> loaded = Checkpoint::fromBytes(makeFile(kOneTensor, 8));
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_TRUE(loaded->contains("t"));
}

TEST(SafetensorsReaderErrors, ShorterThanTheLengthField) {
  for (size_t size = 0; size < 8; ++size)
    expectReadError(std::vector<uint8_t>(size, 0),
                    "the file has " + std::to_string(size) +
                        " bytes, shorter than the 8-byte header length");
}

TEST(SafetensorsReaderErrors, HeaderLengthBeyondTheFile) {
  expectReadError(makeFile(kOneTensor, 8, 1000),
                  "the header length is 1000 bytes, beyond the end of the "
                  "file (" +
                      std::to_string(kOneTensor.size() + 8) +
                      " bytes after the length field)");
  expectReadError(makeFile(kOneTensor, 8, UINT64_MAX - 1),
                  "beyond the end of the file");
}

TEST(SafetensorsReaderErrors, InvalidJson) {
  expectReadError(makeFile(R"({"t":{"dtype":"F32",)", 0), "header: invalid "
                                                          "JSON at byte");
  expectReadError(makeFile("[]", 0),
                  "the header is an array, expected an object");
}

TEST(SafetensorsReaderErrors, DuplicateKeys) {
  expectReadError(
      makeFile(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
               R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
               8),
      "duplicate key \"t\"");
  expectReadError(makeFile(R"({"t":{"dtype":"F32","dtype":"F32","shape":[1],)"
                           R"("data_offsets":[0,4]}})",
                           4),
                  "duplicate key \"dtype\"");
}

TEST(SafetensorsReaderErrors, UnknownDType) {
  expectReadError(
      makeFile(R"({"t":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8),
      "tensor 't' has unknown dtype \"F33\"");
}

TEST(SafetensorsReaderErrors, BadShapeEntries) {
  expectReadError(
      makeFile(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
      "shape entry '-2' is not a non-negative integer");
  expectReadError(
      makeFile(R"({"t":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})",
               8),
      "shape entry '2.0' is not a non-negative integer");
  expectReadError(
      makeFile(R"({"t":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8),
      "\"shape\" must be an array");
}

TEST(SafetensorsReaderErrors, MissingAndUnknownFields) {
  expectReadError(makeFile(R"({"t":{"dtype":"F32","shape":[2]}})", 8),
                  "tensor 't' needs \"dtype\", \"shape\" and "
                  "\"data_offsets\"");
  expectReadError(
      makeFile(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8],)"
               R"("stride":[1]}})",
               8),
      "tensor 't' has the unknown field 'stride'");
  expectReadError(makeFile(R"({"t":[1]})", 0),
                  "tensor 't' is an array, expected an object");
}

TEST(SafetensorsReaderErrors, OffsetsOutOfRange) {
  expectReadError(makeFile(kOneTensor, 4),
                  "tensor 't' has data_offsets [0, 8], outside the 4 data "
                  "bytes");
  expectReadError(
      makeFile(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8),
      "has data_offsets [8, 0], outside");
  expectReadError(
      makeFile(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8),
      "\"data_offsets\" must be [begin, end]");
}

TEST(SafetensorsReaderErrors, OffsetsNotMatchingTheShape) {
  expectReadError(
      makeFile(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
      "tensor 't' has data_offsets [0, 8] (8 bytes), but shape [3] of F32 "
      "needs 12 bytes");
}

TEST(SafetensorsReaderErrors, OverlappingTensors) {
  expectReadError(
      makeFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
               12),
      "tensor 'b' (bytes [4, 12)) overlaps tensor 'a' (which ends at 8)");
}

TEST(SafetensorsReaderErrors, GapBetweenTensors) {
  expectReadError(
      makeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
               12),
      "bytes [4, 8) before tensor 'b' belong to no tensor");
}

TEST(SafetensorsReaderErrors, TrailingGarbage) {
  expectReadError(makeFile(kOneTensor, 11),
                  "3 bytes of trailing data after the last tensor");
}

TEST(SafetensorsReaderErrors, BadMetadata) {
  expectReadError(makeFile(R"({"__metadata__":{"step":3}})", 0),
                  "metadata 'step' is a number, expected a string");
  expectReadError(makeFile(R"({"__metadata__":[]})", 0),
                  "\"__metadata__\" is an array");
  std::vector<uint8_t> badStep =
      makeFile(R"({"__metadata__":{"moert.step":"12x"}})", 0);
  Expected<Checkpoint> loaded = Checkpoint::fromBytes(badStep);
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  ASSERT_FALSE(loaded->step().ok());
  EXPECT_NE(loaded->step().status().message().find(
                "\"moert.step\" is '12x', expected a non-negative integer"),
            std::string::npos);
}

// Every proper prefix of a real checkpoint is rejected, and flipped bytes
// give an error or a checkpoint that passed every check; never a crash.
TEST(SafetensorsRobustness, TruncationsAndFlippedBytes) {
  TempDir dir;
  Fixture fixture;
  CheckpointWriter writer;
  ASSERT_TRUE(fixture.addTo(writer).ok());
  writer.setStep(5);
  ASSERT_TRUE(writer.write(dir.file("c")).ok());
  std::vector<uint8_t> bytes = readFileBytes(dir.file("c"));
  for (size_t length = 0; length < bytes.size(); ++length) {
    Expected<Checkpoint> loaded = Checkpoint::fromBytes(
        std::vector<uint8_t>(bytes.begin(), bytes.begin() + length));
    EXPECT_FALSE(loaded.ok()) << "a " << length << "-byte prefix loaded";
  }
  size_t rejected = 0;
  for (size_t position = 0; position < bytes.size(); ++position) {
    for (uint8_t mask : {0x01, 0x20, 0x80}) {
      std::vector<uint8_t> corrupt = bytes;
      corrupt[position] ^= mask;
      Expected<Checkpoint> loaded = Checkpoint::fromBytes(std::move(corrupt));
      if (!loaded.ok()) {
        ++rejected;
        continue;
      }
      for (const std::string &name : loaded->tensorNames()) {
        Expected<TensorView> view = loaded->tensor(name);
        ASSERT_TRUE(view.ok());
        // Touch every byte: they must be inside the buffer.
        unsigned sum = 0;
        for (size_t i = 0; i < view->bytes; ++i)
          sum += view->data[i];
        (void)sum;
      }
    }
  }
  EXPECT_GT(rejected, 0u);
}

} // namespace
} // namespace moert::checkpoint
