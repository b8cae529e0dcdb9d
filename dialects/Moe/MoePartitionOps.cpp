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
