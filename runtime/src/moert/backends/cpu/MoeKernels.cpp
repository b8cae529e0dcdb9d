//===- MoeKernels.cpp - The CPU kernels of the MoE ops ----------------------===//
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

#include "moert/GateCapacity.h"
#include "moert/backends/GateAttributes.h"
#include "moert/kernels/DispatchCombine.h"
#include "moert/kernels/Gate.h"
#include "moert/train/ExpertFfn.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace moert {
namespace cpu {

namespace {

/// The gate's scratch, carved out of the call's workspace (zero-filled,
/// like the vectors GateResult holds): the softmax probabilities [S, E] and,
/// for the backward pass, the recomputed routing.
struct GateScratch {
  static int64_t align(int64_t bytes) { return (bytes + 63) / 64 * 64; }
  static int64_t bytes(const GateShape &shape, int64_t topK, bool routing) {
    int64_t total = align(shape.numTokens * shape.numExperts * 4);
    if (routing)
      total += 3 * align(shape.numTokens * topK * 4) +
               align(shape.numExperts * 4);
    return total;
  }
  static GateOutputs carve(const KernelCall &call, const GateShape &shape,
                           int64_t topK, bool routing) {
    uint8_t *base = static_cast<uint8_t *>(call.workspace());
    std::memset(base, 0, static_cast<size_t>(bytes(shape, topK, routing)));
    GateOutputs out;
    out.gates = reinterpret_cast<float *>(base);
    if (routing) {
      uint8_t *next = base + align(shape.numTokens * shape.numExperts * 4);
      auto take = [&](int64_t size) {
        uint8_t *p = next;
        next += align(size);
        return p;
      };
      out.experts = reinterpret_cast<int32_t *>(take(shape.numTokens * topK * 4));
      out.slots = reinterpret_cast<int32_t *>(take(shape.numTokens * topK * 4));
      out.weights = reinterpret_cast<float *>(take(shape.numTokens * topK * 4));
      out.expertCounts =
          reinterpret_cast<int32_t *>(take(shape.numExperts * 4));
    }
    return out;
  }
};

int64_t gateShapeAndK(const Instruction &inst, const Program &program,
                      size_t inputOperand, GateShape &shape) {
  const TensorType &x = program.buffers[inst.operands[inputOperand]].type;
  const TensorType &w = program.buffers[inst.operands[inputOperand + 1]].type;
  shape = gateShapeOf(x, w);
  auto k = inst.attrs.find("top_k");
  const int64_t *topK =
      k == inst.attrs.end() ? nullptr : std::get_if<int64_t>(&k->second);
  return topK ? *topK : 1;
}

int64_t gateWorkspace(const Instruction &inst, const Program &program) {
  GateShape shape;
  int64_t topK = gateShapeAndK(inst, program, 0, shape);
  return GateScratch::bytes(shape, topK, false);
}

int64_t gateGradWorkspace(const Instruction &inst, const Program &program) {
  GateShape shape;
  int64_t topK = gateShapeAndK(inst, program, 2, shape);
  return GateScratch::bytes(shape, topK, true);
}

Status runGate(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(GateConfig config, gateConfigOf(call));
  MOERT_ASSIGN_OR_RETURN(
      GateRandomness randomness,
      gateRandomnessOf(call, leadingElements(call.operandType(0))));
  GateShape shape = gateShapeOf(call.operandType(0), call.operandType(1));
  GateOutputs scratch = GateScratch::carve(call, shape, config.topK, false);
  int64_t capacity = 0;
  GateOutputs out;
  out.experts = call.result<int32_t>(0);
  out.slots = call.result<int32_t>(1);
  out.weights = call.result<float>(2);
  out.gates = scratch.gates;
  out.expertCounts = call.result<int32_t>(3);
  out.auxLoss = call.result<float>(4);
  out.capacity = &capacity;
  MOERT_RETURN_IF_ERROR(gateForward(config, shape, randomness,
                                    call.operand<float>(0),
                                    call.operand<float>(1), out));
  // The compiler sized the dispatch buffers for this capacity: groups times
  // the per-group capacity (moert::groupedExpertCapacity), which is also
  // what the gate reports.
  MOERT_ASSIGN_OR_RETURN(int64_t planned, call.intAttr("capacity"));
  if (capacity > planned)
    return internalError("the gate assigned " + std::to_string(capacity) +
                         " slots per expert (" + std::to_string(config.groups) +
                         " group(s) of " +
                         std::to_string(capacity / config.groups) +
                         "), the plan has " + std::to_string(planned));
  return Status::success();
}

Status runGateGrad(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(GateConfig config, gateConfigOf(call));
  MOERT_ASSIGN_OR_RETURN(
      GateRandomness randomness,
      gateRandomnessOf(call, leadingElements(call.operandType(2))));
  GateShape shape = gateShapeOf(call.operandType(2), call.operandType(3));
  // The softmax gates are recomputed (same input, weight and noise) rather
  // than kept from the forward pass.
  GateOutputs out = GateScratch::carve(call, shape, config.topK, true);
  float auxLoss = 0.0f;
  int64_t capacity = 0;
  out.auxLoss = &auxLoss;
  out.capacity = &capacity;
  MOERT_RETURN_IF_ERROR(gateRoute(config, shape, randomness,
                                  call.operand<float>(2),
                                  call.operand<float>(3), out)
                            .status());
  GateSavedState saved;
  saved.gates = out.gates;
  saved.experts = call.operand<int32_t>(4);
  saved.slots = call.operand<int32_t>(5);
  return gateBackward(config, shape, randomness, call.operand<float>(2),
                      call.operand<float>(3), saved, call.operand<float>(0),
                      *call.operand<float>(1), call.result<float>(0),
                      call.result<float>(1));
}

DispatchShape dispatchShape(const TensorType &tokens, const TensorType &routing,
                            const TensorType &buffer) {
  DispatchShape shape;
  shape.numTokens = leadingElements(tokens);
  shape.modelDim = lastDim(tokens);
  shape.numExperts = buffer.shape[0];
  shape.capacity = buffer.shape[1];
  shape.topK = lastDim(routing);
  return shape;
}

Status runDispatch(KernelCall &call) {
  DispatchShape shape = dispatchShape(call.operandType(0), call.operandType(1),
                                      call.resultType(0));
  return dispatchTokens(shape,
                        {call.operand<int32_t>(1), call.operand<int32_t>(2)},
                        call.operand<float>(0), call.result<float>(0));
}

Status runDispatchGrad(KernelCall &call) {
  DispatchShape shape = dispatchShape(call.resultType(0), call.operandType(1),
                                      call.operandType(0));
  return dispatchTokensBackward(
      shape, {call.operand<int32_t>(1), call.operand<int32_t>(2)},
      call.operand<float>(0), call.result<float>(0));
}

Status runCombine(KernelCall &call) {
  DispatchShape shape = dispatchShape(call.resultType(0), call.operandType(1),
                                      call.operandType(0));
  return combineTokens(
      shape, {call.operand<int32_t>(1), call.operand<int32_t>(2)},
      call.operand<float>(3), call.operand<float>(0), call.result<float>(0));
}

Status runCombineGrad(KernelCall &call) {
  DispatchShape shape = dispatchShape(call.operandType(0), call.operandType(2),
                                      call.operandType(1));
  return combineTokensBackward(
      shape, {call.operand<int32_t>(2), call.operand<int32_t>(3)},
      call.operand<float>(4), call.operand<float>(1), call.operand<float>(0),
      call.result<float>(0), call.result<float>(1));
}

Expected<train::ExpertFfnShape> expertShape(const KernelCall &call,
                                            size_t inputOperand) {
  const TensorType &input = call.operandType(inputOperand);
  const TensorType &w1 = call.operandType(inputOperand + 1);
  train::ExpertFfnShape shape;
  shape.numExperts = input.shape[0];
  shape.capacity = input.shape[1];
  shape.modelDim = input.shape[2];
  shape.hiddenDim = w1.shape[2];
  MOERT_ASSIGN_OR_RETURN(shape.activation, activationKind(call, "activation"));
  MOERT_ASSIGN_OR_RETURN(shape.compute, computeType(call));
  return shape;
}

Status runExpertFfn(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(train::ExpertFfnShape shape, expertShape(call, 0));
  train::expertFfnForward(shape, call.operand<float>(0), call.operand<float>(1),
                          call.operand<float>(2), call.operand<float>(3),
                          call.operand<float>(4), call.result<float>(0));
  return Status::success();
}

Status runExpertFfnGrad(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(train::ExpertFfnShape shape, expertShape(call, 1));
  train::expertFfnBackward(
      shape, call.operand<float>(0), call.operand<float>(1),
      call.operand<float>(2), call.operand<float>(3), call.operand<float>(4),
      call.result<float>(0), call.result<float>(1), call.result<float>(2),
      call.result<float>(3), call.result<float>(4));
  return Status::success();
}

} // namespace

void registerMoeKernels(exec::KernelRegistry &registry) {
  registry.add(Op::gate, {runGate, 0, 0, gateWorkspace});
  registry.add(Op::gate_grad, {runGateGrad, 0, 0, gateGradWorkspace});
  registry.add(Op::dispatch, {runDispatch});
  registry.add(Op::dispatch_grad, {runDispatchGrad});
  registry.add(Op::combine, {runCombine});
  registry.add(Op::combine_grad, {runCombineGrad});
  registry.add(Op::expert_ffn, {runExpertFfn});
  registry.add(Op::expert_ffn_grad, {runExpertFfnGrad});
}

} // namespace cpu
} // namespace moert
