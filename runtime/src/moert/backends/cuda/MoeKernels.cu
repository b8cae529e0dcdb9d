//===- MoeKernels.cu - The CUDA kernels of the MoE ops ---------------------===//
//
// dispatch, combine, the expert FFN and their gradients on the device's
// stream, with the semantics of the CPU backend's adapters
// (backends/cpu/MoeKernels.cpp):
//   - dispatch / combine / their gradients are index-based (O(S k M) work,
//     no one-hot mask): one thread block per token or routing entry, the
//     rows copied or summed with float4 loads where the rows allow it. Each
//     call validates the routing on the device (expert ids in range, slots
//     in [-1, C), no (expert, slot) taken twice, through a claim array in
//     the workspace); a bad entry is recorded in the run's error record
//     (exec/DeviceErrors.h) and skipped, and the executor reports it at the
//     end of the run naming the instruction. The per-element arithmetic is
//     MoeMath.h's, the CPU's order: the same bits as the CPU except the
//     combine-weight gradient (a double dot product in another order).
//   - the expert FFN is six strided-batched cuBLAS GEMMs over the local
//     experts (ExpertGemm.h) plus element-wise bias / activation kernels
//     and fixed-order column sums for the bias gradients; the hidden layer
//     lives in the call's workspace (declared per instruction, so it is part
//     of the plan's device memory). compute_type bf16 / f16 runs the GEMMs
//     on bf16 / f16 copies of their inputs with fp32 accumulation
//     (cublasGemmStridedBatchedEx), the rounding the CPU backend emulates.
//   - dispatch, combine and the dispatch gradient run the compiler's
//     generated kernels when the plan carries them for this device
//     (compiler/KernelCodegen.h: PTX loaded through the driver API), after
//     the same routing check; otherwise the kernels of this file.
//   - the gate computes its logits with cuBLAS and routes on the device
//     with GateMath.h's thread functions (per token, per (group, expert)),
//     the CPU gate's semantics step by step: routing is the CPU's wherever
//     the logits are, RTS priorities and noise come from the same Philox
//     numbers keyed by global token id. The backward pass recomputes the
//     gates, forms the logits' gradient per token and runs two GEMMs.
//
//===----------------------------------------------------------------------===//
#include "moert/backends/GateAttributes.h"
#include "moert/backends/cuda/CudaDevice.h"
#include "moert/backends/cuda/CudaKernels.h"
#include "moert/backends/cuda/DenseDeviceUtils.cuh"
#include "moert/backends/cuda/DenseGemm.h"
#include "moert/backends/cuda/ExpertGemm.h"
#include "moert/backends/cuda/GateMath.h"
#include "moert/backends/cuda/MoeMath.h"
#include "moert/Half.h"
#include "moert/exec/Executor.h"
#include "moert/kernels/Gate.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

namespace moert {
namespace cuda {

namespace {

using exec::DeviceErrorRecord;
using exec::Instruction;
using exec::KernelCall;
using exec::Program;
using exec::TensorType;
using namespace dense_device;
using moe_math::RoutingView;

cudaStream_t streamOf(const KernelCall &call) {
  return static_cast<cudaStream_t>(call.stream());
}

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

Status launched() {
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Gate: logits by cuBLAS, routing by GateMath.h's thread functions
//===----------------------------------------------------------------------===//

namespace gm = gate_math;

/// The gate's workspace. Forward: the gates [S, E] (logits, then
/// probabilities), the jittered input [S, M] when jitter is on, the
/// first-choice token lists [G, E, S/G], the (group, expert) stats, the
/// per-group capacity and, for RTS, priorities and kept flags [S].
/// Backward: the recomputed gates and choices, the jittered input, the
/// first-choice counts [G, E] and the logits' gradient [S, E].
struct GateScratch {
  float *gates = nullptr, *input = nullptr, *logitsGrad = nullptr;
  int32_t *choices = nullptr, *firstTokens = nullptr, *firstCounts = nullptr;
  gm::ChunkCounts *counts = nullptr;
  gm::ExpertGroupStats *stats = nullptr;
  int64_t *capacity = nullptr;
  uint32_t *priority = nullptr;
  uint8_t *kept = nullptr;
};

struct GateLayout {
  int64_t S = 0, M = 0, E = 0, k = 1, groups = 1;
  bool jitter = false, rts = false;
  /// Counting chunks per group.
  int64_t chunks() const {
    const int64_t perGroup = groups > 0 ? S / groups : 0;
    return (perGroup + gm::kGateChunk - 1) / gm::kGateChunk;
  }
};

Scratch gateScratch(void *base, const GateLayout &l, bool backward,
                    GateScratch *out) {
  Scratch scratch(base);
  GateScratch g;
  g.gates = scratch.take<float>(l.S * l.E);
  g.input = scratch.take<float>(l.jitter ? l.S * l.M : 0);
  g.counts = scratch.take<gm::ChunkCounts>(l.groups * l.E * l.chunks());
  g.stats = scratch.take<gm::ExpertGroupStats>(l.groups * l.E);
  if (backward) {
    g.choices = scratch.take<int32_t>(l.S * l.k);
    g.firstCounts = scratch.take<int32_t>(l.groups * l.E);
    g.logitsGrad = scratch.take<float>(l.S * l.E);
  } else {
    g.firstTokens = scratch.take<int32_t>(l.E * l.S);
    g.capacity = scratch.take<int64_t>(1);
    g.priority = scratch.take<uint32_t>(l.rts ? l.S : 0);
    g.kept = scratch.take<uint8_t>(l.rts ? l.S : 0);
  }
  if (out)
    *out = g;
  return scratch;
}

/// The layout from an instruction's shapes and attributes (for the
/// WorkspaceFn: jitter and RTS space only when the attributes ask for it).
GateLayout gateLayout(const Instruction &inst, const Program &program,
                      size_t inputOperand) {
  GateLayout l;
  const TensorType &x = operandTypeOf(inst, program, inputOperand);
  const TensorType &w = operandTypeOf(inst, program, inputOperand + 1);
  l.S = leadingElements(x);
  l.M = lastDim(x);
  l.E = w.shape.size() == 2 ? w.shape[1] : 0;
  auto intOf = [&](const char *name, int64_t fallback) {
    auto it = inst.attrs.find(name);
    if (it != inst.attrs.end())
      if (const int64_t *v = std::get_if<int64_t>(&it->second))
        return *v;
    return fallback;
  };
  l.k = std::max<int64_t>(intOf("top_k", 1), 1);
  l.groups = std::max<int64_t>(intOf("groups", 1), 1);
  // As KernelCall::flag reads it.
  auto rts = inst.attrs.find("use_rts");
  if (rts != inst.attrs.end()) {
    const int64_t *v = std::get_if<int64_t>(&rts->second);
    l.rts = !v || *v != 0;
  }
  auto noise = inst.attrs.find("noise");
  if (noise != inst.attrs.end())
    if (const std::string *v = std::get_if<std::string>(&noise->second))
      l.jitter = *v == "jitter";
  return l;
}

int64_t gateWorkspace(const Instruction &inst, const Program &program) {
  return static_cast<int64_t>(
      gateScratch(nullptr, gateLayout(inst, program, 0), false, nullptr)
          .bytes());
}

int64_t gateGradWorkspace(const Instruction &inst, const Program &program) {
  return static_cast<int64_t>(
      gateScratch(nullptr, gateLayout(inst, program, 2), true, nullptr)
          .bytes());
}


__global__ void jitterKernel(gm::GateParams p, const float *x, float *out) {
  const int64_t count = p.numTokens * p.modelDim;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = gm::jittered(p, i, x[i]);
}

__global__ void routeTokensKernel(gm::GateParams p, float *gates,
                                  int32_t *experts) {
  for (int64_t s = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
       s < p.numTokens; s += int64_t{gridDim.x} * blockDim.x)
    gm::routeToken(p, s, gates + s * p.numExperts, experts + s * p.topK);
}

__global__ void countChunksKernel(gm::GateParams p, const int32_t *experts,
                                  const float *gates, const uint8_t *kept,
                                  gm::ChunkCounts *counts) {
  const int64_t chunks = gm::gateChunks(p);
  const int64_t total = p.groups * p.numExperts * chunks;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t pair = i / chunks;
    counts[i] = gm::countChunk(p, pair / p.numExperts,
                               static_cast<int32_t>(pair % p.numExperts),
                               i % chunks, experts, gates, kept);
  }
}

__global__ void scanChunksKernel(gm::GateParams p, gm::ChunkCounts *counts,
                                 gm::ExpertGroupStats *stats,
                                 int32_t *firstCounts) {
  const int64_t chunks = gm::gateChunks(p);
  const int64_t pairs = p.groups * p.numExperts;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < pairs;
       i += int64_t{gridDim.x} * blockDim.x) {
    const gm::ExpertGroupStats st = gm::scanChunks(p, counts + i * chunks,
                                                   chunks);
    if (stats)
      stats[i] = st;
    if (firstCounts)
      firstCounts[i] = st.firstCount;
  }
}

__global__ void listFirstChoicesKernel(gm::GateParams p,
                                       const int32_t *experts,
                                       const gm::ChunkCounts *counts,
                                       int32_t *firstTokens) {
  const int64_t chunks = gm::gateChunks(p);
  const int64_t total = p.groups * p.numExperts * chunks;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t pair = i / chunks;
    gm::listFirstChoices(p, pair / p.numExperts,
                         static_cast<int32_t>(pair % p.numExperts), i % chunks,
                         experts, counts[i], firstTokens + pair * p.groupTokens);
  }
}

/// Counts per chunk, then their prefixes per (group, expert).
Status countAndScan(const KernelCall &call, const gm::GateParams &p,
                    const int32_t *experts, const float *gates,
                    const uint8_t *kept, gm::ChunkCounts *counts,
                    gm::ExpertGroupStats *stats, int32_t *firstCounts) {
  cudaStream_t stream = streamOf(call);
  const int64_t pairs = p.groups * p.numExperts;
  countChunksKernel<<<gridFor(pairs * gm::gateChunks(p)), kThreads, 0,
                      stream>>>(p, experts, gates, kept, counts);
  MOERT_RETURN_IF_ERROR(launched());
  scanChunksKernel<<<gridFor(pairs), kThreads, 0, stream>>>(p, counts, stats,
                                                            firstCounts);
  return launched();
}

/// Expert counts (all groups), the aux loss (mean over groups) and the
/// per-group capacity: the configured one, or for a dropless gate the
/// largest count of any group's expert.
__global__ void gateTotalsKernel(gm::GateParams p,
                                 const gm::ExpertGroupStats *stats,
                                 int64_t configuredCapacity, int32_t *counts,
                                 float *aux, int64_t *capacity) {
  if (blockIdx.x != 0 || threadIdx.x != 0)
    return;
  double auxSum = 0.0;
  int64_t largest = 0;
  for (int64_t e = 0; e < p.numExperts; ++e)
    counts[e] = 0;
  for (int64_t g = 0; g < p.groups; ++g) {
    auxSum += gm::groupAuxLoss(p, stats + g * p.numExperts);
    for (int64_t e = 0; e < p.numExperts; ++e) {
      const int32_t all = stats[g * p.numExperts + e].allCount;
      counts[e] += all;
      largest = largest < all ? all : largest;
    }
  }
  *aux = static_cast<float>(auxSum / static_cast<double>(p.groups));
  *capacity = p.dropTokens ? configuredCapacity
                           : (largest < p.groupTokens ? largest
                                                      : p.groupTokens);
}

__global__ void rtsPriorityKernel(gm::GateParams p, uint32_t *priority) {
  for (int64_t s = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
       s < p.numTokens; s += int64_t{gridDim.x} * blockDim.x)
    priority[s] = gm::rtsPriority(p, s / p.groupTokens, s % p.groupTokens);
}

__global__ void rtsKeptKernel(gm::GateParams p, const int32_t *experts,
                              const int32_t *firstTokens,
                              const gm::ExpertGroupStats *stats,
                              const uint32_t *priority,
                              const int64_t *capacity, uint8_t *kept) {
  const int64_t Sg = p.groupTokens;
  for (int64_t s = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
       s < p.numTokens; s += int64_t{gridDim.x} * blockDim.x) {
    const int64_t g = s / Sg, pair = g * p.numExperts + experts[s * p.topK];
    kept[s] = gm::keptByRts(s % Sg, firstTokens + pair * Sg,
                            stats[pair].firstCount, priority + g * Sg,
                            *capacity);
  }
}

__global__ void assignSlotsKernel(gm::GateParams p, const int32_t *experts,
                                  const uint8_t *kept,
                                  const gm::ChunkCounts *counts,
                                  const gm::ExpertGroupStats *stats,
                                  const int64_t *capacity, int32_t *slots) {
  const int64_t chunks = gm::gateChunks(p);
  const int64_t total = p.groups * p.numExperts * chunks;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t pair = i / chunks;
    gm::assignChunkSlots(p, pair / p.numExperts,
                         static_cast<int32_t>(pair % p.numExperts), i % chunks,
                         experts, kept, counts[i], stats[pair], *capacity,
                         slots);
  }
}

__global__ void combineWeightsKernel(gm::GateParams p, const float *gates,
                                     const int32_t *experts,
                                     const int32_t *slots, float *weights) {
  for (int64_t s = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
       s < p.numTokens; s += int64_t{gridDim.x} * blockDim.x)
    gm::combineWeights(p, gates + s * p.numExperts, experts + s * p.topK,
                       slots + s * p.topK, weights + s * p.topK);
}

/// The backward pass's routing operands: experts in [0, E), slots >= -1.
__global__ void checkGateRoutingKernel(gm::GateParams p,
                                       const int32_t *experts,
                                       const int32_t *slots,
                                       DeviceErrorRecord *errors) {
  const int64_t entries = p.numTokens * p.topK;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < entries;
       i += int64_t{gridDim.x} * blockDim.x) {
    if (experts[i] < 0 || experts[i] >= p.numExperts)
      recordError(errors, exec::kExpertOutOfRange, i);
    else if (slots[i] < -1)
      recordError(errors, exec::kSlotOutOfRange, i);
  }
}

__global__ void logitsGradKernel(gm::GateParams p, const float *auxLossGrad,
                                 const int32_t *firstCounts,
                                 const float *gates, const int32_t *experts,
                                 const int32_t *slots,
                                 const float *weightsGrad, float *logitsGrad) {
  const double groupAuxGrad =
      static_cast<double>(*auxLossGrad) / static_cast<double>(p.groups);
  const int64_t E = p.numExperts, k = p.topK;
  for (int64_t s = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
       s < p.numTokens; s += int64_t{gridDim.x} * blockDim.x) {
    bool valid = true;
    for (int64_t j = 0; j < k; ++j)
      valid &= experts[s * k + j] >= 0 && experts[s * k + j] < E &&
               slots[s * k + j] >= -1;
    if (!valid) { // recorded by checkGateRoutingKernel; never read past E
      for (int64_t e = 0; e < E; ++e)
        logitsGrad[s * E + e] = 0.0f;
      continue;
    }
    gm::logitsGradRow(p, groupAuxGrad,
                      firstCounts + (s / p.groupTokens) * E, gates + s * E,
                      experts + s * k, slots + s * k, weightsGrad + s * k,
                      logitsGrad + s * E);
  }
}

__global__ void jitterInPlaceKernel(gm::GateParams p, float *values) {
  const int64_t count = p.numTokens * p.modelDim;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    values[i] = gm::jittered(p, i, values[i]);
}

/// C = op(A) op(B) of the gate's GEMMs (fp32 cuBLAS).
Status gateGemm(const KernelCall &call, const ColumnMajorGemm &g,
                const float *input, const float *weight,
                const float *outputGrad, float *c) {
  if (g.m == 0 || g.n == 0)
    return Status::success();
  if (g.k == 0)
    return zeroFill(c, g.m * g.n * 4, streamOf(call));
  if (g.m > INT_MAX || g.n > INT_MAX || g.k > INT_MAX)
    return unimplemented("gate GEMM of " + std::to_string(g.m) + " x " +
                         std::to_string(g.n) + " x " + std::to_string(g.k) +
                         " exceeds cuBLAS's 32-bit sizes");
  auto pick = [&](LinearOperand which) {
    return which == LinearOperand::Input    ? input
           : which == LinearOperand::Weight ? weight
                                            : outputGrad;
  };
  CudaDevice &dev = cudaDeviceOf(call.device());
  const float alpha = 1.0f, beta = 0.0f;
  MOERT_CUBLAS_RETURN_IF_ERROR(cublasSgemm(
      dev.cublas(), g.transA ? CUBLAS_OP_T : CUBLAS_OP_N,
      g.transB ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(g.m),
      static_cast<int>(g.n), static_cast<int>(g.k), &alpha, pick(g.a),
      static_cast<int>(g.lda), pick(g.b), static_cast<int>(g.ldb), &beta, c,
      static_cast<int>(g.ldc)));
  return Status::success();
}

struct GateSetup {
  GateConfig config;
  GateShape shape;
  gm::GateParams params;
  GateLayout layout;
};

Expected<GateSetup> gateSetup(const KernelCall &call, size_t inputOperand) {
  GateSetup g;
  MOERT_ASSIGN_OR_RETURN(g.config, gateConfigOf(call));
  g.shape = gateShapeOf(call.operandType(inputOperand),
                        call.operandType(inputOperand + 1));
  MOERT_ASSIGN_OR_RETURN(
      GateRandomness randomness,
      gateRandomnessOf(call, leadingElements(call.operandType(inputOperand))));
  // Validates the configuration against the shape as the CPU gate does.
  MOERT_RETURN_IF_ERROR(gateConfiguredCapacity(g.config, g.shape).status());
  if (g.config.topK > gm::kGateMaxTopK)
    return unimplemented("the CUDA gate routes up to top-" +
                         std::to_string(gm::kGateMaxTopK) + ", found top_k " +
                         std::to_string(g.config.topK));
  g.params = gm::gateParams(g.config, g.shape, randomness);
  g.layout = gateLayout(call.instruction(), call.program(), inputOperand);
  // The attributes decide the workspace; the run (evaluation turns noise
  // off) only uses less of it.
  if ((g.params.jitter && !g.layout.jitter) ||
      (g.config.useRts && !g.layout.rts) || g.layout.k != g.config.topK ||
      g.layout.groups != g.config.groups)
    return internalError("the gate's attributes and its workspace disagree");
  return g;
}

/// The jittered input when jitter is on, else x.
Expected<const float *> gateInput(const KernelCall &call, const GateSetup &g,
                                  const GateScratch &scratch, const float *x) {
  if (!g.params.jitter)
    return x;
  const int64_t count = g.shape.numTokens * g.shape.modelDim;
  if (count > 0) {
    jitterKernel<<<gridFor(count), kThreads, 0, streamOf(call)>>>(
        g.params, x, scratch.input);
    MOERT_RETURN_IF_ERROR(launched());
  }
  return static_cast<const float *>(scratch.input);
}

Status runGate(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(GateSetup g, gateSetup(call, 0));
  const gm::GateParams &p = g.params;
  const int64_t S = g.shape.numTokens, E = g.shape.numExperts;
  MOERT_ASSIGN_OR_RETURN(int64_t configured,
                         gateConfiguredCapacity(g.config, g.shape));
  MOERT_ASSIGN_OR_RETURN(int64_t planned, call.intAttr("capacity"));
  if (g.config.dropTokens && configured > planned)
    return internalError("the gate assigns " + std::to_string(configured) +
                         " slots per expert, the plan has " +
                         std::to_string(planned));
  GateScratch scratch;
  const Scratch layout =
      gateScratch(call.workspace(), g.layout, false, &scratch);
  MOERT_RETURN_IF_ERROR(needWorkspace(call, layout.bytes()));
  cudaStream_t stream = streamOf(call);
  int32_t *experts = call.result<int32_t>(0);
  int32_t *slots = call.result<int32_t>(1);
  float *weights = call.result<float>(2);
  if (S == 0) {
    MOERT_RETURN_IF_ERROR(zeroFill(call.result<int32_t>(3), E * 4, stream));
    return zeroFill(call.result<float>(4), 4, stream);
  }
  MOERT_ASSIGN_OR_RETURN(const float *input,
                         gateInput(call, g, scratch, call.operand<float>(0)));
  MOERT_RETURN_IF_ERROR(gateGemm(
      call, linearForwardGemm(S, g.shape.modelDim, E, false), input,
      call.operand<float>(1), nullptr, scratch.gates));
  routeTokensKernel<<<gridFor(S), kThreads, 0, stream>>>(p, scratch.gates,
                                                         experts);
  MOERT_RETURN_IF_ERROR(launched());
  const int64_t pairs = p.groups * E;
  MOERT_RETURN_IF_ERROR(countAndScan(call, p, experts, scratch.gates, nullptr,
                                     scratch.counts, scratch.stats, nullptr));
  listFirstChoicesKernel<<<gridFor(pairs * gm::gateChunks(p)), kThreads, 0,
                           stream>>>(p, experts, scratch.counts,
                                     scratch.firstTokens);
  MOERT_RETURN_IF_ERROR(launched());
  gateTotalsKernel<<<1, 1, 0, stream>>>(p, scratch.stats,
                                        configured / p.groups,
                                        call.result<int32_t>(3),
                                        call.result<float>(4),
                                        scratch.capacity);
  MOERT_RETURN_IF_ERROR(launched());
  if (g.config.useRts) {
    rtsPriorityKernel<<<gridFor(S), kThreads, 0, stream>>>(p,
                                                           scratch.priority);
    MOERT_RETURN_IF_ERROR(launched());
    rtsKeptKernel<<<gridFor(S), kThreads, 0, stream>>>(
        p, experts, scratch.firstTokens, scratch.stats, scratch.priority,
        scratch.capacity, scratch.kept);
    MOERT_RETURN_IF_ERROR(launched());
    // The kept first choices' prefixes per chunk.
    MOERT_RETURN_IF_ERROR(countAndScan(call, p, experts, nullptr,
                                       scratch.kept, scratch.counts,
                                       scratch.stats, nullptr));
  }
  assignSlotsKernel<<<gridFor(pairs * gm::gateChunks(p)), kThreads, 0,
                      stream>>>(p, experts,
                                g.config.useRts ? scratch.kept : nullptr,
                                scratch.counts, scratch.stats,
                                scratch.capacity, slots);
  MOERT_RETURN_IF_ERROR(launched());
  combineWeightsKernel<<<gridFor(S), kThreads, 0, stream>>>(
      p, scratch.gates, experts, slots, weights);
  return launched();
}

Status runGateGrad(KernelCall &call) {
  // Operands: dweights [S, k], daux, x, Wg, experts, slots; results dx, dWg.
  MOERT_ASSIGN_OR_RETURN(GateSetup g, gateSetup(call, 2));
  const gm::GateParams &p = g.params;
  const int64_t S = g.shape.numTokens, M = g.shape.modelDim,
                E = g.shape.numExperts;
  GateScratch scratch;
  const Scratch layout = gateScratch(call.workspace(), g.layout, true, &scratch);
  MOERT_RETURN_IF_ERROR(needWorkspace(call, layout.bytes()));
  cudaStream_t stream = streamOf(call);
  float *dx = call.result<float>(0), *dwg = call.result<float>(1);
  if (S == 0) {
    MOERT_RETURN_IF_ERROR(zeroFill(dwg, M * E * 4, stream));
    return Status::success();
  }
  const int32_t *experts = call.operand<int32_t>(4);
  const int32_t *slots = call.operand<int32_t>(5);
  checkGateRoutingKernel<<<gridFor(S * p.topK), kThreads, 0, stream>>>(
      p, experts, slots, errorRecordOf(call));
  MOERT_RETURN_IF_ERROR(launched());
  // The gates are recomputed (same input, weight and noise).
  MOERT_ASSIGN_OR_RETURN(const float *input,
                         gateInput(call, g, scratch, call.operand<float>(2)));
  const float *wg = call.operand<float>(3);
  MOERT_RETURN_IF_ERROR(gateGemm(call, linearForwardGemm(S, M, E, false),
                                 input, wg, nullptr, scratch.gates));
  routeTokensKernel<<<gridFor(S), kThreads, 0, stream>>>(p, scratch.gates,
                                                         scratch.choices);
  MOERT_RETURN_IF_ERROR(launched());
  // First-choice counts of the routing the forward pass used; a bad entry
  // counts nowhere (the counts compare ids).
  MOERT_RETURN_IF_ERROR(countAndScan(call, p, experts, nullptr, nullptr,
                                     scratch.counts, scratch.stats,
                                     scratch.firstCounts));
  logitsGradKernel<<<gridFor(S), kThreads, 0, stream>>>(
      p, call.operand<float>(1), scratch.firstCounts, scratch.gates, experts,
      slots, call.operand<float>(0), scratch.logitsGrad);
  MOERT_RETURN_IF_ERROR(launched());
  MOERT_RETURN_IF_ERROR(gateGemm(call, linearWeightGradGemm(S, M, E, false),
                                 input, wg, scratch.logitsGrad, dwg));
  MOERT_RETURN_IF_ERROR(gateGemm(call, linearInputGradGemm(S, M, E, false),
                                 input, wg, scratch.logitsGrad, dx));
  if (p.jitter) {
    jitterInPlaceKernel<<<gridFor(S * M), kThreads, 0, stream>>>(p, dx);
    MOERT_RETURN_IF_ERROR(launched());
  }
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Routing checks
//===----------------------------------------------------------------------===//

/// Checks every routing entry; `claims` ([E * C], zeroed) counts the
/// entries taking each slot.
__global__ void checkRoutingKernel(RoutingView r, int64_t entries,
                                   int32_t *claims, DeviceErrorRecord *errors) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < entries;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int32_t e = r.experts[i], c = r.slots[i];
    const unsigned code =
        moe_math::routingEntryError(e, c, r.numExperts, r.capacity);
    if (code != exec::kNoDeviceError) {
      recordError(errors, code, static_cast<unsigned long long>(i));
      continue;
    }
    if (c >= 0 && atomicAdd(&claims[int64_t{e} * r.capacity + c], 1) != 0)
      recordError(errors, exec::kSlotTakenTwice,
                  static_cast<unsigned long long>(i));
  }
}

struct RoutingCall {
  RoutingView view;
  int64_t numTokens = 0;
};

/// Shapes from the tokens tensor [..., M], the routing [..., k] and the
/// buffer [E, C, M].
RoutingCall routingCall(const KernelCall &call, const TensorType &tokens,
                        size_t expertsOperand, const TensorType &buffer) {
  RoutingCall r;
  r.numTokens = leadingElements(tokens);
  r.view.experts = call.operand<int32_t>(expertsOperand);
  r.view.slots = call.operand<int32_t>(expertsOperand + 1);
  r.view.topK = lastDim(call.operandType(expertsOperand));
  r.view.numExperts = buffer.shape[0];
  r.view.capacity = buffer.shape[1];
  r.view.modelDim = lastDim(tokens);
  return r;
}

/// Workspace of the routing check: the claim array.
int64_t claimBytes(const TensorType &buffer) {
  Scratch scratch;
  scratch.take<int32_t>(buffer.shape[0] * buffer.shape[1]);
  return static_cast<int64_t>(scratch.bytes());
}

Status checkRouting(const KernelCall &call, const RoutingCall &r) {
  const int64_t entries = r.numTokens * r.view.topK;
  const int64_t slots = r.view.numExperts * r.view.capacity;
  MOERT_RETURN_IF_ERROR(needWorkspace(
      call, static_cast<size_t>(std::max<int64_t>(slots, 0)) * 4));
  if (entries == 0)
    return Status::success();
  int32_t *claims = static_cast<int32_t *>(call.workspace());
  MOERT_RETURN_IF_ERROR(zeroFill(claims, slots * 4, streamOf(call)));
  checkRoutingKernel<<<gridFor(entries), kThreads, 0, streamOf(call)>>>(
      r.view, entries, claims, errorRecordOf(call));
  return launched();
}

/// Whether rows of `modelDim` floats at these addresses can move as float4.
bool rowsVectorizable(int64_t modelDim, std::initializer_list<const void *> ps) {
  if (modelDim % 4 != 0)
    return false;
  for (const void *p : ps)
    if (p && reinterpret_cast<uintptr_t>(p) % 16 != 0)
      return false;
  return true;
}

constexpr int kRowThreads = 256;

unsigned rowGrid(int64_t rows) {
  return static_cast<unsigned>(std::clamp<int64_t>(rows, 1, int64_t{1} << 20));
}

//===----------------------------------------------------------------------===//
// The compiler's generated kernels (the plan's executables)
//===----------------------------------------------------------------------===//

/// The plan's generated kernel `name` for this device (the executable of the
/// highest architecture the device runs), or null: then this file's own
/// kernel runs. MOERT_GENERATED_KERNELS=0 turns the generated ones off (to
/// compare the two).
Expected<void *> generatedKernel(const KernelCall &call, const char *name) {
  static const bool enabled = [] {
    const char *value = std::getenv("MOERT_GENERATED_KERNELS");
    return !(value && std::string(value) == "0");
  }();
  if (!enabled)
    return nullptr;
  CudaDevice &dev = cudaDeviceOf(call.device());
  const exec::Executable *executable =
      call.program().selectExecutable(dev.computeCapability(), name);
  if (!executable)
    return nullptr;
  Expected<void *> function = dev.loadFunction(executable->image, name);
  if (!function.ok())
    return function.takeStatus().withContext(
        std::string("loading the plan's generated kernel ") + name +
        " (sm_" + std::to_string(executable->sm) + ")");
  return function;
}

/// Launches a generated kernel: pointer arguments, then S, k, M, E, C; one
/// block per routing entry or token (grid-strided), 256 threads over M.
Status launchGenerated(const KernelCall &call, void *function,
                       std::initializer_list<const void *> pointers,
                       const RoutingCall &r, int64_t rows) {
  int64_t sizes[5] = {r.numTokens, r.view.topK, r.view.modelDim,
                      r.view.numExperts, r.view.capacity};
  std::vector<const void *> values(pointers);
  std::vector<void *> args;
  for (const void *&pointer : values)
    args.push_back(static_cast<void *>(&pointer));
  for (int64_t &size : sizes)
    args.push_back(static_cast<void *>(&size));
  const uint32_t grid[3] = {rowGrid(rows), 1, 1};
  const uint32_t block[3] = {kRowThreads, 1, 1};
  return cudaDeviceOf(call.device())
      .launchFunction(function, grid, block, 0, args.data());
}

//===----------------------------------------------------------------------===//
// dispatch: buffer[e, c] = x[s] for each kept (s, j); other slots zero
//===----------------------------------------------------------------------===//

__global__ void dispatchKernel(RoutingView r, int64_t entries, bool vector,
                               const float *x, float *buffer) {
  for (int64_t i = blockIdx.x; i < entries; i += gridDim.x) {
    const int32_t e = r.experts[i], c = r.slots[i];
    if (!moe_math::routingEntryUsable(e, c, r.numExperts, r.capacity))
      continue;
    const float *from = x + (i / r.topK) * r.modelDim;
    float *to = buffer + moe_math::slotRowOffset(e, c, r.capacity, r.modelDim);
    if (vector) {
      const float4 *from4 = reinterpret_cast<const float4 *>(from);
      float4 *to4 = reinterpret_cast<float4 *>(to);
      for (int64_t m = threadIdx.x; m < r.modelDim / 4; m += blockDim.x)
        to4[m] = from4[m];
    } else {
      for (int64_t m = threadIdx.x; m < r.modelDim; m += blockDim.x)
        to[m] = from[m];
    }
  }
}

int64_t dispatchWorkspace(const Instruction &inst, const Program &program) {
  return claimBytes(resultTypeOf(inst, program, 0));
}

Status runDispatch(KernelCall &call) {
  const TensorType &buffer = call.resultType(0);
  const RoutingCall r = routingCall(call, call.operandType(0), 1, buffer);
  cudaStream_t stream = streamOf(call);
  MOERT_RETURN_IF_ERROR(checkRouting(call, r));
  float *out = call.result<float>(0);
  MOERT_RETURN_IF_ERROR(zeroFill(out, buffer.byteSize(), stream));
  const int64_t entries = r.numTokens * r.view.topK;
  if (entries == 0 || r.view.modelDim == 0)
    return Status::success();
  const float *x = call.operand<float>(0);
  MOERT_ASSIGN_OR_RETURN(void *generated,
                         generatedKernel(call, "moe_dispatch"));
  if (generated)
    return launchGenerated(call, generated,
                           {x, r.view.experts, r.view.slots, out}, r, entries);
  dispatchKernel<<<rowGrid(entries), kRowThreads, 0, stream>>>(
      r.view, entries, rowsVectorizable(r.view.modelDim, {x, out}), x, out);
  return launched();
}

//===----------------------------------------------------------------------===//
// combine: y[s] = sum_j w[s, j] buffer[e, c]; dispatch_grad: the same
// without weights
//===----------------------------------------------------------------------===//

__global__ void combineKernel(RoutingView r, int64_t tokens,
                              const float *weights, const float *buffer,
                              float *y) {
  for (int64_t s = blockIdx.x; s < tokens; s += gridDim.x)
    for (int64_t m = threadIdx.x; m < r.modelDim; m += blockDim.x)
      y[s * r.modelDim + m] =
          weights ? moe_math::combineElement(r, weights, buffer, s, m)
                  : moe_math::dispatchGradElement(r, buffer, s, m);
}

int64_t combineWorkspace(const Instruction &inst, const Program &program) {
  return claimBytes(operandTypeOf(inst, program, 0));
}

Status runCombine(KernelCall &call) {
  // Operands: buffer [E, C, M], experts, slots, weights.
  const TensorType &buffer = call.operandType(0);
  const RoutingCall r = routingCall(call, call.resultType(0), 1, buffer);
  MOERT_RETURN_IF_ERROR(checkRouting(call, r));
  if (r.numTokens == 0 || r.view.modelDim == 0)
    return Status::success();
  MOERT_ASSIGN_OR_RETURN(void *generated, generatedKernel(call, "moe_combine"));
  if (generated)
    return launchGenerated(call, generated,
                           {call.operand<float>(0), r.view.experts,
                            r.view.slots, call.operand<float>(3),
                            call.result<float>(0)},
                           r, r.numTokens);
  combineKernel<<<rowGrid(r.numTokens), kRowThreads, 0, streamOf(call)>>>(
      r.view, r.numTokens, call.operand<float>(3), call.operand<float>(0),
      call.result<float>(0));
  return launched();
}

int64_t dispatchGradWorkspace(const Instruction &inst,
                              const Program &program) {
  return claimBytes(operandTypeOf(inst, program, 0));
}

Status runDispatchGrad(KernelCall &call) {
  // Operands: dbuffer [E, C, M], experts, slots; result dx [S, M].
  const TensorType &buffer = call.operandType(0);
  const RoutingCall r = routingCall(call, call.resultType(0), 1, buffer);
  MOERT_RETURN_IF_ERROR(checkRouting(call, r));
  if (r.numTokens == 0 || r.view.modelDim == 0)
    return Status::success();
  MOERT_ASSIGN_OR_RETURN(void *generated,
                         generatedKernel(call, "moe_dispatch_grad"));
  if (generated)
    return launchGenerated(call, generated,
                           {call.operand<float>(0), r.view.experts,
                            r.view.slots, call.result<float>(0)},
                           r, r.numTokens);
  combineKernel<<<rowGrid(r.numTokens), kRowThreads, 0, streamOf(call)>>>(
      r.view, r.numTokens, nullptr, call.operand<float>(0),
      call.result<float>(0));
  return launched();
}

//===----------------------------------------------------------------------===//
// combine_grad: dbuffer[e, c] = w dy[s] (zero elsewhere), dw[s, j] =
// <dy[s], buffer[e, c]> (zero for dropped choices)
//===----------------------------------------------------------------------===//

__device__ double blockSumDouble(double value) {
  __shared__ double partial[kRowThreads / 32];
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_down_sync(0xffffffffu, value, offset);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0)
    partial[warp] = value;
  __syncthreads();
  double total = 0.0;
  if (threadIdx.x == 0)
    for (int w = 0; w < blockDim.x / 32; ++w)
      total += partial[w];
  __syncthreads();
  return total; // valid in thread 0
}

__global__ void combineGradKernel(RoutingView r, int64_t entries,
                                  const float *weights, const float *buffer,
                                  const float *dy, float *bufferGrad,
                                  float *weightsGrad) {
  for (int64_t i = blockIdx.x; i < entries; i += gridDim.x) {
    const int32_t e = r.experts[i], c = r.slots[i];
    if (!moe_math::routingEntryUsable(e, c, r.numExperts, r.capacity)) {
      if (threadIdx.x == 0)
        weightsGrad[i] = 0.0f;
      continue;
    }
    const int64_t row = moe_math::slotRowOffset(e, c, r.capacity, r.modelDim);
    const float *dyRow = dy + (i / r.topK) * r.modelDim;
    const float w = weights[i];
    double dot = 0.0;
    for (int64_t m = threadIdx.x; m < r.modelDim; m += blockDim.x) {
      bufferGrad[row + m] = moe_math::mulRn(w, dyRow[m]);
      dot += static_cast<double>(dyRow[m]) * buffer[row + m];
    }
    dot = blockSumDouble(dot);
    if (threadIdx.x == 0)
      weightsGrad[i] = static_cast<float>(dot);
  }
}

int64_t combineGradWorkspace(const Instruction &inst, const Program &program) {
  return claimBytes(operandTypeOf(inst, program, 1));
}

Status runCombineGrad(KernelCall &call) {
  // Operands: dy [S, M], buffer [E, C, M], experts, slots, weights;
  // results: dbuffer [E, C, M], dweights [S, k].
  const TensorType &buffer = call.operandType(1);
  const RoutingCall r = routingCall(call, call.operandType(0), 2, buffer);
  cudaStream_t stream = streamOf(call);
  MOERT_RETURN_IF_ERROR(checkRouting(call, r));
  float *bufferGrad = call.result<float>(0);
  MOERT_RETURN_IF_ERROR(zeroFill(bufferGrad, buffer.byteSize(), stream));
  const int64_t entries = r.numTokens * r.view.topK;
  if (entries == 0)
    return Status::success();
  if (r.view.modelDim == 0)
    return zeroFill(call.result<float>(1), entries * 4, stream);
  combineGradKernel<<<rowGrid(entries), kRowThreads, 0, stream>>>(
      r.view, entries, call.operand<float>(4), call.operand<float>(1),
      call.operand<float>(0), bufferGrad, call.result<float>(1));
  return launched();
}

//===----------------------------------------------------------------------===//
// Expert FFN
//===----------------------------------------------------------------------===//

Expected<int> expertActivation(const KernelCall &call) {
  if (Expected<std::string> spelled = call.stringAttr("activation");
      spelled.ok()) {
    static const char *const kNames[] = {"relu", "gelu", "gelu_tanh", "silu"};
    for (int kind = 0; kind < 4; ++kind)
      if (*spelled == kNames[kind])
        return kind;
    return invalidArgument("activation '" + *spelled +
                           "' is not relu, gelu, gelu_tanh or silu");
  }
  MOERT_ASSIGN_OR_RETURN(int64_t kind, call.intAttr("activation"));
  if (kind < 0 || kind > 3)
    return invalidArgument("activation kind " + std::to_string(kind) +
                           " is not one of relu(0), gelu(1), gelu_tanh(2), "
                           "silu(3)");
  return static_cast<int>(kind);
}

ExpertDims expertDims(const TensorType &input, const TensorType &w1) {
  ExpertDims d;
  d.experts = input.shape[0];
  d.capacity = input.shape[1];
  d.model = input.shape[2];
  d.hidden = w1.shape[2];
  return d;
}

/// The tensors of one expert FFN call, by ExpertGemm.h's names. `lowered`
/// holds the reduced-precision copies of the GEMM inputs (bf16 / f16).
struct ExpertTensors {
  const float *input = nullptr, *w1 = nullptr, *w2 = nullptr,
              *outputGrad = nullptr;
  float *hidden = nullptr, *hiddenGrad = nullptr, *output = nullptr,
        *inputGrad = nullptr, *w1Grad = nullptr, *w2Grad = nullptr;
};

/// Reduced-precision copies, one per operand the GEMMs read, in the
/// workspace (ComputeType::F32 takes none).
struct LoweredTensors {
  void *input = nullptr, *w1 = nullptr, *w2 = nullptr, *outputGrad = nullptr,
       *hidden = nullptr, *hiddenGrad = nullptr;
};

/// The workspace of an expert FFN call: Z (backward) and Hd / dHd / dZ,
/// [E, C, H] each, and for reduced precision the copies.
struct ExpertScratch {
  float *preActivation = nullptr, *hidden = nullptr;
  LoweredTensors lowered;
};

ExpertScratch expertScratch(void *base, const ExpertDims &d, bool backward,
                            ComputeType compute, Scratch *counter) {
  Scratch scratch(base);
  const int64_t hiddenElements = d.experts * d.capacity * d.hidden;
  const int64_t bufferElements = d.experts * d.capacity * d.model;
  const int64_t weightElements = d.experts * d.model * d.hidden;
  ExpertScratch s;
  s.hidden = scratch.take<float>(hiddenElements);
  if (backward)
    s.preActivation = scratch.take<float>(hiddenElements);
  if (compute != ComputeType::F32) {
    s.lowered.input = scratch.take<uint16_t>(bufferElements);
    s.lowered.w1 = scratch.take<uint16_t>(weightElements);
    s.lowered.w2 = scratch.take<uint16_t>(weightElements);
    s.lowered.hidden = scratch.take<uint16_t>(hiddenElements);
    if (backward) {
      s.lowered.outputGrad = scratch.take<uint16_t>(bufferElements);
      s.lowered.hiddenGrad = scratch.take<uint16_t>(hiddenElements);
    }
  }
  if (counter)
    *counter = scratch;
  return s;
}

int64_t expertWorkspaceBytes(const ExpertDims &d, bool backward,
                             ComputeType compute) {
  Scratch counter;
  expertScratch(nullptr, d, backward, compute, &counter);
  return static_cast<int64_t>(counter.bytes());
}

int64_t expertFfnWorkspace(const Instruction &inst, const Program &program) {
  return expertWorkspaceBytes(expertDims(operandTypeOf(inst, program, 0),
                                         operandTypeOf(inst, program, 1)),
                              false, computeTypeOf(inst));
}

int64_t expertFfnGradWorkspace(const Instruction &inst,
                               const Program &program) {
  return expertWorkspaceBytes(expertDims(operandTypeOf(inst, program, 1),
                                         operandTypeOf(inst, program, 2)),
                              true, computeTypeOf(inst));
}

const void *gemmOperand(ExpertOperand which, const ExpertTensors &t,
                        const LoweredTensors *lowered) {
  using O = ExpertOperand;
  switch (which) {
  case O::Input:
    return lowered ? lowered->input : t.input;
  case O::W1:
    return lowered ? lowered->w1 : t.w1;
  case O::W2:
    return lowered ? lowered->w2 : t.w2;
  case O::OutputGrad:
    return lowered ? lowered->outputGrad : t.outputGrad;
  case O::Hidden:
    return lowered ? lowered->hidden : t.hidden;
  case O::HiddenGrad:
    return lowered ? lowered->hiddenGrad : t.hiddenGrad;
  default:
    return nullptr;
  }
}

float *gemmResult(ExpertOperand which, const ExpertTensors &t) {
  using O = ExpertOperand;
  switch (which) {
  case O::Hidden:
    return t.hidden;
  case O::HiddenGrad:
    return t.hiddenGrad;
  case O::Output:
    return t.output;
  case O::InputGrad:
    return t.inputGrad;
  case O::W1Grad:
    return t.w1Grad;
  case O::W2Grad:
    return t.w2Grad;
  default:
    return nullptr;
  }
}

Status batchedGemm(const KernelCall &call, const ExpertBatchedGemm &g,
                   const ExpertTensors &t, ComputeType compute,
                   const LoweredTensors &lowered) {
  if (g.m == 0 || g.n == 0 || g.batch == 0)
    return Status::success();
  float *c = gemmResult(g.c, t);
  if (g.k == 0)
    return zeroFill(c, g.m * g.n * g.batch * 4, streamOf(call));
  if (g.m > INT_MAX || g.n > INT_MAX || g.k > INT_MAX || g.lda > INT_MAX ||
      g.ldb > INT_MAX || g.ldc > INT_MAX || g.batch > INT_MAX)
    return unimplemented("expert GEMM of " + std::to_string(g.m) + " x " +
                         std::to_string(g.n) + " x " + std::to_string(g.k) +
                         " over " + std::to_string(g.batch) +
                         " experts exceeds cuBLAS's 32-bit sizes");
  CudaDevice &dev = cudaDeviceOf(call.device());
  const float alpha = 1.0f, beta = 0.0f;
  const cublasOperation_t transA = g.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t transB = g.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (compute == ComputeType::F32) {
    MOERT_CUBLAS_RETURN_IF_ERROR(cublasSgemmStridedBatched(
        dev.cublas(), transA, transB, static_cast<int>(g.m),
        static_cast<int>(g.n), static_cast<int>(g.k), &alpha,
        static_cast<const float *>(gemmOperand(g.a, t, nullptr)),
        static_cast<int>(g.lda), g.strideA,
        static_cast<const float *>(gemmOperand(g.b, t, nullptr)),
        static_cast<int>(g.ldb), g.strideB, &beta, c, static_cast<int>(g.ldc),
        g.strideC, static_cast<int>(g.batch)));
    return Status::success();
  }
  const cudaDataType_t inputType =
      compute == ComputeType::BF16 ? CUDA_R_16BF : CUDA_R_16F;
  MOERT_CUBLAS_RETURN_IF_ERROR(cublasGemmStridedBatchedEx(
      dev.cublas(), transA, transB, static_cast<int>(g.m),
      static_cast<int>(g.n), static_cast<int>(g.k), &alpha,
      gemmOperand(g.a, t, &lowered), inputType, static_cast<int>(g.lda),
      g.strideA, gemmOperand(g.b, t, &lowered), inputType,
      static_cast<int>(g.ldb), g.strideB, &beta, c, CUDA_R_32F,
      static_cast<int>(g.ldc), g.strideC, static_cast<int>(g.batch),
      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  return Status::success();
}

/// rows of [E, rows, cols]: out[e, r, c] = act(in[e, r, c] + bias[e, c])
/// (keeping the biased value in `preActivation` when it is not null).
template <int Kind>
__global__ void biasActivationKernel(int64_t experts, int64_t rows,
                                     int64_t cols, const float *bias,
                                     float *preActivation, float *values) {
  const int64_t count = experts * rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t e = i / (rows * cols), c = i % cols;
    const float z = moe_math::addRn(values[i], bias[e * cols + c]);
    if (preActivation)
      preActivation[i] = z;
    values[i] = dense_math::activationValue<Kind>(z);
  }
}

__global__ void addBiasKernel(int64_t experts, int64_t rows, int64_t cols,
                              const float *bias, float *values) {
  const int64_t count = experts * rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t e = i / (rows * cols), c = i % cols;
    values[i] = moe_math::addRn(values[i], bias[e * cols + c]);
  }
}

/// grad[i] *= act'(z[i]).
template <int Kind>
__global__ void activationGradKernel(int64_t count, const float *z,
                                     float *grad) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    grad[i] = moe_math::mulRn(grad[i],
                              dense_math::activationDerivative<Kind>(z[i]));
}

/// sums[e, c] = sum over r of values[e, r, c], in double, rows in order.
__global__ void expertColumnSumsKernel(int64_t rows, int64_t cols,
                                       const float *values, float *sums) {
  const int64_t e = blockIdx.y;
  for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < cols;
       c += int64_t{gridDim.x} * blockDim.x) {
    const float *column = values + e * rows * cols + c;
    double sum = 0.0;
    for (int64_t r = 0; r < rows; ++r)
      sum += column[r * cols];
    sums[e * cols + c] = static_cast<float>(sum);
  }
}

Status expertColumnSums(cudaStream_t stream, int64_t experts, int64_t rows,
                        int64_t cols, const float *values, float *sums) {
  if (experts == 0 || cols == 0)
    return Status::success();
  if (experts > 65535)
    return unimplemented("more than 65535 local experts");
  const dim3 grid(gridFor(cols), static_cast<unsigned>(experts));
  expertColumnSumsKernel<<<grid, kThreads, 0, stream>>>(rows, cols, values,
                                                        sums);
  return launched();
}

template <int Kind>
Status biasActivation(cudaStream_t stream, const ExpertDims &d,
                      const float *bias, float *preActivation,
                      float *values) {
  const int64_t count = d.experts * d.capacity * d.hidden;
  if (count == 0)
    return Status::success();
  biasActivationKernel<Kind><<<gridFor(count), kThreads, 0, stream>>>(
      d.experts, d.capacity, d.hidden, bias, preActivation, values);
  return launched();
}

Status biasActivationOf(int kind, cudaStream_t stream, const ExpertDims &d,
                        const float *bias, float *preActivation,
                        float *values) {
  switch (kind) {
  case dense_math::kRelu:
    return biasActivation<dense_math::kRelu>(stream, d, bias, preActivation,
                                             values);
  case dense_math::kGelu:
    return biasActivation<dense_math::kGelu>(stream, d, bias, preActivation,
                                             values);
  case dense_math::kGeluTanh:
    return biasActivation<dense_math::kGeluTanh>(stream, d, bias,
                                                 preActivation, values);
  default:
    return biasActivation<dense_math::kSilu>(stream, d, bias, preActivation,
                                             values);
  }
}

Status activationGradOf(int kind, cudaStream_t stream, int64_t count,
                        const float *z, float *grad) {
  if (count == 0)
    return Status::success();
  const unsigned grid = gridFor(count);
  switch (kind) {
  case dense_math::kRelu:
    activationGradKernel<dense_math::kRelu>
        <<<grid, kThreads, 0, stream>>>(count, z, grad);
    break;
  case dense_math::kGelu:
    activationGradKernel<dense_math::kGelu>
        <<<grid, kThreads, 0, stream>>>(count, z, grad);
    break;
  case dense_math::kGeluTanh:
    activationGradKernel<dense_math::kGeluTanh>
        <<<grid, kThreads, 0, stream>>>(count, z, grad);
    break;
  default:
    activationGradKernel<dense_math::kSilu>
        <<<grid, kThreads, 0, stream>>>(count, z, grad);
    break;
  }
  return launched();
}

Status runExpertFfn(KernelCall &call) {
  // Operands: input [E, C, M], W1 [E, M, H], b1 [E, H], W2 [E, H, M],
  // b2 [E, M]; result [E, C, M].
  MOERT_ASSIGN_OR_RETURN(int kind, expertActivation(call));
  MOERT_ASSIGN_OR_RETURN(ComputeType compute, computeTypeOf(call));
  const ExpertDims d = expertDims(call.operandType(0), call.operandType(1));
  MOERT_RETURN_IF_ERROR(needWorkspace(
      call, static_cast<size_t>(expertWorkspaceBytes(d, false, compute))));
  cudaStream_t stream = streamOf(call);
  const ExpertScratch scratch =
      expertScratch(call.workspace(), d, false, compute, nullptr);
  ExpertTensors t;
  t.input = call.operand<float>(0);
  t.w1 = call.operand<float>(1);
  t.w2 = call.operand<float>(3);
  t.hidden = scratch.hidden;
  t.output = call.result<float>(0);
  const LoweredTensors &low = scratch.lowered;
  const int64_t bufferElements = d.experts * d.capacity * d.model;
  const int64_t weightElements = d.experts * d.model * d.hidden;
  const int64_t hiddenElements = d.experts * d.capacity * d.hidden;
  if (compute != ComputeType::F32) {
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute, bufferElements, t.input,
                                low.input));
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute, weightElements, t.w1,
                                low.w1));
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute, weightElements, t.w2,
                                low.w2));
  }
  MOERT_RETURN_IF_ERROR(
      batchedGemm(call, expertHiddenGemm(d), t, compute, low));
  MOERT_RETURN_IF_ERROR(biasActivationOf(kind, stream, d,
                                         call.operand<float>(2), nullptr,
                                         t.hidden));
  if (compute != ComputeType::F32)
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute, hiddenElements, t.hidden,
                                low.hidden));
  MOERT_RETURN_IF_ERROR(
      batchedGemm(call, expertOutputGemm(d), t, compute, low));
  if (bufferElements == 0)
    return Status::success();
  addBiasKernel<<<gridFor(bufferElements), kThreads, 0, stream>>>(
      d.experts, d.capacity, d.model, call.operand<float>(4), t.output);
  return launched();
}

Status runExpertFfnGrad(KernelCall &call) {
  // Operands: dY [E, C, M], input, W1, b1, W2; results: dX, dW1, db1, dW2,
  // db2.
  MOERT_ASSIGN_OR_RETURN(int kind, expertActivation(call));
  MOERT_ASSIGN_OR_RETURN(ComputeType compute, computeTypeOf(call));
  const ExpertDims d = expertDims(call.operandType(1), call.operandType(2));
  MOERT_RETURN_IF_ERROR(needWorkspace(
      call, static_cast<size_t>(expertWorkspaceBytes(d, true, compute))));
  cudaStream_t stream = streamOf(call);
  const ExpertScratch scratch =
      expertScratch(call.workspace(), d, true, compute, nullptr);
  ExpertTensors t;
  t.outputGrad = call.operand<float>(0);
  t.input = call.operand<float>(1);
  t.w1 = call.operand<float>(2);
  t.w2 = call.operand<float>(4);
  t.hidden = scratch.hidden;
  t.hiddenGrad = scratch.hidden; // dHd overwrites Hd once dW2 is enqueued
  t.inputGrad = call.result<float>(0);
  t.w1Grad = call.result<float>(1);
  t.w2Grad = call.result<float>(3);
  const LoweredTensors &low = scratch.lowered;
  const int64_t bufferElements = d.experts * d.capacity * d.model;
  const int64_t weightElements = d.experts * d.model * d.hidden;
  const int64_t hiddenElements = d.experts * d.capacity * d.hidden;
  const bool reduced = compute != ComputeType::F32;
  if (reduced) {
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute, bufferElements, t.input,
                                low.input));
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute, weightElements, t.w1,
                                low.w1));
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute, weightElements, t.w2,
                                low.w2));
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute, bufferElements,
                                t.outputGrad, low.outputGrad));
  }
  // Recompute Z (kept) and Hd = act(Z).
  MOERT_RETURN_IF_ERROR(
      batchedGemm(call, expertHiddenGemm(d), t, compute, low));
  MOERT_RETURN_IF_ERROR(biasActivationOf(kind, stream, d,
                                         call.operand<float>(3),
                                         scratch.preActivation, t.hidden));
  if (reduced)
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute, hiddenElements, t.hidden,
                                low.hidden));
  MOERT_RETURN_IF_ERROR(
      batchedGemm(call, expertW2GradGemm(d), t, compute, low));
  MOERT_RETURN_IF_ERROR(expertColumnSums(stream, d.experts, d.capacity,
                                         d.model, t.outputGrad,
                                         call.result<float>(4)));
  MOERT_RETURN_IF_ERROR(
      batchedGemm(call, expertHiddenGradGemm(d), t, compute, low));
  MOERT_RETURN_IF_ERROR(activationGradOf(kind, stream, hiddenElements,
                                         scratch.preActivation, t.hiddenGrad));
  if (reduced)
    MOERT_RETURN_IF_ERROR(lowerToComputeType(stream, compute, hiddenElements, t.hiddenGrad,
                                low.hiddenGrad));
  MOERT_RETURN_IF_ERROR(
      batchedGemm(call, expertW1GradGemm(d), t, compute, low));
  MOERT_RETURN_IF_ERROR(expertColumnSums(stream, d.experts, d.capacity,
                                         d.hidden, t.hiddenGrad,
                                         call.result<float>(2)));
  return batchedGemm(call, expertInputGradGemm(d), t, compute, low);
}

__global__ void lowerKernel(int64_t count, bool bf16, const float *from,
                            uint16_t *to) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    to[i] = bf16 ? floatToBf16Bits(from[i]) : floatToF16Bits(from[i]);
}

__global__ void roundKernel(int64_t count, bool bf16, const float *from,
                            float *to) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    to[i] = bf16 ? bf16BitsToFloat(floatToBf16Bits(from[i]))
                 : f16BitsToFloat(floatToF16Bits(from[i]));
}

} // namespace

namespace dense_device {

Status lowerToComputeType(cudaStream_t stream, ComputeType compute,
                          int64_t count, const float *from, void *to) {
  if (count == 0)
    return Status::success();
  if (compute == ComputeType::F32)
    return internalError("no 16-bit format for compute_type f32");
  lowerKernel<<<gridFor(count), kThreads, 0, stream>>>(
      count, compute == ComputeType::BF16, from, static_cast<uint16_t *>(to));
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

Status roundToComputeType(cudaStream_t stream, ComputeType compute,
                          int64_t count, const float *from, float *to) {
  if (count == 0)
    return Status::success();
  if (compute == ComputeType::F32)
    return internalError("no rounding for compute_type f32");
  roundKernel<<<gridFor(count), kThreads, 0, stream>>>(
      count, compute == ComputeType::BF16, from, to);
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

} // namespace dense_device

void registerMoeKernels(exec::KernelRegistry &registry) {
  registry.add(Op::gate, {runGate, 0, 0, gateWorkspace});
  registry.add(Op::gate_grad, {runGateGrad, 0, 0, gateGradWorkspace});
  registry.add(Op::dispatch, {runDispatch, 0, 0, dispatchWorkspace});
  registry.add(Op::dispatch_grad,
               {runDispatchGrad, 0, 0, dispatchGradWorkspace});
  registry.add(Op::combine, {runCombine, 0, 0, combineWorkspace});
  registry.add(Op::combine_grad, {runCombineGrad, 0, 0, combineGradWorkspace});
  registry.add(Op::expert_ffn, {runExpertFfn, 0, 0, expertFfnWorkspace});
  registry.add(Op::expert_ffn_grad,
               {runExpertFfnGrad, 0, 0, expertFfnGradWorkspace});
}

} // namespace cuda
} // namespace moert
