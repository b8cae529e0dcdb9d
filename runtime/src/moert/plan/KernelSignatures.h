//===- KernelSignatures.h - What each plan opcode expects -------*- C++ -*-===//
//
// Instructions carry generic named attributes (see plan.fbs) rather than one
// attribute table per kernel: the plan emitter can translate an op's
// attribute dictionary mechanically, and a new optional attribute is a minor
// schema change instead of a new table. The price is that the schema cannot
// type-check attributes, so this table does: per opcode, how many operands
// and results it takes and which attributes, of which type (and, for the
// dialect's enums, which spellings), it requires or accepts. The loader
// checks every instruction against it before the executor ever sees one.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_PLAN_KERNELSIGNATURES_H
#define MOERT_PLAN_KERNELSIGNATURES_H

#include "moert/plan/Plan.h"

#include <limits>
#include <string>
#include <vector>

namespace moert::plan {

struct AttributeSignature {
  std::string name;
  fb::AttrValue type;
  bool required = false;
  /// For string attributes that encode an enum: the valid spellings.
  std::vector<std::string> allowedValues;
  /// For int and float attributes: the closed range [minValue, maxValue]
  /// (the upper end open when maxExclusive). A plan is untrusted input, and
  /// a value outside the range (num_heads = 0, a dropout rate of 1, a
  /// negative epsilon) would divide by zero or run to garbage.
  double minValue = -std::numeric_limits<double>::infinity();
  double maxValue = std::numeric_limits<double>::infinity();
  bool maxExclusive = false;
  /// For float attributes: +-inf are refused (NaN always is); off where
  /// infinity means something (clip_by_global_norm's max_norm = inf: no
  /// clipping).
  bool finite = true;

  /// "[0, 1)", "[1, inf)", ...
  std::string rangeText() const;
  bool inRange(double value) const;
};

struct KernelSignature {
  fb::Opcode opcode;
  int minOperands = 0, maxOperands = 0;
  int minResults = 0, maxResults = 0;
  std::vector<AttributeSignature> attributes;

  const AttributeSignature *findAttribute(const std::string &name) const;
};

/// The signature of `opcode`, or nullptr for a value this build does not
/// know (e.g. an opcode added by a newer minor version).
const KernelSignature *kernelSignature(fb::Opcode opcode);

/// "int", "float", "bool", "string", "int-vector".
std::string attributeTypeName(fb::AttrValue type);

} // namespace moert::plan

#endif // MOERT_PLAN_KERNELSIGNATURES_H
