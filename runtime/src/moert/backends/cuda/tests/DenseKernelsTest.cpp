//===- DenseKernelsTest.cpp - CUDA dense kernels against the CPU ----------===//
//
// Calls the CUDA backend's dense and partition kernels directly (through
// the registry, on hand-made one-instruction programs) on small shapes and
// compares them with the CPU functions of moert/dense: bit for bit where
// the CUDA kernels promise it (dropout masks, embedding, element-wise ops),
// within fp32 tolerances elsewhere. Label `gpu`: every test skips, saying
// why, where no CUDA GPU is usable.
//
//===----------------------------------------------------------------------===//
#include "moert/backends/cuda/CudaDevice.h"
#include "moert/backends/cuda/CudaKernels.h"
#include "moert/exec/DeviceErrors.h"
#include "moert/exec/Executor.h"

#include "moert/dense/Activation.h"
#include "moert/dense/Attention.h"
#include "moert/dense/CrossEntropy.h"
#include "moert/dense/Dropout.h"
#include "moert/dense/Elementwise.h"
#include "moert/dense/Embedding.h"
#include "moert/dense/LayerNorm.h"
#include "moert/dense/Linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace moert {
namespace cuda {
namespace {

using exec::AttrValue;
using exec::DType;
using exec::TensorType;

/// A tensor in host memory: its type and bytes.
struct HostTensor {
  TensorType type;
  std::vector<uint8_t> bytes;

  template <typename T>
  static HostTensor of(DType dtype, std::vector<int64_t> shape,
                       const std::vector<T> &values) {
    HostTensor t;
    t.type.dtype = dtype;
    t.type.shape = std::move(shape);
    EXPECT_EQ(static_cast<size_t>(t.type.numElements()), values.size());
    t.bytes.resize(values.size() * sizeof(T));
    std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
    return t;
  }
  template <typename T> std::vector<T> values() const {
    std::vector<T> out(bytes.size() / sizeof(T));
    std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
  }
};

HostTensor f32(std::vector<int64_t> shape, const std::vector<float> &v) {
  return HostTensor::of(DType::F32, std::move(shape), v);
}
HostTensor i32(std::vector<int64_t> shape, const std::vector<int32_t> &v) {
  return HostTensor::of(DType::I32, std::move(shape), v);
}
HostTensor mask(std::vector<int64_t> shape, const std::vector<uint8_t> &v) {
  return HostTensor::of(DType::Bool, std::move(shape), v);
}
TensorType typeOf(DType dtype, std::vector<int64_t> shape) {
  TensorType t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  return t;
}

std::vector<float> randomValues(size_t count, uint32_t seed,
                                float scale = 1.0f) {
  std::mt19937 engine(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(count);
  for (float &v : values)
    v = normal(engine);
  return values;
}

uint32_t bitsOf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

void expectNear(const std::vector<float> &actual,
                const std::vector<float> &expected, float tolerance,
                const std::string &what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i)
    ASSERT_NEAR(actual[i], expected[i],
                tolerance * (1.0f + std::fabs(expected[i])))
        << what << " element " << i;
}

/// Within `tolerance` (1 + |z|) of the CPU for input z: the accuracy both
/// backends' activations promise against exact math (dense/Activation.h:
/// 1e-6 (1 + |x|) on the CPU; the CUDA math library's erfc, exp and tanh
/// within 2 ulp). Scaling by the output instead fails where the output is
/// near 0 and the input large: gelu_tanh far left, 0.5 z (1 + tanh u),
/// loses the tanh's rounding to the cancellation in 1 + tanh u.
void expectNearForInputs(const std::vector<float> &actual,
                         const std::vector<float> &expected,
                         const std::vector<float> &inputs, float tolerance,
                         const std::string &what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  ASSERT_EQ(inputs.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i)
    ASSERT_NEAR(actual[i], expected[i],
                tolerance * (1.0f + std::fabs(inputs[i])))
        << what << " element " << i << " (input " << inputs[i] << ")";
}

void expectBits(const std::vector<float> &actual,
                const std::vector<float> &expected, const std::string &what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i)
    ASSERT_EQ(bitsOf(actual[i]), bitsOf(expected[i]))
        << what << " element " << i << ": " << actual[i] << " vs "
        << expected[i];
}

/// What a run gives back: the results, and the device error record
/// (code and smallest index) of the kernels that check data.
struct CudaRun {
  std::vector<HostTensor> results;
  uint32_t errorCode = 0;
  uint64_t errorIndex = 0;
};

class DenseKernelsTest : public ::testing::Test {
protected:
  void SetUp() override {
    int count = 0;
    const cudaError_t error = cudaGetDeviceCount(&count);
    if (error != cudaSuccess || count == 0) {
      cudaGetLastError();
      GTEST_SKIP() << "no CUDA GPU: "
                   << (error != cudaSuccess ? cudaGetErrorString(error)
                                            : "cudaGetDeviceCount found 0");
    }
    Expected<std::unique_ptr<CudaDevice>> device = CudaDevice::open(0);
    if (!device.ok())
      GTEST_SKIP() << "cannot open GPU 0: " << device.status().toString();
    device_ = std::move(device).value();
    registerDenseKernels(registry_);
    registerPartitionKernels(registry_);
  }

  /// Runs `op` once on the GPU.
  Expected<CudaRun> run(Op op, const std::vector<HostTensor> &operands,
                        const std::vector<TensorType> &results,
                        std::map<std::string, AttrValue> attrs = {},
                        exec::RunContext context = {}) {
    const exec::KernelInfo *info = registry_.find(op);
    if (!info)
      return internalError(std::string("no CUDA kernel for ") +
                           opInfo(op).name);
    exec::Program program;
    exec::Instruction inst;
    inst.kernel = opInfo(op).dialectName;
    inst.attrs = std::move(attrs);
    inst.location = "DenseKernelsTest";
    for (const HostTensor &operand : operands) {
      inst.operands.push_back(static_cast<int32_t>(program.buffers.size()));
      program.buffers.push_back({operand.type});
    }
    for (const TensorType &type : results) {
      inst.results.push_back(static_cast<int32_t>(program.buffers.size()));
      program.buffers.push_back({type});
    }
    std::vector<hal::DeviceBuffer> memory;
    std::vector<void *> operandPointers, resultPointers;
    for (const HostTensor &operand : operands) {
      MOERT_ASSIGN_OR_RETURN(
          hal::DeviceBuffer buffer,
          device_->allocate(std::max<size_t>(operand.bytes.size(), 4),
                            "operand"));
      MOERT_RETURN_IF_ERROR(device_->copyToDevice(
          buffer.data(), operand.bytes.data(), operand.bytes.size()));
      operandPointers.push_back(buffer.data());
      memory.push_back(std::move(buffer));
    }
    for (const TensorType &type : results) {
      MOERT_ASSIGN_OR_RETURN(
          hal::DeviceBuffer buffer,
          device_->allocate(std::max<int64_t>(type.byteSize(), 4), "result"));
      // Garbage, so a kernel that leaves an element unwritten is caught.
      MOERT_RETURN_IF_ERROR(device_->fill(
          buffer.data(), 0x7f, static_cast<size_t>(type.byteSize())));
      resultPointers.push_back(buffer.data());
      memory.push_back(std::move(buffer));
    }
    const size_t workspaceBytes = std::max<int64_t>(
        info->workspace ? info->workspace(inst, program) : 0, 16);
    MOERT_ASSIGN_OR_RETURN(hal::DeviceBuffer workspace,
                           device_->allocate(workspaceBytes, "workspace"));
    // The device error record, cleared as the executor clears it.
    MOERT_ASSIGN_OR_RETURN(
        hal::DeviceBuffer errorRecord,
        device_->allocate(sizeof(exec::DeviceErrorRecord), "error record"));
    const exec::DeviceErrorRecord clear{exec::kNoDeviceError, 0, ~0ull};
    MOERT_RETURN_IF_ERROR(
        device_->copyToDevice(errorRecord.data(), &clear, sizeof(clear)));
    exec::KernelCall call(inst, program, context, operandPointers,
                          resultPointers, *device_, workspace.data(),
                          workspaceBytes, errorRecord.data());
    MOERT_RETURN_IF_ERROR(info->fn(call));
    MOERT_RETURN_IF_ERROR(device_->synchronize());
    CudaRun out;
    for (size_t i = 0; i < results.size(); ++i) {
      HostTensor t;
      t.type = results[i];
      t.bytes.resize(static_cast<size_t>(results[i].byteSize()));
      MOERT_RETURN_IF_ERROR(device_->copyToHost(
          t.bytes.data(), resultPointers[i], t.bytes.size()));
      out.results.push_back(std::move(t));
    }
    uint8_t record[16];
    MOERT_RETURN_IF_ERROR(
        device_->copyToHost(record, errorRecord.data(), sizeof(record)));
    std::memcpy(&out.errorCode, record, 4);
    std::memcpy(&out.errorIndex, record + 8, 8);
    return out;
  }

  std::unique_ptr<CudaDevice> device_;
  exec::KernelRegistry registry_;
};

#define ASSERT_RUN(var, expr)                                                  \
  Expected<CudaRun> var##Expected = (expr);                                    \
  ASSERT_TRUE(var##Expected.ok()) << var##Expected.status().toString();        \
  CudaRun var = std::move(var##Expected).value()

//===----------------------------------------------------------------------===//
// Linear, bias_grad
//===----------------------------------------------------------------------===//

TEST_F(DenseKernelsTest, LinearAndGradientsMatchCpu) {
  for (bool transposed : {false, true}) {
    const int64_t batch = 3, seq = 7, k = 24, n = 40, rows = batch * seq;
    const std::vector<float> x = randomValues(rows * k, 1);
    const std::vector<float> w = randomValues(k * n, 2, 0.2f);
    const std::vector<float> b = randomValues(n, 3);
    const std::vector<float> dy = randomValues(rows * n, 4);
    const std::vector<int64_t> wShape =
        transposed ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n};
    std::map<std::string, AttrValue> attrs;
    if (transposed)
      attrs["transpose_weight"] = int64_t{1};
    dense::LinearShape shape{rows, k, n, transposed};

    std::vector<float> y(rows * n), dx(rows * k), dw(k * n), db(n);
    dense::linearForward(shape, x.data(), w.data(), b.data(), y.data());
    dense::linearBackward(shape, dy.data(), x.data(), w.data(), dx.data(),
                          dw.data(), db.data());

    ASSERT_RUN(forward,
               run(Op::linear,
                   {f32({batch, seq, k}, x), f32(wShape, w), f32({n}, b)},
                   {typeOf(DType::F32, {batch, seq, n})}, attrs));
    expectNear(forward.results[0].values<float>(), y, 1e-5f, "y");
    ASSERT_RUN(noBias,
               run(Op::linear, {f32({batch, seq, k}, x), f32(wShape, w)},
                   {typeOf(DType::F32, {batch, seq, n})}, attrs));
    std::vector<float> yNoBias(rows * n);
    dense::linearForward(shape, x.data(), w.data(), nullptr, yNoBias.data());
    expectNear(noBias.results[0].values<float>(), yNoBias, 1e-5f, "y");

    ASSERT_RUN(
        backward,
        run(Op::linear_grad,
            {f32({batch, seq, n}, dy), f32({batch, seq, k}, x), f32(wShape, w)},
            {typeOf(DType::F32, {batch, seq, k}), typeOf(DType::F32, wShape)},
            attrs));
    expectNear(backward.results[0].values<float>(), dx, 1e-5f, "dx");
    expectNear(backward.results[1].values<float>(), dw, 1e-5f, "dW");

    ASSERT_RUN(bias, run(Op::bias_grad, {f32({batch, seq, n}, dy)},
                         {typeOf(DType::F32, {n})}));
    // Double sums in two orders: the same float almost always.
    expectNear(bias.results[0].values<float>(), db, 1e-7f, "db");
  }
}

//===----------------------------------------------------------------------===//
// Layer norm
//===----------------------------------------------------------------------===//

TEST_F(DenseKernelsTest, LayerNormAndGradientMatchCpu) {
  for (int64_t dim : {5, 64, 1000}) {
    const int64_t rows = 67; // more than two of the CPU's 32-row blocks
    std::vector<float> x = randomValues(rows * dim, 5);
    for (float &v : x)
      v += 3.0f; // a mean far from zero
    const std::vector<float> scale = randomValues(dim, 6);
    const std::vector<float> bias = randomValues(dim, 7);
    const std::vector<float> dy = randomValues(rows * dim, 8);
    const float eps = 1e-5f;
    std::vector<float> y(rows * dim), dx(rows * dim), ds(dim), dbias(dim);
    dense::layerNormForward(rows, dim, eps, x.data(), scale.data(), bias.data(),
                            y.data(), nullptr, nullptr);
    dense::layerNormBackward(rows, dim, eps, dy.data(), x.data(), scale.data(),
                             nullptr, nullptr, dx.data(), ds.data(),
                             dbias.data());
    std::map<std::string, AttrValue> attrs{{"epsilon", double{eps}}};
    ASSERT_RUN(forward,
               run(Op::layer_norm,
                   {f32({rows, dim}, x), f32({dim}, scale), f32({dim}, bias)},
                   {typeOf(DType::F32, {rows, dim})}, attrs));
    expectNear(forward.results[0].values<float>(), y, 2e-5f, "y");
    ASSERT_RUN(
        backward,
        run(Op::layer_norm_grad,
            {f32({rows, dim}, dy), f32({rows, dim}, x), f32({dim}, scale)},
            {typeOf(DType::F32, {rows, dim}), typeOf(DType::F32, {dim}),
             typeOf(DType::F32, {dim})},
            attrs));
    expectNear(backward.results[0].values<float>(), dx, 1e-4f, "dx");
    expectNear(backward.results[1].values<float>(), ds, 1e-4f, "dscale");
    expectNear(backward.results[2].values<float>(), dbias, 1e-5f, "dbias");
  }
}

//===----------------------------------------------------------------------===//
// Element-wise
//===----------------------------------------------------------------------===//

TEST_F(DenseKernelsTest, ActivationsMatchCpu) {
  const int64_t count = 1027; // not a multiple of 4: the scalar tail runs
  std::vector<float> z = randomValues(count, 9, 3.0f);
  z[0] = 0.0f;
  const std::vector<float> dy = randomValues(count, 10);
  const char *names[] = {"relu", "gelu", "gelu_tanh", "silu"};
  for (int kind = 0; kind < 4; ++kind) {
    std::vector<float> y(count), dz(count);
    dense::activationForward(static_cast<dense::ActivationKind>(kind), count,
                             z.data(), y.data());
    dense::activationBackward(static_cast<dense::ActivationKind>(kind), count,
                              dy.data(), z.data(), dz.data());
    std::map<std::string, AttrValue> attrs{{"kind", std::string(names[kind])}};
    ASSERT_RUN(forward, run(Op::activation, {f32({count}, z)},
                            {typeOf(DType::F32, {count})}, attrs));
    ASSERT_RUN(backward,
               run(Op::activation_grad, {f32({count}, dy), f32({count}, z)},
                   {typeOf(DType::F32, {count})}, attrs));
    if (kind == 0) { // relu is exact
      expectBits(forward.results[0].values<float>(), y, "relu");
      expectBits(backward.results[0].values<float>(), dz, "relu'");
    } else {
      expectNearForInputs(forward.results[0].values<float>(), y, z, 2e-6f,
                          names[kind]);
      // dz = dy * f'(z), |dy| <= 1.
      expectNearForInputs(backward.results[0].values<float>(), dz, z, 2e-6f,
                          std::string(names[kind]) + "'");
    }
  }
}

TEST_F(DenseKernelsTest, AddAndPaddingMaskAreExact) {
  const int64_t count = 1001;
  const std::vector<float> a = randomValues(count, 11),
                           b = randomValues(count, 12);
  std::vector<float> sum(count);
  dense::add(count, a.data(), b.data(), sum.data());
  ASSERT_RUN(added, run(Op::add, {f32({count}, a), f32({count}, b)},
                        {typeOf(DType::F32, {count})}));
  expectBits(added.results[0].values<float>(), sum, "add");

  const std::vector<int32_t> tokens = {5, 0, 0, 7, 3, 0, 1};
  std::vector<uint8_t> expected(tokens.size());
  dense::paddingMask(static_cast<int64_t>(tokens.size()), tokens.data(), 0,
                     expected.data());
  ASSERT_RUN(masked, run(Op::padding_mask, {i32({7}, tokens)},
                         {typeOf(DType::Bool, {7})}, {{"pad_id", int64_t{0}}}));
  EXPECT_EQ(masked.results[0].values<uint8_t>(), expected);
}

TEST_F(DenseKernelsTest, DropoutMaskIsTheCpuMaskBitForBit) {
  const int64_t count = 4099;
  const std::vector<float> x = randomValues(count, 13);
  exec::RunContext context;
  context.seed = 1234;
  context.step = 5;
  context.training = true;
  std::map<std::string, AttrValue> attrs{{"rate", 0.3}, {"stream", int64_t{4}}};
  dense::DropoutParams params;
  params.rate = 0.3;
  params.seed = context.seed;
  params.stream = 4;
  params.step = context.step;
  std::vector<float> expected(count);
  dense::dropoutForward(params, dense::contiguousDropoutLayout(count), x.data(),
                        expected.data());
  for (Op op : {Op::dropout, Op::dropout_grad}) {
    ASSERT_RUN(dropped, run(op, {f32({count}, x)},
                            {typeOf(DType::F32, {count})}, attrs, context));
    expectBits(dropped.results[0].values<float>(), expected, "dropout");
  }
  context.training = false; // evaluation: the identity
  ASSERT_RUN(identity, run(Op::dropout, {f32({count}, x)},
                           {typeOf(DType::F32, {count})}, attrs, context));
  expectBits(identity.results[0].values<float>(), x, "dropout (eval)");
}

//===----------------------------------------------------------------------===//
// Embedding
//===----------------------------------------------------------------------===//

TEST_F(DenseKernelsTest, EmbeddingAndGradientsAreTheCpuBits) {
  const int64_t batch = 3, seq = 5, vocab = 11, dim = 6, positions = 8;
  // Repeated ids: the scatter-add order matters.
  const std::vector<int32_t> tokens = {1, 4, 1, 0, 10, 4, 4, 2,
                                       1, 9, 0, 3, 4,  4, 7};
  const std::vector<float> table = randomValues(vocab * dim, 14);
  const std::vector<float> learned = randomValues(positions * dim, 15);
  const std::vector<float> dy = randomValues(batch * seq * dim, 16);
  dense::EmbeddingShape shape{batch, seq, vocab, dim, positions};
  const char *kinds[] = {"none", "sinusoidal", "learned"};
  for (int kind = 0; kind < 3; ++kind)
    for (bool scaled : {false, true}) {
      std::vector<float> expected(batch * seq * dim);
      ASSERT_EQ(dense::embeddingForward(shape,
                                        static_cast<dense::PositionKind>(kind),
                                        scaled, tokens.data(), table.data(),
                                        learned.data(), expected.data()),
                dense::kAllTokensValid);
      std::vector<HostTensor> operands = {i32({batch, seq}, tokens),
                                          f32({vocab, dim}, table)};
      if (kind == 2)
        operands.push_back(f32({positions, dim}, learned));
      std::map<std::string, AttrValue> attrs{
          {"position", std::string(kinds[kind])}};
      if (scaled)
        attrs["scaled"] = int64_t{1};
      ASSERT_RUN(forward, run(Op::embedding, operands,
                              {typeOf(DType::F32, {batch, seq, dim})}, attrs));
      expectBits(forward.results[0].values<float>(), expected,
                 std::string("embedding ") + kinds[kind]);
      EXPECT_EQ(forward.errorCode, 0u);
    }
  for (bool scaled : {false, true}) {
    std::vector<float> tableGrad(vocab * dim), positionGrad(positions * dim);
    ASSERT_EQ(dense::embeddingBackward(shape, scaled, dy.data(), tokens.data(),
                                       tableGrad.data(), positionGrad.data()),
              dense::kAllTokensValid);
    std::map<std::string, AttrValue> attrs;
    if (scaled)
      attrs["scaled"] = int64_t{1};
    ASSERT_RUN(grad,
               run(Op::embedding_grad,
                   {f32({batch, seq, dim}, dy), i32({batch, seq}, tokens)},
                   {typeOf(DType::F32, {vocab, dim})}, attrs));
    expectBits(grad.results[0].values<float>(), tableGrad, "embedding_grad");
    ASSERT_RUN(position, run(Op::position_grad, {f32({batch, seq, dim}, dy)},
                             {typeOf(DType::F32, {positions, dim})}));
    expectBits(position.results[0].values<float>(), positionGrad,
               "position_grad");
  }
}

TEST_F(DenseKernelsTest, BadTokenIsRecordedNotRead) {
  const std::vector<int32_t> tokens = {1, 2, 99, 0, -3};
  const std::vector<float> table = randomValues(4 * 2, 17);
  ASSERT_RUN(forward, run(Op::embedding, {i32({5}, tokens), f32({4, 2}, table)},
                          {typeOf(DType::F32, {5, 2})},
                          {{"position", std::string("none")}}));
  EXPECT_EQ(forward.errorCode, 1u);
  EXPECT_EQ(forward.errorIndex, 2u); // the first bad token, like the CPU
  const std::vector<float> out = forward.results[0].values<float>();
  EXPECT_EQ(out[4], 0.0f);
  EXPECT_EQ(out[0], table[2]);
  ASSERT_RUN(grad, run(Op::embedding_grad,
                       {f32({5, 2}, randomValues(10, 18)), i32({5}, tokens)},
                       {typeOf(DType::F32, {4, 2})}));
  EXPECT_EQ(grad.errorCode, 1u);
  EXPECT_EQ(grad.errorIndex, 2u);
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

struct AttentionCase {
  int64_t batch, queryLen, keyLen, modelDim, heads;
  bool causal, keyMask;
};

class AttentionKernelsTest
    : public DenseKernelsTest,
      public ::testing::WithParamInterface<AttentionCase> {};

TEST_P(AttentionKernelsTest, ForwardAndBackwardMatchCpu) {
  const AttentionCase c = GetParam();
  const int64_t qCount = c.batch * c.queryLen * c.modelDim;
  const int64_t kCount = c.batch * c.keyLen * c.modelDim;
  const std::vector<float> q = randomValues(qCount, 19);
  const std::vector<float> k = randomValues(kCount, 20);
  const std::vector<float> v = randomValues(kCount, 21);
  const std::vector<float> dOut = randomValues(qCount, 22);
  std::vector<uint8_t> keyMask(c.batch * c.keyLen, 1);
  if (c.keyMask) {
    // Batch 0: leading padding (under a causal mask its first query rows
    // see nothing: zeros by definition); batch 1: trailing padding.
    for (int64_t j = 0; j < std::min<int64_t>(3, c.keyLen); ++j)
      keyMask[j] = 0;
    if (c.batch > 1)
      for (int64_t j = c.keyLen - 2; j < c.keyLen; ++j)
        keyMask[c.keyLen + j] = 0;
  }
  dense::AttentionShape shape{c.batch,    c.queryLen, c.keyLen,
                              c.modelDim, c.heads,    c.causal};
  const uint8_t *maskData = c.keyMask ? keyMask.data() : nullptr;
  std::vector<float> out(qCount), dq(qCount), dk(kCount), dv(kCount);
  dense::attentionForward(shape, q.data(), k.data(), v.data(), maskData,
                          out.data(), nullptr);
  dense::attentionBackward(shape, dOut.data(), q.data(), k.data(), v.data(),
                           maskData, nullptr, dq.data(), dk.data(), dv.data());

  std::map<std::string, AttrValue> attrs{{"num_heads", c.heads}};
  if (c.causal)
    attrs["causal"] = int64_t{1};
  std::vector<HostTensor> forwardOperands = {
      f32({c.batch, c.queryLen, c.modelDim}, q),
      f32({c.batch, c.keyLen, c.modelDim}, k),
      f32({c.batch, c.keyLen, c.modelDim}, v)};
  if (c.keyMask)
    forwardOperands.push_back(mask({c.batch, c.keyLen}, keyMask));
  ASSERT_RUN(forward,
             run(Op::attention, forwardOperands,
                 {typeOf(DType::F32, {c.batch, c.queryLen, c.modelDim})},
                 attrs));
  expectNear(forward.results[0].values<float>(), out, 1e-5f, "output");

  std::vector<HostTensor> backwardOperands = {
      f32({c.batch, c.queryLen, c.modelDim}, dOut)};
  backwardOperands.insert(backwardOperands.end(), forwardOperands.begin(),
                          forwardOperands.end());
  ASSERT_RUN(backward,
             run(Op::attention_grad, backwardOperands,
                 {typeOf(DType::F32, {c.batch, c.queryLen, c.modelDim}),
                  typeOf(DType::F32, {c.batch, c.keyLen, c.modelDim}),
                  typeOf(DType::F32, {c.batch, c.keyLen, c.modelDim})},
                 attrs));
  expectNear(backward.results[0].values<float>(), dq, 2e-5f, "dQ");
  expectNear(backward.results[1].values<float>(), dk, 2e-5f, "dK");
  expectNear(backward.results[2].values<float>(), dv, 2e-5f, "dV");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionKernelsTest,
    ::testing::Values(
        AttentionCase{2, 37, 37, 16, 2, true, true},    // dh 8, causal+pad
        AttentionCase{2, 70, 45, 96, 2, false, true},   // dh 48, Sq != Sk
        AttentionCase{1, 33, 33, 128, 1, true, false},  // dh 128
        AttentionCase{2, 9, 65, 200, 1, false, false},  // dh 200 (<= 256)
        AttentionCase{3, 64, 64, 60, 3, true, false},   // two full tiles
        AttentionCase{2, 20, 20, 600, 2, true, true},   // dh 300: unfused
        AttentionCase{1, 6, 11, 520, 1, false, true})); // dh 520: unfused

//===----------------------------------------------------------------------===//
// Cross-entropy
//===----------------------------------------------------------------------===//

TEST_F(DenseKernelsTest, CrossEntropyAndGradientMatchCpu) {
  const int64_t tokens = 13, vocab = 1500;
  const std::vector<float> logits = randomValues(tokens * vocab, 23, 2.0f);
  std::vector<int32_t> labels(tokens);
  for (int64_t t = 0; t < tokens; ++t)
    labels[t] = static_cast<int32_t>((t * 337) % vocab);
  labels[3] = -100;
  labels[8] = -100;
  for (double smoothing : {0.0, 0.1}) {
    dense::CrossEntropyOptions options;
    options.labelSmoothing = smoothing;
    options.ignoreIndex = -100;
    float loss = 0.0f;
    ASSERT_EQ(dense::crossEntropyForward(tokens, vocab, logits.data(),
                                         labels.data(), options, &loss, nullptr,
                                         nullptr),
              dense::kAllLabelsValid);
    std::vector<float> grad(tokens * vocab);
    const float lossGrad = 0.75f;
    ASSERT_EQ(dense::crossEntropyBackward(tokens, vocab, lossGrad,
                                          logits.data(), labels.data(), options,
                                          nullptr, grad.data()),
              dense::kAllLabelsValid);
    std::map<std::string, AttrValue> attrs{{"label_smoothing", smoothing},
                                           {"ignore_index", int64_t{-100}}};
    ASSERT_RUN(forward,
               run(Op::cross_entropy,
                   {f32({tokens, vocab}, logits), i32({tokens}, labels)},
                   {typeOf(DType::F32, {})}, attrs));
    EXPECT_NEAR(forward.results[0].values<float>()[0], loss, 1e-5f * loss);
    EXPECT_EQ(forward.errorCode, 0u);
    ASSERT_RUN(backward, run(Op::cross_entropy_grad,
                             {f32({}, {lossGrad}), f32({tokens, vocab}, logits),
                              i32({tokens}, labels)},
                             {typeOf(DType::F32, {tokens, vocab})}, attrs));
    expectNear(backward.results[0].values<float>(), grad, 1e-5f, "dlogits");
  }
  // Every label ignored: loss 0 and a zero gradient, as on the CPU.
  const std::vector<int32_t> ignored(tokens, -100);
  std::map<std::string, AttrValue> attrs{{"label_smoothing", 0.0},
                                         {"ignore_index", int64_t{-100}}};
  ASSERT_RUN(empty, run(Op::cross_entropy,
                        {f32({tokens, vocab}, logits), i32({tokens}, ignored)},
                        {typeOf(DType::F32, {})}, attrs));
  EXPECT_EQ(empty.results[0].values<float>()[0], 0.0f);
  // A bad label is recorded.
  std::vector<int32_t> bad = labels;
  bad[5] = static_cast<int32_t>(vocab);
  ASSERT_RUN(badRun, run(Op::cross_entropy,
                         {f32({tokens, vocab}, logits), i32({tokens}, bad)},
                         {typeOf(DType::F32, {})}, attrs));
  EXPECT_EQ(badRun.errorCode, 2u);
  EXPECT_EQ(badRun.errorIndex, 5u);
}

//===----------------------------------------------------------------------===//
// Partition kernels
//===----------------------------------------------------------------------===//

TEST_F(DenseKernelsTest, PartitionKernelsMatchCpu) {
  const std::vector<int32_t> labels = {3, -100, 4, 4, -100, 0, 9};
  ASSERT_RUN(counted,
             run(Op::token_count, {i32({7}, labels)}, {typeOf(DType::F32, {})},
                 {{"ignore_index", int64_t{-100}}}));
  EXPECT_EQ(counted.results[0].values<float>()[0], 5.0f);

  const std::vector<float> x = randomValues(4 * 6, 24), b = randomValues(6, 25);
  ASSERT_RUN(biased, run(Op::bias_add, {f32({4, 6}, x), f32({6}, b)},
                         {typeOf(DType::F32, {4, 6})}));
  std::vector<float> expected(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    expected[i] = x[i] + b[i % 6];
  expectBits(biased.results[0].values<float>(), expected, "bias_add");

  const std::vector<float> y = randomValues(24, 26);
  ASSERT_RUN(product, run(Op::mul, {f32({4, 6}, x), f32({4, 6}, y)},
                          {typeOf(DType::F32, {4, 6})}));
  ASSERT_RUN(quotient, run(Op::div, {f32({4, 6}, x), f32({4, 6}, y)},
                           {typeOf(DType::F32, {4, 6})}));
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(bitsOf(product.results[0].values<float>()[i]),
              bitsOf(x[i] * y[i]));
    EXPECT_EQ(bitsOf(quotient.results[0].values<float>()[i]),
              bitsOf(x[i] / y[i]));
  }
  Expected<CudaRun> mismatch = run(Op::mul, {f32({4, 6}, x), f32({24}, y)},
                                   {typeOf(DType::F32, {4, 6})});
  EXPECT_FALSE(mismatch.ok());

  ASSERT_RUN(filled,
             run(Op::fill, {}, {typeOf(DType::F32, {5})}, {{"value", 2.5}}));
  EXPECT_EQ(filled.results[0].values<float>(), std::vector<float>(5, 2.5f));
  ASSERT_RUN(filledInt,
             run(Op::fill, {}, {typeOf(DType::I64, {3})}, {{"value", -7.0}}));
  EXPECT_EQ(filledInt.results[0].values<int64_t>(),
            std::vector<int64_t>(3, -7));
}

} // namespace
} // namespace cuda
} // namespace moert
