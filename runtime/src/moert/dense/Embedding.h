//===- Embedding.h - Token embedding with positions (moe.embedding) -------===//
//
// output[b, s, :] = table[tokens[b, s], :] * (scaled ? sqrt(M) : 1) + pe[s, :]
// where the leading token dimensions are folded into `batch`, `s` runs over
// the last token dimension, and pe is nothing, the fixed sinusoidal encoding
// of Vaswani et al. (pe[s, 2i] = sin(s / 10000^(2i/M)),
// pe[s, 2i+1] = cos(s / 10000^(2i/M))) or rows of a learned [P, M] table.
//
// Token ids are user data: an id outside [0, V) is reported, never read out
// of bounds. The kernels check every id before writing anything.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_EMBEDDING_H
#define MOERT_DENSE_EMBEDDING_H

#include <cstdint>

namespace moert {
namespace dense {

/// Same values as mlir::moe::PositionKind.
enum class PositionKind : int32_t {
  None = 0,
  Sinusoidal = 1,
  Learned = 2,
};

struct EmbeddingShape {
  int64_t batch = 0;        // product of the leading token dimensions
  int64_t seqLen = 0;       // the last token dimension (position index)
  int64_t vocabSize = 0;    // V, rows of the table
  int64_t modelDim = 0;     // M
  int64_t numPositions = 0; // P, rows of a learned table (>= seqLen)
  /// Position of the first token of each sequence (moe.embedding_at: the
  /// tokens are positions offset .. offset + seqLen - 1); for a learned
  /// table, offset + seqLen <= P.
  int64_t positionOffset = 0;
};

/// Returned by the embedding kernels when every token id is valid.
constexpr int64_t kAllTokensValid = -1;

/// Flat index of the first token outside [0, vocabSize), or kAllTokensValid.
int64_t findInvalidToken(int64_t count, const int32_t *tokens,
                         int64_t vocabSize);

/// Fills pe[seqLen, modelDim] with the sinusoidal encoding of positions
/// first .. first + seqLen - 1 (computed in double, then rounded: a
/// position's row does not depend on `first`).
void sinusoidalPositions(int64_t seqLen, int64_t modelDim, float *pe,
                         int64_t first = 0);

/// Forward lookup. `positions` ([P, M]) is read only for Learned. Returns
/// kAllTokensValid, or the flat index of the first bad token (output is then
/// left untouched).
int64_t embeddingForward(const EmbeddingShape &shape, PositionKind position,
                         bool scaled, const int32_t *tokens, const float *table,
                         const float *positions, float *output);

/// Backward: tableGrad ([V, M]) is overwritten with the scatter-add of
/// outputGrad (times sqrt(M) if scaled) into the rows named by the tokens;
/// repeated tokens add up in token order, so the result is deterministic.
/// positionsGrad ([P, M], may be null; only meaningful for Learned) is
/// overwritten with the sum over the batch for rows < seqLen and zero beyond.
/// Returns like embeddingForward (nothing written on a bad token).
int64_t embeddingBackward(const EmbeddingShape &shape, bool scaled,
                          const float *outputGrad, const int32_t *tokens,
                          float *tableGrad, float *positionsGrad);

} // namespace dense
} // namespace moert

#endif // MOERT_DENSE_EMBEDDING_H
