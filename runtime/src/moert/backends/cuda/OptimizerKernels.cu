//===- OptimizerKernels.cu - The CUDA kernels of the optimizer ops ---------===//
//
// sum_squares, clip_by_global_norm, lr_schedule and adamw on the device's
// stream. Scalars (the sum of squares, the clipping factor, the learning
// rate, the step) stay on the device: the kernels read them there, so a
// training step never waits for the host. The arithmetic is MoeMath.h's,
// written in train/Optimizer.cpp's order without FMA contraction, so the
// results are the CPU backend's bits:
//   - sum_squares: 16 interleaved double lanes per block of 16384 elements
//     (one group of 16 threads per block), the lanes' fixed tree, then the
//     blocks' sums in order;
//   - AdamW: the per-step constants once per thread block, the update per
//     element; a clipping factor of 0 (a non-finite gradient norm) skips
//     the update, as on the CPU;
//   - with the moments offloaded to host memory (ZeRO-Offload), the update
//     runs on the host with the CPU backend's AdamW.
//
//===----------------------------------------------------------------------===//
#include "moert/backends/cuda/CudaDevice.h"
#include "moert/backends/cuda/CudaKernels.h"
#include "moert/backends/cuda/DenseDeviceUtils.cuh"
#include "moert/backends/cuda/MoeMath.h"
#include "moert/exec/Executor.h"
#include "moert/train/Optimizer.h"

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace moert {
namespace cuda {

namespace {

using exec::Instruction;
using exec::KernelCall;
using exec::Program;
using exec::TensorType;
using namespace dense_device;
namespace mm = moe_math;

cudaStream_t streamOf(const KernelCall &call) {
  return static_cast<cudaStream_t>(call.stream());
}

Status launched() {
  MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::success();
}

//===----------------------------------------------------------------------===//
// sum_squares
//===----------------------------------------------------------------------===//

constexpr int kGroupsPerBlock = 8; // groups of 16 lanes per thread block

int64_t sumSquaresBlocks(int64_t count) {
  return (count + mm::kSumSquaresBlock - 1) / mm::kSumSquaresBlock;
}

/// partial[b] = train::sumSquares' sum of block b.
__global__ void sumSquaresBlocksKernel(int64_t count, const float *values,
                                       double *partial) {
  __shared__ double lanes[kGroupsPerBlock][mm::kSumSquaresLanes];
  const int group = threadIdx.x / mm::kSumSquaresLanes;
  const int lane = threadIdx.x % mm::kSumSquaresLanes;
  const int64_t block = int64_t{blockIdx.x} * kGroupsPerBlock + group;
  const int64_t begin = block * mm::kSumSquaresBlock;
  const bool active = begin < count;
  if (active) {
    const int64_t size = count - begin < mm::kSumSquaresBlock
                             ? count - begin
                             : mm::kSumSquaresBlock;
    lanes[group][lane] = mm::sumSquaresLane(values + begin, size, lane);
  }
  __syncthreads();
  if (active && lane == 0)
    partial[block] = mm::sumSquaresTree(lanes[group]);
}

/// The blocks' sums in order, from 0.
__global__ void sumSquaresTotalKernel(int64_t blocks, const double *partial,
                                      float *result) {
  if (blockIdx.x != 0 || threadIdx.x != 0)
    return;
  double sum = 0.0;
  for (int64_t b = 0; b < blocks; ++b)
    sum += partial[b];
  *result = static_cast<float>(sum);
}

int64_t sumSquaresWorkspace(const Instruction &inst, const Program &program) {
  Scratch scratch;
  scratch.take<double>(
      sumSquaresBlocks(operandTypeOf(inst, program, 0).numElements()));
  return static_cast<int64_t>(scratch.bytes());
}

Status runSumSquares(KernelCall &call) {
  const int64_t count = call.operandType(0).numElements();
  const int64_t blocks = sumSquaresBlocks(count);
  float *result = call.result<float>(0);
  cudaStream_t stream = streamOf(call);
  if (blocks == 0) {
    MOERT_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(result, 0, sizeof(float), stream));
    return Status::success();
  }
  if (call.workspaceBytes() < static_cast<size_t>(blocks) * sizeof(double) ||
      !call.workspace())
    return internalError("sum_squares needs " +
                         std::to_string(blocks * 8) +
                         " bytes of workspace, was given " +
                         std::to_string(call.workspaceBytes()));
  double *partial = static_cast<double *>(call.workspace());
  const int64_t grid = (blocks + kGroupsPerBlock - 1) / kGroupsPerBlock;
  if (grid > INT32_MAX)
    return unimplemented("sum_squares over " + std::to_string(count) +
                         " elements");
  sumSquaresBlocksKernel<<<static_cast<unsigned>(grid),
                           kGroupsPerBlock * mm::kSumSquaresLanes, 0,
                           stream>>>(count, call.operand<float>(0), partial);
  MOERT_RETURN_IF_ERROR(launched());
  sumSquaresTotalKernel<<<1, 1, 0, stream>>>(blocks, partial, result);
  return launched();
}

//===----------------------------------------------------------------------===//
// clip_by_global_norm, lr_schedule
//===----------------------------------------------------------------------===//

__global__ void clipKernel(const float *sumOfSquares, double maxNorm,
                           float *norm, float *scale) {
  const mm::ClipFactor f = mm::clipFactor(*sumOfSquares, maxNorm);
  *norm = f.norm;
  *scale = f.scale;
}

Status runClip(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(double maxNorm, call.floatAttr("max_norm"));
  clipKernel<<<1, 1, 0, streamOf(call)>>>(call.operand<float>(0), maxNorm,
                                          call.result<float>(0),
                                          call.result<float>(1));
  return launched();
}

__global__ void lrScheduleKernel(const int64_t *step, double peakLr,
                                 int64_t warmup, float *lr) {
  *lr = mm::inverseSqrtLr(*step, peakLr, warmup);
}

Status runLrSchedule(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(double peak, call.floatAttr("peak_lr"));
  MOERT_ASSIGN_OR_RETURN(int64_t warmup, call.intAttr("warmup_steps"));
  lrScheduleKernel<<<1, 1, 0, streamOf(call)>>>(
      call.operand<int64_t>(0), peak, warmup, call.result<float>(0));
  return launched();
}

//===----------------------------------------------------------------------===//
// adamw
//===----------------------------------------------------------------------===//

struct AdamWHyper {
  double beta1, beta2, epsilon, weightDecay;
};

__global__ void adamwKernel(AdamWHyper h, int64_t count, float *param,
                            const float *grad, float *expAvg, float *expAvgSq,
                            const float *lr, const float *gradScale,
                            const int64_t *step) {
  __shared__ mm::AdamWStep s;
  if (threadIdx.x == 0)
    s = mm::adamwStep(h.beta1, h.beta2, h.epsilon, h.weightDecay, *lr,
                      *gradScale, *step);
  __syncthreads();
  if (s.gradScale == 0.0f)
    return; // a non-finite gradient norm: the step is skipped
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count;
       i += int64_t{gridDim.x} * blockDim.x)
    mm::adamwElement(s, param[i], grad[i], expAvg[i], expAvgSq[i]);
}

bool inHostMemory(const KernelCall &call, size_t operand) {
  return call.program().buffers[call.instruction().operands[operand]].kind ==
         exec::BufferKind::Host;
}

bool resultInHostMemory(const KernelCall &call, size_t result) {
  return call.program().buffers[call.instruction().results[result]].kind ==
         exec::BufferKind::Host;
}

/// The learning rate, clip scale and step a host AdamW reads, copied down
/// once per KernelCall::scalarKey (once per step of a plan whose updates
/// all read the same ones), so that the updates after the first do not
/// wait for the copies queued on the stream before them (the 16-bit
/// copies of the parameters updated before).
struct HostScalars {
  uint64_t key = 0;
  const void *lr = nullptr, *scale = nullptr, *step = nullptr;
  float lrValue = 0, scaleValue = 0;
  int64_t stepValue = 0;
};

Expected<HostScalars> hostScalars(KernelCall &call) {
  static std::mutex mutex;
  static HostScalars cached;
  std::lock_guard<std::mutex> lock(mutex);
  const void *lr = call.operand<void>(4), *scale = call.operand<void>(5),
             *step = call.operand<void>(6);
  if (call.scalarKey() != 0 && cached.key == call.scalarKey() &&
      cached.lr == lr && cached.scale == scale && cached.step == step)
    return cached;
  CudaDevice &device = cudaDeviceOf(call.device());
  HostScalars read;
  read.lr = lr;
  read.scale = scale;
  read.step = step;
  MOERT_RETURN_IF_ERROR(
      device.downloadAsync(&read.lrValue, lr, sizeof(float), streamOf(call)));
  MOERT_RETURN_IF_ERROR(device.downloadAsync(&read.scaleValue, scale,
                                             sizeof(float), streamOf(call)));
  MOERT_RETURN_IF_ERROR(device.downloadAsync(&read.stepValue, step,
                                             sizeof(int64_t), streamOf(call)));
  // Each wait also releases its copy's event (keyed by these addresses).
  MOERT_RETURN_IF_ERROR(device.waitForDownload(&read.lrValue));
  MOERT_RETURN_IF_ERROR(device.waitForDownload(&read.scaleValue));
  MOERT_RETURN_IF_ERROR(device.waitForDownload(&read.stepValue));
  read.key = call.scalarKey();
  cached = read;
  return read;
}

/// ZeRO-Offload: the moments live in host memory (exec::BufferKind::Host,
/// exec::offloadOptimizerState or a plan's host buffers), and with
/// offload=params the fp32 master weight and the gradient (moe.to_host)
/// too, updated in place. A gradient or parameter still on the device comes
/// down first; the CPU backend's AdamW (vectorized, multithreaded) updates
/// parameter and moments, and a device parameter goes back up without a
/// host wait: the same bits as the update on the device. All copies go to
/// the call's stream (the transfer stream when the host work overlaps).
Status runAdamWOnHost(KernelCall &call, const AdamWHyper &h) {
  CudaDevice &device = cudaDeviceOf(call.device());
  cudaStream_t stream = streamOf(call);
  const TensorType &type = call.operandType(0);
  const int64_t count = type.numElements();
  const size_t bytes = static_cast<size_t>(type.byteSize());
  std::vector<float> paramCopy, gradCopy;
  // The parameter updated in place: the result's host memory, or a copy
  // of a device parameter.
  float *param = nullptr;
  if (resultInHostMemory(call, 0)) {
    param = call.result<float>(0);
    if (!inHostMemory(call, 0))
      MOERT_RETURN_IF_ERROR(
          device.downloadAsync(param, call.operand<float>(0), bytes, stream));
    else if (param != call.operand<float>(0))
      std::memcpy(param, call.operand<float>(0), bytes);
  } else {
    paramCopy.resize(static_cast<size_t>(count));
    param = paramCopy.data();
    MOERT_RETURN_IF_ERROR(
        device.downloadAsync(param, call.operand<float>(0), bytes, stream));
  }
  const float *grad = call.operand<float>(1);
  if (!inHostMemory(call, 1)) {
    gradCopy.resize(static_cast<size_t>(count));
    MOERT_RETURN_IF_ERROR(
        device.downloadAsync(gradCopy.data(), grad, bytes, stream));
    grad = gradCopy.data();
  }
  MOERT_ASSIGN_OR_RETURN(HostScalars scalars, hostScalars(call));
  // This update's own copies only (a streamed gradient's moe.to_host).
  MOERT_RETURN_IF_ERROR(device.waitForDownload(param));
  MOERT_RETURN_IF_ERROR(device.waitForDownload(grad));
  float *expAvg = call.result<float>(1), *expAvgSq = call.result<float>(2);
  if (expAvg != call.operand<float>(2))
    std::memcpy(expAvg, call.operand<float>(2), bytes);
  if (expAvgSq != call.operand<float>(3))
    std::memcpy(expAvgSq, call.operand<float>(3), bytes);
  train::AdamWConfig config;
  config.beta1 = h.beta1;
  config.beta2 = h.beta2;
  config.epsilon = h.epsilon;
  config.weightDecay = h.weightDecay;
  train::adamwUpdate(config, count, param, grad, expAvg, expAvgSq,
                     scalars.lrValue, scalars.scaleValue, scalars.stepValue);
  if (resultInHostMemory(call, 0))
    return Status::success();
  return device.uploadAsync(call.result<float>(0), bytes, stream,
                            [&](void *staged) {
                              std::memcpy(staged, param, bytes);
                            });
}

Status runAdamW(KernelCall &call) {
  // Operands: param, grad, exp_avg, exp_avg_sq, lr, clip scale, step;
  // results: param, exp_avg, exp_avg_sq (usually the operands' buffers).
  AdamWHyper h;
  MOERT_ASSIGN_OR_RETURN(h.beta1, call.floatAttr("beta1"));
  MOERT_ASSIGN_OR_RETURN(h.beta2, call.floatAttr("beta2"));
  MOERT_ASSIGN_OR_RETURN(h.epsilon, call.floatAttr("epsilon"));
  MOERT_ASSIGN_OR_RETURN(h.weightDecay, call.floatAttr("weight_decay"));
  if (inHostMemory(call, 2) != inHostMemory(call, 3) ||
      inHostMemory(call, 2) != resultInHostMemory(call, 1) ||
      inHostMemory(call, 3) != resultInHostMemory(call, 2))
    return invalidArgument("AdamW's moments must both be on the device or "
                           "both in host memory (operands and results)");
  if ((inHostMemory(call, 0) || resultInHostMemory(call, 0)) &&
      !inHostMemory(call, 2))
    return invalidArgument("AdamW's parameter is in host memory, its moments "
                           "on the device; expected the moments in host "
                           "memory too");
  if (inHostMemory(call, 1) && !inHostMemory(call, 2))
    return invalidArgument("AdamW's gradient is in host memory, its moments "
                           "on the device; expected the moments in host "
                           "memory too");
  if (inHostMemory(call, 2))
    return runAdamWOnHost(call, h);
  const TensorType &param = call.operandType(0);
  const int64_t count = param.numElements();
  cudaStream_t stream = streamOf(call);
  const size_t bytes = static_cast<size_t>(param.byteSize());
  float *newParam = call.result<float>(0);
  float *newExpAvg = call.result<float>(1);
  float *newExpAvgSq = call.result<float>(2);
  auto copyUnlessSame = [&](float *to, const float *from) -> Status {
    if (to != from && bytes > 0)
      MOERT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(
          to, from, bytes, cudaMemcpyDeviceToDevice, stream));
    return Status::success();
  };
  MOERT_RETURN_IF_ERROR(copyUnlessSame(newParam, call.operand<float>(0)));
  MOERT_RETURN_IF_ERROR(copyUnlessSame(newExpAvg, call.operand<float>(2)));
  MOERT_RETURN_IF_ERROR(copyUnlessSame(newExpAvgSq, call.operand<float>(3)));
  if (count == 0)
    return Status::success();
  adamwKernel<<<gridFor(count), kThreads, 0, stream>>>(
      h, count, newParam, call.operand<float>(1), newExpAvg, newExpAvgSq,
      call.operand<float>(4), call.operand<float>(5),
      call.operand<int64_t>(6));
  return launched();
}

} // namespace

void registerOptimizerKernels(exec::KernelRegistry &registry) {
  registry.add(Op::sum_squares, {runSumSquares, 0, 0, sumSquaresWorkspace});
  registry.add(Op::clip_by_global_norm, {runClip, 0, 0, nullptr});
  registry.add(Op::lr_schedule, {runLrSchedule, 0, 0, nullptr});
  registry.add(Op::adamw, {runAdamW, 0, 0, nullptr});
}

} // namespace cuda
} // namespace moert
