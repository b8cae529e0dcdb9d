//===- CollectiveKernels.cpp - The shard dialect's collectives ------------===//
//
// Collective instructions ("shard.all_reduce", ...) over the group of the
// grid axes in their CollectiveInfo, with the semantics of the upstream MLIR
// shard dialect:
//   all_reduce      result = reduction over the group of the operand;
//   all_gather      the members' operands concatenated along concat_dim,
//                   in group order;
//   reduce_scatter  this rank's block along split_dim of the reduction;
//   all_to_all      the operand split along split_dim into p chunks (chunk
//                   j to member j); the received chunks concatenated along
//                   concat_dim (chunk from member i at position i);
//   all_slice       this rank's block along split_dim of a replicated
//                   operand: a local copy, no communication.
// The communicators move contiguous chunks, so a split or concatenation
// along a dimension other than the leading one packs the chunks first (or
// unpacks them after) through a scratch buffer.
//
// Without grid communicators (a single process) a collective whose group
// has one rank is a copy; a larger group is an error.
//
//===----------------------------------------------------------------------===//
#include "moert/comm/Communicator.h"
#include "moert/backends/cpu/CpuKernels.h"
#include "moert/backends/cpu/KernelUtil.h"
#include "moert/exec/TensorBlocks.h"

#include <cstring>

namespace moert {
namespace cpu {

using namespace exec;

namespace {

Expected<comm::ElementType> commType(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return comm::ElementType::F32;
  case DType::I32:
    return comm::ElementType::I32;
  case DType::I64:
    return comm::ElementType::I64;
  case DType::Bool:
    return comm::ElementType::U8;
  case DType::BF16:
  case DType::F16:
    return comm::ElementType::U16; // moved only: reductions are refused
  }
  return invalidArgument("unknown element type");
}

Expected<comm::ReduceOp> commReduction(Reduction reduction) {
  switch (reduction) {
  case Reduction::Sum:
    return comm::ReduceOp::Sum;
  case Reduction::Mean:
    return comm::ReduceOp::Mean;
  case Reduction::Max:
    return comm::ReduceOp::Max;
  case Reduction::Min:
    return comm::ReduceOp::Min;
  case Reduction::None:
    break;
  }
  return invalidArgument("needs a reduction (sum, mean, max or min), found "
                         "none");
}

/// Product of the dimensions before `dim`: a split along `dim` moves
/// contiguous chunks exactly when this is 1.
int64_t outerElements(const std::vector<int64_t> &shape, int dim) {
  int64_t outer = 1;
  for (int d = 0; d < dim; ++d)
    outer *= shape[d];
  return outer;
}

/// What every collective kernel starts from.
struct CollectiveCall {
  const CollectiveInfo *info = nullptr;
  GroupPosition position;
  /// The group's communicator; null without grid communicators (then the
  /// group has one rank).
  comm::Communicator *comm = nullptr;
  comm::ElementType type = comm::ElementType::F32;
  int64_t elementSize = 0;
  const TensorType *operand = nullptr, *result = nullptr;

  int64_t size() const { return position.size; }
};

Status checkDim(const char *role, int dim, const TensorType &type) {
  if (dim < 0 || dim >= static_cast<int>(type.shape.size()))
    return invalidArgument(std::string(role) + " " + std::to_string(dim) +
                           " is not a dimension of the operand " + type.str());
  return Status::success();
}

/// Resolves the group (its communicator unless `local`), checks element
/// types and that the result shape is the operand's with split_dim divided
/// and concat_dim multiplied by the group size (the ones the collective
/// uses).
Expected<CollectiveCall> prepare(const KernelCall &call, bool split,
                                 bool concat, bool local = false) {
  CollectiveCall c;
  if (!call.instruction().collective)
    return invalidArgument("a collective without collective parameters");
  c.info = &*call.instruction().collective;
  MOERT_ASSIGN_OR_RETURN(c.position, call.groupPosition(c.info->axes));
  c.operand = &call.operandType(0);
  c.result = &call.resultType(0);
  if (c.operand->dtype != c.result->dtype)
    return invalidArgument("the operand is " + c.operand->str() +
                           ", the result " + c.result->str() +
                           ", expected one element type");
  MOERT_ASSIGN_OR_RETURN(c.type, commType(c.operand->dtype));
  c.elementSize = dtypeSize(c.operand->dtype);
  std::vector<int64_t> expected = c.operand->shape;
  if (split) {
    MOERT_RETURN_IF_ERROR(checkDim("split_dim", c.info->splitDim, *c.operand));
    if (expected[c.info->splitDim] % c.size() != 0)
      return invalidArgument("split dimension " +
                             std::to_string(c.info->splitDim) + " of " +
                             c.operand->str() + " is not divisible by the " +
                             std::to_string(c.size()) + " ranks of the group");
    expected[c.info->splitDim] /= c.size();
  }
  if (concat) {
    MOERT_RETURN_IF_ERROR(
        checkDim("concat_dim", c.info->concatDim, *c.operand));
    expected[c.info->concatDim] *= c.size();
  }
  if (c.result->shape != expected)
    return invalidArgument(
        "the result is " + c.result->str() + ", expected shape " +
        TensorType{c.result->dtype, expected}.str() + " for the operand " +
        c.operand->str() + " over a group of " + std::to_string(c.size()) +
        " ranks");
  comm::GridCommunicators *grid = call.context().grid;
  if (grid && !local) {
    MOERT_ASSIGN_OR_RETURN(c.comm, grid->group(c.info->axes));
    if (c.comm->size() != c.position.size || c.comm->rank() != c.position.index)
      return internalError(
          "the communicator of the group has " +
          std::to_string(c.comm->size()) + " ranks with this one at " +
          std::to_string(c.comm->rank()) + ", the grid says " +
          std::to_string(c.position.size) + " ranks with this one at " +
          std::to_string(c.position.index));
  }
  return c;
}

/// The copy a collective over a group of one makes.
void copyOperand(const KernelCall &call) {
  if (call.result<void>(0) != call.operand<void>(0))
    std::memmove(call.result<void>(0), call.operand<void>(0),
                 static_cast<size_t>(call.operandType(0).byteSize()));
}

Status runAllReduce(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(CollectiveCall c, prepare(call, false, false));
  MOERT_ASSIGN_OR_RETURN(comm::ReduceOp op, commReduction(c.info->reduction));
  copyOperand(call);
  if (!c.comm)
    return Status::success();
  return c.comm->allReduce(call.result<void>(0), c.result->numElements(),
                           c.type, op);
}

Status runAllGather(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(CollectiveCall c, prepare(call, false, true));
  if (!c.comm) {
    copyOperand(call);
    return Status::success();
  }
  int64_t count = c.operand->numElements();
  int dim = c.info->concatDim;
  if (outerElements(c.operand->shape, dim) == 1)
    return c.comm->allGather(call.operand<void>(0), call.result<void>(0), count,
                             c.type);
  std::vector<uint8_t> gathered(static_cast<size_t>(c.result->byteSize()));
  MOERT_RETURN_IF_ERROR(
      c.comm->allGather(call.operand<void>(0), gathered.data(), count, c.type));
  unpackChunks(gathered.data(), c.operand->shape, c.elementSize, dim, c.size(),
               call.result<void>(0));
  return Status::success();
}

Status runReduceScatter(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(CollectiveCall c, prepare(call, true, false));
  MOERT_ASSIGN_OR_RETURN(comm::ReduceOp op, commReduction(c.info->reduction));
  if (!c.comm) {
    copyOperand(call);
    return Status::success();
  }
  int64_t count = c.result->numElements();
  int dim = c.info->splitDim;
  if (outerElements(c.operand->shape, dim) == 1)
    return c.comm->reduceScatter(call.operand<void>(0), call.result<void>(0),
                                 count, c.type, op);
  std::vector<uint8_t> chunks(static_cast<size_t>(c.operand->byteSize()));
  packChunks(call.operand<void>(0), c.operand->shape, c.elementSize, dim,
             c.size(), chunks.data());
  return c.comm->reduceScatter(chunks.data(), call.result<void>(0), count,
                               c.type, op);
}

Status runAllToAll(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(CollectiveCall c, prepare(call, true, true));
  if (!c.comm) {
    copyOperand(call);
    return Status::success();
  }
  int splitDim = c.info->splitDim, concatDim = c.info->concatDim;
  std::vector<int64_t> chunkShape = c.operand->shape;
  chunkShape[splitDim] /= c.size();
  int64_t count = c.operand->numElements() / c.size();
  std::vector<uint8_t> packed, received;
  const void *send = call.operand<void>(0);
  if (outerElements(c.operand->shape, splitDim) != 1) {
    packed.resize(static_cast<size_t>(c.operand->byteSize()));
    packChunks(send, c.operand->shape, c.elementSize, splitDim, c.size(),
               packed.data());
    send = packed.data();
  }
  bool contiguousConcat = outerElements(chunkShape, concatDim) == 1;
  void *recv = call.result<void>(0);
  if (!contiguousConcat) {
    received.resize(static_cast<size_t>(c.result->byteSize()));
    recv = received.data();
  }
  MOERT_RETURN_IF_ERROR(c.comm->allToAll(send, recv, count, c.type));
  if (!contiguousConcat)
    unpackChunks(received.data(), chunkShape, c.elementSize, concatDim,
                 c.size(), call.result<void>(0));
  return Status::success();
}

Status runAllSlice(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(CollectiveCall c,
                         prepare(call, true, false, /*local=*/true));
  TensorBlock block;
  block.offset.assign(c.operand->shape.size(), 0);
  block.extent = c.result->shape;
  block.offset[c.info->splitDim] =
      c.position.index * c.result->shape[c.info->splitDim];
  copyBlockOut(call.operand<void>(0), c.operand->shape, c.elementSize, block,
               call.result<void>(0));
  return Status::success();
}

} // namespace

void registerCollectiveKernels(exec::KernelRegistry &registry) {
  registry.add(Op::all_reduce, {runAllReduce});
  registry.add(Op::all_gather, {runAllGather});
  registry.add(Op::reduce_scatter, {runReduceScatter});
  registry.add(Op::all_to_all, {runAllToAll});
  registry.add(Op::all_slice, {runAllSlice});
}

} // namespace cpu
} // namespace moert
