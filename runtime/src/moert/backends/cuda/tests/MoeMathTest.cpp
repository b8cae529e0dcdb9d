//===- MoeMathTest.cpp - CPU tests of the CUDA MoE/optimizer kernels' code -===//
//
// The per-element code of the CUDA MoE and optimizer kernels (MoeMath.h)
// and the expert FFN's GEMM mapping (ExpertGemm.h) are plain C++ as well;
// these tests run them on the CPU the way the GPU threads do, against the
// CPU kernels (moert/kernels/DispatchCombine.h, moert/train/Optimizer.h,
// moert/train/ExpertFfn.h). Where the CUDA kernels promise the CPU's bits,
// the tests compare bits.
//
//===----------------------------------------------------------------------===//
#include "moert/backends/cuda/ChunkCopies.h"
#include "moert/backends/cuda/ExpertGemm.h"
#include "moert/backends/cuda/NcclCommunicator.h"
#include "moert/backends/cuda/MoeMath.h"

#include "moert/dense/Activation.h"
#include "moert/exec/TensorBlocks.h"
#include "moert/kernels/DispatchCombine.h"
#include "moert/train/ExpertFfn.h"
#include "moert/train/Optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace moert {
namespace cuda {
namespace {

namespace mm = moe_math;

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

void expectSameBits(const std::vector<float> &expected,
                    const std::vector<float> &actual, const char *what) {
  ASSERT_EQ(expected.size(), actual.size()) << what;
  for (size_t i = 0; i < expected.size(); ++i)
    ASSERT_EQ(bitsOf(expected[i]), bitsOf(actual[i]))
        << what << " element " << i << ": " << expected[i] << " vs "
        << actual[i];
}

//===----------------------------------------------------------------------===//
// Routing
//===----------------------------------------------------------------------===//

struct Routing {
  int64_t tokens, topK, experts, capacity, model;
  std::vector<int32_t> expertIds, slots;
};

/// Random top-k routing with distinct experts per token, slots handed out
/// in token order until the capacity is full (later ones dropped: -1).
Routing randomRouting(int64_t tokens, int64_t topK, int64_t experts,
                      int64_t capacity, int64_t model, uint32_t seed) {
  Routing r{tokens, topK, experts, capacity, model, {}, {}};
  std::mt19937 engine(seed);
  std::vector<int32_t> used(static_cast<size_t>(experts), 0);
  for (int64_t s = 0; s < tokens; ++s) {
    std::vector<int32_t> order(static_cast<size_t>(experts));
    for (int32_t e = 0; e < experts; ++e)
      order[e] = e;
    std::shuffle(order.begin(), order.end(), engine);
    for (int64_t j = 0; j < topK; ++j) {
      const int32_t e = order[j];
      r.expertIds.push_back(e);
      r.slots.push_back(used[e] < capacity ? used[e]++ : -1);
    }
  }
  return r;
}

mm::RoutingView viewOf(const Routing &r) {
  mm::RoutingView v;
  v.experts = r.expertIds.data();
  v.slots = r.slots.data();
  v.topK = r.topK;
  v.numExperts = r.experts;
  v.capacity = r.capacity;
  v.modelDim = r.model;
  return v;
}

DispatchShape shapeOf(const Routing &r) {
  DispatchShape shape;
  shape.numTokens = r.tokens;
  shape.modelDim = r.model;
  shape.numExperts = r.experts;
  shape.topK = r.topK;
  shape.capacity = r.capacity;
  return shape;
}

TEST(MoeMathTest, RoutingEntryErrors) {
  using namespace exec;
  EXPECT_EQ(mm::routingEntryError(0, 0, 4, 8), kNoDeviceError);
  EXPECT_EQ(mm::routingEntryError(3, 7, 4, 8), kNoDeviceError);
  // A dropped choice is valid whatever its expert.
  EXPECT_EQ(mm::routingEntryError(99, -1, 4, 8), kNoDeviceError);
  EXPECT_FALSE(mm::routingEntryUsable(99, -1, 4, 8));
  EXPECT_EQ(mm::routingEntryError(4, 0, 4, 8), kExpertOutOfRange);
  EXPECT_EQ(mm::routingEntryError(-1, 0, 4, 8), kExpertOutOfRange);
  EXPECT_EQ(mm::routingEntryError(1, 8, 4, 8), kSlotOutOfRange);
  EXPECT_EQ(mm::routingEntryError(1, -2, 4, 8), kSlotOutOfRange);
  EXPECT_FALSE(mm::routingEntryUsable(1, 8, 4, 8));
  EXPECT_TRUE(mm::routingEntryUsable(1, 7, 4, 8));
}

class RoutingTest : public ::testing::TestWithParam<int64_t> {};

// Combine and the dispatch gradient, element by element as the GPU threads
// compute them: the CPU kernels' bits, with tokens dropped.
TEST_P(RoutingTest, CombineAndDispatchGradGiveTheCpuBits) {
  const int64_t topK = GetParam();
  const Routing r = randomRouting(/*tokens=*/37, topK, /*experts=*/5,
                                  /*capacity=*/6, /*model=*/13, 7 + topK);
  ASSERT_NE(std::count(r.slots.begin(), r.slots.end(), -1), 0)
      << "the case must drop tokens";
  const DispatchShape shape = shapeOf(r);
  const std::vector<float> buffer =
      randomValues(static_cast<size_t>(r.experts * r.capacity * r.model), 1);
  const std::vector<float> weights =
      randomValues(static_cast<size_t>(r.tokens * topK), 2);
  std::vector<float> expected(static_cast<size_t>(r.tokens * r.model));
  ASSERT_TRUE(combineTokens(shape, {r.expertIds.data(), r.slots.data()},
                            weights.data(), buffer.data(), expected.data())
                  .ok());
  const mm::RoutingView v = viewOf(r);
  std::vector<float> actual(expected.size());
  for (int64_t s = 0; s < r.tokens; ++s)
    for (int64_t m = 0; m < r.model; ++m)
      actual[s * r.model + m] =
          mm::combineElement(v, weights.data(), buffer.data(), s, m);
  expectSameBits(expected, actual, "combine");

  ASSERT_TRUE(dispatchTokensBackward(shape,
                                     {r.expertIds.data(), r.slots.data()},
                                     buffer.data(), expected.data())
                  .ok());
  for (int64_t s = 0; s < r.tokens; ++s)
    for (int64_t m = 0; m < r.model; ++m)
      actual[s * r.model + m] = mm::dispatchGradElement(v, buffer.data(), s, m);
  expectSameBits(expected, actual, "dispatch gradient");

  // The buffer rows dispatch writes are the slot offsets the kernels use.
  std::vector<float> x = randomValues(static_cast<size_t>(r.tokens * r.model), 3);
  std::vector<float> dispatched(buffer.size());
  ASSERT_TRUE(dispatchTokens(shape, {r.expertIds.data(), r.slots.data()},
                             x.data(), dispatched.data())
                  .ok());
  for (int64_t i = 0; i < r.tokens * topK; ++i) {
    if (r.slots[i] < 0)
      continue;
    const int64_t row =
        mm::slotRowOffset(r.expertIds[i], r.slots[i], r.capacity, r.model);
    for (int64_t m = 0; m < r.model; ++m)
      ASSERT_EQ(dispatched[row + m], x[(i / topK) * r.model + m]);
  }
}

INSTANTIATE_TEST_SUITE_P(TopK, RoutingTest, ::testing::Values(1, 2, 3));

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

/// sum_squares the way the GPU computes it: one group of 16 lanes per block
/// of 16384 values, the tree, the blocks in order.
float sumSquaresLikeTheGpu(const std::vector<float> &values) {
  const int64_t count = static_cast<int64_t>(values.size());
  double total = 0.0;
  for (int64_t begin = 0; begin < count; begin += mm::kSumSquaresBlock) {
    const int64_t size = std::min(mm::kSumSquaresBlock, count - begin);
    double lanes[mm::kSumSquaresLanes];
    for (int lane = 0; lane < mm::kSumSquaresLanes; ++lane)
      lanes[lane] = mm::sumSquaresLane(values.data() + begin, size, lane);
    total += mm::sumSquaresTree(lanes);
  }
  return static_cast<float>(total);
}

TEST(MoeMathTest, SumSquaresGivesTheCpuBits) {
  for (int64_t count : {int64_t{0}, int64_t{1}, int64_t{17}, int64_t{16384},
                        int64_t{16385}, int64_t{100003}}) {
    const std::vector<float> values =
        randomValues(static_cast<size_t>(count), 11 + count, 3.0f);
    const float expected =
        static_cast<float>(train::sumSquares(count, values.data()));
    EXPECT_EQ(bitsOf(expected), bitsOf(sumSquaresLikeTheGpu(values)))
        << count << " values";
  }
}

TEST(MoeMathTest, ClipAndScheduleGiveTheCpuValues) {
  for (double sum : {0.0, 0.25, 3.0, 1e6, std::numeric_limits<double>::infinity(),
                     std::numeric_limits<double>::quiet_NaN()}) {
    const train::ClipResult expected = train::clipByGlobalNorm(sum, 1.0);
    const mm::ClipFactor actual = mm::clipFactor(sum, 1.0);
    EXPECT_EQ(bitsOf(expected.scale), bitsOf(actual.scale)) << sum;
    if (!std::isnan(sum))
      EXPECT_EQ(bitsOf(expected.norm), bitsOf(actual.norm)) << sum;
  }
  for (int64_t step : {0, 1, 5, 20, 21, 4000})
    for (int64_t warmup : {0, 20})
      EXPECT_EQ(bitsOf(train::inverseSqrtLr(step, 3e-3, warmup)),
                bitsOf(mm::inverseSqrtLr(step, 3e-3, warmup)))
          << "step " << step << " warmup " << warmup;
}

TEST(MoeMathTest, AdamWGivesTheCpuBits) {
  const size_t count = 1000;
  train::AdamWConfig config;
  config.beta1 = 0.9;
  config.beta2 = 0.98;
  config.epsilon = 1e-8;
  config.weightDecay = 0.01;
  for (int64_t step : {1, 2, 37, 5000})
    for (float gradScale : {1.0f, 0.37f}) {
      std::vector<float> param = randomValues(count, 21);
      std::vector<float> grad = randomValues(count, 22, 0.1f);
      std::vector<float> m = randomValues(count, 23, 0.01f);
      std::vector<float> v = randomValues(count, 24, 0.001f);
      for (float &x : v)
        x = x * x;
      std::vector<float> p2 = param, m2 = m, v2 = v;
      train::adamwUpdate(config, static_cast<int64_t>(count), param.data(),
                         grad.data(), m.data(), v.data(), 3e-4f, gradScale,
                         step);
      const mm::AdamWStep s =
          mm::adamwStep(config.beta1, config.beta2, config.epsilon,
                        config.weightDecay, 3e-4f, gradScale, step);
      for (size_t i = 0; i < count; ++i)
        mm::adamwElement(s, p2[i], grad[i], m2[i], v2[i]);
      expectSameBits(param, p2, "parameter");
      expectSameBits(m, m2, "first moment");
      expectSameBits(v, v2, "second moment");
    }
  // A clipping factor of 0 marks a skipped step (the kernel returns early).
  EXPECT_EQ(mm::adamwStep(0.9, 0.98, 1e-8, 0.0, 1e-3f, 0.0f, 3).gradScale,
            0.0f);
}

//===----------------------------------------------------------------------===//
// Expert FFN GEMM mapping
//===----------------------------------------------------------------------===//

/// A plain column-major batched GEMM: C_b = op(A_b) op(B_b).
void columnMajorBatchedGemm(const ExpertBatchedGemm &g, const float *a,
                            const float *b, float *c) {
  for (int64_t batch = 0; batch < g.batch; ++batch) {
    const float *A = a + batch * g.strideA;
    const float *B = b + batch * g.strideB;
    float *C = c + batch * g.strideC;
    for (int64_t j = 0; j < g.n; ++j)
      for (int64_t i = 0; i < g.m; ++i) {
        double sum = 0.0;
        for (int64_t p = 0; p < g.k; ++p) {
          const float av = g.transA ? A[p + i * g.lda] : A[i + p * g.lda];
          const float bv = g.transB ? B[j + p * g.ldb] : B[p + j * g.ldb];
          sum += static_cast<double>(av) * bv;
        }
        C[i + j * g.ldc] = static_cast<float>(sum);
      }
  }
}

struct ExpertCase {
  ExpertDims d;
  std::vector<float> input, w1, b1, w2, b2, dy;
};

ExpertCase expertCase() {
  ExpertCase c;
  c.d.experts = 3;
  c.d.capacity = 5;
  c.d.model = 7;
  c.d.hidden = 11;
  const int64_t E = c.d.experts, C = c.d.capacity, M = c.d.model,
                H = c.d.hidden;
  c.input = randomValues(static_cast<size_t>(E * C * M), 31);
  c.w1 = randomValues(static_cast<size_t>(E * M * H), 32, 0.3f);
  c.b1 = randomValues(static_cast<size_t>(E * H), 33, 0.1f);
  c.w2 = randomValues(static_cast<size_t>(E * H * M), 34, 0.3f);
  c.b2 = randomValues(static_cast<size_t>(E * M), 35, 0.1f);
  c.dy = randomValues(static_cast<size_t>(E * C * M), 36);
  return c;
}

void expectNear(const std::vector<float> &expected,
                const std::vector<float> &actual, const char *what) {
  ASSERT_EQ(expected.size(), actual.size()) << what;
  for (size_t i = 0; i < expected.size(); ++i)
    ASSERT_NEAR(expected[i], actual[i], 1e-4 * (1.0 + std::fabs(expected[i])))
        << what << " element " << i;
}

// The six GEMM descriptors, run as cuBLAS would run them, with the bias,
// activation and column-sum steps of MoeKernels.cu, give the CPU expert
// FFN's forward and backward results.
TEST(MoeMathTest, ExpertGemmMappingMatchesTheCpuExpertFfn) {
  const ExpertCase c = expertCase();
  const ExpertDims &d = c.d;
  const int64_t E = d.experts, C = d.capacity, M = d.model, H = d.hidden;
  train::ExpertFfnShape shape;
  shape.numExperts = E;
  shape.capacity = C;
  shape.modelDim = M;
  shape.hiddenDim = H;
  shape.activation = dense::ActivationKind::Gelu;

  // Forward.
  std::vector<float> z(static_cast<size_t>(E * C * H)), hd(z.size()),
      out(static_cast<size_t>(E * C * M));
  const ExpertBatchedGemm hiddenGemm = expertHiddenGemm(d);
  ASSERT_EQ(hiddenGemm.a, ExpertOperand::W1);
  ASSERT_EQ(hiddenGemm.b, ExpertOperand::Input);
  columnMajorBatchedGemm(hiddenGemm, c.w1.data(), c.input.data(), z.data());
  for (int64_t i = 0; i < E * C * H; ++i) {
    z[i] += c.b1[(i / (C * H)) * H + i % H];
    hd[i] = dense_math::activationValue<dense_math::kGelu>(z[i]);
  }
  const ExpertBatchedGemm outputGemm = expertOutputGemm(d);
  ASSERT_EQ(outputGemm.a, ExpertOperand::W2);
  ASSERT_EQ(outputGemm.b, ExpertOperand::Hidden);
  columnMajorBatchedGemm(outputGemm, c.w2.data(), hd.data(), out.data());
  for (int64_t i = 0; i < E * C * M; ++i)
    out[i] += c.b2[(i / (C * M)) * M + i % M];
  std::vector<float> expected(out.size());
  train::expertFfnForward(shape, c.input.data(), c.w1.data(), c.b1.data(),
                          c.w2.data(), c.b2.data(), expected.data());
  expectNear(expected, out, "output");

  // Backward.
  std::vector<float> dX(c.input.size()), dW1(c.w1.size()), db1(c.b1.size()),
      dW2(c.w2.size()), db2(c.b2.size());
  train::expertFfnBackward(shape, c.dy.data(), c.input.data(), c.w1.data(),
                           c.b1.data(), c.w2.data(), dX.data(), dW1.data(),
                           db1.data(), dW2.data(), db2.data());
  std::vector<float> gW2(dW2.size()), gb2(db2.size(), 0.0f), dh(z.size()),
      gW1(dW1.size()), gb1(db1.size(), 0.0f), gX(dX.size());
  const ExpertBatchedGemm w2Grad = expertW2GradGemm(d);
  ASSERT_EQ(w2Grad.a, ExpertOperand::OutputGrad);
  ASSERT_EQ(w2Grad.b, ExpertOperand::Hidden);
  columnMajorBatchedGemm(w2Grad, c.dy.data(), hd.data(), gW2.data());
  for (int64_t e = 0; e < E; ++e)
    for (int64_t r = 0; r < C; ++r)
      for (int64_t m = 0; m < M; ++m)
        gb2[e * M + m] += c.dy[(e * C + r) * M + m];
  const ExpertBatchedGemm hiddenGrad = expertHiddenGradGemm(d);
  ASSERT_EQ(hiddenGrad.a, ExpertOperand::W2);
  ASSERT_EQ(hiddenGrad.b, ExpertOperand::OutputGrad);
  columnMajorBatchedGemm(hiddenGrad, c.w2.data(), c.dy.data(), dh.data());
  for (int64_t i = 0; i < E * C * H; ++i)
    dh[i] *= dense_math::activationDerivative<dense_math::kGelu>(z[i]);
  const ExpertBatchedGemm w1Grad = expertW1GradGemm(d);
  ASSERT_EQ(w1Grad.a, ExpertOperand::HiddenGrad);
  ASSERT_EQ(w1Grad.b, ExpertOperand::Input);
  columnMajorBatchedGemm(w1Grad, dh.data(), c.input.data(), gW1.data());
  for (int64_t e = 0; e < E; ++e)
    for (int64_t r = 0; r < C; ++r)
      for (int64_t h = 0; h < H; ++h)
        gb1[e * H + h] += dh[(e * C + r) * H + h];
  const ExpertBatchedGemm inputGrad = expertInputGradGemm(d);
  ASSERT_EQ(inputGrad.a, ExpertOperand::W1);
  ASSERT_EQ(inputGrad.b, ExpertOperand::HiddenGrad);
  columnMajorBatchedGemm(inputGrad, c.w1.data(), dh.data(), gX.data());
  expectNear(dW2, gW2, "dW2");
  expectNear(db2, gb2, "db2");
  expectNear(dW1, gW1, "dW1");
  expectNear(db1, gb1, "db1");
  expectNear(dX, gX, "dX");
}

//===----------------------------------------------------------------------===//
// Collectives on device memory: chunk copies and NCCL group splits
//===----------------------------------------------------------------------===//

void replay(const std::vector<Copy2D> &copies, const uint8_t *src,
            uint8_t *dst) {
  for (const Copy2D &c : copies)
    for (int64_t r = 0; r < c.height; ++r)
      std::memcpy(dst + c.dstOffset + r * c.dstPitch,
                  src + c.srcOffset + r * c.srcPitch,
                  static_cast<size_t>(c.width));
}

// The 2-D copies the CUDA collectives issue give packChunks' and
// unpackChunks' bytes, for every split dimension.
TEST(ChunkCopiesTest, PackAndUnpackLikeTheHostHelpers) {
  const std::vector<int64_t> shape = {4, 6, 4, 2};
  const int64_t elementSize = 4, parts = 2;
  const int64_t bytes = 4 * 6 * 4 * 2 * elementSize;
  std::vector<uint8_t> tensor(static_cast<size_t>(bytes));
  for (size_t i = 0; i < tensor.size(); ++i)
    tensor[i] = static_cast<uint8_t>(i * 7 + 3);
  for (int dim = 0; dim < 4; ++dim) {
    SCOPED_TRACE("dim " + std::to_string(dim));
    std::vector<uint8_t> expected(tensor.size()), actual(tensor.size(), 0);
    exec::packChunks(tensor.data(), shape, elementSize, dim, parts,
                     expected.data());
    replay(packCopies(shape, elementSize, dim, parts), tensor.data(),
           actual.data());
    EXPECT_EQ(expected, actual);
    std::vector<int64_t> chunkShape = shape;
    chunkShape[dim] /= parts;
    std::vector<uint8_t> unpacked(tensor.size()), replayed(tensor.size(), 0);
    exec::unpackChunks(expected.data(), chunkShape, elementSize, dim, parts,
                       unpacked.data());
    replay(unpackCopies(chunkShape, elementSize, dim, parts), expected.data(),
           replayed.data());
    EXPECT_EQ(unpacked, replayed);
    EXPECT_EQ(unpacked, tensor); // the round trip
  }
}

// The NCCL split forms exactly the grid's groups: ranks share a color iff
// their coordinates agree outside the group's axes.
TEST(NcclGroupSplitTest, ColorsAreTheGridGroups) {
  const std::vector<int64_t> shape = {2, 3, 2};
  auto coordsOf = [&](int rank) {
    std::vector<int64_t> coords(shape.size());
    for (int axis = static_cast<int>(shape.size()) - 1; axis >= 0; --axis) {
      coords[axis] = rank % shape[axis];
      rank /= static_cast<int>(shape[axis]);
    }
    return coords;
  };
  const std::vector<std::vector<int>> axisSets = {
      {}, {0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}, {0, 1, 2}};
  for (const std::vector<int> &axes : axisSets)
    for (int a = 0; a < 12; ++a)
      for (int b = 0; b < 12; ++b) {
        const std::vector<int64_t> ca = coordsOf(a), cb = coordsOf(b);
        bool sameGroup = true;
        for (int axis = 0; axis < 3; ++axis)
          if (std::find(axes.begin(), axes.end(), axis) == axes.end())
            sameGroup &= ca[axis] == cb[axis];
        const GroupSplit sa = groupSplit(shape, ca, axes, a);
        const GroupSplit sb = groupSplit(shape, cb, axes, b);
        EXPECT_EQ(sa.color == sb.color, sameGroup)
            << "ranks " << a << ", " << b << " over " << axes.size()
            << " axes";
        EXPECT_EQ(sa.key, a);
      }
}

} // namespace
} // namespace cuda
} // namespace moert
