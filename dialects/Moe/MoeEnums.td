//===- MoeEnums.td - Enumerations of the moe dialect ------*- tablegen -*-===//
#ifndef MOE_ENUMS_TD
#define MOE_ENUMS_TD

include "mlir/IR/EnumAttr.td"

def Moe_ActivationKind : I32EnumAttr<"ActivationKind",
    "pointwise nonlinearity", [
      I32EnumAttrCase<"relu", 0>,
      I32EnumAttrCase<"gelu", 1>,
      I32EnumAttrCase<"gelu_tanh", 2>,
      I32EnumAttrCase<"silu", 3>,
    ]> {
  let cppNamespace = "::mlir::moe";
  let description = [{
    `relu`: max(x, 0). `gelu`: x * Phi(x) with the exact error function.
    `gelu_tanh`: the tanh approximation of GELU. `silu`: x * sigmoid(x).
  }];
}

def Moe_NoisePolicy : I32EnumAttr<"NoisePolicy",
    "gate noise policy (training only)", [
      I32EnumAttrCase<"none", 0>,
      I32EnumAttrCase<"jitter", 1>,
      I32EnumAttrCase<"rsample", 2>,
    ]> {
  let cppNamespace = "::mlir::moe";
  let description = [{
    `jitter` multiplies the gate input by U(1 - eps, 1 + eps); `rsample` adds
    Gumbel noise to the logits used for the first-choice argmax only. Both
    apply in training only; the softmax gates are always noise-free.
  }];
}

def Moe_PositionKind : I32EnumAttr<"PositionKind",
    "positional encoding of an embedding", [
      I32EnumAttrCase<"none", 0>,
      I32EnumAttrCase<"sinusoidal", 1>,
      I32EnumAttrCase<"learned", 2>,
    ]> {
  let cppNamespace = "::mlir::moe";
}

def Moe_InitKind : I32EnumAttr<"InitKind",
    "parameter initializer", [
      I32EnumAttrCase<"zeros", 0>,
      I32EnumAttrCase<"ones", 1>,
      I32EnumAttrCase<"normal", 2>,
      I32EnumAttrCase<"uniform", 3>,
      I32EnumAttrCase<"xavier_uniform", 4>,
    ]> {
  let cppNamespace = "::mlir::moe";
  let description = [{
    `normal`: N(0, scale^2). `uniform`: U(-scale, scale). `xavier_uniform`:
    U(-a, a) with a = scale * sqrt(6 / (fan_in + fan_out)) over the last two
    dimensions. `zeros`/`ones`: constants (scale unused).
  }];
}

#endif // MOE_ENUMS_TD
