//===- TensorBlocks.cpp - Copying rectangular blocks of row-major tensors -===//
#include "moert/exec/TensorBlocks.h"

#include <cstring>

namespace moert {
namespace exec {

namespace {

/// Walks the block as runs of contiguous bytes: calls visit(tensorByte,
/// blockByte, runBytes) for each run, in block order.
template <typename Visit>
void forEachRun(const std::vector<int64_t> &shape, int64_t elementSize,
                const TensorBlock &block, Visit visit) {
  const int rank = static_cast<int>(shape.size());
  if (block.numElements() == 0)
    return;
  // The trailing dimensions the block covers completely, plus the first one
  // it does not, form one contiguous run per index of the leading ones.
  int64_t run = elementSize;
  int split = rank; // dimensions [split, rank) lie inside one run
  while (split > 0) {
    int d = split - 1;
    run *= block.extent[d];
    split = d;
    if (block.extent[d] != shape[d])
      break;
  }
  // Byte strides of the tensor.
  std::vector<int64_t> stride(rank);
  int64_t bytes = elementSize;
  for (int d = rank - 1; d >= 0; --d) {
    stride[d] = bytes;
    bytes *= shape[d];
  }
  int64_t start = 0;
  for (int d = 0; d < rank; ++d)
    start += block.offset[d] * stride[d];
  // Odometer over the leading dimensions [0, split).
  std::vector<int64_t> index(split, 0);
  int64_t blockByte = 0;
  while (true) {
    int64_t tensorByte = start;
    for (int d = 0; d < split; ++d)
      tensorByte += index[d] * stride[d];
    visit(tensorByte, blockByte, run);
    blockByte += run;
    int d = split - 1;
    while (d >= 0 && ++index[d] == block.extent[d])
      index[d--] = 0;
    if (d < 0)
      break;
  }
}

/// Views a tensor of `shape` split `parts` ways along `dim` as [outer,
/// parts, blockBytes].
void splitView(const std::vector<int64_t> &shape, int64_t elementSize, int dim,
               int64_t parts, int64_t &outer, int64_t &blockBytes) {
  outer = 1;
  for (int d = 0; d < dim; ++d)
    outer *= shape[d];
  blockBytes = elementSize * (shape[dim] / parts);
  for (size_t d = dim + 1; d < shape.size(); ++d)
    blockBytes *= shape[d];
}

} // namespace

int64_t TensorBlock::numElements() const {
  int64_t n = 1;
  for (int64_t e : extent)
    n *= e;
  return n;
}

void copyBlockOut(const void *tensor, const std::vector<int64_t> &shape,
                  int64_t elementSize, const TensorBlock &block, void *out) {
  const auto *from = static_cast<const uint8_t *>(tensor);
  auto *to = static_cast<uint8_t *>(out);
  forEachRun(shape, elementSize, block,
             [&](int64_t tensorByte, int64_t blockByte, int64_t bytes) {
               std::memcpy(to + blockByte, from + tensorByte, bytes);
             });
}

void copyBlockIn(const void *in, const std::vector<int64_t> &shape,
                 int64_t elementSize, const TensorBlock &block, void *tensor) {
  const auto *from = static_cast<const uint8_t *>(in);
  auto *to = static_cast<uint8_t *>(tensor);
  forEachRun(shape, elementSize, block,
             [&](int64_t tensorByte, int64_t blockByte, int64_t bytes) {
               std::memcpy(to + tensorByte, from + blockByte, bytes);
             });
}

void packChunks(const void *tensor, const std::vector<int64_t> &shape,
                int64_t elementSize, int dim, int64_t parts, void *out) {
  int64_t outer, blockBytes;
  splitView(shape, elementSize, dim, parts, outer, blockBytes);
  const auto *from = static_cast<const uint8_t *>(tensor);
  auto *to = static_cast<uint8_t *>(out);
  // [outer, parts, block] -> [parts, outer, block]
  for (int64_t j = 0; j < parts; ++j)
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(to + (j * outer + o) * blockBytes,
                  from + (o * parts + j) * blockBytes, blockBytes);
}

void unpackChunks(const void *chunks, const std::vector<int64_t> &chunkShape,
                  int64_t elementSize, int dim, int64_t parts, void *out) {
  int64_t outer, blockBytes;
  splitView(chunkShape, elementSize, dim, 1, outer, blockBytes);
  const auto *from = static_cast<const uint8_t *>(chunks);
  auto *to = static_cast<uint8_t *>(out);
  // [parts, outer, block] -> [outer, parts, block]
  for (int64_t i = 0; i < parts; ++i)
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(to + (o * parts + i) * blockBytes,
                  from + (i * outer + o) * blockBytes, blockBytes);
}

} // namespace exec
} // namespace moert
