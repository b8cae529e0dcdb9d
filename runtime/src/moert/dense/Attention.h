//===- Attention.h - Multi-head scaled dot-product attention --------------===//
//
// query [B, Sq, D], key and value [B, Sk, D]; D is split into H heads of
// dh = D / H contiguous columns. Per batch and head:
//   P = softmax(q k^T / sqrt(dh) + mask),  out = P v.
// `causal` masks key j > query i (self-attention, Sq == Sk); the optional
// key mask ([B, Sk], one byte per key, nonzero = attend) masks padding.
//
// Fully masked rows: a query row whose keys are all masked (e.g. a padding
// query under a causal mask with leading padding, or an all-padding sequence)
// has no distribution to normalise. We define its probabilities, its output
// and its gradients as zero rather than NaN (PyTorch's SDPA gives NaN) so a
// padded batch never poisons the loss; such rows are padding and are ignored
// by the loss anyway.
//
// Memory choice: the forward pass may save P ([B, H, Sq, Sk] floats) for the
// backward pass; when the caller does not keep it (savedProbs == null, the
// default of moe.attention_grad), the backward pass recomputes P from q and k,
// one [Sq, Sk] tile per (batch, head) at a time, trading one extra GEMM and
// softmax for O(B H Sq Sk) memory. Workspace is O(threads * Sq * Sk).
//
// `compute` (bf16 / f16; default f32) emulates reduced-precision attention
// with fp32 accumulation, as a GPU kernel on bf16/fp16 tensors computes it:
// q, k, v and the output gradient are rounded to that format, and so are
// the probabilities before P V (and P^T dO) and the score gradient before
// dS K and dS^T Q; the softmax, its backward and all outputs are fp32.
// The rounded copies of q, k, v, dO are scratch of the call.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_ATTENTION_H
#define MOERT_DENSE_ATTENTION_H

#include "moert/Half.h"

#include <cstdint>

namespace moert {
namespace dense {

struct AttentionShape {
  int64_t batch = 0;    // B
  int64_t queryLen = 0; // Sq
  int64_t keyLen = 0;   // Sk
  int64_t modelDim = 0; // D, a multiple of numHeads
  int64_t numHeads = 0; // H
  bool causal = false;
  ComputeType compute = ComputeType::F32; // input precision of the GEMMs
};

/// Number of floats of the saved probabilities: B * H * Sq * Sk.
int64_t attentionProbsSize(const AttentionShape &shape);

/// `keyMask` ([B, Sk]) and `savedProbs` (attentionProbsSize floats) may be
/// null.
void attentionForward(const AttentionShape &shape, const float *query,
                      const float *key, const float *value,
                      const uint8_t *keyMask, float *output, float *savedProbs);

/// Gradients of attentionForward, overwritten. `savedProbs` is the forward's
/// P or null (recomputed). Self-attention passes the same buffer as query,
/// key and value; the three gradients are still separate outputs that the
/// caller sums.
void attentionBackward(const AttentionShape &shape, const float *outputGrad,
                       const float *query, const float *key, const float *value,
                       const uint8_t *keyMask, const float *savedProbs,
                       float *queryGrad, float *keyGrad, float *valueGrad);

} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_ATTENTION_H
