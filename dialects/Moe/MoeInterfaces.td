//===- MoeInterfaces.td - Interfaces of the moe dialect ---*- tablegen -*-===//
#ifndef MOE_INTERFACES_TD
#define MOE_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Moe_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let description = [{
    An op that can build the gradients of its operands from the gradients of
    its results (reverse mode). `moe-differentiate` walks a function
    backwards and calls this on every op that has a result with a gradient.
  }];
  let cppNamespace = "::mlir::moe";
  let methods = [
    InterfaceMethod<[{
        Builds operand gradients at the builder's insertion point.
        `resultGrads` has one entry per result; a null Value means the
        result's gradient is zero. On success `operandGrads` holds one entry
        per operand; null for operands without a gradient (integer inputs,
        or a gradient that is zero).
      }],
      "::llvm::LogicalResult", "buildGradients",
      (ins "::mlir::OpBuilder &":$builder,
           "::llvm::ArrayRef<::mlir::Value>":$resultGrads,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>
  ];
}

#endif // MOE_INTERFACES_TD
