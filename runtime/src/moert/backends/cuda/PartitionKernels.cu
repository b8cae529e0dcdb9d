//===- PartitionKernels.cu - Small kernels that partitioning introduces ---===//
//
// The CUDA side of backends/cpu/PartitionKernels.cpp: the token count that
// normalizes a partitioned loss (token_count, div), the bias of a
// row-parallel linear added once after the all-reduce (bias_add), scalar
// rescaling (mul), gradient buckets (pack, unpack: device-to-device copies)
// and the splat constants of a step (fill). The same shape
// and type checks as the CPU, on the host; the data never leaves the
// device (the token count is counted there and stays there).
//
//===----------------------------------------------------------------------===//
#include "moert/Half.h"
#include "moert/backends/cuda/CudaDevice.h"
#include "moert/backends/cuda/CudaKernels.h"
#include "moert/backends/cuda/DenseDeviceUtils.cuh"
#include "moert/exec/BucketCopies.h"
#include "moert/exec/Executor.h"

#include <vector>

namespace moert {
namespace cuda {

namespace {

using exec::DType;
using exec::KernelCall;
using exec::TensorType;
using namespace dense_device;

cudaStream_t streamOf(const KernelCall &call) {
  return static_cast<cudaStream_t>(call.stream());
}

Status sameShapes(const KernelCall &call) {
  for (size_t i = 0; i < 2; ++i) {
    MOERT_RETURN_IF_ERROR(call.expectOperand(i, DType::F32));
    if (call.operandType(i).shape != call.resultType(0).shape)
      return invalidArgument(
          "operand #" + std::to_string(i) + " is " + call.operandType(i).str() +
          ", expected the result's " + call.resultType(0).str());
  }
  return call.expectResult(0, DType::F32);
}

/// One block: the number of labels other than ignoreIndex, as an f32.
__global__ void tokenCountKernel(int64_t count, const int32_t *labels,
                                 int64_t ignoreIndex, float *result) {
  __shared__ long long shared[32];
  long long counted = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x)
    counted += int64_t{labels[i]} != ignoreIndex ? 1 : 0;
  counted = blockSum(counted, shared);
  if (threadIdx.x == 0)
    *result = static_cast<float>(counted);
}

Status runTokenCount(KernelCall &call) {
  MOERT_RETURN_IF_ERROR(call.expectOperand(0, DType::I32));
  MOERT_RETURN_IF_ERROR(call.expectResult(0, DType::F32));
  if (call.resultType(0).numElements() != 1)
    return invalidArgument("the result must be a scalar, found " +
                           call.resultType(0).str());
  MOERT_ASSIGN_OR_RETURN(int64_t ignoreIndex, call.intAttr("ignore_index"));
  cudaStream_t stream = streamOf(call);
  tokenCountKernel<<<1, 1024, 0, stream>>>(call.operandType(0).numElements(),
                                           call.operand<int32_t>(0),
                                           ignoreIndex, call.result<float>(0));
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

/// out[r, j] = x[r, j] + bias[j].
__global__ void biasAddKernel(int64_t count, int64_t n, const float *x,
                              const float *bias, float *out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = x[i] + bias[i % n];
}

Status runBiasAdd(KernelCall &call) {
  const TensorType &x = call.operandType(0);
  const TensorType &bias = call.operandType(1);
  MOERT_RETURN_IF_ERROR(call.expectOperand(0, DType::F32));
  MOERT_RETURN_IF_ERROR(call.expectOperand(1, DType::F32));
  MOERT_RETURN_IF_ERROR(call.expectResult(0, DType::F32));
  const int64_t n = lastDim(x);
  if (bias.shape.size() != 1 || bias.shape[0] != n ||
      call.resultType(0).shape != x.shape)
    return invalidArgument("expected x [..., N], bias [N] and a result "
                           "shaped like x; found x " +
                           x.str() + ", bias " + bias.str() + ", result " +
                           call.resultType(0).str());
  const int64_t count = n ? x.numElements() : 0;
  if (count == 0)
    return Status::success();
  cudaStream_t stream = streamOf(call);
  biasAddKernel<<<gridFor(count), kThreads, 0, stream>>>(
      count, n, call.operand<float>(0), call.operand<float>(1),
      call.result<float>(0));
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

struct MulOp {
  __device__ float operator()(float a, float b) const { return a * b; }
};
/// IEEE division (nvcc's default -prec-div=true), as the CPU.
struct DivOp {
  __device__ float operator()(float a, float b) const { return a / b; }
};

template <typename Op>
__global__ void binaryKernel(int64_t count, const float *lhs, const float *rhs,
                             float *out, Op op) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = op(lhs[i], rhs[i]);
}

template <typename Op> Status elementwise(KernelCall &call, Op op) {
  MOERT_RETURN_IF_ERROR(sameShapes(call));
  const int64_t count = call.resultType(0).numElements();
  if (count == 0)
    return Status::success();
  cudaStream_t stream = streamOf(call);
  binaryKernel<<<gridFor(count), kThreads, 0, stream>>>(
      count, call.operand<float>(0), call.operand<float>(1),
      call.result<float>(0), op);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

Status runMul(KernelCall &call) { return elementwise(call, MulOp()); }
Status runDiv(KernelCall &call) { return elementwise(call, DivOp()); }

template <typename T>
__global__ void fillKernel(int64_t count, T value, T *out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = value;
}

template <typename T>
Status fill(cudaStream_t stream, int64_t count, T value, void *out) {
  if (count == 0)
    return Status::success();
  fillKernel<<<gridFor(count), kThreads, 0, stream>>>(count, value,
                                                      static_cast<T *>(out));
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

/// Writes `value` to every element, converted as the CPU's runFill does.
Status runFill(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(double value, call.floatAttr("value"));
  const TensorType &type = call.resultType(0);
  const int64_t count = type.numElements();
  cudaStream_t stream = streamOf(call);
  void *out = call.result<void>(0);
  switch (type.dtype) {
  case DType::F32:
    return fill(stream, count, static_cast<float>(value), out);
  case DType::I32:
    return fill(stream, count, static_cast<int32_t>(value), out);
  case DType::I64:
    return fill(stream, count, static_cast<int64_t>(value), out);
  case DType::Bool:
    return fill(stream, count, static_cast<uint8_t>(value != 0.0 ? 1 : 0), out);
  case DType::BF16:
    return fill(stream, count, floatToBf16Bits(static_cast<float>(value)),
                out);
  case DType::F16:
    return fill(stream, count, floatToF16Bits(static_cast<float>(value)), out);
  }
  return invalidArgument("fill of an unknown element type");
}

/// One device-to-device copy on the stream; rows of a chunked bucket as
/// one 2-D copy.
Status copyOnStream(KernelCall &call, const exec::ByteCopy &copy) {
  if (copy.bytes == 0)
    return Status::success();
  if (copy.rows == 1)
    MOERT_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(copy.to, copy.from, static_cast<size_t>(copy.bytes),
                        cudaMemcpyDeviceToDevice, streamOf(call)));
  else
    MOERT_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(
        copy.to, static_cast<size_t>(copy.toPitch), copy.from,
        static_cast<size_t>(copy.fromPitch), static_cast<size_t>(copy.bytes),
        static_cast<size_t>(copy.rows), cudaMemcpyDeviceToDevice,
        streamOf(call)));
  return Status::success();
}

/// The operands, flattened, one after the other: one copy each on the
/// stream (a gradient bucket).
Status runPack(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(std::vector<exec::ByteCopy> copies,
                         exec::packCopies(call));
  for (const exec::ByteCopy &copy : copies)
    MOERT_RETURN_IF_ERROR(copyOnStream(call, copy));
  return Status::success();
}

/// Elements [offset, offset + n) of the packed operand (of each row).
Status runUnpack(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(exec::ByteCopy copy, exec::unpackCopy(call));
  return copyOnStream(call, copy);
}

/// moe.convert, one thread per element (Half.h's conversions, the CPU's
/// bits).
template <typename From, typename To, typename Convert>
__global__ void convertKernel(int64_t count, const From *in, To *out,
                              Convert convert) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < count; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = convert(in[i]);
}

struct ToBf16 {
  __device__ uint16_t operator()(float v) const { return floatToBf16Bits(v); }
};
struct ToF16 {
  __device__ uint16_t operator()(float v) const { return floatToF16Bits(v); }
};
struct FromBf16 {
  __device__ float operator()(uint16_t v) const { return bf16BitsToFloat(v); }
};
struct FromF16 {
  __device__ float operator()(uint16_t v) const { return f16BitsToFloat(v); }
};

template <typename From, typename To, typename Convert>
Status convertOnStream(KernelCall &call, Convert convert) {
  const int64_t count = call.operandType(0).numElements();
  if (count == 0)
    return Status::success();
  convertKernel<<<gridFor(count), kThreads, 0, streamOf(call)>>>(
      count, call.operand<From>(0), call.result<To>(0), convert);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

/// A master weight in host memory (offload=params): rounded on the host,
/// then only the 16-bit copy crosses to the device (half the bytes), on
/// the call's stream without a host wait (the transfer stream when the
/// offload's host work overlaps: the copy runs while the host updates the
/// next parameter).
Status convertFromHost(KernelCall &call) {
  const DType to = call.resultType(0).dtype;
  const int64_t count = call.operandType(0).numElements();
  if (call.operandType(0).dtype != DType::F32 ||
      (to != DType::BF16 && to != DType::F16))
    return invalidArgument("moe.convert of a host buffer: expected f32 to "
                           "bf16/f16");
  const float *in = call.operand<float>(0);
  uint16_t (*round)(float) =
      to == DType::BF16 ? floatToBf16Bits : floatToF16Bits;
  return cudaDeviceOf(call.device())
      .uploadAsync(call.result<void>(0),
                   static_cast<size_t>(count) * sizeof(uint16_t),
                   streamOf(call), [&](void *staged) {
                     uint16_t *rounded = static_cast<uint16_t *>(staged);
                     for (int64_t i = 0; i < count; ++i)
                       rounded[i] = round(in[i]);
                   });
}

Status runConvert(KernelCall &call) {
  const DType from = call.operandType(0).dtype;
  const DType to = call.resultType(0).dtype;
  if (call.program().buffers[call.instruction().operands[0]].kind ==
      exec::BufferKind::Host)
    return convertFromHost(call);
  if (from == DType::F32 && to == DType::BF16)
    return convertOnStream<float, uint16_t>(call, ToBf16{});
  if (from == DType::F32 && to == DType::F16)
    return convertOnStream<float, uint16_t>(call, ToF16{});
  if (from == DType::BF16 && to == DType::F32)
    return convertOnStream<uint16_t, float>(call, FromBf16{});
  if (from == DType::F16 && to == DType::F32)
    return convertOnStream<uint16_t, float>(call, FromF16{});
  return invalidArgument(std::string("moe.convert from ") +
                         exec::dtypeName(from) + " to " + exec::dtypeName(to) +
                         ": expected f32 to bf16/f16 or back");
}

/// moe.to_host: the reduced gradient leaves the device, ordered after the
/// kernels before it on the call's stream and without a host wait (the
/// transfer stream when the offload's host work overlaps: the backward
/// pass goes on meanwhile). The host AdamW that reads it waits for this
/// copy alone (CudaDevice::waitForDownload).
Status runToHost(KernelCall &call) {
  return cudaDeviceOf(call.device())
      .downloadAsync(call.result<void>(0), call.operand<void>(0),
                     static_cast<size_t>(call.operandType(0).byteSize()),
                     streamOf(call));
}

} // namespace

void registerPartitionKernels(exec::KernelRegistry &registry) {
  registry.add(Op::convert, {runConvert, 0, 0, nullptr});
  registry.add(Op::to_host, {runToHost, 0, 0, nullptr});
  registry.add(Op::pack, {runPack, 0, 0, nullptr});
  registry.add(Op::unpack, {runUnpack, 0, 0, nullptr});
  registry.add(Op::token_count, {runTokenCount, 0, 0, nullptr});
  registry.add(Op::bias_add, {runBiasAdd, 0, 0, nullptr});
  registry.add(Op::mul, {runMul, 0, 0, nullptr});
  registry.add(Op::div, {runDiv, 0, 0, nullptr});
  registry.add(Op::fill, {runFill, 0, 0, nullptr});
}

} // namespace cuda
} // namespace moert
