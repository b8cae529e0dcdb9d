//===- MemoryPlan.h - Static arena plan of a function's tensors -----------===//
//
// Every tensor an op produces gets a byte range in one arena, reused by
// tensors whose lifetimes do not overlap (liveness over the op order of a
// single-block function). Function arguments (parameters, optimizer state,
// batch) live outside the arena: they persist across steps.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_COMPILER_MEMORYPLAN_H
#define MOE_COMPILER_MEMORYPLAN_H

#include "mlir/IR/Value.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/SmallVector.h"

#include <cstdint>

namespace mlir::func {
class FuncOp;
} // namespace mlir::func

namespace mlir::moe {

struct BufferAssignment {
  Value value;
  int64_t offset = 0;                // bytes from the arena start, aligned
  int64_t size = 0;                  // bytes
  int64_t firstUse = 0, lastUse = 0; // op positions, inclusive
};

struct MemoryPlan {
  SmallVector<BufferAssignment> buffers; // one per op result, in op order
  int64_t arenaBytes = 0;                // peak: the arena size
  int64_t unsharedBytes = 0;             // sum of all buffers (no reuse)
  int64_t liveLowerBound = 0;            // max over time of live bytes
  int64_t argumentBytes = 0;             // persistent function arguments
};

/// Bytes of a ranked tensor type (sub-byte types such as i1 take a byte).
int64_t tensorBytes(Type type);

/// The module attribute (unit) by which moe-partition's `overlap=true` asks
/// the memory plan to keep each collective's operand until its result is
/// first read (collectives beside the compute, see planMemory).
inline constexpr llvm::StringLiteral kOverlapCollectivesAttr =
    "moe.overlap_collectives";

/// Plans the arena of `func` (single block). Offsets are multiples of
/// `alignment`. Results with no use still get a buffer (they are written).
/// Function results stay live until the end. Values for which `external`
/// returns true live elsewhere (e.g. updated in place into persistent
/// state) and get no arena buffer. In a module marked
/// kOverlapCollectivesAttr, the operand of a collective that communicates
/// (shard all_reduce, all_gather, reduce_scatter, all_to_all) lives until
/// the op before its result's first reader, so no instruction in between
/// reuses its bytes and the collective can run beside them.
MemoryPlan planMemory(func::FuncOp func, int64_t alignment = 64,
                      llvm::function_ref<bool(Value)> external = {});

/// Sets the offset of every buffer, in `order` (indices into `buffers`):
/// each goes to the lowest offset where it shares no byte with an earlier
/// placed buffer whose lifetime [firstUse, lastUse] overlaps its own (first
/// fit). `planMemory` calls it largest first. Each placement queries and
/// updates O(log n) coalesced range sets (a segment tree over lifetimes)
/// instead of sweeping every placed buffer.
void placeFirstFit(MutableArrayRef<BufferAssignment> buffers,
                   ArrayRef<unsigned> order);

/// The op results of a training step that live in the persistent buffer of
/// an argument rather than in the arena, mapped to that argument: AdamW
/// results whose operand is the argument itself (updated in place), and
/// returned `new_param` / `new_state` / `new_device_copy` values computed
/// otherwise (e.g. the all-gather of a ZeRO shard), written into the state
/// they replace, and `moe.to_host` results (their host buffer). The
/// plan emitter places buffers by this rule; reports use it so that their
/// numbers are the plan's.
llvm::DenseMap<Value, BlockArgument> stepArgumentAliases(func::FuncOp func);

/// The arena plan of a training step as the emitted plan lays it out:
/// `planMemory` with the `stepArgumentAliases` external.
MemoryPlan planStepMemory(func::FuncOp func, int64_t alignment = 64);

} // namespace mlir::moe

#endif // MOE_COMPILER_MEMORYPLAN_H
