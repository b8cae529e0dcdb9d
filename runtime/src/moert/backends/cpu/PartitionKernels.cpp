//===- PartitionKernels.cpp - Small kernels that partitioning introduces --===//
//
// Partitioning splits what one rank computed in a single kernel into local
// pieces and collectives: the loss is normalized by a token count that is
// all-reduced (token_count, div), the bias of a row-parallel linear is added
// once after the all-reduce of the partial products (bias_add), scalars are
// rescaled (mul), gradients of a bucket are packed into one buffer for one
// collective and unpacked after it (pack, unpack). Plus fill, which
// materializes splat constants per step.
//
//===----------------------------------------------------------------------===//
#include "moert/Half.h"
#include "moert/backends/cpu/CpuKernels.h"
#include "moert/backends/cpu/KernelUtil.h"
#include "moert/exec/BucketCopies.h"

#include <algorithm>
#include <cstring>

namespace moert {
namespace cpu {

using exec::DType;
using exec::TensorType;

namespace {

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

/// Number of labels that are not `ignore_index`, as an f32 scalar.
Status runTokenCount(KernelCall &call) {
  MOERT_RETURN_IF_ERROR(call.expectOperand(0, DType::I32));
  MOERT_RETURN_IF_ERROR(call.expectResult(0, DType::F32));
  if (call.resultType(0).numElements() != 1)
    return invalidArgument("the result must be a scalar, found " +
                           call.resultType(0).str());
  MOERT_ASSIGN_OR_RETURN(int64_t ignoreIndex, call.intAttr("ignore_index"));
  const int32_t *labels = call.operand<int32_t>(0);
  int64_t n = call.operandType(0).numElements(), count = 0;
  for (int64_t i = 0; i < n; ++i)
    count += labels[i] != ignoreIndex;
  *call.result<float>(0) = static_cast<float>(count);
  return Status::success();
}

/// x [..., N] + b [N].
Status runBiasAdd(KernelCall &call) {
  const TensorType &x = call.operandType(0);
  const TensorType &bias = call.operandType(1);
  MOERT_RETURN_IF_ERROR(call.expectOperand(0, DType::F32));
  MOERT_RETURN_IF_ERROR(call.expectOperand(1, DType::F32));
  MOERT_RETURN_IF_ERROR(call.expectResult(0, DType::F32));
  int64_t n = x.shape.empty() ? 1 : x.shape.back();
  if (bias.shape.size() != 1 || bias.shape[0] != n ||
      call.resultType(0).shape != x.shape)
    return invalidArgument("expected x [..., N], bias [N] and a result "
                           "shaped like x; found x " +
                           x.str() + ", bias " + bias.str() + ", result " +
                           call.resultType(0).str());
  int64_t rows = n ? x.numElements() / n : 0;
  const float *in = call.operand<float>(0);
  const float *b = call.operand<float>(1);
  float *out = call.result<float>(0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j)
      out[r * n + j] = in[r * n + j] + b[j];
  return Status::success();
}

template <typename Op> Status elementwise(KernelCall &call, Op op) {
  MOERT_RETURN_IF_ERROR(sameShapes(call));
  int64_t n = call.resultType(0).numElements();
  const float *lhs = call.operand<float>(0);
  const float *rhs = call.operand<float>(1);
  float *out = call.result<float>(0);
  for (int64_t i = 0; i < n; ++i)
    out[i] = op(lhs[i], rhs[i]);
  return Status::success();
}

Status runMul(KernelCall &call) {
  return elementwise(call, [](float a, float b) { return a * b; });
}

Status runDiv(KernelCall &call) {
  return elementwise(call, [](float a, float b) { return a / b; });
}

/// Writes `value` to every element (splat constants of the step).
Status runFill(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(double value, call.floatAttr("value"));
  const TensorType &type = call.resultType(0);
  int64_t n = type.numElements();
  switch (type.dtype) {
  case DType::F32:
    std::fill_n(call.result<float>(0), n, static_cast<float>(value));
    break;
  case DType::I32:
    std::fill_n(call.result<int32_t>(0), n, static_cast<int32_t>(value));
    break;
  case DType::I64:
    std::fill_n(call.result<int64_t>(0), n, static_cast<int64_t>(value));
    break;
  case DType::Bool:
    std::fill_n(call.result<uint8_t>(0), n, value != 0.0 ? 1 : 0);
    break;
  case DType::BF16:
    std::fill_n(call.result<uint16_t>(0), n,
                floatToBf16Bits(static_cast<float>(value)));
    break;
  case DType::F16:
    std::fill_n(call.result<uint16_t>(0), n,
                floatToF16Bits(static_cast<float>(value)));
    break;
  }
  return Status::success();
}

void copyRows(const exec::ByteCopy &copy) {
  for (int64_t r = 0; r < copy.rows; ++r)
    std::memcpy(static_cast<char *>(copy.to) + r * copy.toPitch,
                static_cast<const char *>(copy.from) + r * copy.fromPitch,
                static_cast<size_t>(copy.bytes));
}

/// The operands, flattened, one after the other (a gradient bucket); with
/// `chunks`, row by row.
Status runPack(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(std::vector<exec::ByteCopy> copies,
                         exec::packCopies(call));
  for (const exec::ByteCopy &copy : copies)
    copyRows(copy);
  return Status::success();
}

/// Elements [offset, offset + n) of the packed operand (of each row).
Status runUnpack(KernelCall &call) {
  MOERT_ASSIGN_OR_RETURN(exec::ByteCopy copy, exec::unpackCopy(call));
  copyRows(copy);
  return Status::success();
}

/// moe.convert: fp32 to bf16/f16 rounds to nearest, ties to even (Half.h,
/// as the GPU and PyTorch do); bf16/f16 to fp32 is exact.
Status runConvert(KernelCall &call) {
  const DType from = call.operandType(0).dtype;
  const DType to = call.resultType(0).dtype;
  const int64_t n = call.operandType(0).numElements();
  auto each = [n](const auto *x, auto *y, auto convert) {
    for (int64_t i = 0; i < n; ++i)
      y[i] = convert(x[i]);
    return Status::success();
  };
  const bool toHalf = from == DType::F32;
  const DType half = toHalf ? to : from;
  if ((toHalf ? from : to) != DType::F32 ||
      (half != DType::BF16 && half != DType::F16))
    return invalidArgument(std::string("moe.convert from ") +
                           dtypeName(from) + " to " + dtypeName(to) +
                           ": expected f32 to bf16/f16 or back");
  if (toHalf)
    return each(call.operand<float>(0), call.result<uint16_t>(0),
                half == DType::BF16 ? floatToBf16Bits : floatToF16Bits);
  return each(call.operand<uint16_t>(0), call.result<float>(0),
              half == DType::BF16 ? bf16BitsToFloat : f16BitsToFloat);
}

/// moe.to_host: host memory is the CPU's memory.
Status runToHost(KernelCall &call) {
  if (call.result<void>(0) != call.operand<void>(0))
    std::memcpy(call.result<void>(0), call.operand<void>(0),
                static_cast<size_t>(call.operandType(0).byteSize()));
  return Status::success();
}

} // namespace

void registerPartitionKernels(exec::KernelRegistry &registry) {
  registry.add(Op::convert, {runConvert});
  registry.add(Op::to_host, {runToHost});
  registry.add(Op::pack, {runPack});
  registry.add(Op::unpack, {runUnpack});
  registry.add(Op::token_count, {runTokenCount});
  registry.add(Op::bias_add, {runBiasAdd});
  registry.add(Op::mul, {runMul});
  registry.add(Op::div, {runDiv});
  registry.add(Op::fill, {runFill});
}

} // namespace cpu
} // namespace moert
