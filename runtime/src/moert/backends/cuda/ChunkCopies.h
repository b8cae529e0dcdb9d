//===- ChunkCopies.h - A collective's chunks as 2-D copies ------*- C++ -*-===//
//
// exec::packChunks / unpackChunks (exec/TensorBlocks.h) on device memory:
// splitting a row-major tensor into `parts` equal blocks along `dim` views
// it as [outer, parts, block] bytes, so chunk j is one strided 2-D copy
// (cudaMemcpy2DAsync) of `outer` rows of `block` bytes. Host code without
// CUDA: tests/MoeMathTest.cpp replays the copies on the CPU against
// packChunks / unpackChunks.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_CHUNKCOPIES_H
#define MOERT_BACKENDS_CUDA_CHUNKCOPIES_H

#include <cstddef>
#include <cstdint>
#include <vector>

namespace moert {
namespace cuda {

/// dst[dstOffset + r * dstPitch + b] = src[srcOffset + r * srcPitch + b]
/// for rows r < height and bytes b < width.
struct Copy2D {
  int64_t srcOffset = 0, srcPitch = 0, dstOffset = 0, dstPitch = 0;
  int64_t width = 0, height = 0;
};

/// Rows before `dim` and bytes of one block when `shape` is split into
/// `parts` along `dim`.
inline void chunkView(const std::vector<int64_t> &shape, int64_t elementSize,
                      int dim, int64_t parts, int64_t &outer,
                      int64_t &blockBytes) {
  outer = 1;
  for (int d = 0; d < dim; ++d)
    outer *= shape[d];
  int64_t inner = elementSize;
  for (std::size_t d = static_cast<std::size_t>(dim) + 1; d < shape.size(); ++d)
    inner *= shape[d];
  blockBytes = shape[dim] / parts * inner;
}

/// packChunks: chunk j of `tensor` (shape) to its contiguous place.
inline std::vector<Copy2D> packCopies(const std::vector<int64_t> &shape,
                                      int64_t elementSize, int dim,
                                      int64_t parts) {
  int64_t outer = 0, block = 0;
  chunkView(shape, elementSize, dim, parts, outer, block);
  std::vector<Copy2D> copies;
  for (int64_t j = 0; j < parts; ++j)
    copies.push_back({j * block, parts * block, j * outer * block, block,
                      block, outer});
  return copies;
}

/// unpackChunks: contiguous chunk i (of `chunkShape`) to block i along
/// `dim` of the output.
inline std::vector<Copy2D> unpackCopies(const std::vector<int64_t> &chunkShape,
                                        int64_t elementSize, int dim,
                                        int64_t parts) {
  int64_t outer = 0, block = 0;
  chunkView(chunkShape, elementSize, dim, 1, outer, block);
  std::vector<Copy2D> copies;
  for (int64_t i = 0; i < parts; ++i)
    copies.push_back({i * outer * block, block, i * block, parts * block,
                      block, outer});
  return copies;
}

} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_CHUNKCOPIES_H
