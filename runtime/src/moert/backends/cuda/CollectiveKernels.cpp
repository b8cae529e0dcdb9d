//===- CollectiveKernels.cpp - The shard dialect's collectives on CUDA ----===//
//
// The collectives of a CUDA plan, with the semantics of the CPU backend's
// (backends/cpu/CollectiveKernels.cpp), on whichever communicators the run
// has:
//   - device communicators (NCCL, NcclCommunicator.h): the operands stay on
//     the device; chunks that a split or concatenation along an inner
//     dimension scatters are packed / unpacked with 2-D copies on the
//     stream (ChunkCopies.h) through the call's workspace, and the
//     collective is enqueued on the same stream;
//   - host communicators (MPI): the operands are copied to the host, the
//     CPU backend's kernel runs, and the results are copied back (byte
//     counts and bit-identical reductions are then the MPI communicator's);
//   - no communicators (one process): a group of one copies on the stream.
// all_slice is local: one 2-D copy of this rank's block.
//
//===----------------------------------------------------------------------===//
#include "moert/backends/cpu/CpuDevice.h"
#include "moert/backends/cuda/ChunkCopies.h"
#include "moert/backends/cuda/CudaDevice.h"
#include "moert/backends/cuda/CudaKernels.h"
#include "moert/backends/cuda/CudaStatus.h"
#include "moert/comm/Communicator.h"
#include "moert/exec/Executor.h"

#include <cuda_runtime.h>

#include <cstring>

namespace moert {
namespace cuda {

namespace {

using exec::DType;
using exec::Instruction;
using exec::KernelCall;
using exec::Program;
using exec::TensorType;

cudaStream_t streamOf(const KernelCall &call) {
  return static_cast<cudaStream_t>(call.stream());
}

Status copyOnStream(const KernelCall &call, void *to, const void *from,
                    int64_t bytes) {
  if (bytes > 0 && to != from)
    MOERT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(to, from,
                                               static_cast<size_t>(bytes),
                                               cudaMemcpyDeviceToDevice,
                                               streamOf(call)));
  return Status::success();
}

Status copies2D(const KernelCall &call, const std::vector<Copy2D> &copies,
                const void *src, void *dst) {
  for (const Copy2D &c : copies) {
    if (c.width == 0 || c.height == 0)
      continue;
    MOERT_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(
        static_cast<char *>(dst) + c.dstOffset, static_cast<size_t>(c.dstPitch),
        static_cast<const char *>(src) + c.srcOffset,
        static_cast<size_t>(c.srcPitch), static_cast<size_t>(c.width),
        static_cast<size_t>(c.height), cudaMemcpyDeviceToDevice,
        streamOf(call)));
  }
  return Status::success();
}

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

Expected<comm::ReduceOp> commReduction(exec::Reduction reduction) {
  switch (reduction) {
  case exec::Reduction::Sum:
    return comm::ReduceOp::Sum;
  case exec::Reduction::Mean:
    return comm::ReduceOp::Mean;
  case exec::Reduction::Max:
    return comm::ReduceOp::Max;
  case exec::Reduction::Min:
    return comm::ReduceOp::Min;
  case exec::Reduction::None:
    break;
  }
  return invalidArgument("needs a reduction (sum, mean, max or min), found "
                         "none");
}

int64_t outerElements(const std::vector<int64_t> &shape, int dim) {
  int64_t outer = 1;
  for (int d = 0; d < dim; ++d)
    outer *= shape[d];
  return outer;
}

/// The communicator of the instruction's group: null without grid
/// communicators (a group of one, checked by the CPU kernel's rules below).
Expected<comm::Communicator *> groupOf(const KernelCall &call) {
  if (!call.instruction().collective)
    return invalidArgument("a collective without collective parameters");
  comm::GridCommunicators *grid = call.context().grid;
  if (!grid)
    return static_cast<comm::Communicator *>(nullptr);
  return grid->group(call.instruction().collective->axes);
}

/// The CPU backend's kernel of `op` on host copies of the operands.
Status runOnHost(KernelCall &call, Op op) {
  const exec::KernelInfo *cpuKernel =
      exec::kernelRegistry(hal::Backend::Cpu).find(op);
  if (!cpuKernel)
    return internalError("the CPU backend has no kernel for this collective");
  hal::Device &device = call.device();
  const size_t numOperands = call.numOperands();
  std::vector<std::vector<uint8_t>> operands(numOperands);
  std::vector<void *> operandPointers(numOperands);
  for (size_t i = 0; i < numOperands; ++i) {
    operands[i].resize(static_cast<size_t>(call.operandType(i).byteSize()));
    MOERT_RETURN_IF_ERROR(device.copyToHost(
        operands[i].data(), call.operand<void>(i), operands[i].size()));
    operandPointers[i] = operands[i].data();
  }
  const size_t numResults = call.instruction().results.size();
  std::vector<std::vector<uint8_t>> results(numResults);
  std::vector<void *> resultPointers(numResults);
  for (size_t j = 0; j < numResults; ++j) {
    // A result in the operand's buffer (in place) stays in place on the
    // host too.
    for (size_t i = 0; i < numOperands && !resultPointers[j]; ++i)
      if (call.result<void>(j) == call.operand<void>(i))
        resultPointers[j] = operandPointers[i];
    if (!resultPointers[j]) {
      results[j].resize(static_cast<size_t>(call.resultType(j).byteSize()));
      resultPointers[j] = results[j].data();
    }
  }
  KernelCall hostCall(call.instruction(), call.program(), call.context(),
                      operandPointers, resultPointers, cpu::hostDevice());
  MOERT_RETURN_IF_ERROR(cpuKernel->fn(hostCall));
  for (size_t j = 0; j < numResults; ++j)
    MOERT_RETURN_IF_ERROR(device.copyToDevice(
        call.result<void>(j), resultPointers[j],
        static_cast<size_t>(call.resultType(j).byteSize())));
  return Status::success();
}

/// What a device-side collective needs.
struct DeviceCollective {
  const exec::CollectiveInfo *info = nullptr;
  comm::Communicator *comm = nullptr; // null: a group of one
  comm::ElementType type = comm::ElementType::F32;
  int64_t elementSize = 0, size = 1, index = 0;
  const TensorType *operand = nullptr, *result = nullptr;
};

/// Shapes checked as the CPU kernel checks them (split_dim divided and
/// concat_dim multiplied by the group size).
Expected<DeviceCollective> prepare(const KernelCall &call,
                                   comm::Communicator *comm, bool split,
                                   bool concat, bool local = false) {
  DeviceCollective c;
  c.info = &*call.instruction().collective;
  c.comm = comm;
  MOERT_ASSIGN_OR_RETURN(exec::GroupPosition position,
                         call.groupPosition(c.info->axes));
  c.size = position.size;
  c.index = position.index;
  if (comm && (comm->size() != position.size ||
               comm->rank() != position.index))
    return internalError("the communicator of the group has " +
                         std::to_string(comm->size()) + " ranks with this one "
                         "at " + std::to_string(comm->rank()) +
                         ", the grid says " + std::to_string(position.size) +
                         " ranks with this one at " +
                         std::to_string(position.index));
  if (!comm && !local && c.size != 1)
    return failedPrecondition("a collective over " + std::to_string(c.size) +
                              " ranks needs grid communicators (run under "
                              "mpirun/srun)");
  c.operand = &call.operandType(0);
  c.result = &call.resultType(0);
  if (c.operand->dtype != c.result->dtype)
    return invalidArgument("the operand is " + c.operand->str() +
                           ", the result " + c.result->str() +
                           ", expected one element type");
  MOERT_ASSIGN_OR_RETURN(c.type, commType(c.operand->dtype));
  c.elementSize = exec::dtypeSize(c.operand->dtype);
  std::vector<int64_t> expected = c.operand->shape;
  auto checkDim = [&](const char *role, int dim) -> Status {
    if (dim < 0 || dim >= static_cast<int>(expected.size()))
      return invalidArgument(std::string(role) + " " + std::to_string(dim) +
                             " is not a dimension of the operand " +
                             c.operand->str());
    return Status::success();
  };
  if (split) {
    MOERT_RETURN_IF_ERROR(checkDim("split_dim", c.info->splitDim));
    if (expected[c.info->splitDim] % c.size != 0)
      return invalidArgument("split dimension " +
                             std::to_string(c.info->splitDim) + " of " +
                             c.operand->str() + " is not divisible by the " +
                             std::to_string(c.size) + " ranks of the group");
    expected[c.info->splitDim] /= c.size;
  }
  if (concat) {
    MOERT_RETURN_IF_ERROR(checkDim("concat_dim", c.info->concatDim));
    expected[c.info->concatDim] *= c.size;
  }
  if (c.result->shape != expected)
    return invalidArgument("the result is " + c.result->str() +
                           ", expected shape " +
                           TensorType{c.result->dtype, expected}.str() +
                           " for the operand " + c.operand->str() +
                           " over a group of " + std::to_string(c.size) +
                           " ranks");
  return c;
}

/// The workspace of a device-side collective: packed chunks of the operand
/// and the received chunks, when the dimensions are not leading ones.
int64_t collectiveWorkspace(const Instruction &inst, const Program &program) {
  if (!inst.collective)
    return 0;
  const TensorType &operand = program.buffers[inst.operands[0]].type;
  const TensorType &result = program.buffers[inst.results[0]].type;
  const int64_t bytes =
      std::max(operand.byteSize(), result.byteSize()) + 256;
  return 2 * bytes;
}

void *workspacePart(const KernelCall &call, int part) {
  const int64_t half = static_cast<int64_t>(call.workspaceBytes() / 2) / 256 * 256;
  return static_cast<char *>(call.workspace()) + part * half;
}

Status needWorkspace(const KernelCall &call) {
  const int64_t bytes =
      std::max(call.operandType(0).byteSize(), call.resultType(0).byteSize());
  if (call.workspace() &&
      static_cast<int64_t>(call.workspaceBytes() / 2) / 256 * 256 >= bytes)
    return Status::success();
  return internalError("a collective needs " + std::to_string(2 * bytes) +
                       " bytes of workspace, was given " +
                       std::to_string(call.workspaceBytes()));
}

Status deviceAllReduce(KernelCall &call, const DeviceCollective &c) {
  MOERT_ASSIGN_OR_RETURN(comm::ReduceOp op, commReduction(c.info->reduction));
  MOERT_RETURN_IF_ERROR(copyOnStream(call, call.result<void>(0),
                                     call.operand<void>(0),
                                     c.operand->byteSize()));
  if (!c.comm)
    return Status::success();
  return c.comm->allReduce(call.result<void>(0), c.result->numElements(),
                           c.type, op);
}

Status deviceAllGather(KernelCall &call, const DeviceCollective &c) {
  if (!c.comm)
    return copyOnStream(call, call.result<void>(0), call.operand<void>(0),
                        c.operand->byteSize());
  const int64_t count = c.operand->numElements();
  const int dim = c.info->concatDim;
  if (outerElements(c.operand->shape, dim) == 1)
    return c.comm->allGather(call.operand<void>(0), call.result<void>(0),
                             count, c.type);
  MOERT_RETURN_IF_ERROR(needWorkspace(call));
  void *gathered = workspacePart(call, 0);
  MOERT_RETURN_IF_ERROR(
      c.comm->allGather(call.operand<void>(0), gathered, count, c.type));
  return copies2D(call, unpackCopies(c.operand->shape, c.elementSize, dim,
                                     c.size),
                  gathered, call.result<void>(0));
}

Status deviceReduceScatter(KernelCall &call, const DeviceCollective &c) {
  MOERT_ASSIGN_OR_RETURN(comm::ReduceOp op, commReduction(c.info->reduction));
  if (!c.comm)
    return copyOnStream(call, call.result<void>(0), call.operand<void>(0),
                        c.operand->byteSize());
  const int64_t count = c.result->numElements();
  const int dim = c.info->splitDim;
  if (outerElements(c.operand->shape, dim) == 1)
    return c.comm->reduceScatter(call.operand<void>(0), call.result<void>(0),
                                 count, c.type, op);
  MOERT_RETURN_IF_ERROR(needWorkspace(call));
  void *packed = workspacePart(call, 0);
  MOERT_RETURN_IF_ERROR(copies2D(
      call, packCopies(c.operand->shape, c.elementSize, dim, c.size),
      call.operand<void>(0), packed));
  return c.comm->reduceScatter(packed, call.result<void>(0), count, c.type,
                               op);
}

Status deviceAllToAll(KernelCall &call, const DeviceCollective &c) {
  if (!c.comm)
    return copyOnStream(call, call.result<void>(0), call.operand<void>(0),
                        c.operand->byteSize());
  const int splitDim = c.info->splitDim, concatDim = c.info->concatDim;
  std::vector<int64_t> chunkShape = c.operand->shape;
  chunkShape[splitDim] /= c.size;
  const int64_t count = c.operand->numElements() / c.size;
  const void *send = call.operand<void>(0);
  const bool packSend = outerElements(c.operand->shape, splitDim) != 1;
  const bool unpackRecv = outerElements(chunkShape, concatDim) != 1;
  if (packSend || unpackRecv)
    MOERT_RETURN_IF_ERROR(needWorkspace(call));
  if (packSend) {
    void *packed = workspacePart(call, 0);
    MOERT_RETURN_IF_ERROR(copies2D(
        call, packCopies(c.operand->shape, c.elementSize, splitDim, c.size),
        send, packed));
    send = packed;
  }
  void *recv = unpackRecv ? workspacePart(call, 1) : call.result<void>(0);
  MOERT_RETURN_IF_ERROR(c.comm->allToAll(send, recv, count, c.type));
  if (!unpackRecv)
    return Status::success();
  return copies2D(call,
                  unpackCopies(chunkShape, c.elementSize, concatDim, c.size),
                  recv, call.result<void>(0));
}

template <Op TheOp> Status runCollective(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(comm::Communicator * comm, groupOf(call));
  if (comm && !comm->devicePointers())
    return runOnHost(call, TheOp);
  const bool split = TheOp == Op::reduce_scatter || TheOp == Op::all_to_all;
  const bool concat = TheOp == Op::all_gather || TheOp == Op::all_to_all;
  MOERT_ASSIGN_OR_RETURN(DeviceCollective c,
                         prepare(call, comm, split, concat));
  switch (TheOp) {
  case Op::all_reduce:
    return deviceAllReduce(call, c);
  case Op::all_gather:
    return deviceAllGather(call, c);
  case Op::reduce_scatter:
    return deviceReduceScatter(call, c);
  default:
    return deviceAllToAll(call, c);
  }
}

Status runAllSlice(KernelCall &call) {
  if (!call.instruction().collective)
    return invalidArgument("a collective without collective parameters");
  // Local: this rank's block along split_dim, no communication.
  MOERT_ASSIGN_OR_RETURN(DeviceCollective c,
                         prepare(call, nullptr, true, false, /*local=*/true));
  Copy2D mine = packCopies(c.operand->shape, c.elementSize, c.info->splitDim,
                           c.size)[static_cast<size_t>(c.index)];
  mine.dstOffset = 0;
  return copies2D(call, {mine}, call.operand<void>(0), call.result<void>(0));
}

} // namespace

void registerCollectiveKernels(exec::KernelRegistry &registry) {
  registry.add(Op::all_reduce,
               {runCollective<Op::all_reduce>, 0, 0, nullptr});
  registry.add(Op::all_gather,
               {runCollective<Op::all_gather>, 0, 0, collectiveWorkspace});
  registry.add(Op::reduce_scatter,
               {runCollective<Op::reduce_scatter>, 0, 0, collectiveWorkspace});
  registry.add(Op::all_to_all,
               {runCollective<Op::all_to_all>, 0, 0, collectiveWorkspace});
  registry.add(Op::all_slice, {runAllSlice, 0, 0, nullptr});
}

} // namespace cuda
} // namespace moert
