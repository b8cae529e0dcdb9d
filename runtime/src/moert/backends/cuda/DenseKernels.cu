//===- DenseKernels.cu - The CUDA kernels of the dense ops ----------------===//
//
// embedding, linear, layer norm, activations, add, dropout, padding mask,
// attention and cross-entropy, forward and backward, with the semantics of
// the CPU backend's adapters (backends/cpu/DenseKernels.cpp) and the math
// of moert/dense. Everything is enqueued on the device's stream; nothing is
// copied to the host (the loss and the loss gradient stay on the device).
//
// What is bit-identical to the CPU and what is not:
//   - dropout masks (Philox keyed by the global element id, DenseMath.h),
//     padding masks, relu, add, the embedding lookup and its scatter-add
//     (token order per vocabulary row), the position gradient: identical.
//   - GEMMs (cuBLASLt / cuBLAS, fp32 without TF32), reductions (layer norm,
//     softmax, cross-entropy, bias sums), exp/erf/tanh: different rounding
//     order or math library, equal to a few ulp (fp32 tolerances). Every
//     reduction has a fixed order: the same bits on every run.
// No float atomics anywhere: sums over tokens are per-block partial sums
// added in a fixed order by a second pass.
//
// Attention is fused (one kernel forward, FlashAttention-style online
// softmax over key tiles in shared memory; the [Sq, Sk] scores never reach
// global memory). The backward pass recomputes the row statistics with the
// forward kernel, then runs one kernel over key tiles (dK, dV) and one over
// query tiles (dQ), so each gradient element is summed by one thread in a
// fixed order (no atomics, unlike FlashAttention-2's dQ). Head dimensions
// beyond the fused kernels' register tiles (> 256) take the CPU's unfused
// algorithm with head-batched cuBLAS GEMMs.
//
// This file holds the adapters (KernelCall -> launches), the cuBLAS /
// cuBLASLt / CUB calls and the element-wise kernels. The device code of the
// row kernels is in DenseRowKernels.cuh and the fused attention in
// DenseAttention.cuh, apart from the CUDA runtime, so that CPU tests run
// that very code on the host (tests/DenseCudaEmulation.h).
//
//===----------------------------------------------------------------------===//
#include "moert/backends/cuda/CudaDevice.h"
#include "moert/backends/cuda/CudaKernels.h"
#include "moert/backends/cuda/DenseAttention.cuh"
#include "moert/backends/cuda/DenseDeviceUtils.cuh"
#include "moert/backends/cuda/DenseGemm.h"
#include "moert/backends/cuda/DenseMath.h"
#include "moert/backends/cuda/DenseRowKernels.cuh"
#include "moert/exec/Executor.h"

#include <cub/device/device_radix_sort.cuh>

#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

namespace moert {
namespace cuda {

namespace {

using exec::DType;
using exec::Instruction;
using exec::KernelCall;
using exec::Program;
using exec::TensorType;
using namespace dense_device;
using namespace dense_rows;
using dense_math::addRn;
using dense_math::mulRn;
using dense_math::subRn;

cudaStream_t streamOf(const KernelCall &call) {
  return static_cast<cudaStream_t>(call.stream());
}

/// The run's record of data-dependent errors (the executor reports it).
DeviceErrorRecord *errorRecordOf(const KernelCall &call) {
  return static_cast<DeviceErrorRecord *>(call.errorRecord());
}

Status needWorkspace(const KernelCall &call, size_t bytes) {
  if (call.workspaceBytes() >= bytes && (bytes == 0 || call.workspace()))
    return Status::success();
  return internalError("needs " + std::to_string(bytes) +
                       " bytes of workspace, was given " +
                       std::to_string(call.workspaceBytes()));
}

Status zeroFill(void *data, int64_t bytes, cudaStream_t stream) {
  if (bytes > 0)
    MOERT_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(data, 0, static_cast<size_t>(bytes), stream));
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Embedding
//===----------------------------------------------------------------------===//

/// moe.embedding_at's positional rows: the sinusoidal encoding of positions
/// *first .. *first + seqLen - 1 (the offset is read on the device).
__global__ void sinusoidTableAtKernel(int64_t seqLen, int64_t dim,
                                      const int32_t *first, float *pe) {
  const int64_t base = *first < 0 ? 0 : *first;
  const int64_t count = seqLen * dim;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    pe[i] = dense_math::sinusoidalPosition(base + i / dim, i % dim, dim);
}

/// moe.embedding_at: as embeddingForwardKernel with the position rows of
/// `rows` (sinusoidal, already at the offset) or of the learned table from
/// row *first on; an offset that is negative or runs past the table is
/// recorded and nothing is written.
__global__ void embeddingAtKernel(int64_t numTokens, int64_t seqLen,
                                  int64_t dim, int64_t vocab, float factor,
                                  const int32_t *tokens, const float *table,
                                  const float *rows, const float *learned,
                                  int64_t numPositions, const int32_t *first,
                                  float *output, DeviceErrorRecord *errors) {
  const int64_t offset = *first;
  if (offset < 0 || (learned && offset + seqLen > numPositions)) {
    if (blockIdx.x == 0 && threadIdx.x == 0)
      recordError(errors, kPositionOutOfRange,
                  static_cast<uint32_t>(static_cast<int32_t>(offset)));
    return;
  }
  for (int64_t t = blockIdx.x; t < numTokens; t += gridDim.x) {
    const int32_t id = tokens[t];
    const bool valid = id >= 0 && id < vocab;
    if (!valid && threadIdx.x == 0)
      recordError(errors, kTokenOutOfVocabulary, t);
    const float *row = table + (valid ? int64_t{id} * dim : 0);
    const float *pe = learned ? learned + (offset + t % seqLen) * dim
                              : (rows ? rows + (t % seqLen) * dim : nullptr);
    float *out = output + t * dim;
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
      float value = valid ? mulRn(row[d], factor) : 0.0f;
      if (pe)
        value = addRn(value, pe[d]);
      out[d] = value;
    }
  }
}

/// moe.cache_update after the copy of the cache: rows [B, L, W] (`rowWords`
/// 4-byte words per position) into positions *first .. *first + L - 1 of
/// the result [B, T, W]; a bad offset is recorded.
__global__ void cacheUpdateKernel(int64_t batch, int64_t length, int64_t count,
                                  int64_t rowWords, const int32_t *first,
                                  const uint32_t *rows, uint32_t *cache,
                                  DeviceErrorRecord *errors) {
  const int64_t offset = *first;
  if (offset < 0 || offset + count > length) {
    if (blockIdx.x == 0 && threadIdx.x == 0)
      recordError(errors, kPositionOutOfRange,
                  static_cast<uint32_t>(static_cast<int32_t>(offset)));
    return;
  }
  const int64_t total = batch * count * rowWords;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = i / (count * rowWords), rest = i % (count * rowWords);
    cache[(b * length + offset) * rowWords + rest] = rows[i];
  }
}

/// The `position` attribute: "none" / "sinusoidal" / "learned" or 0 / 1 / 2.
Expected<int>
positionKindOf(const std::map<std::string, exec::AttrValue> &attrs) {
  auto it = attrs.find("position");
  if (it == attrs.end())
    return invalidArgument("missing attribute 'position'");
  if (const std::string *spelled = std::get_if<std::string>(&it->second)) {
    if (*spelled == "none")
      return 0;
    if (*spelled == "sinusoidal")
      return 1;
    if (*spelled == "learned")
      return 2;
    return invalidArgument("position '" + *spelled +
                           "' is not none, sinusoidal or learned");
  }
  if (const int64_t *value = std::get_if<int64_t>(&it->second))
    if (*value >= 0 && *value <= 2)
      return static_cast<int>(*value);
  return invalidArgument("position must be none, sinusoidal or learned");
}

/// Scratch of moe.embedding: the error record and, for sinusoidal
/// positions, the [S, M] table (computed once per call, not per token).
Scratch embeddingScratch(void *base, int64_t seqLen, int64_t dim,
                         bool sinusoidal, float **table) {
  Scratch scratch(base);
  scratch.take<DeviceErrorRecord>(1);
  float *pe = scratch.take<float>(sinusoidal ? seqLen * dim : 0);
  if (table)
    *table = pe;
  return scratch;
}

int64_t embeddingWorkspace(const Instruction &inst, const Program &program) {
  const TensorType &tokens = operandTypeOf(inst, program, 0);
  const TensorType &table = operandTypeOf(inst, program, 1);
  Expected<int> kind = positionKindOf(inst.attrs);
  const bool sinusoidal = kind.ok() && *kind == 1;
  return static_cast<int64_t>(
      embeddingScratch(nullptr, lastDim(tokens),
                       table.shape.size() == 2 ? table.shape[1] : 0, sinusoidal,
                       nullptr)
          .bytes());
}

Status runEmbedding(KernelCall &call) {
  MOERT_RETURN_IF_ERROR(call.expectOperand(0, DType::I32));
  MOERT_ASSIGN_OR_RETURN(int kind, positionKindOf(call.instruction().attrs));
  const TensorType &tokens = call.operandType(0);
  const TensorType &table = call.operandType(1);
  if (table.shape.size() != 2)
    return invalidArgument("the table must be [V, M], found " + table.str());
  const int64_t numTokens = tokens.numElements(), seqLen = lastDim(tokens);
  const int64_t vocab = table.shape[0], dim = table.shape[1];
  if (kind == 2 && call.numOperands() != 3)
    return invalidArgument("learned positions need the position table as "
                           "operand #2");
  cudaStream_t stream = streamOf(call);
  float *sinusoid = nullptr;
  const Scratch scratch =
      embeddingScratch(call.workspace(), seqLen, dim, kind == 1, &sinusoid);
  MOERT_RETURN_IF_ERROR(needWorkspace(call, scratch.bytes()));
  DeviceErrorRecord *errors = errorRecordOf(call);
  if (numTokens == 0 || dim == 0)
    return Status::success();
  const float *positions = nullptr;
  if (kind == 1) {
    sinusoidTableKernel<<<gridFor(seqLen * dim), kThreads, 0, stream>>>(
        seqLen, dim, sinusoid);
    MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    positions = sinusoid;
  } else if (kind == 2) {
    positions = call.operand<float>(2);
  }
  const float factor =
      call.flag("scaled") ? std::sqrt(static_cast<float>(dim)) : 1.0f;
  const unsigned blocks =
      static_cast<unsigned>(std::min<int64_t>(numTokens, 1 << 20));
  embeddingForwardKernel<<<blocks, rowThreads(dim, 256), 0, stream>>>(
      numTokens, seqLen, dim, vocab, factor, call.operand<int32_t>(0),
      call.operand<float>(1), positions, call.result<float>(0), errors);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

Status runEmbeddingAt(KernelCall &call) {
  MOERT_RETURN_IF_ERROR(call.expectOperand(0, DType::I32));
  MOERT_ASSIGN_OR_RETURN(int kind, positionKindOf(call.instruction().attrs));
  const TensorType &tokens = call.operandType(0);
  const TensorType &table = call.operandType(1);
  if (table.shape.size() != 2)
    return invalidArgument("the table must be [V, M], found " + table.str());
  const int64_t numTokens = tokens.numElements(), seqLen = lastDim(tokens);
  const int64_t vocab = table.shape[0], dim = table.shape[1];
  if (kind == 2 && call.numOperands() != 4)
    return invalidArgument("learned positions need the position table as "
                           "operand #2");
  const int32_t *offset = call.operand<int32_t>(call.numOperands() - 1);
  cudaStream_t stream = streamOf(call);
  float *sinusoid = nullptr;
  const Scratch scratch =
      embeddingScratch(call.workspace(), seqLen, dim, kind == 1, &sinusoid);
  MOERT_RETURN_IF_ERROR(needWorkspace(call, scratch.bytes()));
  DeviceErrorRecord *errors = errorRecordOf(call);
  if (numTokens == 0 || dim == 0)
    return Status::success();
  if (kind == 1) {
    sinusoidTableAtKernel<<<gridFor(seqLen * dim), kThreads, 0, stream>>>(
        seqLen, dim, offset, sinusoid);
    MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  }
  const float *learned = kind == 2 ? call.operand<float>(2) : nullptr;
  const int64_t numPositions =
      kind == 2 ? call.operandType(2).shape[0] : int64_t{0};
  const float factor =
      call.flag("scaled") ? std::sqrt(static_cast<float>(dim)) : 1.0f;
  const unsigned blocks =
      static_cast<unsigned>(std::min<int64_t>(numTokens, 1 << 20));
  embeddingAtKernel<<<blocks, rowThreads(dim, 256), 0, stream>>>(
      numTokens, seqLen, dim, vocab, factor, call.operand<int32_t>(0),
      call.operand<float>(1), sinusoid, learned, numPositions, offset,
      call.result<float>(0), errors);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

Status runCacheUpdate(KernelCall &call) {
  const TensorType &cache = call.operandType(0), &rows = call.operandType(1);
  const int64_t batch = cache.shape[0], length = cache.shape[1],
                count = rows.shape[1];
  const int64_t rowBytes = cache.shape[2] * dtypeSize(cache.dtype);
  if (rowBytes % 4 != 0)
    return invalidArgument("the cache's rows must be whole 4-byte words, "
                           "found " +
                           cache.str());
  cudaStream_t stream = streamOf(call);
  DeviceErrorRecord *errors = errorRecordOf(call);
  if (call.result<void>(0) != call.operand<void>(0))
    MOERT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(
        call.result<void>(0), call.operand<void>(0),
        static_cast<size_t>(cache.byteSize()), cudaMemcpyDeviceToDevice,
        stream));
  if (batch * count * rowBytes == 0)
    return Status::success();
  cacheUpdateKernel<<<gridFor(batch * count * (rowBytes / 4)), kThreads, 0,
                      stream>>>(batch, length, count, rowBytes / 4,
                                call.operand<int32_t>(2),
                                call.operand<uint32_t>(1),
                                call.result<uint32_t>(0), errors);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

// moe.embedding_grad: the CPU adds the gradient rows of each vocabulary
// row's tokens in token order. Here a stable radix sort of (token id,
// position) pairs groups the positions of every id in increasing order;
// then one thread per (id, column) adds its group's rows in that order, so
// every element of the table gradient is the CPU's sum, bit for bit, with
// neither float atomics nor a pass over the whole vocabulary per token.

int endBitFor(int64_t vocab) {
  int bits = 1;
  while (bits < 32 && (int64_t{1} << bits) <= vocab)
    ++bits;
  return bits;
}

struct EmbeddingGradScratch {
  DeviceErrorRecord *errors = nullptr;
  uint32_t *keys[2] = {nullptr, nullptr};
  int32_t *positions[2] = {nullptr, nullptr};
  void *sortTemp = nullptr;
  size_t sortTempBytes = 0;
};

/// CUB's scratch for sorting `count` pairs; the query needs the CUDA
/// runtime but no memory. Falls back to a bound when it fails.
size_t sortTempBytes(int64_t count, int endBit) {
  size_t bytes = 0;
  cub::DoubleBuffer<uint32_t> keys(nullptr, nullptr);
  cub::DoubleBuffer<int32_t> values(nullptr, nullptr);
  if (cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys, values,
                                      static_cast<int>(count), 0,
                                      endBit) != cudaSuccess) {
    cudaGetLastError();
    return static_cast<size_t>(count) * 8 + (size_t{1} << 20);
  }
  return bytes;
}

Scratch embeddingGradScratch(void *base, int64_t count, int64_t vocab,
                             EmbeddingGradScratch *out) {
  Scratch scratch(base);
  EmbeddingGradScratch pieces;
  pieces.errors = scratch.take<DeviceErrorRecord>(1);
  for (int i = 0; i < 2; ++i) {
    pieces.keys[i] = scratch.take<uint32_t>(count);
    pieces.positions[i] = scratch.take<int32_t>(count);
  }
  pieces.sortTempBytes = count ? sortTempBytes(count, endBitFor(vocab)) : 0;
  pieces.sortTemp =
      scratch.take<char>(static_cast<int64_t>(pieces.sortTempBytes));
  if (out)
    *out = pieces;
  return scratch;
}

int64_t embeddingGradWorkspace(const Instruction &inst,
                               const Program &program) {
  const TensorType &tokens = operandTypeOf(inst, program, 1);
  const TensorType &table = resultTypeOf(inst, program, 0);
  return static_cast<int64_t>(embeddingGradScratch(nullptr,
                                                   tokens.numElements(),
                                                   table.shape[0], nullptr)
                                  .bytes());
}

Status runEmbeddingGrad(KernelCall &call) {
  MOERT_RETURN_IF_ERROR(call.expectOperand(1, DType::I32));
  const TensorType &tokens = call.operandType(1);
  const TensorType &table = call.resultType(0);
  if (table.shape.size() != 2)
    return invalidArgument("the table gradient must be [V, M], found " +
                           table.str());
  const int64_t count = tokens.numElements();
  const int64_t vocab = table.shape[0], dim = table.shape[1];
  if (count > INT32_MAX || vocab >= INT32_MAX)
    return unimplemented("embedding_grad on CUDA takes fewer than 2^31 "
                         "tokens and vocabulary rows");
  cudaStream_t stream = streamOf(call);
  EmbeddingGradScratch s;
  const Scratch scratch =
      embeddingGradScratch(call.workspace(), count, vocab, &s);
  MOERT_RETURN_IF_ERROR(needWorkspace(call, scratch.bytes()));
  s.errors = errorRecordOf(call);
  float *tableGrad = call.result<float>(0);
  MOERT_RETURN_IF_ERROR(zeroFill(tableGrad, table.byteSize(), stream));
  if (count == 0 || dim == 0)
    return Status::success();

  embeddingGradKeysKernel<<<gridFor(count), kThreads, 0, stream>>>(
      count, vocab, call.operand<int32_t>(1), s.keys[0], s.positions[0],
      s.errors);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  cub::DoubleBuffer<uint32_t> keys(s.keys[0], s.keys[1]);
  cub::DoubleBuffer<int32_t> positions(s.positions[0], s.positions[1]);
  size_t tempBytes = s.sortTempBytes;
  MOERT_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(
      s.sortTemp, tempBytes, keys, positions, static_cast<int>(count), 0,
      endBitFor(vocab), stream));

  const float factor =
      call.flag("scaled") ? std::sqrt(static_cast<float>(dim)) : 1.0f;
  const int threads = rowThreads(dim, 128);
  const dim3 grid(static_cast<unsigned>(count),
                  static_cast<unsigned>((dim + threads - 1) / threads));
  embeddingGradSumKernel<<<grid, threads, 0, stream>>>(
      count, dim, vocab, factor, keys.Current(), positions.Current(),
      call.operand<float>(0), tableGrad);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

Status runPositionGrad(KernelCall &call) {
  const TensorType &dy = call.operandType(0);
  const TensorType &out = call.resultType(0);
  if (dy.shape.size() < 2)
    return invalidArgument("the gradient must be [..., S, M], found " +
                           dy.str());
  const int64_t dim = lastDim(dy), seqLen = dy.shape[dy.shape.size() - 2];
  const int64_t batch = seqLen ? leadingElements(dy) / seqLen : 0;
  const int64_t outRows = dim ? out.numElements() / dim : 0;
  cudaStream_t stream = streamOf(call);
  MOERT_RETURN_IF_ERROR(zeroFill(call.result<void>(0), out.byteSize(), stream));
  const int64_t rows = std::min(seqLen, outRows);
  if (rows * dim == 0)
    return Status::success();
  positionGradKernel<<<gridFor(rows * dim), kThreads, 0, stream>>>(
      batch, seqLen, rows, dim, call.operand<float>(0), call.result<float>(0));
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Linear (cuBLASLt, fp32 compute without TF32; compute_type bf16 / f16:
// cublasGemmEx on 16-bit copies of the inputs, fp32 accumulation)
//===----------------------------------------------------------------------===//

/// cuBLASLt's workspace: what NVIDIA recommends for Hopper (32 MiB); the
/// executor's workspace is shared by all calls, so it is paid once.
constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;

/// Reduced-precision copies of a linear layer's GEMM inputs (compute_type
/// bf16 / f16), after cuBLASLt's workspace.
struct LoweredLinear {
  void *input = nullptr, *weight = nullptr, *outputGrad = nullptr;
};

Scratch linearScratch(void *base, int64_t rows, int64_t in, int64_t out,
                      ComputeType compute, bool backward,
                      LoweredLinear *lowered) {
  Scratch scratch(base);
  scratch.take<char>(static_cast<int64_t>(kLtWorkspaceBytes));
  if (compute == ComputeType::F32)
    return scratch;
  LoweredLinear low;
  low.input = scratch.take<uint16_t>(rows * in);
  low.weight = scratch.take<uint16_t>(in * out);
  if (backward)
    low.outputGrad = scratch.take<uint16_t>(rows * out);
  if (lowered)
    *lowered = low;
  return scratch;
}

int64_t linearWorkspaceOf(const Instruction &inst, const Program &program,
                          bool backward) {
  const TensorType &input = operandTypeOf(inst, program, backward ? 1 : 0);
  const TensorType &weight = operandTypeOf(inst, program, backward ? 2 : 1);
  const int64_t in = lastDim(input);
  const int64_t out = weight.numElements() / std::max<int64_t>(in, 1);
  return static_cast<int64_t>(
      linearScratch(nullptr, leadingElements(input), in, out,
                    computeTypeOf(inst), backward, nullptr)
          .bytes());
}

int64_t linearWorkspace(const Instruction &inst, const Program &program) {
  return linearWorkspaceOf(inst, program, false);
}

int64_t linearGradWorkspace(const Instruction &inst, const Program &program) {
  return linearWorkspaceOf(inst, program, true);
}

/// The largest power of two (up to 256) dividing the address.
uint32_t alignmentOf(const void *pointer) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(pointer);
  uint32_t alignment = 256;
  while (alignment > 4 && address % alignment)
    alignment /= 2;
  return alignment;
}

/// Heuristic choices are cached per shape, layout and alignment: the
/// heuristic query costs tens of microseconds of host time per call.
using AlgoKey =
    std::tuple<const void *, int64_t, int64_t, int64_t, int64_t, int64_t,
               int64_t, int, int, int, uint32_t, uint32_t, uint32_t, size_t>;

struct AlgoCache {
  std::mutex mutex;
  std::map<AlgoKey, std::pair<bool, cublasLtMatmulAlgo_t>> algos;
};
AlgoCache &algoCache() {
  static AlgoCache cache;
  return cache;
}

/// Owns the descriptors of one cuBLASLt call.
struct LtDescriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  ~LtDescriptors() {
    if (preference)
      cublasLtMatmulPreferenceDestroy(preference);
    if (c)
      cublasLtMatrixLayoutDestroy(c);
    if (b)
      cublasLtMatrixLayoutDestroy(b);
    if (a)
      cublasLtMatrixLayoutDestroy(a);
    if (op)
      cublasLtMatmulDescDestroy(op);
  }
};

/// C = op(A) op(B) (+ bias[m] broadcast over the columns of C, as the
/// cuBLASLt bias epilogue does), with beta = 0. Sets *done to false (and
/// enqueues nothing) when cuBLASLt has no algorithm for it.
Status ltMatmul(CudaDevice &dev, cudaStream_t stream, const ColumnMajorGemm &g,
                const float *a, const float *b, float *c, const float *bias,
                void *workspace, size_t workspaceBytes, bool *done) {
  *done = false;
  LtDescriptors d;
  MOERT_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t transA = g.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t transB = g.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  MOERT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      d.op, CUBLASLT_MATMUL_DESC_TRANSA, &transA, sizeof(transA)));
  MOERT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      d.op, CUBLASLT_MATMUL_DESC_TRANSB, &transB, sizeof(transB)));
  const cublasLtEpilogue_t epilogue =
      bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  MOERT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  if (bias)
    MOERT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  MOERT_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(
      &d.a, CUDA_R_32F, g.transA ? g.k : g.m, g.transA ? g.m : g.k, g.lda));
  MOERT_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(
      &d.b, CUDA_R_32F, g.transB ? g.n : g.k, g.transB ? g.k : g.n, g.ldb));
  MOERT_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatrixLayoutCreate(&d.c, CUDA_R_32F, g.m, g.n, g.ldc));

  const uint32_t alignA = alignmentOf(a), alignB = alignmentOf(b),
                 alignC = alignmentOf(c);
  const AlgoKey key{dev.cublasLt(),
                    g.m,
                    g.n,
                    g.k,
                    g.lda,
                    g.ldb,
                    g.ldc,
                    g.transA,
                    g.transB,
                    static_cast<int>(epilogue),
                    alignA,
                    alignB,
                    alignC,
                    workspaceBytes};
  bool found = false;
  cublasLtMatmulAlgo_t algo{};
  {
    AlgoCache &cache = algoCache();
    std::lock_guard<std::mutex> lock(cache.mutex);
    auto it = cache.algos.find(key);
    if (it != cache.algos.end()) {
      found = it->second.first;
      algo = it->second.second;
    } else {
      MOERT_CUBLAS_RETURN_IF_ERROR(
          cublasLtMatmulPreferenceCreate(&d.preference));
      const uint64_t maxBytes = workspaceBytes;
      MOERT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
          d.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &maxBytes,
          sizeof(maxBytes)));
      const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t>
          alignments[] = {{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignA},
                          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignB},
                          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignC},
                          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignC}};
      for (const auto &[attribute, value] : alignments)
        MOERT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
            d.preference, attribute, &value, sizeof(value)));
      cublasLtMatmulHeuristicResult_t result{};
      int returned = 0;
      const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
          dev.cublasLt(), d.op, d.a, d.b, d.c, d.c, d.preference, 1, &result,
          &returned);
      found = status == CUBLAS_STATUS_SUCCESS && returned > 0;
      if (found)
        algo = result.algo;
      cache.algos.emplace(key, std::make_pair(found, algo));
    }
  }
  if (!found)
    return Status::success();
  const float alpha = 1.0f, beta = 0.0f;
  MOERT_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmul(dev.cublasLt(), d.op, &alpha, a, d.a, b, d.b, &beta, c,
                     d.c, c, d.c, &algo, workspace, workspaceBytes, stream));
  *done = true;
  return Status::success();
}

/// out[r, :] = bias for every row (the fallback's beta = 1 start).
__global__ void broadcastRowsKernel(int64_t rows, int64_t cols,
                                    const float *bias, float *out) {
  const int64_t count = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = bias[i % cols];
}

/// C = op(A) op(B) (+ bias): cuBLASLt (with the bias epilogue) when it has
/// an algorithm for the shape and alignments, else cublasSgemm on C filled
/// with the bias and beta = 1 (how dense::linearForward adds it).
Status gemm(KernelCall &call, const ColumnMajorGemm &g, const float *a,
            const float *b, float *c, const float *bias) {
  CudaDevice &dev = cudaDeviceOf(call.device());
  cudaStream_t stream = streamOf(call);
  bool done = false;
  // The bias epilogue wants a 16-byte aligned vector.
  if (!bias || alignmentOf(bias) >= 16) {
    MOERT_RETURN_IF_ERROR(needWorkspace(call, kLtWorkspaceBytes));
    MOERT_RETURN_IF_ERROR(ltMatmul(dev, stream, g, a, b, c, bias,
                                   call.workspace(), kLtWorkspaceBytes, &done));
    if (done)
      return Status::success();
  }
  if (g.m > INT32_MAX || g.n > INT32_MAX || g.k > INT32_MAX ||
      g.lda > INT32_MAX || g.ldb > INT32_MAX || g.ldc > INT32_MAX)
    return unimplemented("GEMM of " + std::to_string(g.m) + " x " +
                         std::to_string(g.n) + " x " + std::to_string(g.k) +
                         " exceeds cuBLAS's 32-bit sizes");
  float beta = 0.0f;
  if (bias) {
    broadcastRowsKernel<<<gridFor(g.m * g.n), kThreads, 0, stream>>>(g.n, g.m,
                                                                     bias, c);
    MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    beta = 1.0f;
  }
  const float alpha = 1.0f;
  MOERT_CUBLAS_RETURN_IF_ERROR(
      cublasSgemm(dev.cublas(), g.transA ? CUBLAS_OP_T : CUBLAS_OP_N,
                  g.transB ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(g.m),
                  static_cast<int>(g.n), static_cast<int>(g.k), &alpha, a,
                  static_cast<int>(g.lda), b, static_cast<int>(g.ldb), &beta, c,
                  static_cast<int>(g.ldc)));
  return Status::success();
}

/// C = op(A) op(B) (+ bias) on bf16 / f16 A and B with fp32 accumulation
/// and an fp32 C (cublasGemmEx): the bias is broadcast into C first and
/// accumulated onto (beta = 1).
Status reducedGemm(KernelCall &call, const ColumnMajorGemm &g, const void *a,
                   const void *b, float *c, const float *bias,
                   ComputeType compute) {
  CudaDevice &dev = cudaDeviceOf(call.device());
  cudaStream_t stream = streamOf(call);
  if (g.m > INT32_MAX || g.n > INT32_MAX || g.k > INT32_MAX ||
      g.lda > INT32_MAX || g.ldb > INT32_MAX || g.ldc > INT32_MAX)
    return unimplemented("GEMM of " + std::to_string(g.m) + " x " +
                         std::to_string(g.n) + " x " + std::to_string(g.k) +
                         " exceeds cuBLAS's 32-bit sizes");
  float beta = 0.0f;
  if (bias) {
    broadcastRowsKernel<<<gridFor(g.m * g.n), kThreads, 0, stream>>>(g.n, g.m,
                                                                     bias, c);
    MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    beta = 1.0f;
  }
  const float alpha = 1.0f;
  const cudaDataType_t type =
      compute == ComputeType::BF16 ? CUDA_R_16BF : CUDA_R_16F;
  MOERT_CUBLAS_RETURN_IF_ERROR(cublasGemmEx(
      dev.cublas(), g.transA ? CUBLAS_OP_T : CUBLAS_OP_N,
      g.transB ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(g.m),
      static_cast<int>(g.n), static_cast<int>(g.k), &alpha, a, type,
      static_cast<int>(g.lda), b, type, static_cast<int>(g.ldb), &beta, c,
      CUDA_R_32F, static_cast<int>(g.ldc), CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT));
  return Status::success();
}

struct LinearDims {
  int64_t rows, in, out;
  bool transposed;
};

Expected<LinearDims> linearDims(const KernelCall &call, size_t inputOperand) {
  const TensorType &input = call.operandType(inputOperand);
  const TensorType &weight = call.operandType(inputOperand + 1);
  if (weight.shape.size() != 2)
    return invalidArgument("the weight must be 2-D, found " + weight.str());
  LinearDims dims;
  dims.transposed = call.flag("transpose_weight");
  dims.rows = leadingElements(input);
  dims.in = lastDim(input);
  dims.out = dims.transposed ? weight.shape[0] : weight.shape[1];
  if ((dims.transposed ? weight.shape[1] : weight.shape[0]) != dims.in)
    return invalidArgument("input " + input.str() + " does not match weight " +
                           weight.str());
  return dims;
}

const float *linearOperand(LinearOperand which, const float *input,
                           const float *weight, const float *outputGrad) {
  switch (which) {
  case LinearOperand::Input:
    return input;
  case LinearOperand::Weight:
    return weight;
  case LinearOperand::OutputGrad:
    return outputGrad;
  }
  return nullptr;
}

Status runLinear(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(LinearDims dims, linearDims(call, 0));
  const float *x = call.operand<float>(0), *w = call.operand<float>(1);
  const float *bias =
      call.numOperands() == 3 ? call.operand<float>(2) : nullptr;
  float *y = call.result<float>(0);
  cudaStream_t stream = streamOf(call);
  if (dims.rows == 0 || dims.out == 0)
    return Status::success();
  if (dims.in == 0) { // an empty product: the bias, or zeros
    if (!bias)
      return zeroFill(y, dims.rows * dims.out * 4, stream);
    broadcastRowsKernel<<<gridFor(dims.rows * dims.out), kThreads, 0, stream>>>(
        dims.rows, dims.out, bias, y);
    MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return Status::success();
  }
  const ColumnMajorGemm g =
      linearForwardGemm(dims.rows, dims.in, dims.out, dims.transposed);
  MOERT_ASSIGN_OR_RETURN(ComputeType compute, computeTypeOf(call));
  if (compute != ComputeType::F32) {
    LoweredLinear low;
    const Scratch scratch = linearScratch(call.workspace(), dims.rows, dims.in,
                                          dims.out, compute, false, &low);
    MOERT_RETURN_IF_ERROR(needWorkspace(call, scratch.bytes()));
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute,
                                             dims.rows * dims.in, x,
                                             low.input));
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute,
                                             dims.in * dims.out, w,
                                             low.weight));
    auto lowered = [&](LinearOperand which) -> const void * {
      return which == LinearOperand::Input ? low.input : low.weight;
    };
    return reducedGemm(call, g, lowered(g.a), lowered(g.b), y, bias, compute);
  }
  return gemm(call, g, linearOperand(g.a, x, w, nullptr),
              linearOperand(g.b, x, w, nullptr), y, bias);
}

Status runLinearGrad(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(LinearDims dims, linearDims(call, 1));
  const float *dy = call.operand<float>(0), *x = call.operand<float>(1),
              *w = call.operand<float>(2);
  float *dx = call.result<float>(0), *dw = call.result<float>(1);
  cudaStream_t stream = streamOf(call);
  if (dims.rows == 0 || dims.in == 0 || dims.out == 0) {
    MOERT_RETURN_IF_ERROR(zeroFill(dx, dims.rows * dims.in * 4, stream));
    return zeroFill(dw, dims.in * dims.out * 4, stream);
  }
  const ColumnMajorGemm gx =
      linearInputGradGemm(dims.rows, dims.in, dims.out, dims.transposed);
  const ColumnMajorGemm gw =
      linearWeightGradGemm(dims.rows, dims.in, dims.out, dims.transposed);
  MOERT_ASSIGN_OR_RETURN(ComputeType compute, computeTypeOf(call));
  if (compute != ComputeType::F32) {
    LoweredLinear low;
    const Scratch scratch = linearScratch(call.workspace(), dims.rows, dims.in,
                                          dims.out, compute, true, &low);
    MOERT_RETURN_IF_ERROR(needWorkspace(call, scratch.bytes()));
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute,
                                             dims.rows * dims.out, dy,
                                             low.outputGrad));
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute,
                                             dims.rows * dims.in, x,
                                             low.input));
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute,
                                             dims.in * dims.out, w,
                                             low.weight));
    auto lowered = [&](LinearOperand which) -> const void * {
      switch (which) {
      case LinearOperand::Input:
        return low.input;
      case LinearOperand::Weight:
        return low.weight;
      case LinearOperand::OutputGrad:
        return low.outputGrad;
      }
      return nullptr;
    };
    MOERT_RETURN_IF_ERROR(reducedGemm(call, gx, lowered(gx.a), lowered(gx.b),
                                      dx, nullptr, compute));
    return reducedGemm(call, gw, lowered(gw.a), lowered(gw.b), dw, nullptr,
                       compute);
  }
  MOERT_RETURN_IF_ERROR(gemm(call, gx, linearOperand(gx.a, x, w, dy),
                             linearOperand(gx.b, x, w, dy), dx, nullptr));
  return gemm(call, gw, linearOperand(gw.a, x, w, dy),
              linearOperand(gw.b, x, w, dy), dw, nullptr);
}

//===----------------------------------------------------------------------===//
// Column sums over rows (bias_grad): per-chunk double partial sums, then
// the chunks in order. dense::sumRows adds all rows in order in double; the
// two orders round differently only in double, below float resolution.
//===----------------------------------------------------------------------===//

constexpr int64_t kSumRowsChunk = 128;

int64_t sumRowsChunkRows(int64_t rows) {
  // At most 65535 chunks (the grid's y dimension).
  return std::max<int64_t>(kSumRowsChunk, (rows + 65534) / 65535);
}

int64_t sumRowsWorkspaceBytes(int64_t rows, int64_t cols) {
  const int64_t chunks = (rows + sumRowsChunkRows(rows) - 1) /
                         std::max<int64_t>(sumRowsChunkRows(rows), 1);
  Scratch scratch;
  scratch.take<double>(chunks * cols);
  return static_cast<int64_t>(scratch.bytes());
}

Status sumRows(cudaStream_t stream, int64_t rows, int64_t cols,
               const float *matrix, float *sums, void *workspace) {
  if (cols == 0)
    return Status::success();
  if (rows == 0)
    return zeroFill(sums, cols * 4, stream);
  const int64_t chunkRows = sumRowsChunkRows(rows);
  const int64_t chunks = (rows + chunkRows - 1) / chunkRows;
  double *partial = static_cast<double *>(workspace);
  const dim3 grid(static_cast<unsigned>((cols + kThreads - 1) / kThreads),
                  static_cast<unsigned>(chunks));
  columnPartialSumsKernel<<<grid, kThreads, 0, stream>>>(rows, cols, chunkRows,
                                                         matrix, partial);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  columnTotalsKernel<<<gridFor(cols), kThreads, 0, stream>>>(chunks, cols,
                                                             partial, sums);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

int64_t biasGradWorkspace(const Instruction &inst, const Program &program) {
  const TensorType &dy = operandTypeOf(inst, program, 0);
  return sumRowsWorkspaceBytes(leadingElements(dy), lastDim(dy));
}

Status runBiasGrad(KernelCall &call) {
  const TensorType &dy = call.operandType(0);
  const int64_t rows = leadingElements(dy), cols = lastDim(dy);
  MOERT_RETURN_IF_ERROR(needWorkspace(
      call, static_cast<size_t>(sumRowsWorkspaceBytes(rows, cols))));
  return sumRows(streamOf(call), rows, cols, call.operand<float>(0),
                 call.result<float>(0), call.workspace());
}

//===----------------------------------------------------------------------===//
// Layer norm: one block per row, two-pass statistics in float (the CPU's
// choice: no cancellation for rows with a large mean).
//===----------------------------------------------------------------------===//

Status runLayerNorm(KernelCall &call) {
  const TensorType &x = call.operandType(0);
  MOERT_ASSIGN_OR_RETURN(double eps, call.floatAttr("epsilon"));
  const int64_t rows = leadingElements(x), dim = lastDim(x);
  if (rows == 0)
    return Status::success();
  cudaStream_t stream = streamOf(call);
  const unsigned blocks =
      static_cast<unsigned>(std::min<int64_t>(rows, 1 << 20));
  layerNormForwardKernel<<<blocks, rowThreads(dim, 512), 0, stream>>>(
      rows, dim, static_cast<float>(eps), call.operand<float>(0),
      call.operand<float>(1), call.operand<float>(2), call.result<float>(0));
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

Scratch layerNormGradScratch(void *base, int64_t rows, int64_t dim,
                             float2 **stats, float **partial) {
  Scratch scratch(base);
  float2 *s = scratch.take<float2>(rows);
  const int64_t numBlocks =
      (rows + kLayerNormRowBlock - 1) / kLayerNormRowBlock;
  float *p = scratch.take<float>(numBlocks * 2 * dim);
  if (stats)
    *stats = s;
  if (partial)
    *partial = p;
  return scratch;
}

int64_t layerNormGradWorkspace(const Instruction &inst,
                               const Program &program) {
  const TensorType &x = operandTypeOf(inst, program, 1);
  return static_cast<int64_t>(layerNormGradScratch(nullptr, leadingElements(x),
                                                   lastDim(x), nullptr, nullptr)
                                  .bytes());
}

Status runLayerNormGrad(KernelCall &call) {
  const TensorType &x = call.operandType(1);
  MOERT_ASSIGN_OR_RETURN(double eps, call.floatAttr("epsilon"));
  const int64_t rows = leadingElements(x), dim = lastDim(x);
  cudaStream_t stream = streamOf(call);
  float2 *stats = nullptr;
  float *partial = nullptr;
  const Scratch scratch =
      layerNormGradScratch(call.workspace(), rows, dim, &stats, &partial);
  MOERT_RETURN_IF_ERROR(needWorkspace(call, scratch.bytes()));
  if (dim == 0)
    return Status::success();
  if (rows == 0) {
    MOERT_RETURN_IF_ERROR(zeroFill(call.result<void>(1), dim * 4, stream));
    return zeroFill(call.result<void>(2), dim * 4, stream);
  }
  const unsigned blocks =
      static_cast<unsigned>(std::min<int64_t>(rows, 1 << 20));
  layerNormInputGradKernel<<<blocks, rowThreads(dim, 512), 0, stream>>>(
      rows, dim, static_cast<float>(eps), call.operand<float>(0),
      call.operand<float>(1), call.operand<float>(2), call.result<float>(0),
      stats);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  const int64_t numBlocks =
      (rows + kLayerNormRowBlock - 1) / kLayerNormRowBlock;
  const dim3 grid(static_cast<unsigned>((dim + kThreads - 1) / kThreads),
                  static_cast<unsigned>(std::min<int64_t>(numBlocks, 65535)));
  layerNormColumnPartialKernel<<<grid, kThreads, 0, stream>>>(
      rows, dim, numBlocks, call.operand<float>(0), call.operand<float>(1),
      stats, partial);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  layerNormColumnTotalsKernel<<<gridFor(dim), kThreads, 0, stream>>>(
      numBlocks, dim, partial, call.result<float>(1), call.result<float>(2));
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Element-wise: activations, add, padding mask
//===----------------------------------------------------------------------===//

/// Whether every pointer is 16-byte aligned (float4 access).
bool vectorizable(std::initializer_list<const void *> pointers) {
  for (const void *p : pointers)
    if (reinterpret_cast<uintptr_t>(p) % 16)
      return false;
  return true;
}

/// out[i] = op(a[i]) or op(a[i], b[i]) (b may be null for unary ops);
/// float4 loads and stores when `vector` (pointers 16-byte aligned), the
/// tail element by element. out may alias a or b exactly.
template <typename Op>
__global__ void mapKernel(int64_t count, bool vector, const float *a,
                          const float *b, float *out, Op op) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  int64_t first = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  int64_t scalarFrom = 0;
  if (vector) {
    const int64_t quads = count / 4;
    const float4 *a4 = reinterpret_cast<const float4 *>(a);
    const float4 *b4 = reinterpret_cast<const float4 *>(b);
    float4 *out4 = reinterpret_cast<float4 *>(out);
    for (int64_t i = first; i < quads; i += stride) {
      const float4 x = a4[i];
      const float4 y = b ? b4[i] : make_float4(0, 0, 0, 0);
      out4[i] =
          make_float4(op(x.x, y.x), op(x.y, y.y), op(x.z, y.z), op(x.w, y.w));
    }
    scalarFrom = quads * 4;
  }
  for (int64_t i = scalarFrom + first; i < count; i += stride)
    out[i] = op(a[i], b ? b[i] : 0.0f);
}

template <typename Op>
Status launchMap(cudaStream_t stream, int64_t count, const float *a,
                 const float *b, float *out, Op op) {
  if (count <= 0)
    return Status::success();
  const bool vector = vectorizable({a, b, out});
  mapKernel<<<gridFor(vector ? (count + 3) / 4 : count), kThreads, 0, stream>>>(
      count, vector, a, b, out, op);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

template <int Kind> struct ActivationForwardOp {
  __device__ float operator()(float z, float) const {
    return dense_math::activationValue<Kind>(z);
  }
};
/// (dy, z) -> dy * act'(z).
template <int Kind> struct ActivationBackwardOp {
  __device__ float operator()(float dy, float z) const {
    return dy * dense_math::activationDerivative<Kind>(z);
  }
};
struct AddOp {
  __device__ float operator()(float x, float y) const { return x + y; }
};

Expected<int> activationKindOf(const KernelCall &call) {
  if (Expected<std::string> spelled = call.stringAttr("kind"); spelled.ok()) {
    static const char *const kNames[] = {"relu", "gelu", "gelu_tanh", "silu"};
    for (int kind = 0; kind < 4; ++kind)
      if (*spelled == kNames[kind])
        return kind;
    return invalidArgument("activation '" + *spelled +
                           "' is not relu, gelu, gelu_tanh or silu");
  }
  MOERT_ASSIGN_OR_RETURN(int64_t kind, call.intAttr("kind"));
  if (kind < 0 || kind > 3)
    return invalidArgument("activation kind " + std::to_string(kind) +
                           " is not one of relu(0), gelu(1), gelu_tanh(2), "
                           "silu(3)");
  return static_cast<int>(kind);
}

template <template <int> class Op>
Status launchActivation(int kind, cudaStream_t stream, int64_t count,
                        const float *a, const float *b, float *out) {
  switch (kind) {
  case dense_math::kRelu:
    return launchMap(stream, count, a, b, out, Op<dense_math::kRelu>());
  case dense_math::kGelu:
    return launchMap(stream, count, a, b, out, Op<dense_math::kGelu>());
  case dense_math::kGeluTanh:
    return launchMap(stream, count, a, b, out, Op<dense_math::kGeluTanh>());
  default:
    return launchMap(stream, count, a, b, out, Op<dense_math::kSilu>());
  }
}

Status runActivation(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(int kind, activationKindOf(call));
  return launchActivation<ActivationForwardOp>(
      kind, streamOf(call), call.operandType(0).numElements(),
      call.operand<float>(0), nullptr, call.result<float>(0));
}

Status runActivationGrad(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(int kind, activationKindOf(call));
  // Operand 0 is dy, operand 1 the activation's input.
  return launchActivation<ActivationBackwardOp>(
      kind, streamOf(call), call.operandType(1).numElements(),
      call.operand<float>(0), call.operand<float>(1), call.result<float>(0));
}

Status runAdd(KernelCall &call) {
  return launchMap(streamOf(call), call.operandType(0).numElements(),
                   call.operand<float>(0), call.operand<float>(1),
                   call.result<float>(0), AddOp());
}

__global__ void paddingMaskKernel(int64_t count, const int32_t *tokens,
                                  int64_t padId, uint8_t *mask) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    mask[i] = int64_t{tokens[i]} != padId ? 1 : 0;
}

Status runPaddingMask(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(int64_t padId, call.intAttr("pad_id"));
  const int64_t count = call.operandType(0).numElements();
  if (count == 0)
    return Status::success();
  cudaStream_t stream = streamOf(call);
  paddingMaskKernel<<<gridFor(count), kThreads, 0, stream>>>(
      count, call.operand<int32_t>(0), padId, call.result<uint8_t>(0));
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Dropout: the CPU's mask, bit for bit (DenseMath.h); one thread per Philox
// block of 4 logical elements.
//===----------------------------------------------------------------------===//

__global__ void dropoutKernel(dense_math::DropoutBlockParams params,
                              uint64_t firstBlock, uint64_t blocks,
                              const float *in, float *out) {
  const uint64_t stride = uint64_t{gridDim.x} * blockDim.x;
  for (uint64_t b = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x; b < blocks;
       b += stride)
    dense_math::dropoutPhiloxBlock(params, firstBlock + b, in, out);
}

/// Dropout and its gradient apply the same mask (dense::dropoutBackward is
/// dropoutForward on dy). With `shard_axes` the operand is this rank's
/// token shard: its logical elements start at shard index x local count.
Status runDropoutMask(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(double rate, call.floatAttr("rate"));
  MOERT_ASSIGN_OR_RETURN(int64_t stream, call.intAttr("stream"));
  MOERT_ASSIGN_OR_RETURN(exec::GroupPosition shard, call.shardPosition());
  const int64_t count = call.operandType(0).numElements();
  const float *in = call.operand<float>(0);
  float *out = call.result<float>(0);
  cudaStream_t cudaStream = streamOf(call);
  if (count == 0)
    return Status::success();
  const exec::RunContext &context = call.context();
  if (!context.training || rate <= 0.0) {
    if (out != in)
      MOERT_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(out, in, static_cast<size_t>(count) * 4,
                          cudaMemcpyDeviceToDevice, cudaStream));
    return Status::success();
  }
  const uint64_t threshold = dense_math::dropoutKeepThreshold(rate);
  if (rate >= 1.0 || threshold > 0xffffffffu)
    return zeroFill(out, count * 4, cudaStream);
  dense_math::DropoutBlockParams params;
  params.source = {context.seed, static_cast<uint32_t>(stream), context.step};
  params.keepFrom = static_cast<uint32_t>(threshold);
  params.keptScale = static_cast<float>(1.0 / (1.0 - rate));
  params.logicalOffset = static_cast<uint64_t>(shard.index * count);
  params.count = count;
  const uint64_t blocks = dense_math::dropoutBlockCount(params);
  dropoutKernel<<<gridFor(static_cast<int64_t>(blocks)), kThreads, 0,
                  cudaStream>>>(params, dense_math::dropoutFirstBlock(params),
                                blocks, in, out);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Attention (the fused kernels are in DenseAttention.cuh)
//===----------------------------------------------------------------------===//

using namespace dense_attention;

/// Launches `kernel` over `blocks` blocks with `sharedBytes` of dynamic
/// shared memory, opting in beyond the default 48 KiB.
template <typename Kernel>
Status launchAttention(const KernelCall &call, Kernel kernel, int64_t blocks,
                       size_t sharedBytes, const AttentionParams &params) {
  CudaDevice &dev = cudaDeviceOf(call.device());
  if (sharedBytes > dev.properties().sharedMemPerBlockOptin)
    return unimplemented(
        "attention with head dimension " + std::to_string(params.headDim) +
        " needs " + std::to_string(sharedBytes) +
        " bytes of shared memory per block; this GPU has " +
        std::to_string(dev.properties().sharedMemPerBlockOptin));
  if (blocks > INT32_MAX)
    return unimplemented("attention grid of " + std::to_string(blocks) +
                         " blocks");
  if (sharedBytes > 48 * 1024)
    MOERT_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
        static_cast<int>(sharedBytes)));
  kernel<<<static_cast<unsigned>(blocks), kAttnThreads, sharedBytes,
           streamOf(call)>>>(params);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

/// Picks the instantiation for the head dimension (the register tiles of
/// the output columns are sized at compile time).
template <template <int> class Launch, typename... Args>
Status withHeadDim(int64_t headDim, Args &&...args) {
  if (headDim <= 32)
    return Launch<32>::run(std::forward<Args>(args)...);
  if (headDim <= 64)
    return Launch<64>::run(std::forward<Args>(args)...);
  if (headDim <= 128)
    return Launch<128>::run(std::forward<Args>(args)...);
  if (headDim <= kAttnMaxHeadDim)
    return Launch<kAttnMaxHeadDim>::run(std::forward<Args>(args)...);
  return unimplemented("attention on CUDA supports head dimensions up to " +
                       std::to_string(kAttnMaxHeadDim) + ", found " +
                       std::to_string(headDim));
}

template <int HeadDimMax> struct LaunchForward {
  static Status run(const KernelCall &call, const AttentionParams &p) {
    const int64_t tiles = (p.queryLen + kAttnTile - 1) / kAttnTile;
    return launchAttention(call, attentionForwardKernel<HeadDimMax>,
                           p.batch * p.heads * tiles,
                           forwardSharedBytes(p.headDim), p);
  }
};
template <int HeadDimMax> struct LaunchBackward {
  static Status run(const KernelCall &call, const AttentionParams &p) {
    const int64_t queryTiles = (p.queryLen + kAttnTile - 1) / kAttnTile;
    const int64_t keyTiles = (p.keyLen + kAttnTile - 1) / kAttnTile;
    const int64_t pairs = p.batch * p.heads;
    // Row statistics (log-sum-exp, delta) with the forward kernel.
    MOERT_RETURN_IF_ERROR(
        launchAttention(call, attentionForwardKernel<HeadDimMax>,
                        pairs * queryTiles, forwardSharedBytes(p.headDim), p));
    MOERT_RETURN_IF_ERROR(launchAttention(
        call, attentionKeyValueGradKernel<HeadDimMax>, pairs * keyTiles,
        keyValueGradSharedBytes(p.headDim), p));
    return launchAttention(call, attentionQueryGradKernel<HeadDimMax>,
                           pairs * queryTiles, queryGradSharedBytes(p.headDim),
                           p);
  }
};

Expected<AttentionParams> attentionParams(const KernelCall &call,
                                          size_t queryOperand) {
  const TensorType &q = call.operandType(queryOperand);
  const TensorType &k = call.operandType(queryOperand + 1);
  const TensorType &v = call.operandType(queryOperand + 2);
  MOERT_ASSIGN_OR_RETURN(int64_t heads, call.intAttr("num_heads"));
  if (q.shape.size() != 3 || k.shape.size() != 3 || v.shape != k.shape ||
      q.shape[0] != k.shape[0] || q.shape[2] != k.shape[2])
    return invalidArgument("expected query [B, Sq, D] and key, value "
                           "[B, Sk, D]; found " +
                           q.str() + ", " + k.str() + ", " + v.str());
  if (heads <= 0 || q.shape[2] % heads != 0)
    return invalidArgument("num_heads " + std::to_string(heads) +
                           " does not divide the model dimension " +
                           std::to_string(q.shape[2]));
  AttentionParams p{};
  p.batch = q.shape[0];
  p.queryLen = q.shape[1];
  p.keyLen = k.shape[1];
  p.modelDim = q.shape[2];
  p.heads = heads;
  p.headDim = p.modelDim / heads;
  p.scale = 1.0f / std::sqrt(static_cast<float>(p.headDim));
  p.causal = call.flag("causal");
  p.query = call.operand<float>(queryOperand);
  p.key = call.operand<float>(queryOperand + 1);
  p.value = call.operand<float>(queryOperand + 2);
  p.keyMask = call.numOperands() == queryOperand + 4
                  ? call.operand<uint8_t>(queryOperand + 3)
                  : nullptr;
  return p;
}

//===----------------------------------------------------------------------===//
// Attention without fusion, for head dimensions beyond the fused kernels'
// register tiles (dh > 256): the CPU's algorithm (dense/Attention.cpp) per
// batch element, with head-batched cuBLAS GEMMs (DenseGemm.h) around
// row-wise masked softmax kernels. Needs [H, Sq, Sk] scores (and their
// gradient) in the workspace.
//===----------------------------------------------------------------------===//

/// The matrices of batch element `b` for the head-batched GEMMs.
struct UnfusedAttention {
  const AttentionParams *p;
  int64_t b;
  float *probs, *scoreGrad;
  float *output;

  const float *pointer(AttentionOperand which) const {
    const int64_t q = b * p->queryLen * p->modelDim;
    const int64_t k = b * p->keyLen * p->modelDim;
    switch (which) {
    case AttentionOperand::Query:
      return p->query + q;
    case AttentionOperand::Key:
      return p->key + k;
    case AttentionOperand::Value:
      return p->value + k;
    case AttentionOperand::OutputGrad:
      return p->outputGrad + q;
    case AttentionOperand::Probs:
      return probs;
    case AttentionOperand::ScoreGrad:
      return scoreGrad;
    case AttentionOperand::Output:
      return output + q;
    case AttentionOperand::QueryGrad:
      return p->queryGrad + q;
    case AttentionOperand::KeyGrad:
      return p->keyGrad + k;
    case AttentionOperand::ValueGrad:
      return p->valueGrad + k;
    }
    return nullptr;
  }

  Status gemm(const KernelCall &call, const HeadBatchedGemm &g) const {
    CudaDevice &dev = cudaDeviceOf(call.device());
    if (g.m > INT32_MAX || g.n > INT32_MAX || g.k > INT32_MAX ||
        g.lda > INT32_MAX || g.ldb > INT32_MAX || g.ldc > INT32_MAX ||
        p->heads > INT32_MAX)
      return unimplemented("attention GEMM beyond cuBLAS's 32-bit sizes");
    const float beta = 0.0f;
    MOERT_CUBLAS_RETURN_IF_ERROR(cublasSgemmStridedBatched(
        dev.cublas(), g.transA ? CUBLAS_OP_T : CUBLAS_OP_N,
        g.transB ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(g.m),
        static_cast<int>(g.n), static_cast<int>(g.k), &g.alpha, pointer(g.a),
        static_cast<int>(g.lda), g.strideA, pointer(g.b),
        static_cast<int>(g.ldb), g.strideB, &beta,
        const_cast<float *>(pointer(g.c)), static_cast<int>(g.ldc), g.strideC,
        static_cast<int>(p->heads)));
    return Status::success();
  }
};

int64_t unfusedTileFloats(const AttentionParams &p) {
  return p.heads * p.queryLen * p.keyLen;
}

Status softmaxRows(const KernelCall &call, const AttentionParams &p, int64_t b,
                   float *probs) {
  const int64_t rows = p.heads * p.queryLen;
  maskedSoftmaxKernel<<<static_cast<unsigned>(std::min<int64_t>(rows, 1 << 20)),
                        rowThreads(p.keyLen, 256), 0, streamOf(call)>>>(
      rows, p.queryLen, p.keyLen, p.causal,
      p.keyMask ? p.keyMask + b * p.keyLen : nullptr, probs);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

Status unfusedAttentionForward(const KernelCall &call,
                               const AttentionParams &p) {
  const AttentionGemmDims d{p.queryLen, p.keyLen, p.modelDim, p.heads};
  Scratch scratch(call.workspace());
  float *probs = scratch.take<float>(unfusedTileFloats(p));
  MOERT_RETURN_IF_ERROR(needWorkspace(call, scratch.bytes()));
  for (int64_t b = 0; b < p.batch; ++b) {
    const UnfusedAttention m{&p, b, probs, nullptr, p.output};
    MOERT_RETURN_IF_ERROR(m.gemm(call, attentionScoresGemm(d, p.scale)));
    MOERT_RETURN_IF_ERROR(softmaxRows(call, p, b, probs));
    MOERT_RETURN_IF_ERROR(m.gemm(call, attentionOutputGemm(d)));
  }
  return Status::success();
}

Status unfusedAttentionBackward(const KernelCall &call,
                                const AttentionParams &p) {
  const AttentionGemmDims d{p.queryLen, p.keyLen, p.modelDim, p.heads};
  Scratch scratch(call.workspace());
  float *probs = scratch.take<float>(unfusedTileFloats(p));
  float *scoreGrad = scratch.take<float>(unfusedTileFloats(p));
  MOERT_RETURN_IF_ERROR(needWorkspace(call, scratch.bytes()));
  const int64_t rows = p.heads * p.queryLen;
  for (int64_t b = 0; b < p.batch; ++b) {
    const UnfusedAttention m{&p, b, probs, scoreGrad, nullptr};
    MOERT_RETURN_IF_ERROR(m.gemm(call, attentionScoresGemm(d, p.scale)));
    MOERT_RETURN_IF_ERROR(softmaxRows(call, p, b, probs));
    MOERT_RETURN_IF_ERROR(m.gemm(call, attentionValueGradGemm(d)));
    MOERT_RETURN_IF_ERROR(m.gemm(call, attentionProbsGradGemm(d)));
    softmaxBackwardKernel<<<static_cast<unsigned>(
                                std::min<int64_t>(rows, 1 << 20)),
                            rowThreads(p.keyLen, 256), 0, streamOf(call)>>>(
        rows, p.keyLen, probs, scoreGrad);
    MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    MOERT_RETURN_IF_ERROR(m.gemm(call, attentionQueryGradGemm(d, p.scale)));
    MOERT_RETURN_IF_ERROR(m.gemm(call, attentionKeyGradGemm(d, p.scale)));
  }
  return Status::success();
}

/// Shapes an attention instruction's workspace depends on; null when the
/// instruction is malformed (its kernel reports that).
struct AttentionWorkspaceShape {
  int64_t batch = 0, queryLen = 0, keyLen = 0, heads = 1, headDim = 0;
};
AttentionWorkspaceShape attentionWorkspaceShape(const Instruction &inst,
                                                const Program &program,
                                                size_t queryOperand) {
  AttentionWorkspaceShape shape;
  const TensorType &q = operandTypeOf(inst, program, queryOperand);
  const TensorType &k = operandTypeOf(inst, program, queryOperand + 1);
  auto heads = inst.attrs.find("num_heads");
  if (heads != inst.attrs.end())
    if (const int64_t *value = std::get_if<int64_t>(&heads->second))
      shape.heads = std::max<int64_t>(*value, 1);
  if (q.shape.size() != 3 || k.shape.size() != 3)
    return shape;
  shape.batch = q.shape[0];
  shape.queryLen = q.shape[1];
  shape.keyLen = k.shape[1];
  shape.headDim = q.shape[2] / shape.heads;
  return shape;
}

int64_t attentionBaseWorkspace(const Instruction &inst,
                               const Program &program) {
  const AttentionWorkspaceShape s = attentionWorkspaceShape(inst, program, 0);
  if (s.headDim <= kAttnMaxHeadDim)
    return 0;
  Scratch scratch;
  scratch.take<float>(s.heads * s.queryLen * s.keyLen);
  return static_cast<int64_t>(scratch.bytes());
}

/// compute_type bf16 / f16: the attention kernels run in fp32 on q, k, v
/// (and dO) rounded to that precision, copies placed after the kernels' own
/// workspace. Unlike the CPU backend's emulation, the probabilities and the
/// score gradient are not rounded before their GEMMs (closer to fp32).
struct RoundedAttentionInputs {
  float *query = nullptr, *key = nullptr, *value = nullptr,
        *outputGrad = nullptr;
};

Scratch roundedAttentionScratch(void *base, int64_t queryElements,
                                int64_t keyElements, bool backward,
                                RoundedAttentionInputs *rounded) {
  Scratch scratch(base);
  RoundedAttentionInputs r;
  r.query = scratch.take<float>(queryElements);
  r.key = scratch.take<float>(keyElements);
  r.value = scratch.take<float>(keyElements);
  if (backward)
    r.outputGrad = scratch.take<float>(queryElements);
  if (rounded)
    *rounded = r;
  return scratch;
}

int64_t roundedAttentionBytes(const Instruction &inst, const Program &program,
                              size_t queryOperand) {
  if (computeTypeOf(inst) == ComputeType::F32)
    return 0;
  return static_cast<int64_t>(
      roundedAttentionScratch(
          nullptr, operandTypeOf(inst, program, queryOperand).numElements(),
          operandTypeOf(inst, program, queryOperand + 1).numElements(),
          queryOperand == 1, nullptr)
          .bytes());
}

/// Points p's inputs at rounded copies (no-op for f32).
Status roundAttentionInputs(KernelCall &call, AttentionParams &p,
                            int64_t baseBytes, bool backward) {
  MOERT_ASSIGN_OR_RETURN(ComputeType compute, computeTypeOf(call));
  if (compute == ComputeType::F32)
    return Status::success();
  const int64_t queryElements = p.batch * p.queryLen * p.modelDim;
  const int64_t keyElements = p.batch * p.keyLen * p.modelDim;
  RoundedAttentionInputs r;
  const Scratch scratch = roundedAttentionScratch(
      static_cast<char *>(call.workspace()) + baseBytes, queryElements,
      keyElements, backward, &r);
  MOERT_RETURN_IF_ERROR(needWorkspace(
      call, static_cast<size_t>(baseBytes) + scratch.bytes()));
  cudaStream_t stream = streamOf(call);
  MOERT_RETURN_IF_ERROR(
      roundToComputeType(stream, compute, queryElements, p.query, r.query));
  MOERT_RETURN_IF_ERROR(
      roundToComputeType(stream, compute, keyElements, p.key, r.key));
  MOERT_RETURN_IF_ERROR(
      roundToComputeType(stream, compute, keyElements, p.value, r.value));
  p.query = r.query;
  p.key = r.key;
  p.value = r.value;
  if (backward) {
    MOERT_RETURN_IF_ERROR(roundToComputeType(stream, compute, queryElements,
                                             p.outputGrad, r.outputGrad));
    p.outputGrad = r.outputGrad;
  }
  return Status::success();
}

int64_t attentionWorkspace(const Instruction &inst, const Program &program) {
  return attentionBaseWorkspace(inst, program) +
         roundedAttentionBytes(inst, program, 0);
}

Status runAttention(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(AttentionParams p, attentionParams(call, 0));
  p.output = call.result<float>(0);
  if (p.batch > 0 && p.queryLen > 0 && p.keyLen > 0 && p.modelDim > 0)
    MOERT_RETURN_IF_ERROR(roundAttentionInputs(
        call, p, attentionBaseWorkspace(call.instruction(), call.program()),
        false));
  if (p.batch == 0 || p.queryLen == 0 || p.modelDim == 0)
    return Status::success();
  if (p.keyLen == 0) // nothing to attend to: every row is fully masked
    return zeroFill(p.output, call.resultType(0).byteSize(), streamOf(call));
  if (p.headDim > kAttnMaxHeadDim)
    return unfusedAttentionForward(call, p);
  return withHeadDim<LaunchForward>(p.headDim, call, p);
}

Scratch attentionGradScratch(void *base, int64_t rows, float **lse,
                             float **delta) {
  Scratch scratch(base);
  float *l = scratch.take<float>(rows);
  float *d = scratch.take<float>(rows);
  if (lse)
    *lse = l;
  if (delta)
    *delta = d;
  return scratch;
}

int64_t attentionGradBaseWorkspace(const Instruction &inst,
                                   const Program &program) {
  const AttentionWorkspaceShape s = attentionWorkspaceShape(inst, program, 1);
  if (s.headDim > kAttnMaxHeadDim) {
    Scratch scratch;
    scratch.take<float>(s.heads * s.queryLen * s.keyLen);
    scratch.take<float>(s.heads * s.queryLen * s.keyLen);
    return static_cast<int64_t>(scratch.bytes());
  }
  return static_cast<int64_t>(
      attentionGradScratch(nullptr, s.batch * s.heads * s.queryLen, nullptr,
                           nullptr)
          .bytes());
}

int64_t attentionGradWorkspace(const Instruction &inst,
                               const Program &program) {
  return attentionGradBaseWorkspace(inst, program) +
         roundedAttentionBytes(inst, program, 1);
}

Status runAttentionGrad(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(AttentionParams p, attentionParams(call, 1));
  p.outputGrad = call.operand<float>(0);
  p.queryGrad = call.result<float>(0);
  p.keyGrad = call.result<float>(1);
  p.valueGrad = call.result<float>(2);
  cudaStream_t stream = streamOf(call);
  if (p.batch == 0 || p.queryLen == 0 || p.modelDim == 0 || p.keyLen == 0) {
    MOERT_RETURN_IF_ERROR(
        zeroFill(p.queryGrad, call.resultType(0).byteSize(), stream));
    MOERT_RETURN_IF_ERROR(
        zeroFill(p.keyGrad, call.resultType(1).byteSize(), stream));
    return zeroFill(p.valueGrad, call.resultType(2).byteSize(), stream);
  }
  MOERT_RETURN_IF_ERROR(roundAttentionInputs(
      call, p, attentionGradBaseWorkspace(call.instruction(), call.program()),
      true));
  if (p.headDim > kAttnMaxHeadDim)
    return unfusedAttentionBackward(call, p);
  const Scratch scratch = attentionGradScratch(
      call.workspace(), p.batch * p.heads * p.queryLen, &p.lse, &p.delta);
  MOERT_RETURN_IF_ERROR(needWorkspace(call, scratch.bytes()));
  return withHeadDim<LaunchBackward>(p.headDim, call, p);
}

//===----------------------------------------------------------------------===//
// Cross-entropy (dense/CrossEntropy.cpp): per-token terms in double from
// float row sums, then a fixed-order reduction on one block; the loss and
// its gradient stay on the device.
//===----------------------------------------------------------------------===//

constexpr int kLossThreads = 1024;

Expected<CrossEntropyParams> crossEntropyParams(const KernelCall &call,
                                                size_t logitsOperand) {
  MOERT_RETURN_IF_ERROR(call.expectOperand(logitsOperand + 1, DType::I32));
  CrossEntropyParams p;
  MOERT_ASSIGN_OR_RETURN(double smoothing, call.floatAttr("label_smoothing"));
  MOERT_ASSIGN_OR_RETURN(p.ignoreIndex, call.intAttr("ignore_index"));
  p.smoothing = static_cast<float>(smoothing);
  const TensorType &logits = call.operandType(logitsOperand);
  p.vocab = lastDim(logits);
  p.tokens = leadingElements(logits);
  if (call.operandType(logitsOperand + 1).numElements() != p.tokens)
    return invalidArgument("labels " +
                           call.operandType(logitsOperand + 1).str() +
                           " do not match logits " + logits.str());
  return p;
}

Scratch crossEntropyScratch(void *base, int64_t tokens, double **tokenLoss,
                            long long **counted) {
  Scratch scratch(base);
  scratch.take<DeviceErrorRecord>(1);
  double *loss = scratch.take<double>(tokens);
  long long *count = scratch.take<long long>(1);
  if (tokenLoss)
    *tokenLoss = loss;
  if (counted)
    *counted = count;
  return scratch;
}

int64_t crossEntropyWorkspace(const Instruction &inst, const Program &program) {
  const TensorType &logits = operandTypeOf(inst, program, 0);
  return static_cast<int64_t>(
      crossEntropyScratch(nullptr, leadingElements(logits), nullptr, nullptr)
          .bytes());
}

int64_t crossEntropyGradWorkspace(const Instruction &inst,
                                  const Program &program) {
  const TensorType &logits = operandTypeOf(inst, program, 1);
  return static_cast<int64_t>(
      crossEntropyScratch(nullptr, leadingElements(logits), nullptr, nullptr)
          .bytes());
}

Status runCrossEntropy(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(CrossEntropyParams p, crossEntropyParams(call, 0));
  cudaStream_t stream = streamOf(call);
  double *tokenLoss = nullptr;
  const Scratch scratch =
      crossEntropyScratch(call.workspace(), p.tokens, &tokenLoss, nullptr);
  MOERT_RETURN_IF_ERROR(needWorkspace(call, scratch.bytes()));
  DeviceErrorRecord *errors = errorRecordOf(call);
  if (p.tokens > 0 && p.vocab > 0) {
    const unsigned blocks =
        static_cast<unsigned>(std::min<int64_t>(p.tokens, 1 << 20));
    crossEntropyTokenKernel<<<blocks, rowThreads(p.vocab, 512), 0, stream>>>(
        p, call.operand<float>(0), call.operand<int32_t>(1), tokenLoss, errors);
    MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  } else if (p.tokens > 0) {
    MOERT_RETURN_IF_ERROR(zeroFill(tokenLoss, p.tokens * 8, stream));
  }
  crossEntropyLossKernel<<<1, kLossThreads, 0, stream>>>(
      p, call.operand<int32_t>(1), tokenLoss, call.result<float>(0));
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

Status runCrossEntropyGrad(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(CrossEntropyParams p, crossEntropyParams(call, 1));
  cudaStream_t stream = streamOf(call);
  long long *counted = nullptr;
  const Scratch scratch =
      crossEntropyScratch(call.workspace(), p.tokens, nullptr, &counted);
  MOERT_RETURN_IF_ERROR(needWorkspace(call, scratch.bytes()));
  DeviceErrorRecord *errors = errorRecordOf(call);
  if (p.tokens == 0 || p.vocab == 0)
    return Status::success();
  const int32_t *labels = call.operand<int32_t>(2);
  countLabelsKernel<<<1, kLossThreads, 0, stream>>>(p, labels, counted);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  const unsigned blocks =
      static_cast<unsigned>(std::min<int64_t>(p.tokens, 1 << 20));
  crossEntropyGradKernel<<<blocks, rowThreads(p.vocab, 512), 0, stream>>>(
      p, call.operand<float>(0), call.operand<float>(1), labels, counted,
      call.result<float>(0), errors);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

} // namespace

void registerDenseKernels(exec::KernelRegistry &registry) {
  registry.add(Op::embedding, {runEmbedding, 0, 0, embeddingWorkspace});
  registry.add(Op::embedding_at, {runEmbeddingAt, 0, 0, embeddingWorkspace});
  registry.add(Op::cache_update, {runCacheUpdate});
  registry.add(Op::embedding_grad,
               {runEmbeddingGrad, 0, 0, embeddingGradWorkspace});
  registry.add(Op::position_grad, {runPositionGrad, 0, 0, nullptr});
  registry.add(Op::linear, {runLinear, 0, 0, linearWorkspace});
  registry.add(Op::linear_grad, {runLinearGrad, 0, 0, linearGradWorkspace});
  registry.add(Op::bias_grad, {runBiasGrad, 0, 0, biasGradWorkspace});
  registry.add(Op::layer_norm, {runLayerNorm, 0, 0, nullptr});
  registry.add(Op::layer_norm_grad,
               {runLayerNormGrad, 0, 0, layerNormGradWorkspace});
  registry.add(Op::activation, {runActivation, 0, 0, nullptr});
  registry.add(Op::activation_grad, {runActivationGrad, 0, 0, nullptr});
  registry.add(Op::add, {runAdd, 0, 0, nullptr});
  registry.add(Op::dropout, {runDropoutMask, 0, 0, nullptr});
  registry.add(Op::dropout_grad, {runDropoutMask, 0, 0, nullptr});
  registry.add(Op::padding_mask, {runPaddingMask, 0, 0, nullptr});
  registry.add(Op::attention, {runAttention, 0, 0, attentionWorkspace});
  registry.add(Op::attention_grad,
               {runAttentionGrad, 0, 0, attentionGradWorkspace});
  registry.add(Op::cross_entropy,
               {runCrossEntropy, 0, 0, crossEntropyWorkspace});
  registry.add(Op::cross_entropy_grad,
               {runCrossEntropyGrad, 0, 0, crossEntropyGradWorkspace});
}

} // namespace cuda
} // namespace moert
