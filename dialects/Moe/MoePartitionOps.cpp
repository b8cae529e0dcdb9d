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
  int64_t elements = 0;
  for (auto [i, input] : llvm::enumerate(getInputs())) {
    auto type = cast<RankedTensorType>(input.getType());
    if (!type.hasStaticShape())
      return emitOpError() << "operand #" << i << " must have a static shape, "
                           << "found " << type;
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
  const int64_t offset = getOffset();
  if (offset < 0 || offset > input.getDimSize(0) ||
      result.getNumElements() > input.getDimSize(0) - offset)
    return emitOpError() << "elements [" << offset << ", "
                         << offset + result.getNumElements()
                         << ") are not inside the input's "
                         << input.getDimSize(0);
  return success();
}
