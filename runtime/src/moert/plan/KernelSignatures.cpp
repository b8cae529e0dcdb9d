//===- KernelSignatures.cpp - What each plan opcode expects ---------------===//
//
// Operand and result counts follow the ops of the moe dialect one to one
// (an optional operand gives a range); attributes keep the dialect's names.
// The gate's `#moe.gating` configuration is flattened into one attribute per
// field.
//
//===----------------------------------------------------------------------===//

#include "moert/plan/KernelSignatures.h"

#include "moert/Ops.h"

#include <cmath>
#include <cstdio>
#include <map>

namespace moert::plan {
namespace {

using fb::AttrValue;
using fb::Opcode;

AttributeSignature required(const char *name, AttrValue type) {
  return {name, type, true, {}};
}
AttributeSignature optional(const char *name, AttrValue type) {
  return {name, type, false, {}};
}
AttributeSignature requiredEnum(const char *name,
                                std::vector<std::string> values) {
  return {name, AttrValue::StringValue, true, std::move(values)};
}
AttributeSignature optionalEnum(const char *name,
                                std::vector<std::string> values) {
  return {name, AttrValue::StringValue, false, std::move(values)};
}

/// `signature` restricted to [low, high] (high open when `openHigh`).
AttributeSignature range(AttributeSignature signature, double low,
                         double high = std::numeric_limits<double>::infinity(),
                         bool openHigh = false) {
  signature.minValue = low;
  signature.maxValue = high;
  signature.maxExclusive = openHigh;
  return signature;
}
AttributeSignature anyFloat(AttributeSignature signature) {
  signature.finite = false;
  return signature;
}

const std::vector<std::string> kActivationKinds = {"relu", "gelu", "gelu_tanh",
                                                   "silu"};
const std::vector<std::string> kPositionKinds = {"none", "sinusoidal",
                                                 "learned"};
const std::vector<std::string> kParamGroups = {"dense", "expert"};
/// Input precision of a GEMM op (moe-mixed-precision); absent = f32.
const std::vector<std::string> kComputeTypes = {"f32", "bf16", "f16"};

/// The grid axes over which the operand of a dropout or gate is one token
/// shard of a batch-major tensor (schema 1.1; absent = not sharded).
AttributeSignature shardAxes() {
  return optional("shard_axes", AttrValue::IntVectorValue);
}

/// The fields of `#moe.gating` plus the gate op's own attributes.
std::vector<AttributeSignature> gateAttributes() {
  return {
      range(required("top_k", AttrValue::IntValue), 1),
      range(optional("capacity_factor", AttrValue::FloatValue), 0),
      range(optional("eval_capacity_factor", AttrValue::FloatValue), 0),
      range(optional("min_capacity", AttrValue::IntValue), 0),
      optional("drop_tokens", AttrValue::BoolValue),
      optional("use_rts", AttrValue::BoolValue),
      optionalEnum("noise", {"none", "jitter", "rsample"}),
      range(optional("jitter_eps", AttrValue::FloatValue), 0, 1),
      optional("second_sampling", AttrValue::BoolValue),
      range(optional("groups", AttrValue::IntValue), 1),
      range(required("capacity", AttrValue::IntValue), 0),
      range(required("stream", AttrValue::IntValue), 0),
      optional("eval", AttrValue::BoolValue),
      shardAxes(),
  };
}

std::map<Opcode, KernelSignature> buildSignatures() {
  std::map<Opcode, KernelSignature> byOpcode;
  // Operand and result counts come from Ops.def; only attributes are
  // listed here.
  auto add = [&](Opcode opcode, std::vector<AttributeSignature> attributes) {
    const OpInfo &info = opInfo(static_cast<Op>(opcode));
    byOpcode[opcode] = KernelSignature{
        opcode,          info.minOperands,     info.maxOperands,
        info.numResults, info.numResults,      std::move(attributes)};
  };
  // Forward.
  add(Opcode::embedding, {requiredEnum("position", kPositionKinds),
       optional("scaled", AttrValue::BoolValue)});
  add(Opcode::embedding_at, {requiredEnum("position", kPositionKinds),
                             optional("scaled", AttrValue::BoolValue)});
  add(Opcode::cache_update, {});
  add(Opcode::convert, {});
  add(Opcode::to_host, {});
  add(Opcode::linear, {optional("transpose_weight", AttrValue::BoolValue),
                      optionalEnum("compute_type", kComputeTypes)});
  add(Opcode::layer_norm, {range(optional("epsilon", AttrValue::FloatValue), 0)});
  add(Opcode::activation, {requiredEnum("kind", kActivationKinds)});
  add(Opcode::add, {});
  add(Opcode::dropout, {range(required("rate", AttrValue::FloatValue), 0, 1, true),
       range(required("stream", AttrValue::IntValue), 0), shardAxes()});
  add(Opcode::padding_mask, {required("pad_id", AttrValue::IntValue)});
  add(Opcode::attention, {range(required("num_heads", AttrValue::IntValue), 1),
       optional("causal", AttrValue::BoolValue),
       optionalEnum("compute_type", kComputeTypes)});
  add(Opcode::cross_entropy, {range(optional("label_smoothing", AttrValue::FloatValue), 0, 1),
       optional("ignore_index", AttrValue::IntValue)});
  add(Opcode::gate, gateAttributes());
  add(Opcode::dispatch, {});
  add(Opcode::expert_ffn, {requiredEnum("activation", kActivationKinds),
                          optionalEnum("compute_type", kComputeTypes)});
  add(Opcode::combine, {});
  // Backward.
  add(Opcode::embedding_grad, {optional("scaled", AttrValue::BoolValue)});
  add(Opcode::position_grad, {});
  add(Opcode::linear_grad,
      {optional("transpose_weight", AttrValue::BoolValue),
       optionalEnum("compute_type", kComputeTypes)});
  add(Opcode::bias_grad, {});
  add(Opcode::layer_norm_grad, {range(optional("epsilon", AttrValue::FloatValue), 0)});
  add(Opcode::activation_grad, {requiredEnum("kind", kActivationKinds)});
  add(Opcode::dropout_grad, {range(required("rate", AttrValue::FloatValue), 0, 1, true),
       range(required("stream", AttrValue::IntValue), 0), shardAxes()});
  add(Opcode::attention_grad, {range(required("num_heads", AttrValue::IntValue), 1),
       optional("causal", AttrValue::BoolValue),
       optionalEnum("compute_type", kComputeTypes)});
  add(Opcode::cross_entropy_grad, {range(optional("label_smoothing", AttrValue::FloatValue), 0, 1),
       optional("ignore_index", AttrValue::IntValue)});
  add(Opcode::gate_grad, gateAttributes());
  add(Opcode::dispatch_grad, {});
  add(Opcode::expert_ffn_grad,
      {requiredEnum("activation", kActivationKinds),
       optionalEnum("compute_type", kComputeTypes)});
  add(Opcode::combine_grad, {});
  // Optimizer.
  add(Opcode::sum_squares, {requiredEnum("group", kParamGroups)});
  add(Opcode::clip_by_global_norm, {anyFloat(range(required("max_norm", AttrValue::FloatValue), 0))});
  add(Opcode::lr_schedule, {range(required("peak_lr", AttrValue::FloatValue), 0),
       range(required("warmup_steps", AttrValue::IntValue), 0)});
  add(Opcode::adamw, {requiredEnum("group", kParamGroups),
       range(required("beta1", AttrValue::FloatValue), 0, 1, true),
       range(required("beta2", AttrValue::FloatValue), 0, 1, true),
       range(required("epsilon", AttrValue::FloatValue), 0),
       range(required("weight_decay", AttrValue::FloatValue), 0)});
  // Data movement.
  add(Opcode::fill, {anyFloat(required("value", AttrValue::FloatValue))});
  // Introduced by partitioning (schema 1.1).
  add(Opcode::token_count, {required("ignore_index", AttrValue::IntValue)});
  add(Opcode::bias_add, {});
  add(Opcode::pack, {range(optional("chunks", AttrValue::IntValue), 1)});
  add(Opcode::unpack, {range(required("offset", AttrValue::IntValue), 0),
                       range(optional("chunks", AttrValue::IntValue), 1)});
  add(Opcode::mul, {});
  add(Opcode::div, {});
  // Collectives: their parameters live in Instruction.collective.
  add(Opcode::all_reduce, {});
  add(Opcode::all_gather, {});
  add(Opcode::reduce_scatter, {});
  add(Opcode::all_to_all, {});
  add(Opcode::all_slice, {});
  return byOpcode;
}

} // namespace

const AttributeSignature *
KernelSignature::findAttribute(const std::string &name) const {
  for (const AttributeSignature &attribute : attributes)
    if (attribute.name == name)
      return &attribute;
  return nullptr;
}

const KernelSignature *kernelSignature(fb::Opcode opcode) {
  static const std::map<Opcode, KernelSignature> signatures = buildSignatures();
  auto it = signatures.find(opcode);
  return it == signatures.end() ? nullptr : &it->second;
}

std::string AttributeSignature::rangeText() const {
  auto bound = [](double value) -> std::string {
    if (std::isinf(value))
      return value < 0 ? "-inf" : "inf";
    char text[32];
    std::snprintf(text, sizeof(text), "%g", value);
    return text;
  };
  return "[" + bound(minValue) + ", " + bound(maxValue) +
         (maxExclusive || std::isinf(maxValue) ? ")" : "]");
}

bool AttributeSignature::inRange(double value) const {
  if (std::isnan(value))
    return false;
  if (value < minValue)
    return false;
  return maxExclusive ? value < maxValue : value <= maxValue;
}

std::string attributeTypeName(fb::AttrValue type) {
  switch (type) {
  case AttrValue::IntValue:
    return "int";
  case AttrValue::FloatValue:
    return "float";
  case AttrValue::BoolValue:
    return "bool";
  case AttrValue::StringValue:
    return "string";
  case AttrValue::IntVectorValue:
    return "int-vector";
  case AttrValue::NONE:
    return "no value";
  }
  return "unknown type " + std::to_string(static_cast<int>(type));
}

} // namespace moert::plan
