//===- ExecutorTest.cpp - Programs built by hand, run end to end ----------===//
#include "moert/exec/Executor.h"

#include "moert/dense/CrossEntropy.h"
#include "moert/dense/Linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdlib>
#include <random>

using namespace moert;
using namespace moert::exec;

namespace {

/// Appends buffers to a program; arena buffers are laid out one after the
/// other (no reuse: the tests are about execution, not planning).
struct ProgramBuilder {
  Program program;

  int32_t persistent(DType dtype, std::vector<int64_t> shape) {
    Buffer b;
    b.type = {dtype, std::move(shape)};
    b.kind = BufferKind::Persistent;
    b.offset = program.persistentBytes;
    program.persistentBytes += (b.type.byteSize() + 63) / 64 * 64;
    program.buffers.push_back(b);
    return static_cast<int32_t>(program.buffers.size() - 1);
  }
  int32_t arena(DType dtype, std::vector<int64_t> shape) {
    Buffer b;
    b.type = {dtype, std::move(shape)};
    b.offset = program.arenaBytes;
    program.arenaBytes += (b.type.byteSize() + 63) / 64 * 64;
    program.buffers.push_back(b);
    return static_cast<int32_t>(program.buffers.size() - 1);
  }
  int32_t constant(DType dtype, std::vector<int64_t> shape, double value) {
    Buffer b;
    b.type = {dtype, std::move(shape)};
    b.kind = BufferKind::Constant;
    b.splat = value;
    program.buffers.push_back(b);
    return static_cast<int32_t>(program.buffers.size() - 1);
  }
  void add(std::string kernel, std::vector<int32_t> operands,
           std::vector<int32_t> results,
           std::map<std::string, AttrValue> attrs = {}) {
    program.instructions.push_back({std::move(kernel), std::move(operands),
                                    std::move(results), std::move(attrs),
                                    "test"});
  }
};

/// logits = x W; loss = CE(logits, labels); AdamW on W, in place.
struct LinearClassifier {
  ProgramBuilder b;
  int32_t w, m, v, x, labels, step, loss, norm;
  static constexpr int64_t kTokens = 16, kIn = 8, kClasses = 4;

  LinearClassifier() {
    w = b.persistent(DType::F32, {kIn, kClasses});
    m = b.persistent(DType::F32, {kIn, kClasses});
    v = b.persistent(DType::F32, {kIn, kClasses});
    x = b.persistent(DType::F32, {kTokens, kIn});
    labels = b.persistent(DType::I32, {kTokens});
    step = b.persistent(DType::I64, {});
    int32_t logits = b.arena(DType::F32, {kTokens, kClasses});
    loss = b.arena(DType::F32, {});
    int32_t one = b.constant(DType::F32, {}, 1.0);
    int32_t dLogits = b.arena(DType::F32, {kTokens, kClasses});
    int32_t dx = b.arena(DType::F32, {kTokens, kIn});
    int32_t dw = b.arena(DType::F32, {kIn, kClasses});
    int32_t sumSq = b.arena(DType::F32, {});
    norm = b.arena(DType::F32, {});
    int32_t scale = b.arena(DType::F32, {});
    int32_t lr = b.arena(DType::F32, {});
    b.add("moe.linear", {x, w}, {logits});
    b.add("moe.cross_entropy", {logits, labels}, {loss},
          {{"label_smoothing", 0.0}, {"ignore_index", int64_t(-100)}});
    b.add("moe.cross_entropy_grad", {one, logits, labels}, {dLogits},
          {{"label_smoothing", 0.0}, {"ignore_index", int64_t(-100)}});
    b.add("moe.linear_grad", {dLogits, x, w}, {dx, dw});
    b.add("moe.sum_squares", {dw}, {sumSq}, {{"group", int64_t(0)}});
    b.add("moe.clip_by_global_norm", {sumSq}, {norm, scale},
          {{"max_norm", 1.0}});
    b.add("moe.lr_schedule", {step}, {lr},
          {{"peak_lr", 0.1}, {"warmup_steps", int64_t(0)}});
    b.add("moe.adamw", {w, dw, m, v, lr, scale, step}, {w, m, v},
          {{"beta1", 0.9},
           {"beta2", 0.98},
           {"epsilon", 1e-8},
           {"weight_decay", 0.0}});
  }
};

template <typename T>
void write(Executor &executor, int32_t id, const std::vector<T> &values) {
  std::memcpy(executor.bufferData(id), values.data(),
              values.size() * sizeof(T));
}
template <typename T> T read(const Executor &executor, int32_t id) {
  return *static_cast<const T *>(executor.bufferData(id));
}

TEST(Executor, TrainsALinearClassifier) {
  LinearClassifier model;
  auto executor = Executor::create(model.b.program);
  ASSERT_TRUE(executor.ok()) << executor.status().toString();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  const int64_t S = LinearClassifier::kTokens, K = LinearClassifier::kIn,
                C = LinearClassifier::kClasses;
  std::vector<float> x(S * K);
  std::vector<int32_t> labels(S);
  for (int64_t s = 0; s < S; ++s) {
    labels[s] = static_cast<int32_t>(s % C);
    for (int64_t k = 0; k < K; ++k)
      x[s * K + k] = normal(rng) + (k == labels[s] ? 3.0f : 0.0f);
  }
  Executor &exec = **executor;
  // W and the moments start at zero (the persistent region is zeroed).
  write(exec, model.x, x);
  write(exec, model.labels, labels);
  float firstLoss = 0, lastLoss = 0;
  for (int64_t step = 1; step <= 30; ++step) {
    // The loss the executor reports equals the dense kernels on the same W.
    const float *w = static_cast<const float *>(exec.bufferData(model.w));
    std::vector<float> logits(S * C);
    dense::linearForward({S, K, C, false}, x.data(), w, nullptr, logits.data());
    float expectedLoss = 0;
    dense::crossEntropyForward(S, C, logits.data(), labels.data(), {},
                               &expectedLoss, nullptr, nullptr);
    write(exec, model.step, std::vector<int64_t>{step});
    Status status = exec.run({1, static_cast<uint32_t>(step), true});
    ASSERT_TRUE(status.ok()) << status.toString();
    float loss = read<float>(exec, model.loss);
    EXPECT_FLOAT_EQ(loss, expectedLoss) << "step " << step;
    if (step == 1)
      firstLoss = loss;
    lastLoss = loss;
  }
  EXPECT_NEAR(firstLoss, std::log(4.0f), 1e-5); // W starts at zero
  EXPECT_LT(lastLoss, 0.3f * firstLoss);
}

/// A device the host may not address (as a GPU): its memory is host memory
/// under the hood, but the executor must move everything through copies.
class OpaqueDevice final : public hal::Device {
public:
  hal::Backend backend() const override { return hal::Backend::Cpu; }
  std::string description() const override { return "opaque test device"; }
  bool hostAccessible() const override { return false; }
  Expected<hal::DeviceBuffer> allocate(size_t bytes,
                                       const char *) override {
    ++allocations;
    void *data = bytes ? std::calloc(1, bytes) : nullptr;
    return hal::DeviceBuffer(this, data, bytes);
  }
  Status copyToDevice(void *device, const void *host, size_t bytes) override {
    ++toDevice;
    std::memcpy(device, host, bytes);
    return Status::success();
  }
  Status copyToHost(void *host, const void *device, size_t bytes) override {
    ++toHost;
    std::memcpy(host, device, bytes);
    return Status::success();
  }
  Status copyOnDevice(void *to, const void *from, size_t bytes) override {
    std::memmove(to, from, bytes);
    return Status::success();
  }
  Status fill(void *device, uint8_t value, size_t bytes) override {
    std::memset(device, value, bytes);
    return Status::success();
  }
  Status synchronize() override { return Status::success(); }
  int allocations = 0, toDevice = 0, toHost = 0;

protected:
  void deallocate(void *data, size_t) override { std::free(data); }
};

TEST(Executor, RunsOnADeviceTheHostCannotAddress) {
  LinearClassifier model;
  OpaqueDevice opaque;
  auto onHost = Executor::create(model.b.program);
  auto onDevice = Executor::create(model.b.program, opaque);
  ASSERT_TRUE(onHost.ok() && onDevice.ok());
  // One allocation each: arena, persistent region, workspace (empty here),
  // constants and the kernels' error record.
  EXPECT_EQ(opaque.allocations, 5);
  EXPECT_EQ((*onDevice)->bufferData(model.w), nullptr);
  EXPECT_NE((*onDevice)->deviceAddress(model.w), nullptr);
  std::vector<float> x(LinearClassifier::kTokens * LinearClassifier::kIn);
  std::vector<int32_t> labels(LinearClassifier::kTokens);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = std::sin(0.37f * static_cast<float>(i));
  for (size_t i = 0; i < labels.size(); ++i)
    labels[i] = static_cast<int32_t>(i % LinearClassifier::kClasses);
  for (Executor *exec : {onHost->get(), onDevice->get()}) {
    ASSERT_TRUE(exec->writeBuffer(model.x, x.data(), x.size() * 4).ok());
    ASSERT_TRUE(
        exec->writeBuffer(model.labels, labels.data(), labels.size() * 4).ok());
  }
  for (int64_t step = 1; step <= 5; ++step) {
    float losses[2];
    int k = 0;
    for (Executor *exec : {onHost->get(), onDevice->get()}) {
      ASSERT_TRUE(exec->writeBuffer(model.step, &step, sizeof(step)).ok());
      Status status = exec->run({1, static_cast<uint32_t>(step), true});
      ASSERT_TRUE(status.ok()) << status.toString();
      ASSERT_TRUE(exec->readBuffer(model.loss, &losses[k++], 4).ok());
    }
    EXPECT_EQ(losses[0], losses[1]) << "step " << step;
  }
  std::vector<float> w0(LinearClassifier::kIn * LinearClassifier::kClasses),
      w1(w0.size());
  ASSERT_TRUE((*onHost)->readBuffer(model.w, w0.data(), w0.size() * 4).ok());
  ASSERT_TRUE((*onDevice)->readBuffer(model.w, w1.data(), w1.size() * 4).ok());
  EXPECT_EQ(w0, w1);
  EXPECT_GT(opaque.toDevice, 0);
  EXPECT_GT(opaque.toHost, 0);
  // Sizes are checked; constants are read-only.
  float one = 0;
  Status wrongSize = (*onDevice)->readBuffer(model.w, &one, sizeof(one));
  EXPECT_EQ(wrongSize.code(), StatusCode::InvalidArgument);
  EXPECT_NE(wrongSize.message().find("reading 4 bytes"), std::string::npos)
      << wrongSize.message();
  EXPECT_FALSE((*onDevice)->writeBuffer(9999, &one, 4).ok());
}

// ZeRO-Offload's placement: the moments move to the host region, the
// persistent region shrinks by them, and training is bit-identical.
TEST(Executor, OffloadedMomentsLiveInHostMemoryWithTheSameResults) {
  LinearClassifier model;
  Program offloaded = model.b.program;
  Expected<int64_t> moved = offloadOptimizerState(offloaded, 64);
  ASSERT_TRUE(moved.ok()) << moved.status().toString();
  const int64_t momentBytes =
      2 * LinearClassifier::kIn * LinearClassifier::kClasses * 4;
  EXPECT_EQ(*moved, momentBytes);
  EXPECT_EQ(offloaded.buffers[model.m].kind, BufferKind::Host);
  EXPECT_EQ(offloaded.buffers[model.v].kind, BufferKind::Host);
  EXPECT_EQ(offloaded.buffers[model.w].kind, BufferKind::Persistent);
  EXPECT_EQ(offloaded.hostBytes, 2 * 128);
  EXPECT_LT(offloaded.persistentBytes, model.b.program.persistentBytes);
  auto plain = Executor::create(model.b.program);
  auto onHost = Executor::create(offloaded);
  ASSERT_TRUE(plain.ok() && onHost.ok()) << onHost.status().toString();
  std::vector<float> x(LinearClassifier::kTokens * LinearClassifier::kIn);
  std::vector<int32_t> labels(LinearClassifier::kTokens);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = std::cos(0.29f * static_cast<float>(i));
  for (size_t i = 0; i < labels.size(); ++i)
    labels[i] = static_cast<int32_t>((i * 3) % LinearClassifier::kClasses);
  std::vector<float> m[2];
  int k = 0;
  for (Executor *exec : {plain->get(), onHost->get()}) {
    ASSERT_TRUE(exec->writeBuffer(model.x, x.data(), x.size() * 4).ok());
    ASSERT_TRUE(
        exec->writeBuffer(model.labels, labels.data(), labels.size() * 4).ok());
    for (int64_t step = 1; step <= 3; ++step) {
      ASSERT_TRUE(exec->writeBuffer(model.step, &step, sizeof(step)).ok());
      ASSERT_TRUE(exec->run({1, static_cast<uint32_t>(step), true}).ok());
    }
    m[k].resize(LinearClassifier::kIn * LinearClassifier::kClasses);
    ASSERT_TRUE(exec->readBuffer(model.m, m[k].data(), m[k].size() * 4).ok());
    ++k;
  }
  EXPECT_EQ(m[0], m[1]);
  EXPECT_NE(m[0], std::vector<float>(m[0].size(), 0.0f)) << "moments moved";

  // Moments that are not persistent state updated in place cannot move.
  ProgramBuilder bad;
  int32_t w = bad.persistent(DType::F32, {4}),
          g = bad.arena(DType::F32, {4}), mo = bad.arena(DType::F32, {4}),
          vo = bad.persistent(DType::F32, {4}), lr = bad.arena(DType::F32, {}),
          sc = bad.arena(DType::F32, {}), st = bad.persistent(DType::I64, {});
  bad.add("moe.adamw", {w, g, mo, vo, lr, sc, st}, {w, mo, vo});
  Expected<int64_t> refused = offloadOptimizerState(bad.program);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("is not persistent state"),
            std::string::npos)
      << refused.status().toString();
}

// Length buckets: an executor over another's regions reads and updates the
// same persistent state; steps alternating between the two give the bytes
// of one executor running them all.
TEST(Executor, SharingExecutorsUpdateOneCopyOfTheState) {
  LinearClassifier model;
  std::vector<float> x(LinearClassifier::kTokens * LinearClassifier::kIn);
  std::vector<int32_t> labels(LinearClassifier::kTokens);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = std::sin(0.37f * static_cast<float>(i));
  for (size_t i = 0; i < labels.size(); ++i)
    labels[i] = static_cast<int32_t>((i * 5) % LinearClassifier::kClasses);
  std::vector<float> w0(LinearClassifier::kIn * LinearClassifier::kClasses);
  for (size_t i = 0; i < w0.size(); ++i)
    w0[i] = 0.1f * std::cos(static_cast<float>(i));
  auto alone = Executor::create(model.b.program);
  auto owner = Executor::create(model.b.program);
  ASSERT_TRUE(alone.ok() && owner.ok());
  auto sharing = Executor::createSharing(model.b.program, **owner);
  ASSERT_TRUE(sharing.ok()) << sharing.status().toString();
  EXPECT_TRUE((*sharing)->sharesMemory());
  EXPECT_FALSE((*owner)->sharesMemory());
  EXPECT_EQ((*sharing)->bufferData(model.w), (*owner)->bufferData(model.w));
  for (Executor *exec : {alone->get(), owner->get()})
    ASSERT_TRUE(exec->writeBuffer(model.w, w0.data(), w0.size() * 4).ok());
  for (int64_t step = 1; step <= 4; ++step) {
    Executor *pair = step % 2 ? owner->get() : sharing->get();
    for (Executor *exec : {alone->get(), pair}) {
      ASSERT_TRUE(exec->writeBuffer(model.x, x.data(), x.size() * 4).ok());
      ASSERT_TRUE(
          exec->writeBuffer(model.labels, labels.data(), labels.size() * 4)
              .ok());
      ASSERT_TRUE(exec->writeBuffer(model.step, &step, sizeof(step)).ok());
      ASSERT_TRUE(exec->run({1, static_cast<uint32_t>(step), true}).ok());
    }
  }
  for (int32_t id : {model.w, model.m, model.v}) {
    std::vector<float> a(w0.size()), b(w0.size());
    ASSERT_TRUE((*alone)->readBuffer(id, a.data(), a.size() * 4).ok());
    ASSERT_TRUE((*sharing)->readBuffer(id, b.data(), b.size() * 4).ok());
    EXPECT_EQ(a, b) << "buffer " << id;
  }
  std::vector<float> w(w0.size());
  ASSERT_TRUE((*alone)->readBuffer(model.w, w.data(), w.size() * 4).ok());
  EXPECT_NE(w, w0) << "the steps trained";

  // A program whose persistent region is larger than the owner's is
  // refused, with both sizes.
  Program larger = model.b.program;
  larger.persistentBytes += 64;
  auto refused = Executor::createSharing(larger, **owner);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(
                "the shared persistent region has " +
                std::to_string(model.b.program.persistentBytes) +
                " bytes, the program needs " +
                std::to_string(larger.persistentBytes)),
            std::string::npos)
      << refused.status().toString();
}

// Plans are untrusted: shapes that would make a kernel read or write past
// a buffer are rejected before anything runs, naming the instruction, what
// was found and what was expected.
TEST(Executor, RejectsShapesThatDoNotFitTheOp) {
  auto expectRejected = [](const Program &program, const std::string &part) {
    Expected<std::unique_ptr<Executor>> made = Executor::create(program);
    ASSERT_FALSE(made.ok()) << "expected an error containing " << part;
    EXPECT_EQ(made.status().code(), StatusCode::InvalidArgument);
    EXPECT_NE(made.status().message().find(part), std::string::npos)
        << made.status().message();
  };
  {
    ProgramBuilder b;
    int32_t x = b.arena(DType::F32, {4, 16}), w = b.persistent(DType::F32, {8, 5});
    int32_t y = b.arena(DType::F32, {4, 5});
    b.add("moe.linear", {x, w}, {y});
    expectRejected(b.program, "instruction #0 (moe.linear) at test: the input "
                              "f32[4x16] has 16 features, the weight f32[8x5] "
                              "expects 8");
  }
  {
    ProgramBuilder b;
    int32_t x = b.arena(DType::F32, {4, 8}), w = b.persistent(DType::F32, {8, 5});
    int32_t y = b.arena(DType::F32, {4, 6});
    b.add("moe.linear", {x, w}, {y});
    expectRejected(b.program, "the result is f32[4x6], expected f32[4x5]");
  }
  {
    ProgramBuilder b;
    int32_t in = b.arena(DType::F32, {2, 3, 8}),
            w1 = b.persistent(DType::F32, {2, 8, 16}),
            b1 = b.persistent(DType::F32, {2, 16}),
            w2 = b.persistent(DType::F32, {2, 8, 16}),
            b2 = b.persistent(DType::F32, {2, 8});
    int32_t out = b.arena(DType::F32, {2, 3, 8});
    b.add("moe.expert_ffn", {in, w1, b1, w2, b2}, {out},
          {{"activation", std::string("gelu")}});
    expectRejected(b.program, "the second expert weight is f32[2x8x16], "
                              "expected [2, 16, 8]");
  }
  {
    ProgramBuilder b;
    int32_t q = b.arena(DType::F32, {2, 10, 16}),
            k = b.arena(DType::F32, {2, 12, 16}),
            v = b.arena(DType::F32, {2, 6, 16});
    int32_t y = b.arena(DType::F32, {2, 10, 16});
    b.add("moe.attention", {q, k, v}, {y}, {{"num_heads", int64_t(4)}});
    expectRejected(b.program, "the values is f32[2x6x16], expected the shape "
                              "of the keys f32[2x12x16]");
    ProgramBuilder h;
    q = h.arena(DType::F32, {2, 10, 16});
    k = h.arena(DType::F32, {2, 12, 16});
    v = h.arena(DType::F32, {2, 12, 16});
    y = h.arena(DType::F32, {2, 10, 16});
    h.add("moe.attention", {q, k, v}, {y}, {{"num_heads", int64_t(3)}});
    expectRejected(h.program, "num_heads = 3 does not divide the model width "
                              "of the queries f32[2x10x16]");
  }
  {
    ProgramBuilder b;
    int32_t p = b.persistent(DType::F32, {4}), g = b.arena(DType::F32, {5}),
            m = b.persistent(DType::F32, {4}), v = b.persistent(DType::F32, {4}),
            lr = b.arena(DType::F32, {}), sc = b.arena(DType::F32, {}),
            st = b.persistent(DType::I64, {});
    b.add("moe.adamw", {p, g, m, v, lr, sc, st}, {p, m, v});
    expectRejected(b.program, "the gradient is f32[5], expected the shape of "
                              "the parameter f32[4]");
  }
  {
    ProgramBuilder b;
    int32_t x = b.arena(DType::F32, {6, 8}), wg = b.persistent(DType::F32, {8, 4});
    int32_t experts = b.arena(DType::I32, {5, 2}), slots = b.arena(DType::I32, {5, 2}),
            weights = b.arena(DType::F32, {5, 2}), counts = b.arena(DType::I32, {4}),
            aux = b.arena(DType::F32, {});
    b.add("moe.gate", {x, wg}, {experts, slots, weights, counts, aux});
    expectRejected(b.program, "the routing i32[5x2] is not [6 tokens, k]");
  }
  {
    ProgramBuilder b;
    int32_t g0 = b.arena(DType::F32, {4, 8}), g1 = b.arena(DType::F32, {8});
    int32_t flat = b.arena(DType::F32, {39});
    b.add("moe.pack", {g0, g1}, {flat});
    expectRejected(b.program, "the packed result is f32[39], expected 40 "
                              "elements (the operands' sum)");
  }
  {
    ProgramBuilder b;
    int32_t flat = b.arena(DType::F32, {40}), piece = b.arena(DType::F32, {8});
    b.add("moe.unpack", {flat}, {piece}, {{"offset", int64_t(36)}});
    expectRejected(b.program, "elements [36, 44) are not inside the packed "
                              "operand f32[40]");
    ProgramBuilder n;
    flat = n.arena(DType::F32, {40});
    piece = n.arena(DType::F32, {8});
    n.add("moe.unpack", {flat}, {piece}, {{"offset", int64_t(-4)}});
    expectRejected(n.program, "elements [-4, 4) are not inside the packed "
                              "operand f32[40]");
  }
}

TEST(Executor, RejectsBucketRowsThatDoNotSplit) {
  {
    ProgramBuilder b;
    int32_t a = b.arena(DType::F32, {3}), c = b.arena(DType::F32, {4});
    int32_t flat = b.arena(DType::F32, {7});
    b.add("moe.pack", {a, c}, {flat}, {{"chunks", int64_t{2}}});
    Expected<std::unique_ptr<Executor>> made = Executor::create(b.program);
    ASSERT_FALSE(made.ok());
    EXPECT_NE(made.status().message().find(
                  "instruction #0 (moe.pack) at test: operand #0 f32[3] does "
                  "not split into 2 equal chunks"),
              std::string::npos)
        << made.status().message();
  }
  {
    ProgramBuilder b;
    int32_t flat = b.arena(DType::F32, {40}), out = b.arena(DType::F32, {16});
    b.add("moe.unpack", {flat}, {out},
          {{"offset", int64_t{16}}, {"chunks", int64_t{2}}});
    Expected<std::unique_ptr<Executor>> made = Executor::create(b.program);
    ASSERT_FALSE(made.ok());
    EXPECT_NE(made.status().message().find(
                  "elements [16, 24) are not inside the packed operand "
                  "f32[40] (in each of its 2 rows)"),
              std::string::npos)
        << made.status().message();
  }
}

TEST(Executor, RejectsMalformedPrograms) {
  {
    LinearClassifier model;
    model.b.program.instructions[0].operands[0] = 999;
    auto executor = Executor::create(model.b.program);
    ASSERT_FALSE(executor.ok());
    EXPECT_NE(executor.status().message().find(
                  "instruction #0 (moe.linear) at test: operand refers to "
                  "buffer 999, but the program has"),
              std::string::npos)
        << executor.status().message();
  }
  {
    LinearClassifier model;
    model.b.program.arenaBytes -= 64;
    auto executor = Executor::create(model.b.program);
    ASSERT_FALSE(executor.ok());
    EXPECT_NE(executor.status().message().find("lies outside the arena"),
              std::string::npos)
        << executor.status().message();
  }
  {
    LinearClassifier model;
    model.b.program.instructions[0].results[0] =
        model.b.program.instructions[2].operands[0]; // the constant 1
    auto executor = Executor::create(model.b.program);
    ASSERT_FALSE(executor.ok());
    EXPECT_NE(executor.status().message().find("is a constant"),
              std::string::npos);
  }
  {
    LinearClassifier model;
    model.b.program.instructions[1].kernel = "moe.frobnicate";
    auto executor = Executor::create(model.b.program);
    ASSERT_FALSE(executor.ok());
    EXPECT_EQ(executor.status().code(), StatusCode::Unimplemented);
    EXPECT_NE(executor.status().message().find(
                  "(moe.frobnicate) at test: not an op of this runtime"),
              std::string::npos);
  }
  {
    LinearClassifier model;
    model.b.program.instructions[3].results.pop_back();
    auto executor = Executor::create(model.b.program);
    ASSERT_FALSE(executor.ok());
    EXPECT_NE(executor.status().message().find(
                  "(moe.linear_grad) at test: expected 2 results, found 1"),
              std::string::npos)
        << executor.status().message();
  }
}

TEST(Executor, ReportsBadDataWithTheInstruction) {
  LinearClassifier model;
  auto executor = Executor::create(model.b.program);
  ASSERT_TRUE(executor.ok());
  const int64_t S = LinearClassifier::kTokens, K = LinearClassifier::kIn,
                C = LinearClassifier::kClasses;
  std::vector<int32_t> labels(S, 0);
  labels[5] = 7; // outside the 4 classes
  write(**executor, model.labels, labels);
  write(**executor, model.step, std::vector<int64_t>{1});
  Status status = (*executor)->run({});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::OutOfRange);
  EXPECT_NE(status.message().find("instruction #1 (moe.cross_entropy) at "
                                  "test: label #5 is 7, outside the "
                                  "vocabulary [0, 4)"),
            std::string::npos)
      << status.message();
}

TEST(Executor, MissingAttributeIsAnError) {
  LinearClassifier model;
  model.b.program.instructions[6].attrs.erase("peak_lr");
  auto executor = Executor::create(model.b.program);
  ASSERT_TRUE(executor.ok());
  write(**executor, model.step, std::vector<int64_t>{1});
  Status status = (*executor)->run({});
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("missing float attribute 'peak_lr'"),
            std::string::npos)
      << status.message();
}

} // namespace

TEST(Executor, RejectsAGradientWhoseAttributesDifferFromItsForwardOp) {
  auto create = [](const Program &program) {
    return Executor::create(program);
  };
  // Dropout and its gradient drawing the same stream: the gradient
  // redraws the forward mask, so the rates must agree.
  auto dropout = [](double gradRate, int64_t gradStream) {
    ProgramBuilder b;
    int32_t x = b.arena(DType::F32, {4, 8}), y = b.arena(DType::F32, {4, 8});
    int32_t gy = b.arena(DType::F32, {4, 8}), gx = b.arena(DType::F32, {4, 8});
    b.add("moe.dropout", {x}, {y}, {{"rate", 0.1}, {"stream", int64_t{3}}});
    b.add("moe.dropout_grad", {gy}, {gx},
          {{"rate", gradRate}, {"stream", gradStream}});
    return b.program;
  };
  EXPECT_TRUE(create(dropout(0.1, 3)).ok());
  EXPECT_TRUE(create(dropout(0.2, 4)).ok()) << "another stream: no pair";
  Expected<std::unique_ptr<Executor>> made = create(dropout(0.2, 3));
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), StatusCode::InvalidArgument);
  EXPECT_EQ(made.status().message(),
            "instruction #1 (moe.dropout_grad) at test: rate = 0.2 differs "
            "from rate = 0.1 of instruction #0 (moe.dropout) at test, which "
            "draws the same random stream 3; a gradient must be computed "
            "with its forward op's attributes");

  // Attention and its gradient over the same queries, keys and values.
  auto attention = [](int64_t gradHeads) {
    ProgramBuilder b;
    int32_t q = b.arena(DType::F32, {2, 10, 16}),
            k = b.arena(DType::F32, {2, 10, 16}),
            v = b.arena(DType::F32, {2, 10, 16}),
            y = b.arena(DType::F32, {2, 10, 16}),
            gy = b.arena(DType::F32, {2, 10, 16}),
            gq = b.arena(DType::F32, {2, 10, 16}),
            gk = b.arena(DType::F32, {2, 10, 16}),
            gv = b.arena(DType::F32, {2, 10, 16});
    b.add("moe.attention", {q, k, v}, {y}, {{"num_heads", int64_t{2}}});
    b.add("moe.attention_grad", {gy, q, k, v}, {gq, gk, gv},
          {{"num_heads", gradHeads}});
    return b.program;
  };
  EXPECT_TRUE(create(attention(2)).ok());
  made = create(attention(4));
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find(
                "instruction #1 (moe.attention_grad) at test: num_heads = 4 "
                "differs from num_heads = 2 of instruction #0 (moe.attention) "
                "at test, whose operands it differentiates"),
            std::string::npos)
      << made.status().message();

  // A flag absent on one side means false: a transposed weight in the
  // gradient only is a mismatch, absent on both sides is not.
  auto linear = [](bool gradTransposed) {
    ProgramBuilder b;
    int32_t x = b.arena(DType::F32, {4, 8}),
            w = b.persistent(DType::F32, {8, 8}),
            y = b.arena(DType::F32, {4, 8}), gy = b.arena(DType::F32, {4, 8}),
            gx = b.arena(DType::F32, {4, 8}), gw = b.arena(DType::F32, {8, 8});
    b.add("moe.linear", {x, w}, {y});
    std::map<std::string, AttrValue> attrs;
    if (gradTransposed)
      attrs["transpose_weight"] = int64_t{1};
    b.add("moe.linear_grad", {gy, x, w}, {gx, gw}, attrs);
    return b.program;
  };
  EXPECT_TRUE(create(linear(false)).ok());
  made = create(linear(true));
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find(
                "transpose_weight = 1 differs from transpose_weight = 0"),
            std::string::npos)
      << made.status().message();

  // The gate's gradient re-derives the routing of the gate that produced
  // its expert ids: every gating attribute must agree.
  auto gate = [](std::string gradNoise) {
    ProgramBuilder b;
    const int64_t s = 6, model = 4, experts = 2;
    int32_t in = b.arena(DType::F32, {s, model}),
            weight = b.persistent(DType::F32, {model, experts}),
            chosen = b.arena(DType::I32, {s, 1}),
            slots = b.arena(DType::I32, {s, 1}),
            weights = b.arena(DType::F32, {s, 1}),
            counts = b.arena(DType::I32, {experts}),
            aux = b.arena(DType::F32, {}),
            weightsGrad = b.arena(DType::F32, {s, 1}),
            auxGrad = b.constant(DType::F32, {}, 1.0),
            inGrad = b.arena(DType::F32, {s, model}),
            weightGrad = b.arena(DType::F32, {model, experts});
    std::map<std::string, AttrValue> attrs = {{"top_k", int64_t{1}},
                                              {"noise", std::string("jitter")},
                                              {"jitter_eps", 0.5},
                                              {"capacity", int64_t{s}},
                                              {"stream", int64_t{5}}};
    b.add("moe.gate", {in, weight}, {chosen, slots, weights, counts, aux},
          attrs);
    attrs["noise"] = gradNoise;
    b.add("moe.gate_grad", {weightsGrad, auxGrad, in, weight, chosen, slots},
          {inGrad, weightGrad}, attrs);
    return b.program;
  };
  made = create(gate("jitter"));
  EXPECT_TRUE(made.ok()) << made.status().toString();
  made = create(gate("rsample"));
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find(
                "instruction #1 (moe.gate_grad) at test: noise = \"rsample\" "
                "differs from noise = \"jitter\" of instruction #0 (moe.gate) "
                "at test, whose routing it differentiates"),
            std::string::npos)
      << made.status().message();
}
