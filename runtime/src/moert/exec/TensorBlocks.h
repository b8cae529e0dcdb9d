//===- TensorBlocks.h - Copying rectangular blocks of row-major tensors ---===//
//
// Partitioned execution moves pieces of tensors around: a rank's shard of a
// logical parameter or batch (a block per sharded dimension), the chunks a
// collective sends when it splits or concatenates along a dimension that is
// not the leading one. These helpers turn such strided blocks into
// contiguous memory and back; every copy moves whole contiguous runs (the
// trailing dimensions a block covers completely) with memcpy.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_TENSORBLOCKS_H
#define MOERT_EXEC_TENSORBLOCKS_H

#include <cstdint>
#include <vector>

namespace moert {
namespace exec {

/// The elements [offset[d], offset[d] + extent[d]) of every dimension d.
struct TensorBlock {
  std::vector<int64_t> offset, extent;
  int64_t numElements() const;
};

/// Copies `block` of `tensor` (row-major `shape`, elements of `elementSize`
/// bytes) into `out`, contiguous and row-major over `block.extent`. The
/// block must lie inside the shape (callers check).
void copyBlockOut(const void *tensor, const std::vector<int64_t> &shape,
                  int64_t elementSize, const TensorBlock &block, void *out);

/// The inverse: writes the contiguous `in` into `block` of `tensor`.
void copyBlockIn(const void *in, const std::vector<int64_t> &shape,
                 int64_t elementSize, const TensorBlock &block, void *tensor);

/// Splits `tensor` (`shape`) into `parts` equal blocks along `dim` and
/// writes them one after another into `out`: chunk j is block j, each
/// contiguous. `shape[dim]` must be a multiple of `parts`.
void packChunks(const void *tensor, const std::vector<int64_t> &shape,
                int64_t elementSize, int dim, int64_t parts, void *out);

/// The inverse layout: `chunks` holds `parts` contiguous tensors of
/// `chunkShape`; chunk i becomes block i along `dim` of `out` (whose shape
/// is `chunkShape` with dimension `dim` multiplied by `parts`).
void unpackChunks(const void *chunks, const std::vector<int64_t> &chunkShape,
                  int64_t elementSize, int dim, int64_t parts, void *out);

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_TENSORBLOCKS_H
