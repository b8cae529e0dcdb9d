//===- DenseAttention.cuh - Fused multi-head attention kernels --*- CUDA
//-*-===//
//
// The fused attention kernels of moe.attention and moe.attention_grad
// (DenseKernels.cu launches them), in a header of their own so that the CPU
// test tests/DenseAttentionEmulationTest.cpp can run this very code on the
// host, one OS thread per CUDA thread (tests/DenseCudaEmulation.h).
//
// Tiles of 32 query rows x 32 keys, 256 threads (8 warps). Score tiles put
// one key per lane: a warp owns 4 query rows and reduces a row's max and
// sum with shuffles. Output-like tiles put head-dimension columns on the
// lanes (lane + 32 k, k < HeadDimMax / 32). Q, K, V and dO tiles sit in
// shared memory with a row stride of dh + 1 floats, so the strided reads
// of the score loops hit 32 different banks.
//
// Forward: online softmax over the key tiles (FlashAttention); the [Sq, Sk]
// scores never reach global memory. Backward: the forward kernel again for
// the row statistics (log-sum-exp, rowsum(dO * O)), then one kernel over key
// tiles (dK, dV) and one over query tiles (dQ): every gradient element is
// summed by one thread in a fixed order, with no atomics.
//
// Semantics (dense/Attention.h): scale 1 / sqrt(dh); `causal` hides key
// j > query i; a key mask byte of 0 hides key j; a fully masked row has
// zero output and zero gradients.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_DENSEATTENTION_CUH
#define MOERT_BACKENDS_CUDA_DENSEATTENTION_CUH

#include "moert/backends/cuda/DenseWarp.cuh"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#ifndef MOERT_DENSE_DYNAMIC_SHARED
/// The block's dynamic shared memory as `float name[]`.
#define MOERT_DENSE_DYNAMIC_SHARED(name) extern __shared__ float name[]
#endif

namespace moert {
namespace cuda {
namespace dense_attention {

using dense_device::warpMax;
using dense_device::warpSum;

constexpr int kAttnTile = 32;
constexpr int kAttnThreads = 256;
constexpr int kAttnRowsPerWarp = kAttnTile / (kAttnThreads / 32); // 4
constexpr int kAttnMaxHeadDim = 256;

struct AttentionParams {
  const float *query, *key, *value;
  const uint8_t *keyMask; // [B, Sk] or null
  const float *outputGrad;
  float *output; // forward output, or null
  float *lse;    // [B, H, Sq] log-sum-exp of the scaled scores, or null
  float *delta;  // [B, H, Sq] rowsum(dO * O), or null (needs outputGrad)
  float *queryGrad, *keyGrad, *valueGrad;
  int64_t batch, queryLen, keyLen, modelDim, heads, headDim;
  float scale;
  bool causal;
};

__device__ inline bool keyVisible(const AttentionParams &p, int64_t b,
                                  int64_t i, int64_t j) {
  if (j >= p.keyLen || i >= p.queryLen)
    return false;
  if (p.causal && j > i)
    return false;
  return !p.keyMask || p.keyMask[b * p.keyLen + j] != 0;
}

/// Copies rows [row0, row0 + 32) of one head of a [len, D] matrix into a
/// [32, ld] tile (zeros past `len`). Consecutive threads read consecutive
/// columns.
__device__ inline void loadTile(const float *base, int64_t row0, int64_t len,
                                int64_t modelDim, int headDim, int ld,
                                float *tile) {
  for (int idx = threadIdx.x; idx < kAttnTile * headDim; idx += blockDim.x) {
    const int r = idx / headDim, c = idx % headDim;
    const int64_t row = row0 + r;
    tile[r * ld + c] = row < len ? base[row * modelDim + c] : 0.0f;
  }
}

/// Forward over one (batch, head, query tile): online softmax over the key
/// tiles. Writes O (if asked), the row log-sum-exp (if asked) and
/// rowsum(dO * O) (if asked, for the backward pass).
template <int HeadDimMax>
__global__ void __launch_bounds__(kAttnThreads)
    attentionForwardKernel(AttentionParams p) {
  MOERT_DENSE_DYNAMIC_SHARED(shared);
  constexpr int kCols = HeadDimMax / 32;
  const int dh = static_cast<int>(p.headDim), ld = dh + 1;
  float *qTile = shared;                  // [32, ld]
  float *kvTile = qTile + kAttnTile * ld; // [32, ld]: K, then V
  float *pTile = kvTile + kAttnTile * ld; // [32, 33]

  const int64_t tiles = (p.queryLen + kAttnTile - 1) / kAttnTile;
  const int64_t pair = blockIdx.x / tiles;
  const int64_t q0 = (blockIdx.x % tiles) * kAttnTile;
  const int64_t b = pair / p.heads, h = pair % p.heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int rowBase = warp * kAttnRowsPerWarp;
  const int64_t headOffset = h * p.headDim;
  const float *qBase = p.query + b * p.queryLen * p.modelDim + headOffset;
  const float *kBase = p.key + b * p.keyLen * p.modelDim + headOffset;
  const float *vBase = p.value + b * p.keyLen * p.modelDim + headOffset;

  loadTile(qBase, q0, p.queryLen, p.modelDim, dh, ld, qTile);

  float rowMax[kAttnRowsPerWarp], rowSum[kAttnRowsPerWarp];
  float acc[kAttnRowsPerWarp][kCols];
#pragma unroll
  for (int r = 0; r < kAttnRowsPerWarp; ++r) {
    rowMax[r] = -INFINITY;
    rowSum[r] = 0.0f;
#pragma unroll
    for (int k = 0; k < kCols; ++k)
      acc[r][k] = 0.0f;
  }

  const int64_t keyEnd =
      p.causal ? std::min<int64_t>(p.keyLen, q0 + kAttnTile) : p.keyLen;
  for (int64_t k0 = 0; k0 < keyEnd; k0 += kAttnTile) {
    __syncthreads(); // the previous V tile is read
    loadTile(kBase, k0, p.keyLen, p.modelDim, dh, ld, kvTile);
    __syncthreads();
    const int64_t j = k0 + lane;
    float score[kAttnRowsPerWarp] = {};
    for (int c = 0; c < dh; ++c) {
      const float kv = kvTile[lane * ld + c];
#pragma unroll
      for (int r = 0; r < kAttnRowsPerWarp; ++r)
        score[r] += qTile[(rowBase + r) * ld + c] * kv;
    }
#pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r) {
      const int64_t i = q0 + rowBase + r;
      const bool visible = keyVisible(p, b, i, j);
      const float s = visible ? score[r] * p.scale : -INFINITY;
      const float newMax = max(rowMax[r], warpMax(s));
      float probability = 0.0f, correction = 1.0f;
      if (newMax != -INFINITY) {
        probability = visible ? expf(s - newMax) : 0.0f;
        correction = expf(rowMax[r] - newMax); // 0 while nothing was seen
      }
      rowSum[r] = rowSum[r] * correction + warpSum(probability);
      rowMax[r] = newMax;
#pragma unroll
      for (int k = 0; k < kCols; ++k)
        acc[r][k] *= correction;
      pTile[(rowBase + r) * (kAttnTile + 1) + lane] = probability;
    }
    __syncthreads(); // every warp is done with K
    loadTile(vBase, k0, p.keyLen, p.modelDim, dh, ld, kvTile);
    __syncthreads();
    for (int jj = 0; jj < kAttnTile; ++jj) {
      float v[kCols];
#pragma unroll
      for (int k = 0; k < kCols; ++k) {
        const int c = lane + 32 * k;
        v[k] = c < dh ? kvTile[jj * ld + c] : 0.0f;
      }
#pragma unroll
      for (int r = 0; r < kAttnRowsPerWarp; ++r) {
        const float probability = pTile[(rowBase + r) * (kAttnTile + 1) + jj];
#pragma unroll
        for (int k = 0; k < kCols; ++k)
          acc[r][k] += probability * v[k];
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kAttnRowsPerWarp; ++r) {
    const int64_t i = q0 + rowBase + r;
    if (i >= p.queryLen)
      continue;
    // A fully masked row has no distribution: zeros (dense/Attention.h).
    const float inverse = rowSum[r] > 0.0f ? 1.0f / rowSum[r] : 0.0f;
    const int64_t rowOffset = (b * p.queryLen + i) * p.modelDim + headOffset;
    float dot = 0.0f;
#pragma unroll
    for (int k = 0; k < kCols; ++k) {
      const int c = lane + 32 * k;
      if (c >= dh)
        continue;
      const float o = acc[r][k] * inverse;
      if (p.output)
        p.output[rowOffset + c] = o;
      if (p.delta)
        dot += p.outputGrad[rowOffset + c] * o;
    }
    const int64_t statIndex = pair * p.queryLen + i;
    if (p.delta) {
      dot = warpSum(dot);
      if (lane == 0)
        p.delta[statIndex] = dot;
    }
    if (p.lse && lane == 0)
      p.lse[statIndex] =
          rowSum[r] > 0.0f ? rowMax[r] + logf(rowSum[r]) : -INFINITY;
  }
}

/// P[i, j] of the forward pass from the saved log-sum-exp (0 when masked
/// or when the whole row is).
__device__ inline float recomputedProbability(const AttentionParams &p,
                                              int64_t b, int64_t i, int64_t j,
                                              float score, float lse) {
  if (!keyVisible(p, b, i, j) || lse == -INFINITY)
    return 0.0f;
  return expf(score * p.scale - lse);
}

/// dK and dV of one (batch, head, key tile), summing over the query tiles
/// in order: dV = P^T dO, dK = scale * dS^T Q with dS = P (dP - delta),
/// dP = dO V^T.
template <int HeadDimMax>
__global__ void __launch_bounds__(kAttnThreads)
    attentionKeyValueGradKernel(AttentionParams p) {
  MOERT_DENSE_DYNAMIC_SHARED(shared);
  constexpr int kCols = HeadDimMax / 32;
  constexpr int kLdP = kAttnTile + 1;
  const int dh = static_cast<int>(p.headDim), ld = dh + 1;
  float *kTile = shared;
  float *vTile = kTile + kAttnTile * ld;
  float *qTile = vTile + kAttnTile * ld;
  float *dOTile = qTile + kAttnTile * ld;
  float *pT = dOTile + kAttnTile * ld; // [key][query]
  float *dsT = pT + kAttnTile * kLdP;  // [key][query]
  float *lseTile = dsT + kAttnTile * kLdP;
  float *deltaTile = lseTile + kAttnTile;

  const int64_t tiles = (p.keyLen + kAttnTile - 1) / kAttnTile;
  const int64_t pair = blockIdx.x / tiles;
  const int64_t k0 = (blockIdx.x % tiles) * kAttnTile;
  const int64_t b = pair / p.heads, h = pair % p.heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int keyBase = warp * kAttnRowsPerWarp;
  const int64_t headOffset = h * p.headDim;
  const float *qBase = p.query + b * p.queryLen * p.modelDim + headOffset;
  const float *dOBase = p.outputGrad + b * p.queryLen * p.modelDim + headOffset;
  const float *kBase = p.key + b * p.keyLen * p.modelDim + headOffset;
  const float *vBase = p.value + b * p.keyLen * p.modelDim + headOffset;

  loadTile(kBase, k0, p.keyLen, p.modelDim, dh, ld, kTile);
  loadTile(vBase, k0, p.keyLen, p.modelDim, dh, ld, vTile);

  float keyAcc[kAttnRowsPerWarp][kCols], valueAcc[kAttnRowsPerWarp][kCols];
#pragma unroll
  for (int r = 0; r < kAttnRowsPerWarp; ++r)
#pragma unroll
    for (int k = 0; k < kCols; ++k)
      keyAcc[r][k] = valueAcc[r][k] = 0.0f;

  // Under a causal mask, queries before the tile's first key see none of it.
  const int64_t queryStart = p.causal ? k0 : 0;
  for (int64_t q0 = queryStart; q0 < p.queryLen; q0 += kAttnTile) {
    __syncthreads(); // the previous tiles are read
    loadTile(qBase, q0, p.queryLen, p.modelDim, dh, ld, qTile);
    loadTile(dOBase, q0, p.queryLen, p.modelDim, dh, ld, dOTile);
    if (threadIdx.x < kAttnTile) {
      const int64_t i = q0 + threadIdx.x;
      const bool inside = i < p.queryLen;
      lseTile[threadIdx.x] = inside ? p.lse[pair * p.queryLen + i] : -INFINITY;
      deltaTile[threadIdx.x] = inside ? p.delta[pair * p.queryLen + i] : 0.0f;
    }
    __syncthreads();
    // Scores with one query per lane and 4 keys per warp.
    const int64_t i = q0 + lane;
    float score[kAttnRowsPerWarp] = {}, dP[kAttnRowsPerWarp] = {};
    for (int c = 0; c < dh; ++c) {
      const float q = qTile[lane * ld + c], dO = dOTile[lane * ld + c];
#pragma unroll
      for (int r = 0; r < kAttnRowsPerWarp; ++r) {
        score[r] += q * kTile[(keyBase + r) * ld + c];
        dP[r] += dO * vTile[(keyBase + r) * ld + c];
      }
    }
#pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r) {
      const int64_t j = k0 + keyBase + r;
      const float probability =
          recomputedProbability(p, b, i, j, score[r], lseTile[lane]);
      pT[(keyBase + r) * kLdP + lane] = probability;
      dsT[(keyBase + r) * kLdP + lane] =
          probability * (dP[r] - deltaTile[lane]);
    }
    __syncwarp(); // each warp reads only its own keys' rows of pT and dsT
    for (int ii = 0; ii < kAttnTile; ++ii) {
      float dO[kCols], q[kCols];
#pragma unroll
      for (int k = 0; k < kCols; ++k) {
        const int c = lane + 32 * k;
        dO[k] = c < dh ? dOTile[ii * ld + c] : 0.0f;
        q[k] = c < dh ? qTile[ii * ld + c] : 0.0f;
      }
#pragma unroll
      for (int r = 0; r < kAttnRowsPerWarp; ++r) {
        const float probability = pT[(keyBase + r) * kLdP + ii];
        const float dS = dsT[(keyBase + r) * kLdP + ii];
#pragma unroll
        for (int k = 0; k < kCols; ++k) {
          valueAcc[r][k] += probability * dO[k];
          keyAcc[r][k] += dS * q[k];
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kAttnRowsPerWarp; ++r) {
    const int64_t j = k0 + keyBase + r;
    if (j >= p.keyLen)
      continue;
    const int64_t rowOffset = (b * p.keyLen + j) * p.modelDim + headOffset;
#pragma unroll
    for (int k = 0; k < kCols; ++k) {
      const int c = lane + 32 * k;
      if (c < dh) {
        p.keyGrad[rowOffset + c] = p.scale * keyAcc[r][k];
        p.valueGrad[rowOffset + c] = valueAcc[r][k];
      }
    }
  }
}

/// dQ of one (batch, head, query tile): dQ = scale * dS K over the key
/// tiles in order.
template <int HeadDimMax>
__global__ void __launch_bounds__(kAttnThreads)
    attentionQueryGradKernel(AttentionParams p) {
  MOERT_DENSE_DYNAMIC_SHARED(shared);
  constexpr int kCols = HeadDimMax / 32;
  constexpr int kLdP = kAttnTile + 1;
  const int dh = static_cast<int>(p.headDim), ld = dh + 1;
  float *qTile = shared;
  float *dOTile = qTile + kAttnTile * ld;
  float *kTile = dOTile + kAttnTile * ld;
  float *vTile = kTile + kAttnTile * ld;
  float *dsTile = vTile + kAttnTile * ld; // [query][key]

  const int64_t tiles = (p.queryLen + kAttnTile - 1) / kAttnTile;
  const int64_t pair = blockIdx.x / tiles;
  const int64_t q0 = (blockIdx.x % tiles) * kAttnTile;
  const int64_t b = pair / p.heads, h = pair % p.heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int rowBase = warp * kAttnRowsPerWarp;
  const int64_t headOffset = h * p.headDim;
  const float *qBase = p.query + b * p.queryLen * p.modelDim + headOffset;
  const float *dOBase = p.outputGrad + b * p.queryLen * p.modelDim + headOffset;
  const float *kBase = p.key + b * p.keyLen * p.modelDim + headOffset;
  const float *vBase = p.value + b * p.keyLen * p.modelDim + headOffset;

  loadTile(qBase, q0, p.queryLen, p.modelDim, dh, ld, qTile);
  loadTile(dOBase, q0, p.queryLen, p.modelDim, dh, ld, dOTile);
  float lse[kAttnRowsPerWarp], delta[kAttnRowsPerWarp];
  float acc[kAttnRowsPerWarp][kCols];
#pragma unroll
  for (int r = 0; r < kAttnRowsPerWarp; ++r) {
    const int64_t i = q0 + rowBase + r;
    const bool inside = i < p.queryLen;
    lse[r] = inside ? p.lse[pair * p.queryLen + i] : -INFINITY;
    delta[r] = inside ? p.delta[pair * p.queryLen + i] : 0.0f;
#pragma unroll
    for (int k = 0; k < kCols; ++k)
      acc[r][k] = 0.0f;
  }

  const int64_t keyEnd =
      p.causal ? std::min<int64_t>(p.keyLen, q0 + kAttnTile) : p.keyLen;
  for (int64_t k0 = 0; k0 < keyEnd; k0 += kAttnTile) {
    __syncthreads(); // the previous K tile is read
    loadTile(kBase, k0, p.keyLen, p.modelDim, dh, ld, kTile);
    loadTile(vBase, k0, p.keyLen, p.modelDim, dh, ld, vTile);
    __syncthreads();
    const int64_t j = k0 + lane;
    float score[kAttnRowsPerWarp] = {}, dP[kAttnRowsPerWarp] = {};
    for (int c = 0; c < dh; ++c) {
      const float kv = kTile[lane * ld + c], vv = vTile[lane * ld + c];
#pragma unroll
      for (int r = 0; r < kAttnRowsPerWarp; ++r) {
        score[r] += qTile[(rowBase + r) * ld + c] * kv;
        dP[r] += dOTile[(rowBase + r) * ld + c] * vv;
      }
    }
#pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r) {
      const int64_t i = q0 + rowBase + r;
      const float probability =
          recomputedProbability(p, b, i, j, score[r], lse[r]);
      dsTile[(rowBase + r) * kLdP + lane] = probability * (dP[r] - delta[r]);
    }
    __syncwarp(); // each warp reads only its own rows of dsTile
    for (int jj = 0; jj < kAttnTile; ++jj) {
      float kv[kCols];
#pragma unroll
      for (int k = 0; k < kCols; ++k) {
        const int c = lane + 32 * k;
        kv[k] = c < dh ? kTile[jj * ld + c] : 0.0f;
      }
#pragma unroll
      for (int r = 0; r < kAttnRowsPerWarp; ++r) {
        const float dS = dsTile[(rowBase + r) * kLdP + jj];
#pragma unroll
        for (int k = 0; k < kCols; ++k)
          acc[r][k] += dS * kv[k];
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kAttnRowsPerWarp; ++r) {
    const int64_t i = q0 + rowBase + r;
    if (i >= p.queryLen)
      continue;
    const int64_t rowOffset = (b * p.queryLen + i) * p.modelDim + headOffset;
#pragma unroll
    for (int k = 0; k < kCols; ++k) {
      const int c = lane + 32 * k;
      if (c < dh)
        p.queryGrad[rowOffset + c] = p.scale * acc[r][k];
    }
  }
}

inline size_t forwardSharedBytes(int64_t headDim) {
  return sizeof(float) *
         (2 * kAttnTile * (headDim + 1) + kAttnTile * (kAttnTile + 1));
}
inline size_t keyValueGradSharedBytes(int64_t headDim) {
  return sizeof(float) * (4 * kAttnTile * (headDim + 1) +
                          2 * kAttnTile * (kAttnTile + 1) + 2 * kAttnTile);
}
inline size_t queryGradSharedBytes(int64_t headDim) {
  return sizeof(float) *
         (4 * kAttnTile * (headDim + 1) + kAttnTile * (kAttnTile + 1));
}

} // namespace dense_attention
} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_DENSEATTENTION_CUH
