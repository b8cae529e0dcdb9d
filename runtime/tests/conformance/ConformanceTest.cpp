//===- ConformanceTest.cpp - The same cases on every backend --------------===//
//
// One suite for every backend: each case is a small program (an op forward
// and backward, or a chain of them) run on the backend under test and on the
// CPU backend with the same inputs. Checks, per case:
//   - outputs equal the CPU backend's within the case's tolerance (fp32:
//     tight; integer outputs such as routing: exactly);
//   - gradients agree with central finite differences of the forward pass
//     on the backend under test, an independent check that also gives the
//     CPU run of this suite something to fail on;
//   - invariants of the op (routing capacity, dropout rate).
// The backend is the test parameter; a backend not built, or without its
// device on this machine (CUDA without a GPU), is skipped with the reason.
//
//===----------------------------------------------------------------------===//
#include "moert/backends/cpu/CpuDevice.h"
#include "moert/exec/Executor.h"
#include "moert/exec/tests/TestPrograms.h"
#include "moert/hal/Device.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <random>

namespace moert {
namespace hal {
// Test names and failure messages print the backend by name.
void PrintTo(Backend backend, std::ostream *os) { *os << backendName(backend); }
} // namespace hal

namespace {

using exec::AttrValue;
using exec::DType;
using exec::Executor;
using exec::testing::TestProgram;

/// How a case fills an input buffer.
struct Input {
  int32_t buffer;
  enum Kind { Normal, Uniform, Integers } kind = Normal;
  double low = 0, high = 1; // Uniform range; Integers in [low, high)
  double scale = 1;         // Normal standard deviation
};

struct Case {
  TestProgram t;
  std::vector<Input> inputs;
  /// Outputs compared with the CPU backend, with their absolute+relative
  /// tolerance (0: bit for bit).
  std::vector<std::pair<int32_t, double>> outputs;
  /// Finite-difference checks: d(sum(forwardOutput * cotangent)) / d(input)
  /// against the gradient buffer the program computes.
  struct GradCheck {
    int32_t input, gradient, forwardOutput, cotangent;
  };
  std::vector<GradCheck> gradChecks;
  /// Instructions [0, forwardEnd) are the forward pass (re-run for the
  /// finite differences).
  size_t forwardEnd = 0;

  int32_t in(DType dtype, std::vector<int64_t> shape, Input spec = {}) {
    spec.buffer = t.buffer(dtype, std::move(shape));
    inputs.push_back(spec);
    return spec.buffer;
  }
  int32_t out(DType dtype, std::vector<int64_t> shape) {
    return t.buffer(dtype, std::move(shape));
  }
};

std::vector<uint8_t> randomBytes(const Input &spec, const exec::TensorType &type,
                                 uint32_t seed) {
  std::mt19937 rng(seed * 7919u + static_cast<uint32_t>(spec.buffer));
  int64_t n = type.numElements();
  std::vector<uint8_t> bytes(static_cast<size_t>(type.byteSize()));
  for (int64_t i = 0; i < n; ++i) {
    if (type.dtype == DType::F32) {
      float v = spec.kind == Input::Uniform
                    ? std::uniform_real_distribution<float>(
                          static_cast<float>(spec.low),
                          static_cast<float>(spec.high))(rng)
                    : static_cast<float>(spec.scale) *
                          std::normal_distribution<float>()(rng);
      std::memcpy(bytes.data() + 4 * i, &v, 4);
    } else if (type.dtype == DType::I32) {
      int32_t v = std::uniform_int_distribution<int32_t>(
          static_cast<int32_t>(spec.low),
          static_cast<int32_t>(spec.high) - 1)(rng);
      std::memcpy(bytes.data() + 4 * i, &v, 4);
    } else if (type.dtype == DType::I64) {
      int64_t v = static_cast<int64_t>(spec.low);
      std::memcpy(bytes.data() + 8 * i, &v, 8);
    }
  }
  return bytes;
}

std::vector<float> readF32(const Executor &e, int32_t id) {
  std::vector<float> v(
      static_cast<size_t>(e.program().buffers[id].type.numElements()));
  Status s = e.readBuffer(id, v.data(), v.size() * 4);
  EXPECT_TRUE(s.ok()) << s.toString();
  return v;
}

std::vector<uint8_t> readBytes(const Executor &e, int32_t id) {
  std::vector<uint8_t> v(
      static_cast<size_t>(e.program().buffers[id].type.byteSize()));
  Status s = e.readBuffer(id, v.data(), v.size());
  EXPECT_TRUE(s.ok()) << s.toString();
  return v;
}

class Conformance : public ::testing::TestWithParam<hal::Backend> {
protected:
  void SetUp() override {
    hal::Backend backend = GetParam();
    if (!hal::backendBuilt(backend))
      GTEST_SKIP() << "the " << hal::backendName(backend)
                   << " backend is not built (no toolkit at configure time)";
    Expected<std::unique_ptr<hal::Device>> device =
        hal::createDevice(backend, hal::DeviceOptions());
    if (!device.ok())
      GTEST_SKIP() << "no " << hal::backendName(backend)
                   << " device here: " << device.status().message();
    device_ = std::move(*device);
  }

  exec::RunContext context() const {
    exec::RunContext c;
    c.seed = 1234;
    c.step = 7;
    c.training = true;
    return c;
  }

  std::unique_ptr<Executor> make(const Case &c, hal::Device &device) {
    auto made = Executor::create(c.t.program, device);
    EXPECT_TRUE(made.ok()) << made.status().toString();
    if (!made.ok())
      return nullptr;
    for (const Input &input : c.inputs) {
      const exec::TensorType &type = c.t.program.buffers[input.buffer].type;
      std::vector<uint8_t> bytes = randomBytes(input, type, 17);
      Status s = (*made)->writeBuffer(input.buffer, bytes.data(), bytes.size());
      EXPECT_TRUE(s.ok()) << s.toString();
    }
    return std::move(*made);
  }

  /// Runs `c` on the device under test and on the CPU; compares outputs and
  /// checks gradients by finite differences on the device under test.
  void check(Case &c) {
    if (c.forwardEnd == 0)
      c.forwardEnd = c.t.program.instructions.size();
    auto tested = make(c, *device_);
    auto reference = make(c, cpu::hostDevice());
    ASSERT_TRUE(tested && reference);
    Status s = tested->run(context());
    ASSERT_TRUE(s.ok()) << s.toString();
    s = reference->run(context());
    ASSERT_TRUE(s.ok()) << s.toString();
    for (auto [id, tolerance] : c.outputs) {
      const exec::Buffer &b = c.t.program.buffers[id];
      if (tolerance == 0 || b.type.dtype != DType::F32) {
        EXPECT_EQ(readBytes(*tested, id), readBytes(*reference, id))
            << "output buffer " << id << " (" << b.type.str()
            << ") differs from the CPU backend's";
        continue;
      }
      std::vector<float> got = readF32(*tested, id),
                         want = readF32(*reference, id);
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], want[i], tolerance * (1 + std::fabs(want[i])))
            << "output buffer " << id << " (" << b.type.str()
            << ") element " << i;
    }
    for (const Case::GradCheck &g : c.gradChecks)
      checkGradient(c, *tested, g);
  }

  /// Central differences of L = sum(y * r) at a few elements of the input.
  void checkGradient(const Case &c, Executor &e, const Case::GradCheck &g) {
    std::vector<float> x = readF32(e, g.input);
    std::vector<float> gradient = readF32(e, g.gradient);
    std::vector<float> cotangent = readF32(e, g.cotangent);
    auto loss = [&](const std::vector<float> &value) {
      EXPECT_TRUE(e.writeBuffer(g.input, value.data(), value.size() * 4).ok());
      for (size_t i = 0; i < c.forwardEnd; ++i) {
        Status s = e.runInstruction(i, context());
        EXPECT_TRUE(s.ok()) << s.toString();
      }
      std::vector<float> y = readF32(e, g.forwardOutput);
      double sum = 0;
      for (size_t i = 0; i < y.size(); ++i)
        sum += static_cast<double>(y[i]) * cotangent[i % cotangent.size()];
      return sum;
    };
    const double h = 1e-2;
    std::mt19937 rng(5);
    for (int trial = 0; trial < 6; ++trial) {
      size_t i = std::uniform_int_distribution<size_t>(0, x.size() - 1)(rng);
      std::vector<float> plus = x, minus = x;
      plus[i] += static_cast<float>(h);
      minus[i] -= static_cast<float>(h);
      double numeric = (loss(plus) - loss(minus)) / (2 * h);
      EXPECT_NEAR(gradient[i], numeric, 2e-2 * (1 + std::fabs(numeric)))
          << "gradient buffer " << g.gradient << " element " << i;
    }
    EXPECT_TRUE(e.writeBuffer(g.input, x.data(), x.size() * 4).ok());
  }

  std::unique_ptr<hal::Device> device_;
};

constexpr double kTight = 1e-5;  // element-wise fp32
constexpr double kGemm = 1e-4;   // reductions in another order

TEST_P(Conformance, LinearForwardAndBackward) {
  for (bool transpose : {false, true}) {
    Case c;
    int32_t x = c.in(DType::F32, {2, 3, 8});
    int32_t w = c.in(DType::F32, transpose ? std::vector<int64_t>{5, 8}
                                           : std::vector<int64_t>{8, 5});
    int32_t b = c.in(DType::F32, {5});
    int32_t dy = c.in(DType::F32, {2, 3, 5});
    int32_t y = c.out(DType::F32, {2, 3, 5});
    int32_t dx = c.out(DType::F32, {2, 3, 8});
    int32_t dw = c.out(DType::F32, c.t.program.buffers[w].type.shape);
    int32_t db = c.out(DType::F32, {5});
    std::map<std::string, AttrValue> attrs;
    if (transpose)
      attrs["transpose_weight"] = int64_t{1};
    c.t.add("moe.linear", {x, w, b}, {y}, attrs);
    c.forwardEnd = 1;
    c.t.add("moe.linear_grad", {dy, x, w}, {dx, dw}, attrs);
    c.t.add("moe.bias_grad", {dy}, {db});
    c.outputs = {{y, kGemm}, {dx, kGemm}, {dw, kGemm}, {db, kGemm}};
    c.gradChecks = {{x, dx, y, dy}, {w, dw, y, dy}, {b, db, y, dy}};
    check(c);
  }
}

// compute_type bf16 / f16 (the mixed-precision pass's attribute): the GEMM
// inputs are rounded to that format and accumulated in fp32 on every
// backend (the CPU emulates it, CUDA runs 16-bit GEMMs). Linear rounds the
// same inputs on both, so only the summation order differs; the expert FFN
// also rounds its hidden layer, computed in another order first, and CUDA
// attention keeps the probabilities in fp32: those compare at a 16-bit
// tolerance.
TEST_P(Conformance, ReducedPrecisionComputeMatchesTheCpuEmulation) {
  for (const char *type : {"bf16", "f16"}) {
    SCOPED_TRACE(type);
    Case c;
    const int64_t E = 3, C = 4, M = 16, H = 24, B = 2, S = 5;
    int32_t x = c.in(DType::F32, {2, 3, 8});
    int32_t w = c.in(DType::F32, {8, 5});
    int32_t b = c.in(DType::F32, {5});
    int32_t dy = c.in(DType::F32, {2, 3, 5});
    int32_t y = c.out(DType::F32, {2, 3, 5});
    int32_t dx = c.out(DType::F32, {2, 3, 8});
    int32_t dw = c.out(DType::F32, {8, 5});
    int32_t buf = c.in(DType::F32, {E, C, M});
    int32_t w1 = c.in(DType::F32, {E, M, H}, {0, Input::Normal, 0, 1, 0.3});
    int32_t b1 = c.in(DType::F32, {E, H}, {0, Input::Normal, 0, 1, 0.1});
    int32_t w2 = c.in(DType::F32, {E, H, M}, {0, Input::Normal, 0, 1, 0.3});
    int32_t b2 = c.in(DType::F32, {E, M}, {0, Input::Normal, 0, 1, 0.1});
    int32_t dout = c.in(DType::F32, {E, C, M});
    int32_t out = c.out(DType::F32, {E, C, M});
    int32_t dbuf = c.out(DType::F32, {E, C, M});
    int32_t dw1 = c.out(DType::F32, {E, M, H}), db1 = c.out(DType::F32, {E, H}),
            dw2 = c.out(DType::F32, {E, H, M}), db2 = c.out(DType::F32, {E, M});
    int32_t q = c.in(DType::F32, {B, S, M}), k = c.in(DType::F32, {B, S, M}),
            v = c.in(DType::F32, {B, S, M}), dattn = c.in(DType::F32, {B, S, M});
    int32_t attn = c.out(DType::F32, {B, S, M});
    int32_t dq = c.out(DType::F32, {B, S, M}), dk = c.out(DType::F32, {B, S, M}),
            dv = c.out(DType::F32, {B, S, M});
    const std::map<std::string, AttrValue> compute = {
        {"compute_type", std::string(type)}};
    c.t.add("moe.linear", {x, w, b}, {y}, compute);
    c.t.add("moe.linear_grad", {dy, x, w}, {dx, dw}, compute);
    std::map<std::string, AttrValue> expert = compute;
    expert["activation"] = std::string("gelu");
    c.t.add("moe.expert_ffn", {buf, w1, b1, w2, b2}, {out}, expert);
    c.t.add("moe.expert_ffn_grad", {dout, buf, w1, b1, w2, b2},
            {dbuf, dw1, db1, dw2, db2}, expert);
    std::map<std::string, AttrValue> attention = compute;
    attention["num_heads"] = int64_t{2};
    attention["causal"] = int64_t{1};
    c.t.add("moe.attention", {q, k, v}, {attn}, attention);
    c.t.add("moe.attention_grad", {dattn, q, k, v}, {dq, dk, dv}, attention);
    const double half = 1e-2; // a few 16-bit roundings apart
    c.outputs = {{y, kGemm},    {dx, kGemm},  {dw, kGemm},  {out, half},
                 {dbuf, half},  {dw1, half},  {db1, half},  {dw2, half},
                 {db2, half},   {attn, half}, {dq, half},   {dk, half},
                 {dv, half}};
    check(c);
  }
}

TEST_P(Conformance, LayerNormForwardAndBackward) {
  Case c;
  int32_t x = c.in(DType::F32, {6, 32}, {0, Input::Normal, 0, 1, 3.0});
  int32_t gamma = c.in(DType::F32, {32});
  int32_t beta = c.in(DType::F32, {32});
  int32_t dy = c.in(DType::F32, {6, 32});
  int32_t y = c.out(DType::F32, {6, 32});
  int32_t dx = c.out(DType::F32, {6, 32}), dg = c.out(DType::F32, {32}),
          dbeta = c.out(DType::F32, {32});
  c.t.add("moe.layer_norm", {x, gamma, beta}, {y}, {{"epsilon", 1e-5}});
  c.forwardEnd = 1;
  c.t.add("moe.layer_norm_grad", {dy, x, gamma}, {dx, dg, dbeta},
          {{"epsilon", 1e-5}});
  c.outputs = {{y, kGemm}, {dx, kGemm}, {dg, kGemm}, {dbeta, kGemm}};
  c.gradChecks = {{x, dx, y, dy}, {gamma, dg, y, dy}, {beta, dbeta, y, dy}};
  check(c);
}

TEST_P(Conformance, ActivationsForwardAndBackward) {
  for (const char *kind : {"relu", "gelu", "gelu_tanh", "silu"}) {
    SCOPED_TRACE(kind);
    Case c;
    int32_t x = c.in(DType::F32, {4, 33}, {0, Input::Normal, 0, 1, 2.0});
    int32_t dy = c.in(DType::F32, {4, 33});
    int32_t y = c.out(DType::F32, {4, 33}), dx = c.out(DType::F32, {4, 33});
    c.t.add("moe.activation", {x}, {y}, {{"kind", std::string(kind)}});
    c.forwardEnd = 1;
    c.t.add("moe.activation_grad", {dy, x}, {dx}, {{"kind", std::string(kind)}});
    c.outputs = {{y, kTight}, {dx, kTight}};
    if (std::string(kind) != "relu") // relu's kink breaks differences
      c.gradChecks = {{x, dx, y, dy}};
    check(c);
  }
}

TEST_P(Conformance, AttentionForwardAndBackward) {
  for (bool causal : {false, true}) {
    SCOPED_TRACE(causal ? "causal" : "padding mask");
    Case c;
    const int64_t B = 2, S = 7, M = 16;
    int32_t q = c.in(DType::F32, {B, S, M}), k = c.in(DType::F32, {B, S, M}),
            v = c.in(DType::F32, {B, S, M}), dy = c.in(DType::F32, {B, S, M});
    int32_t tokens = c.in(DType::I32, {B, S}, {0, Input::Integers, 0, 4});
    int32_t mask = c.out(DType::Bool, {B, S});
    int32_t y = c.out(DType::F32, {B, S, M});
    int32_t dq = c.out(DType::F32, {B, S, M}), dk = c.out(DType::F32, {B, S, M}),
            dv = c.out(DType::F32, {B, S, M});
    std::map<std::string, AttrValue> attrs = {{"num_heads", int64_t{4}}};
    std::vector<int32_t> operands = {q, k, v};
    if (causal) {
      attrs["causal"] = int64_t{1};
    } else {
      c.t.add("moe.padding_mask", {tokens}, {mask}, {{"pad_id", int64_t{0}}});
      operands.push_back(mask);
    }
    c.t.add("moe.attention", operands, {y}, attrs);
    c.forwardEnd = c.t.program.instructions.size();
    std::vector<int32_t> gradOperands = {dy};
    gradOperands.insert(gradOperands.end(), operands.begin(), operands.end());
    c.t.add("moe.attention_grad", gradOperands, {dq, dk, dv}, attrs);
    c.outputs = {{y, kGemm}, {dq, kGemm}, {dk, kGemm}, {dv, kGemm}};
    if (!causal)
      c.outputs.push_back({mask, 0});
    c.gradChecks = {{q, dq, y, dy}, {k, dk, y, dy}, {v, dv, y, dy}};
    check(c);
  }
}

TEST_P(Conformance, CrossEntropyForwardAndBackward) {
  Case c;
  int32_t logits = c.in(DType::F32, {3, 5, 11}, {0, Input::Normal, 0, 1, 2.0});
  int32_t labels = c.in(DType::I32, {3, 5}, {0, Input::Integers, -1, 11});
  int32_t dloss = c.in(DType::F32, {});
  int32_t loss = c.out(DType::F32, {});
  int32_t dlogits = c.out(DType::F32, {3, 5, 11});
  std::map<std::string, AttrValue> attrs = {{"label_smoothing", 0.1},
                                            {"ignore_index", int64_t{-1}}};
  c.t.add("moe.cross_entropy", {logits, labels}, {loss}, attrs);
  c.forwardEnd = 1;
  c.t.add("moe.cross_entropy_grad", {dloss, logits, labels}, {dlogits}, attrs);
  c.outputs = {{loss, kGemm}, {dlogits, kGemm}};
  c.gradChecks = {{logits, dlogits, loss, dloss}};
  check(c);
}

TEST_P(Conformance, EmbeddingForwardAndBackward) {
  for (const char *position : {"none", "sinusoidal", "learned"}) {
    SCOPED_TRACE(position);
    Case c;
    int32_t tokens = c.in(DType::I32, {2, 6}, {0, Input::Integers, 0, 13});
    int32_t table = c.in(DType::F32, {13, 8});
    int32_t positions = c.in(DType::F32, {6, 8});
    int32_t dy = c.in(DType::F32, {2, 6, 8});
    int32_t y = c.out(DType::F32, {2, 6, 8}), dtable = c.out(DType::F32, {13, 8});
    int32_t dpositions = c.out(DType::F32, {6, 8});
    std::map<std::string, AttrValue> attrs = {{"position", std::string(position)},
                                              {"scaled", int64_t{1}}};
    std::vector<int32_t> operands = {tokens, table};
    bool learned = std::string(position) == "learned";
    if (learned)
      operands.push_back(positions);
    c.t.add("moe.embedding", operands, {y}, attrs);
    c.forwardEnd = 1;
    c.t.add("moe.embedding_grad", {dy, tokens}, {dtable},
            {{"scaled", int64_t{1}}});
    c.outputs = {{y, kTight}, {dtable, kTight}};
    c.gradChecks = {{table, dtable, y, dy}};
    if (learned) {
      c.t.add("moe.position_grad", {dy}, {dpositions});
      c.outputs.push_back({dpositions, kTight});
      c.gradChecks.push_back({positions, dpositions, y, dy});
    }
    check(c);
  }
}

TEST_P(Conformance, BadDataIsAnErrorNamingTheElement) {
  // A token id outside the vocabulary, and a label outside it: the run
  // fails (on a GPU at the end of the run) naming the first bad element.
  for (bool label : {false, true}) {
    Case c;
    int32_t tokens = c.in(DType::I32, {2, 4}, {0, Input::Integers, 0, 5});
    int32_t table = c.in(DType::F32, {5, 8});
    int32_t y = c.out(DType::F32, {2, 4, 8});
    int32_t labels = c.in(DType::I32, {2, 4}, {0, Input::Integers, 0, 8});
    int32_t loss = c.out(DType::F32, {});
    c.t.add("moe.embedding", {tokens, table}, {y},
            {{"position", std::string("none")}});
    c.t.add("moe.cross_entropy", {y, labels}, {loss},
            {{"label_smoothing", 0.0}, {"ignore_index", int64_t{-1}}});
    auto e = make(c, *device_);
    ASSERT_TRUE(e);
    ASSERT_TRUE(e->run(context()).ok()) << "the good data must run";
    std::vector<int32_t> bad(8, 1);
    bad[5] = label ? 8 : 5; // one past the last valid value
    ASSERT_TRUE(e->writeBuffer(label ? labels : tokens, bad.data(), 32).ok());
    Status status = e->run(context());
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.code(), StatusCode::OutOfRange) << status.toString();
    EXPECT_NE(status.message().find(label ? "label #5" : "token #5"),
              std::string::npos)
        << status.toString();
    EXPECT_NE(status.message().find(label ? "moe.cross_entropy"
                                          : "moe.embedding"),
              std::string::npos)
        << status.toString();
    // The error is reported once; good data runs again.
    std::vector<int32_t> good(8, 1);
    ASSERT_TRUE(e->writeBuffer(label ? labels : tokens, good.data(), 32).ok());
    EXPECT_TRUE(e->run(context()).ok());
  }
}

TEST_P(Conformance, DropoutMasksAreTheCpuMasks) {
  Case c;
  const int64_t n = 4096;
  int32_t x = c.in(DType::F32, {n}, {0, Input::Uniform, 1, 2});
  int32_t dy = c.in(DType::F32, {n});
  int32_t y = c.out(DType::F32, {n}), dx = c.out(DType::F32, {n});
  c.t.add("moe.dropout", {x}, {y}, {{"rate", 0.25}, {"stream", int64_t{3}}});
  c.t.add("moe.dropout_grad", {dy}, {dx},
          {{"rate", 0.25}, {"stream", int64_t{3}}});
  c.outputs = {{y, 0}, {dx, 0}};
  c.gradChecks = {{x, dx, y, dy}};
  c.forwardEnd = 1;
  check(c);
  // About a quarter dropped (binomial: 3 sigma is about 0.02).
  auto e = make(c, *device_);
  ASSERT_TRUE(e->run(context()).ok());
  std::vector<float> out = readF32(*e, y);
  int64_t dropped = 0;
  for (float v : out)
    dropped += v == 0.0f;
  EXPECT_NEAR(static_cast<double>(dropped) / n, 0.25, 0.03);
}

/// gate -> dispatch -> expert_ffn -> combine and back: the MoE layer.
Case moeLayerCase(const std::string &noise, int64_t topK, int64_t groups,
                  bool rts, bool dropTokens, int32_t *routing) {
  Case c;
  const int64_t S = 32, M = 8, E = 4, H = 12;
  const int64_t capacity = groups * std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(static_cast<double>(S / groups) / E *
                                        1.0 * topK)));
  const int64_t C = dropTokens ? capacity : S;
  int32_t x = c.in(DType::F32, {S, M});
  int32_t wg = c.in(DType::F32, {M, E}, {0, Input::Normal, 0, 1, 0.5});
  int32_t w1 = c.in(DType::F32, {E, M, H}, {0, Input::Normal, 0, 1, 0.3});
  int32_t b1 = c.in(DType::F32, {E, H}, {0, Input::Normal, 0, 1, 0.1});
  int32_t w2 = c.in(DType::F32, {E, H, M}, {0, Input::Normal, 0, 1, 0.3});
  int32_t b2 = c.in(DType::F32, {E, M}, {0, Input::Normal, 0, 1, 0.1});
  int32_t dy = c.in(DType::F32, {S, M});
  int32_t daux = c.in(DType::F32, {});
  int32_t experts = c.out(DType::I32, {S, topK}),
          slots = c.out(DType::I32, {S, topK});
  int32_t weights = c.out(DType::F32, {S, topK});
  int32_t counts = c.out(DType::I32, {E}), aux = c.out(DType::F32, {});
  int32_t buf = c.out(DType::F32, {E, C, M}), hidden = c.out(DType::F32, {E, C, M});
  int32_t y = c.out(DType::F32, {S, M});
  int32_t dhidden = c.out(DType::F32, {E, C, M}),
          dweights = c.out(DType::F32, {S, topK});
  int32_t dbuf = c.out(DType::F32, {E, C, M});
  int32_t dw1 = c.out(DType::F32, {E, M, H}), db1 = c.out(DType::F32, {E, H}),
          dw2 = c.out(DType::F32, {E, H, M}), db2 = c.out(DType::F32, {E, M});
  int32_t dxDispatch = c.out(DType::F32, {S, M}), dxGate = c.out(DType::F32, {S, M});
  int32_t dwg = c.out(DType::F32, {M, E});
  std::map<std::string, AttrValue> gate = {
      {"top_k", topK},          {"capacity_factor", 1.0},
      {"eval_capacity_factor", 1.0}, {"min_capacity", int64_t{1}},
      {"drop_tokens", int64_t{dropTokens}}, {"use_rts", int64_t{rts}},
      {"noise", noise},         {"jitter_eps", 0.01},
      {"second_sampling", int64_t{0}}, {"groups", groups},
      {"capacity", C},          {"stream", int64_t{5}}};
  c.t.add("moe.gate", {x, wg}, {experts, slots, weights, counts, aux}, gate);
  c.t.add("moe.dispatch", {x, experts, slots}, {buf});
  c.t.add("moe.expert_ffn", {buf, w1, b1, w2, b2}, {hidden},
          {{"activation", std::string("gelu")}});
  c.t.add("moe.combine", {hidden, experts, slots, weights}, {y});
  c.forwardEnd = 4;
  c.t.add("moe.combine_grad", {dy, hidden, experts, slots, weights},
          {dhidden, dweights});
  c.t.add("moe.expert_ffn_grad", {dhidden, buf, w1, b1, w2, b2},
          {dbuf, dw1, db1, dw2, db2}, {{"activation", std::string("gelu")}});
  c.t.add("moe.dispatch_grad", {dbuf, experts, slots}, {dxDispatch});
  c.t.add("moe.gate_grad", {dweights, daux, x, wg, experts, slots},
          {dxGate, dwg}, gate);
  // Routing bit for bit; values to reduction-order tolerance.
  c.outputs = {{experts, 0},      {slots, 0},       {counts, 0},
               {weights, kGemm},  {aux, kGemm},     {y, kGemm},
               {dhidden, kGemm},  {dweights, kGemm}, {dw1, kGemm},
               {db1, kGemm},      {dw2, kGemm},     {db2, kGemm},
               {dxDispatch, kGemm}, {dxGate, kGemm}, {dwg, kGemm}};
  // Expert weights do not move the routing: exact differences.
  c.gradChecks = {{w1, dw1, y, dy}, {b1, db1, y, dy}, {w2, dw2, y, dy},
                  {b2, db2, y, dy}};
  *routing = experts;
  return c;
}

TEST_P(Conformance, MoeLayerRoutesLikeTheCpu) {
  struct Config {
    const char *noise;
    int64_t topK, groups;
    bool rts, drop;
  };
  for (Config config : {Config{"none", 1, 1, true, true},
                        Config{"rsample", 1, 2, true, true},
                        Config{"jitter", 2, 1, false, true},
                        Config{"none", 2, 2, true, true},
                        Config{"none", 2, 1, false, false}}) {
    SCOPED_TRACE(std::string(config.noise) + " top" +
                 std::to_string(config.topK) + " groups " +
                 std::to_string(config.groups));
    int32_t experts = -1;
    Case c = moeLayerCase(config.noise, config.topK, config.groups,
                          config.rts, config.drop, &experts);
    check(c);
    // Every token has a valid expert for every choice.
    auto e = make(c, *device_);
    ASSERT_TRUE(e->run(context()).ok());
    std::vector<uint8_t> bytes = readBytes(*e, experts);
    for (size_t i = 0; i < bytes.size() / 4; ++i) {
      int32_t expert;
      std::memcpy(&expert, bytes.data() + 4 * i, 4);
      EXPECT_TRUE(expert >= 0 && expert < 4) << i;
    }
  }
}

TEST_P(Conformance, OptimizerStep) {
  Case c;
  const int64_t n = 1000;
  int32_t param = c.in(DType::F32, {n}), grad = c.in(DType::F32, {n});
  int32_t m = c.in(DType::F32, {n}, {0, Input::Normal, 0, 1, 0.1});
  int32_t v = c.in(DType::F32, {n}, {0, Input::Uniform, 0, 0.01});
  int32_t step = c.in(DType::I64, {}, {0, Input::Integers, 3, 4});
  int32_t sumSq = c.out(DType::F32, {}), norm = c.out(DType::F32, {}),
          scale = c.out(DType::F32, {}), lr = c.out(DType::F32, {});
  c.t.add("moe.sum_squares", {grad}, {sumSq}, {{"group", std::string("dense")}});
  c.t.add("moe.clip_by_global_norm", {sumSq}, {norm, scale},
          {{"max_norm", 1.0}});
  c.t.add("moe.lr_schedule", {step}, {lr},
          {{"peak_lr", 1e-3}, {"warmup_steps", int64_t{10}}});
  c.t.add("moe.adamw", {param, grad, m, v, lr, scale, step}, {param, m, v},
          {{"group", std::string("dense")},
           {"beta1", 0.9},
           {"beta2", 0.98},
           {"epsilon", 1e-8},
           {"weight_decay", 0.01}});
  c.outputs = {{sumSq, kGemm}, {norm, kGemm}, {scale, kGemm}, {lr, kTight},
               {param, kGemm}, {m, kGemm},    {v, kGemm}};
  check(c);
}

TEST_P(Conformance, PartitioningKernels) {
  Case c;
  int32_t labels = c.in(DType::I32, {4, 6}, {0, Input::Integers, -1, 5});
  int32_t x = c.in(DType::F32, {4, 6}), bias = c.in(DType::F32, {6});
  int32_t other = c.in(DType::F32, {4, 6}, {0, Input::Uniform, 0.5, 2});
  int32_t count = c.out(DType::F32, {}), biased = c.out(DType::F32, {4, 6}),
          product = c.out(DType::F32, {4, 6}),
          quotient = c.out(DType::F32, {4, 6}), filled = c.out(DType::F32, {3}),
          sum = c.out(DType::F32, {4, 6});
  c.t.add("moe.token_count", {labels}, {count}, {{"ignore_index", int64_t{-1}}});
  c.t.add("moe.bias_add", {x, bias}, {biased});
  c.t.add("moe.mul", {biased, other}, {product});
  c.t.add("moe.div", {product, other}, {quotient});
  c.t.add("moe.fill", {}, {filled}, {{"value", 2.5}});
  c.t.add("moe.add", {x, other}, {sum});
  c.outputs = {{count, 0},    {biased, kTight}, {product, kTight},
               {quotient, kTight}, {filled, 0}, {sum, kTight}};
  check(c);
}

// moe.convert (E+Z-Offload's 16-bit parameter copies):
// bit for bit the CPU's, and independently of it every rounded value is
// the nearest bf16 / f16 value (no further than half a unit in the last
// place, ties to the even mantissa) and converts back exactly.
TEST_P(Conformance, ConvertRoundsToNearestEven) {
  Case c;
  int32_t x = c.in(DType::F32, {4, 64}, {0, Input::Uniform, -3000, 3000});
  int32_t b = c.out(DType::BF16, {4, 64}), h = c.out(DType::F16, {4, 64}),
          xb = c.out(DType::F32, {4, 64}), xh = c.out(DType::F32, {4, 64});
  c.t.add("moe.convert", {x}, {b});
  c.t.add("moe.convert", {x}, {h});
  c.t.add("moe.convert", {b}, {xb});
  c.t.add("moe.convert", {h}, {xh});
  c.outputs = {{b, 0}, {h, 0}, {xb, 0}, {xh, 0}};
  check(c);
  auto e = make(c, *device_);
  ASSERT_TRUE(e);
  Status s = e->run(context());
  ASSERT_TRUE(s.ok()) << s.toString();
  std::vector<float> in = readF32(*e, x), viaBf16 = readF32(*e, xb),
                     viaF16 = readF32(*e, xh);
  for (size_t i = 0; i < in.size(); ++i) {
    // Spacing of each format at |x| (bf16: 8 mantissa bits, f16: 11;
    // every |x| here is within f16's normal range).
    int exponent = 0;
    std::frexp(in[i], &exponent);
    const double bf16Ulp = std::ldexp(1.0, exponent - 8);
    const double f16Ulp = std::ldexp(1.0, exponent - 11);
    for (auto [rounded, ulp] :
         {std::pair{viaBf16[i], bf16Ulp}, std::pair{viaF16[i], f16Ulp}}) {
      const double error = std::fabs(double(rounded) - double(in[i]));
      ASSERT_LE(error, ulp / 2) << in[i] << " -> " << rounded;
      if (error == ulp / 2) // a tie: the even neighbour
        EXPECT_EQ(std::fmod(double(rounded) / ulp, 2.0), 0.0) << in[i];
    }
  }
}

TEST_P(Conformance, GradientBucketPackAndUnpack) {
  Case c;
  int32_t x = c.in(DType::F32, {4, 6}), bias = c.in(DType::F32, {6});
  int32_t flat = c.out(DType::F32, {30}), first = c.out(DType::F32, {4, 6}),
          second = c.out(DType::F32, {6}), middle = c.out(DType::F32, {2, 3});
  c.t.add("moe.pack", {x, bias}, {flat});
  c.t.add("moe.unpack", {flat}, {first}, {{"offset", int64_t{0}}});
  c.t.add("moe.unpack", {flat}, {second}, {{"offset", int64_t{24}}});
  c.t.add("moe.unpack", {flat}, {middle}, {{"offset", int64_t{21}}});
  c.outputs = {{flat, 0}, {first, 0}, {second, 0}, {middle, 0}};
  check(c);
  // Independently of the CPU backend: the bucket holds the operands' bytes
  // in order and unpacking gives them back exactly.
  auto e = make(c, *device_);
  ASSERT_TRUE(e);
  Status s = e->run(context());
  ASSERT_TRUE(s.ok()) << s.toString();
  std::vector<uint8_t> packed = readBytes(*e, flat), a = readBytes(*e, x),
                       b = readBytes(*e, bias);
  std::vector<uint8_t> concatenated = a;
  concatenated.insert(concatenated.end(), b.begin(), b.end());
  EXPECT_EQ(packed, concatenated);
  EXPECT_EQ(readBytes(*e, first), a);
  EXPECT_EQ(readBytes(*e, second), b);
  std::vector<uint8_t> middleBytes(packed.begin() + 21 * 4,
                                   packed.begin() + 27 * 4);
  EXPECT_EQ(readBytes(*e, middle), middleBytes);
}

TEST_P(Conformance, ShardedBucketPackAndUnpackInRows) {
  // A ZeRO bucket over 2 ranks: pack in 2 rows (row r holds part r of every
  // operand), then unpack a row's parts and a whole operand from both rows.
  Case c;
  int32_t x = c.in(DType::F32, {4, 6}), bias = c.in(DType::F32, {6});
  int32_t rows = c.out(DType::F32, {30}), shard = c.out(DType::F32, {3}),
          whole = c.out(DType::F32, {4, 6});
  c.t.add("moe.pack", {x, bias}, {rows}, {{"chunks", int64_t{2}}});
  // Row 1's part of `bias` (elements 12..14 of row 1 = 27..29), and `x`
  // gathered back from both rows.
  c.t.add("moe.unpack", {rows}, {shard}, {{"offset", int64_t{27}}});
  c.t.add("moe.unpack", {rows}, {whole},
          {{"offset", int64_t{0}}, {"chunks", int64_t{2}}});
  c.outputs = {{rows, 0}, {shard, 0}, {whole, 0}};
  check(c);
  auto e = make(c, *device_);
  ASSERT_TRUE(e);
  Status s = e->run(context());
  ASSERT_TRUE(s.ok()) << s.toString();
  std::vector<uint8_t> packed = readBytes(*e, rows), a = readBytes(*e, x),
                       b = readBytes(*e, bias);
  // Row 0: x[0:12], bias[0:3]; row 1: x[12:24], bias[3:6] (4-byte floats).
  std::vector<uint8_t> want;
  want.insert(want.end(), a.begin(), a.begin() + 48);
  want.insert(want.end(), b.begin(), b.begin() + 12);
  want.insert(want.end(), a.begin() + 48, a.end());
  want.insert(want.end(), b.begin() + 12, b.end());
  EXPECT_EQ(packed, want);
  EXPECT_EQ(readBytes(*e, shard),
            std::vector<uint8_t>(b.begin() + 12, b.end()));
  EXPECT_EQ(readBytes(*e, whole), a);
}

TEST_P(Conformance, IncrementalDecodingOps) {
  // moe.embedding_at of column t at offset t is column t of moe.embedding
  // (bit for bit: the same position rows), and moe.cache_update replaces
  // exactly the rows at its offset.
  for (const char *position : {"sinusoidal", "learned"}) {
    SCOPED_TRACE(position);
    const bool learned = std::string(position) == "learned";
    Case c;
    int32_t tokens = c.in(DType::I32, {2, 6}, {0, Input::Integers, 0, 13});
    int32_t table = c.in(DType::F32, {13, 8});
    int32_t positions = c.in(DType::F32, {6, 8});
    int32_t cache = c.in(DType::F32, {2, 6, 8});
    int32_t column = c.out(DType::I32, {2, 1}), offset = c.out(DType::I32, {});
    int32_t y = c.out(DType::F32, {2, 6, 8}), at = c.out(DType::F32, {2, 1, 8});
    int32_t updated = c.out(DType::F32, {2, 6, 8});
    std::map<std::string, AttrValue> attrs = {
        {"position", std::string(position)}, {"scaled", int64_t{1}}};
    std::vector<int32_t> full = {tokens, table}, step = {column, table};
    if (learned) {
      full.push_back(positions);
      step.push_back(positions);
    }
    step.push_back(offset);
    c.t.add("moe.embedding", full, {y}, attrs);
    c.t.add("moe.embedding_at", step, {at}, attrs);
    c.t.add("moe.cache_update", {cache, at, offset}, {updated});
    auto e = make(c, *device_);
    ASSERT_TRUE(e);
    std::vector<int32_t> ids(12);
    ASSERT_TRUE(e->readBuffer(tokens, ids.data(), 48).ok());
    std::vector<float> before = readF32(*e, cache);
    for (int32_t t : {0, 3, 5}) {
      SCOPED_TRACE(t);
      std::vector<int32_t> col = {ids[t], ids[6 + t]};
      ASSERT_TRUE(e->writeBuffer(column, col.data(), 8).ok());
      ASSERT_TRUE(e->writeBuffer(offset, &t, 4).ok());
      Status s = e->run(context());
      ASSERT_TRUE(s.ok()) << s.toString();
      std::vector<float> whole = readF32(*e, y), one = readF32(*e, at),
                         after = readF32(*e, updated);
      for (int b = 0; b < 2; ++b)
        for (int d = 0; d < 8; ++d) {
          EXPECT_EQ(one[b * 8 + d], whole[(b * 6 + t) * 8 + d]);
          for (int p = 0; p < 6; ++p)
            EXPECT_EQ(after[(b * 6 + p) * 8 + d],
                      p == t ? one[b * 8 + d] : before[(b * 6 + p) * 8 + d]);
        }
    }
    // An offset with no room for the new position (past the learned table,
    // past the cache, or negative) is an error naming the instruction; good
    // offsets run again afterwards.
    for (int32_t bad : {6, -1}) {
      ASSERT_TRUE(e->writeBuffer(offset, &bad, 4).ok());
      Status s = e->run(context());
      ASSERT_FALSE(s.ok()) << bad;
      EXPECT_EQ(s.code(), StatusCode::OutOfRange) << s.toString();
      const char *culprit =
          learned || bad < 0 ? "moe.embedding_at" : "moe.cache_update";
      EXPECT_NE(s.message().find(culprit), std::string::npos) << s.toString();
    }
    int32_t good = 2;
    ASSERT_TRUE(e->writeBuffer(offset, &good, 4).ok());
    EXPECT_TRUE(e->run(context()).ok());
  }
}

std::vector<hal::Backend> allBackends() {
  return {hal::Backend::Cpu, hal::Backend::Cuda};
}

INSTANTIATE_TEST_SUITE_P(
    Backends, Conformance, ::testing::ValuesIn(allBackends()),
    [](const ::testing::TestParamInfo<hal::Backend> &info) {
      return std::string(hal::backendName(info.param));
    });

} // namespace
} // namespace moert
