//===- DenseAttentionEmulationTest.cpp - Fused attention kernels on the CPU
//===//
//
// Runs the CUDA fused attention kernels (DenseAttention.cuh), unchanged, on
// the host through DenseCudaEmulation.h, launched the way DenseKernels.cu
// launches them, and compares forward output and the three gradients with
// dense::attentionForward/Backward: tiles, masks, fully masked rows, every
// head-dimension instantiation. No GPU needed.
//
//===----------------------------------------------------------------------===//
#include "DenseCudaEmulation.h"

#include "moert/backends/cuda/DenseAttention.cuh"

#include "moert/dense/Attention.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace moert {
namespace cuda {
namespace {

using namespace dense_attention;

std::vector<float> randomValues(size_t count, uint32_t seed) {
  std::mt19937 engine(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(count);
  for (float &v : values)
    v = normal(engine);
  return values;
}

/// The launches of DenseKernels.cu's LaunchForward / LaunchBackward.
template <int HeadDimMax> struct Emulated {
  static void forward(const AttentionParams &p) {
    const int64_t tiles = (p.queryLen + kAttnTile - 1) / kAttnTile;
    emulation::launch(static_cast<unsigned>(p.batch * p.heads * tiles),
                      kAttnThreads, forwardSharedBytes(p.headDim),
                      attentionForwardKernel<HeadDimMax>, p);
  }
  static void backward(const AttentionParams &p) {
    const int64_t queryTiles = (p.queryLen + kAttnTile - 1) / kAttnTile;
    const int64_t keyTiles = (p.keyLen + kAttnTile - 1) / kAttnTile;
    const int64_t pairs = p.batch * p.heads;
    forward(p); // row statistics
    emulation::launch(static_cast<unsigned>(pairs * keyTiles), kAttnThreads,
                      keyValueGradSharedBytes(p.headDim),
                      attentionKeyValueGradKernel<HeadDimMax>, p);
    emulation::launch(static_cast<unsigned>(pairs * queryTiles), kAttnThreads,
                      queryGradSharedBytes(p.headDim),
                      attentionQueryGradKernel<HeadDimMax>, p);
  }
};

struct EmulationCase {
  int64_t batch, queryLen, keyLen, modelDim, heads;
  bool causal, keyMask;
  int headDimMax; // the instantiation DenseKernels.cu picks
};

class AttentionEmulationTest : public ::testing::TestWithParam<EmulationCase> {
};

TEST_P(AttentionEmulationTest, KernelsMatchCpuAttention) {
  const EmulationCase c = GetParam();
  const int64_t qCount = c.batch * c.queryLen * c.modelDim;
  const int64_t kCount = c.batch * c.keyLen * c.modelDim;
  const std::vector<float> q = randomValues(qCount, 1);
  const std::vector<float> k = randomValues(kCount, 2);
  const std::vector<float> v = randomValues(kCount, 3);
  const std::vector<float> dOut = randomValues(qCount, 4);
  std::vector<uint8_t> mask(c.batch * c.keyLen, 1);
  if (c.keyMask) {
    // Batch 0: leading padding (with a causal mask its first rows see
    // nothing); the last batch: trailing padding.
    for (int64_t j = 0; j < 3; ++j)
      mask[j] = 0;
    for (int64_t j = c.keyLen - 2; j < c.keyLen; ++j)
      mask[(c.batch - 1) * c.keyLen + j] = 0;
  }
  const uint8_t *maskData = c.keyMask ? mask.data() : nullptr;
  dense::AttentionShape shape{c.batch,    c.queryLen, c.keyLen,
                              c.modelDim, c.heads,    c.causal};
  std::vector<float> out(qCount), dq(qCount), dk(kCount), dv(kCount);
  dense::attentionForward(shape, q.data(), k.data(), v.data(), maskData,
                          out.data(), nullptr);
  dense::attentionBackward(shape, dOut.data(), q.data(), k.data(), v.data(),
                           maskData, nullptr, dq.data(), dk.data(), dv.data());

  const int64_t rows = c.batch * c.heads * c.queryLen;
  std::vector<float> out2(qCount, -1.0f), dq2(qCount, -1.0f),
      dk2(kCount, -1.0f), dv2(kCount, -1.0f), lse(rows), delta(rows);
  AttentionParams p{};
  p.query = q.data();
  p.key = k.data();
  p.value = v.data();
  p.keyMask = maskData;
  p.batch = c.batch;
  p.queryLen = c.queryLen;
  p.keyLen = c.keyLen;
  p.modelDim = c.modelDim;
  p.heads = c.heads;
  p.headDim = c.modelDim / c.heads;
  p.scale = 1.0f / std::sqrt(static_cast<float>(p.headDim));
  p.causal = c.causal;

  AttentionParams forward = p;
  forward.output = out2.data();
  AttentionParams backward = p;
  backward.outputGrad = dOut.data();
  backward.lse = lse.data();
  backward.delta = delta.data();
  backward.queryGrad = dq2.data();
  backward.keyGrad = dk2.data();
  backward.valueGrad = dv2.data();
  switch (c.headDimMax) {
  case 32:
    Emulated<32>::forward(forward);
    Emulated<32>::backward(backward);
    break;
  case 64:
    Emulated<64>::forward(forward);
    Emulated<64>::backward(backward);
    break;
  case 128:
    Emulated<128>::forward(forward);
    Emulated<128>::backward(backward);
    break;
  default:
    Emulated<256>::forward(forward);
    Emulated<256>::backward(backward);
    break;
  }
  for (int64_t i = 0; i < qCount; ++i) {
    ASSERT_NEAR(out2[i], out[i], 1e-5f) << "output " << i;
    ASSERT_NEAR(dq2[i], dq[i], 2e-5f) << "dQ " << i;
  }
  for (int64_t i = 0; i < kCount; ++i) {
    ASSERT_NEAR(dk2[i], dk[i], 2e-5f) << "dK " << i;
    ASSERT_NEAR(dv2[i], dv[i], 2e-5f) << "dV " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionEmulationTest,
    ::testing::Values(EmulationCase{2, 37, 37, 16, 2, true, true, 32}, // dh 8
                      EmulationCase{2, 40, 33, 96, 2, false, true,
                                    64}, // dh 48, Sq != Sk
                      EmulationCase{1, 33, 33, 128, 1, true, false, 128},
                      EmulationCase{1, 9, 40, 200, 1, false, true, 256}));

} // namespace
} // namespace cuda
} // namespace moert
