//===- MoePartitionOps.cpp - Verifiers of the partition-only ops ----------===//
#include "dialects/Moe/MoeOps.h"

using namespace mlir;
using namespace mlir::moe;

LogicalResult BiasAddOp::verify() {
  auto input = cast<RankedTensorType>(getInput().getType());
  auto bias = cast<RankedTensorType>(getBias().getType());
  if (input.getRank() < 1)
    return emitOpError() << "input must have at least one dimension, found "
                         << input;
  if (bias.getRank() != 1 || bias.getDimSize(0) != input.getShape().back())
    return emitOpError() << "bias must be [" << input.getShape().back()
                         << "] (the last dimension of the input), found "
                         << bias;
  if (bias.getElementType() != input.getElementType())
    return emitOpError() << "bias element type " << bias.getElementType()
                         << " differs from the input's "
                         << input.getElementType();
  return success();
}

LogicalResult PackOp::verify() {
  auto result = cast<RankedTensorType>(getResult().getType());
  if (result.getRank() != 1)
    return emitOpError() << "result must be 1-D, found " << result;
  if (getInputs().empty())
    return emitOpError() << "expects at least one operand";
  const int64_t chunks = getChunks();
  if (chunks < 1)
    return emitOpError() << "chunks must be at least 1, found " << chunks;
  int64_t elements = 0;
  for (auto [i, input] : llvm::enumerate(getInputs())) {
    auto type = cast<RankedTensorType>(input.getType());
    if (!type.hasStaticShape())
      return emitOpError() << "operand #" << i << " must have a static shape, "
                           << "found " << type;
    if (type.getNumElements() % chunks != 0)
      return emitOpError() << "operand #" << i << " " << type
                           << " does not split into " << chunks
                           << " equal chunks";
    if (type.getElementType() != result.getElementType())
      return emitOpError() << "operand #" << i << " element type "
                           << type.getElementType() << " differs from the "
                           << "result's " << result.getElementType();
    elements += type.getNumElements();
  }
  if (result.getDimSize(0) != elements)
    return emitOpError() << "result must hold the " << elements
                         << " elements of the operands, found " << result;
  return success();
}

LogicalResult UnpackOp::verify() {
  auto input = cast<RankedTensorType>(getInput().getType());
  auto result = cast<RankedTensorType>(getResult().getType());
  if (input.getRank() != 1 || !input.hasStaticShape())
    return emitOpError() << "input must be a static 1-D tensor, found "
                         << input;
  if (!result.hasStaticShape())
    return emitOpError() << "result must have a static shape, found " << result;
  if (result.getElementType() != input.getElementType())
    return emitOpError() << "result element type " << result.getElementType()
                         << " differs from the input's "
                         << input.getElementType();
  const int64_t chunks = getChunks();
  if (chunks < 1)
    return emitOpError() << "chunks must be at least 1, found " << chunks;
  if (input.getDimSize(0) % chunks != 0 ||
      result.getNumElements() % chunks != 0)
    return emitOpError() << "input " << input << " and result " << result
                         << " must both split into " << chunks
                         << " equal chunks";
  // Within one row of the input (the whole input without chunks).
  const int64_t row = input.getDimSize(0) / chunks;
  const int64_t part = result.getNumElements() / chunks;
  const int64_t offset = getOffset();
  if (offset < 0 || offset > row || part > row - offset)
    return emitOpError() << "elements [" << offset << ", " << offset + part
                         << ") are not inside the input's "
                         << (chunks > 1 ? "rows of " : "") << row;
  return success();
}
