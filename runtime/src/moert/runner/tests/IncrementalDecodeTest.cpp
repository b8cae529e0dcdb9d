//===- IncrementalDecodeTest.cpp - The next-token function of @decode_step
//-===//
//
// A hand-written pair of programs in the layout moe-build-decoder emits
// (an encoder of one embedding and its padding mask; a one-layer decoder:
// embedding at the position, key and value rows into caches, causal
// self-attention over them, cross-attention, tied output layer) drives
// incrementalNextTokenFunction. What a prefix gets must not depend on how it
// was reached: step by step from <s> (cached rows), in one call (its earlier
// positions run again), or next to prefixes of other lengths.
//
//===----------------------------------------------------------------------===//
#include "moert/runner/IncrementalDecode.h"

#include <gtest/gtest.h>

#include <random>

namespace moert::runner {
namespace {

using exec::BufferKind;
using exec::DType;

constexpr int64_t B = 2, S = 3, T = 4, D = 4, V = 6;

struct Built {
  exec::Program program;
  int32_t table = -1, wv = -1;
};

Built decoderProgram() {
  Built built;
  exec::Program &p = built.program;
  auto buffer = [&](DType dtype, std::vector<int64_t> shape, BufferKind kind,
                    std::string name) {
    exec::Buffer b;
    b.type = {dtype, std::move(shape)};
    b.kind = kind;
    b.name = std::move(name);
    int64_t &region =
        kind == BufferKind::Arena ? p.arenaBytes : p.persistentBytes;
    b.offset = region;
    region += (b.type.byteSize() + 63) / 64 * 64;
    p.buffers.push_back(b);
    return static_cast<int32_t>(p.buffers.size() - 1);
  };
  auto add = [&](std::string kernel, std::vector<int32_t> operands,
                 std::vector<int32_t> results,
                 std::map<std::string, exec::AttrValue> attrs) {
    exec::Instruction inst;
    inst.kernel = std::move(kernel);
    inst.operands = std::move(operands);
    inst.results = std::move(results);
    inst.attrs = std::move(attrs);
    inst.location = "test";
    p.instructions.push_back(std::move(inst));
  };
  const auto P = BufferKind::Persistent, A = BufferKind::Arena;
  built.table = buffer(DType::F32, {V, D}, P, "table");
  built.wv = buffer(DType::F32, {D, D}, P, "wv");
  const int32_t src = buffer(DType::I32, {B, S}, P, "encode:src_tokens");
  const int32_t memory = buffer(DType::F32, {B, S, D}, P, "state.0");
  const int32_t srcMask = buffer(DType::Bool, {B, S}, P, "state.1");
  const int32_t tokens = buffer(DType::I32, {B, 1}, P, "decode_step:tokens");
  const int32_t position = buffer(DType::I32, {}, P, "decode_step:position");
  const int32_t selfMask =
      buffer(DType::Bool, {B, T}, P, "decode_step:self_mask");
  const int32_t cacheK =
      buffer(DType::F32, {B, T, D}, P, "decode_step:cache.k.0");
  const int32_t cacheV =
      buffer(DType::F32, {B, T, D}, P, "decode_step:cache.v.0");
  const int32_t h = buffer(DType::F32, {B, 1, D}, A, "decode_step:key_rows.0");
  const int32_t v =
      buffer(DType::F32, {B, 1, D}, A, "decode_step:value_rows.0");
  const int32_t keys = buffer(DType::F32, {B, T, D}, A, "keys");
  const int32_t values = buffer(DType::F32, {B, T, D}, A, "values");
  const int32_t self = buffer(DType::F32, {B, 1, D}, A, "self");
  const int32_t cross = buffer(DType::F32, {B, 1, D}, A, "cross");
  const int32_t logits = buffer(DType::F32, {B, 1, V}, A, "decode_step:logits");
  const std::string sinusoidal = "sinusoidal";
  add("moe.embedding", {src, built.table}, {memory},
      {{"position", sinusoidal}});
  add("moe.padding_mask", {src}, {srcMask}, {{"pad_id", int64_t{0}}});
  add("moe.embedding_at", {tokens, built.table, position}, {h},
      {{"position", sinusoidal}});
  add("moe.linear", {h, built.wv}, {v}, {});
  add("moe.cache_update", {cacheK, h, position}, {keys}, {});
  add("moe.cache_update", {cacheV, v, position}, {values}, {});
  add("moe.attention", {h, keys, values, selfMask}, {self},
      {{"num_heads", int64_t{1}}});
  add("moe.attention", {self, memory, memory, srcMask}, {cross},
      {{"num_heads", int64_t{1}}});
  add("moe.linear", {cross, built.table}, {logits},
      {{"transpose_weight", int64_t{1}}});
  p.entryPoints.push_back({"encode", 0, 2, {src}, {memory, srcMask}});
  p.entryPoints.push_back(
      {"decode_step",
       2,
       9,
       {tokens, position, selfMask, cacheK, cacheV, memory, srcMask},
       {logits, h, v}});
  return built;
}

class IncrementalDecodeTest : public ::testing::Test {
protected:
  void SetUp() override {
    Built built = decoderProgram();
    auto made = exec::Executor::create(built.program);
    ASSERT_TRUE(made.ok()) << made.status().toString();
    executor_ = std::move(*made);
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int32_t id : {built.table, built.wv}) {
      std::vector<float> values(static_cast<size_t>(
          executor_->program().buffers[id].type.numElements()));
      for (float &x : values)
        x = normal(rng);
      ASSERT_TRUE(
          executor_->writeBuffer(id, values.data(), values.size() * 4).ok());
    }
  }

  eval::NextTokenFn function() {
    auto made = incrementalNextTokenFunction(*executor_, sources_, 0, 1);
    EXPECT_TRUE(made.ok()) << made.status().toString();
    return *made;
  }

  std::vector<std::vector<float>>
  call(const eval::NextTokenFn &next, const std::vector<int64_t> &rows,
       const std::vector<std::vector<int32_t>> &prefixes) {
    auto got = next(rows, prefixes);
    EXPECT_TRUE(got.ok()) << got.status().toString();
    return got.ok() ? *got : std::vector<std::vector<float>>{};
  }

  std::unique_ptr<exec::Executor> executor_;
  std::vector<std::vector<int32_t>> sources_ = {{4, 5, 3}, {1, 3}, {2, 2, 3}};
};

TEST_F(IncrementalDecodeTest, APrefixGetsTheSameWhateverTheCallingOrder) {
  const std::vector<int32_t> a = {2}, ab = {2, 5}, abc = {2, 5, 1};
  // Step by step, three sources (two chunks of B = 2), from cached rows.
  eval::NextTokenFn stepwise = function();
  auto first = call(stepwise, {0, 1, 2}, {a, a, a});
  call(stepwise, {0, 1, 2}, {ab, ab, ab});
  auto third = call(stepwise, {0, 1, 2}, {abc, abc, abc});
  ASSERT_EQ(third.size(), 3u);
  ASSERT_EQ(third[0].size(), static_cast<size_t>(V));
  // Different sources give different distributions.
  EXPECT_NE(third[0], third[1]);
  // In one call: the earlier positions run again, the same bits.
  eval::NextTokenFn fresh = function();
  auto direct = call(fresh, {2, 0}, {abc, abc});
  ASSERT_EQ(direct.size(), 2u);
  EXPECT_EQ(direct[0], third[2]);
  EXPECT_EQ(direct[1], third[0]);
  // Prefixes of different lengths in one call; a prefix not extended from
  // the call before (a beam restarted) too.
  auto mixed =
      call(fresh, {1, 0, 2}, {a, abc, std::vector<int32_t>{2, 5, 1, 4}});
  ASSERT_EQ(mixed.size(), 3u);
  EXPECT_EQ(mixed[0], first[1]);
  EXPECT_EQ(mixed[1], third[0]);
  // Log-probabilities: they exponentiate to 1.
  double sum = 0;
  for (float x : mixed[2])
    sum += std::exp(static_cast<double>(x));
  EXPECT_NEAR(sum, 1.0, 1e-5);
}

TEST_F(IncrementalDecodeTest, BadCallsAreErrors) {
  eval::NextTokenFn next = function();
  for (auto [rows, prefixes] :
       {std::make_pair(std::vector<int64_t>{0},
                       std::vector<std::vector<int32_t>>{{}}),
        std::make_pair(std::vector<int64_t>{0},
                       std::vector<std::vector<int32_t>>{{2, 2, 2, 2, 2}}),
        std::make_pair(std::vector<int64_t>{3},
                       std::vector<std::vector<int32_t>>{{2}}),
        std::make_pair(std::vector<int64_t>{0, 1},
                       std::vector<std::vector<int32_t>>{{2}})}) {
    auto got = next(rows, prefixes);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), StatusCode::InvalidArgument)
        << got.status().toString();
  }
  // A source longer than the encoder takes.
  auto longer = incrementalNextTokenFunction(*executor_, {{1, 2, 3, 4}}, 0, 1);
  ASSERT_FALSE(longer.ok());
  EXPECT_NE(longer.status().message().find("the encoder takes at most 3"),
            std::string::npos)
      << longer.status().toString();
}

TEST(IncrementalDecodeLayout, AProgramWithoutTheEntryPointsIsRefused) {
  Built built = decoderProgram();
  built.program.entryPoints.pop_back();
  auto made = exec::Executor::create(built.program);
  ASSERT_TRUE(made.ok()) << made.status().toString();
  EXPECT_FALSE(hasIncrementalDecoder((*made)->program()));
  auto next = incrementalNextTokenFunction(**made, {{1, 3}}, 0, 1);
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.status().code(), StatusCode::FailedPrecondition);
  EXPECT_NE(next.status().message().find("decoder=true"), std::string::npos);
}

} // namespace
} // namespace moert::runner
