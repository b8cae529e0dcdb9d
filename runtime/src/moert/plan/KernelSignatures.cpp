//===- KernelSignatures.cpp - What each plan opcode expects ---------------===//
//
// Operand and result counts follow the ops of the moe dialect one to one
// (an optional operand gives a range); attributes keep the dialect's names.
// The gate's `#moe.gating` configuration is flattened into one attribute per
// field.
//
//===----------------------------------------------------------------------===//

#include "moert/plan/KernelSignatures.h"

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
      required("top_k", AttrValue::IntValue),
      optional("capacity_factor", AttrValue::FloatValue),
      optional("eval_capacity_factor", AttrValue::FloatValue),
      optional("min_capacity", AttrValue::IntValue),
      optional("drop_tokens", AttrValue::BoolValue),
      optional("use_rts", AttrValue::BoolValue),
      optionalEnum("noise", {"none", "jitter", "rsample"}),
      optional("jitter_eps", AttrValue::FloatValue),
      optional("second_sampling", AttrValue::BoolValue),
      optional("groups", AttrValue::IntValue),
      required("capacity", AttrValue::IntValue),
      required("stream", AttrValue::IntValue),
      optional("eval", AttrValue::BoolValue),
      shardAxes(),
  };
}

std::map<Opcode, KernelSignature> buildSignatures() {
  std::map<Opcode, KernelSignature> byOpcode;
  auto add = [&](Opcode opcode, std::pair<int, int> operands,
                 std::pair<int, int> results,
                 std::vector<AttributeSignature> attributes) {
    byOpcode[opcode] =
        KernelSignature{opcode,        operands.first, operands.second,
                        results.first, results.second, std::move(attributes)};
  };
  // Forward.
  add(Opcode::embedding, {2, 3}, {1, 1},
      {requiredEnum("position", kPositionKinds),
       optional("scaled", AttrValue::BoolValue)});
  add(Opcode::linear, {2, 3}, {1, 1},
      {optional("transpose_weight", AttrValue::BoolValue),
       optionalEnum("compute_type", kComputeTypes)});
  add(Opcode::layer_norm, {3, 3}, {1, 1},
      {optional("epsilon", AttrValue::FloatValue)});
  add(Opcode::activation, {1, 1}, {1, 1},
      {requiredEnum("kind", kActivationKinds)});
  add(Opcode::add, {2, 2}, {1, 1}, {});
  add(Opcode::dropout, {1, 1}, {1, 1},
      {required("rate", AttrValue::FloatValue),
       required("stream", AttrValue::IntValue), shardAxes()});
  add(Opcode::padding_mask, {1, 1}, {1, 1},
      {required("pad_id", AttrValue::IntValue)});
  add(Opcode::attention, {3, 4}, {1, 1},
      {required("num_heads", AttrValue::IntValue),
       optional("causal", AttrValue::BoolValue),
       optionalEnum("compute_type", kComputeTypes)});
  add(Opcode::cross_entropy, {2, 2}, {1, 1},
      {optional("label_smoothing", AttrValue::FloatValue),
       optional("ignore_index", AttrValue::IntValue)});
  add(Opcode::gate, {2, 2}, {5, 5}, gateAttributes());
  add(Opcode::dispatch, {3, 3}, {1, 1}, {});
  add(Opcode::expert_ffn, {5, 5}, {1, 1},
      {requiredEnum("activation", kActivationKinds),
       optionalEnum("compute_type", kComputeTypes)});
  add(Opcode::combine, {4, 4}, {1, 1}, {});
  // Backward.
  add(Opcode::embedding_grad, {2, 2}, {1, 1},
      {optional("scaled", AttrValue::BoolValue)});
  add(Opcode::position_grad, {1, 1}, {1, 1}, {});
  add(Opcode::linear_grad, {3, 3}, {2, 2},
      {optional("transpose_weight", AttrValue::BoolValue),
       optionalEnum("compute_type", kComputeTypes)});
  add(Opcode::bias_grad, {1, 1}, {1, 1}, {});
  add(Opcode::layer_norm_grad, {3, 3}, {3, 3},
      {optional("epsilon", AttrValue::FloatValue)});
  add(Opcode::activation_grad, {2, 2}, {1, 1},
      {requiredEnum("kind", kActivationKinds)});
  add(Opcode::dropout_grad, {1, 1}, {1, 1},
      {required("rate", AttrValue::FloatValue),
       required("stream", AttrValue::IntValue), shardAxes()});
  add(Opcode::attention_grad, {4, 5}, {3, 3},
      {required("num_heads", AttrValue::IntValue),
       optional("causal", AttrValue::BoolValue),
       optionalEnum("compute_type", kComputeTypes)});
  add(Opcode::cross_entropy_grad, {3, 3}, {1, 1},
      {optional("label_smoothing", AttrValue::FloatValue),
       optional("ignore_index", AttrValue::IntValue)});
  add(Opcode::gate_grad, {6, 6}, {2, 2}, gateAttributes());
  add(Opcode::dispatch_grad, {3, 3}, {1, 1}, {});
  add(Opcode::expert_ffn_grad, {6, 6}, {5, 5},
      {requiredEnum("activation", kActivationKinds),
       optionalEnum("compute_type", kComputeTypes)});
  add(Opcode::combine_grad, {5, 5}, {2, 2}, {});
  // Optimizer.
  add(Opcode::sum_squares, {1, 1}, {1, 1},
      {requiredEnum("group", kParamGroups)});
  add(Opcode::clip_by_global_norm, {1, 1}, {2, 2},
      {required("max_norm", AttrValue::FloatValue)});
  add(Opcode::lr_schedule, {1, 1}, {1, 1},
      {required("peak_lr", AttrValue::FloatValue),
       required("warmup_steps", AttrValue::IntValue)});
  add(Opcode::adamw, {7, 7}, {3, 3},
      {requiredEnum("group", kParamGroups),
       required("beta1", AttrValue::FloatValue),
       required("beta2", AttrValue::FloatValue),
       required("epsilon", AttrValue::FloatValue),
       required("weight_decay", AttrValue::FloatValue)});
  // Data movement.
  add(Opcode::copy, {1, 1}, {1, 1}, {});
  add(Opcode::fill, {0, 0}, {1, 1}, {required("value", AttrValue::FloatValue)});
  // Introduced by partitioning (schema 1.1).
  add(Opcode::token_count, {1, 1}, {1, 1},
      {required("ignore_index", AttrValue::IntValue)});
  add(Opcode::bias_add, {2, 2}, {1, 1}, {});
  add(Opcode::mul, {2, 2}, {1, 1}, {});
  add(Opcode::div, {2, 2}, {1, 1}, {});
  // Collectives: their parameters live in Instruction.collective.
  add(Opcode::all_reduce, {1, 1}, {1, 1}, {});
  add(Opcode::all_gather, {1, 1}, {1, 1}, {});
  add(Opcode::reduce_scatter, {1, 1}, {1, 1}, {});
  add(Opcode::all_to_all, {1, 1}, {1, 1}, {});
  add(Opcode::all_slice, {1, 1}, {1, 1}, {});
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
