//===- MoeOps.h - Operations of the moe dialect ---------------------------===//
#ifndef MOE_DIALECTS_MOE_MOEOPS_H
#define MOE_DIALECTS_MOE_MOEOPS_H

#include "dialects/Moe/MoeDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/Moe/MoeInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/Moe/MoeOps.h.inc"

#endif // MOE_DIALECTS_MOE_MOEOPS_H
