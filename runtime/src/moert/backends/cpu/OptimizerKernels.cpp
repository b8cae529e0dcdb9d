//===- OptimizerKernels.cpp - The CPU kernels of the optimizer ops ----------===//
//
// Adapters from instructions (buffers + attributes, named after the dialect
// ops) to the runtime's CPU kernels. Shapes come from the buffer types,
// which the compiler and the plan loader verified; what depends on data
// (token ids, labels, routing) is checked by the kernels themselves and
// reported as errors. backends/cuda/ has the file of the same name.
//
//===----------------------------------------------------------------------===//
#include "moert/backends/cpu/CpuKernels.h"
#include "moert/backends/cpu/KernelUtil.h"

#include "moert/train/Optimizer.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace moert {
namespace cpu {

namespace {

Status runSumSquares(KernelCall &call) {
  *call.result<float>(0) = static_cast<float>(train::sumSquares(
      call.operandType(0).numElements(), call.operand<float>(0)));
  return Status::success();
}

Status runClip(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(double maxNorm, call.floatAttr("max_norm"));
  train::ClipResult clip =
      train::clipByGlobalNorm(*call.operand<float>(0), maxNorm);
  *call.result<float>(0) = clip.norm;
  *call.result<float>(1) = clip.scale;
  return Status::success();
}

Status runLrSchedule(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(double peak, call.floatAttr("peak_lr"));
  MOERT_ASSIGN_OR_RETURN(int64_t warmup, call.intAttr("warmup_steps"));
  *call.result<float>(0) =
      train::inverseSqrtLr(*call.operand<int64_t>(0), peak, warmup);
  return Status::success();
}

Status runAdamW(KernelCall &call) {
  train::AdamWConfig config;
  MOERT_ASSIGN_OR_RETURN(config.beta1, call.floatAttr("beta1"));
  MOERT_ASSIGN_OR_RETURN(config.beta2, call.floatAttr("beta2"));
  MOERT_ASSIGN_OR_RETURN(config.epsilon, call.floatAttr("epsilon"));
  MOERT_ASSIGN_OR_RETURN(config.weightDecay, call.floatAttr("weight_decay"));
  const TensorType &param = call.operandType(0);
  size_t bytes = static_cast<size_t>(param.byteSize());
  float *newParam = call.result<float>(0);
  float *newExpAvg = call.result<float>(1);
  float *newExpAvgSq = call.result<float>(2);
  // The plan usually updates in place (result buffer == operand buffer);
  // otherwise the state is copied to the result buffers first.
  auto copyUnlessSame = [bytes](float *to, const float *from) {
    if (to != from)
      std::memcpy(to, from, bytes);
  };
  copyUnlessSame(newParam, call.operand<float>(0));
  copyUnlessSame(newExpAvg, call.operand<float>(2));
  copyUnlessSame(newExpAvgSq, call.operand<float>(3));
  train::adamwUpdate(config, param.numElements(), newParam,
                     call.operand<float>(1), newExpAvg, newExpAvgSq,
                     *call.operand<float>(4), *call.operand<float>(5),
                     *call.operand<int64_t>(6));
  return Status::success();
}

} // namespace

void registerOptimizerKernels(exec::KernelRegistry &registry) {
  registry.add(Op::sum_squares, {runSumSquares});
  registry.add(Op::clip_by_global_norm, {runClip});
  registry.add(Op::lr_schedule, {runLrSchedule});
  registry.add(Op::adamw, {runAdamW});
}

} // namespace cpu
} // namespace moert
