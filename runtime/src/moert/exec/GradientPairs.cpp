//===- GradientPairs.cpp - Gradient attributes against the forward op's ---===//
#include "moert/exec/GradientPairs.h"

#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace moert {
namespace exec {

namespace {

/// An attribute both ops of a pair interpret, with the value an absent one
/// means (none: absent only equals absent).
struct SharedAttribute {
  std::string name;
  std::optional<AttrValue> absent;
};

/// How a gradient op finds its forward op: the gradient's operand
/// `gradOperands[i]` is the forward op's operand `forwardOperands[i]` (the
/// same buffer), for every i; or, with `byStream`, both draw the same
/// random stream. `allAttributes` compares every attribute either carries
/// (the gate: its gating configuration is flattened into many).
struct PairRule {
  const char *forward, *gradient;
  std::vector<int> gradOperands, forwardOperands;
  bool byStream = false;
  bool allAttributes = false;
  std::vector<SharedAttribute> attributes;
};

const std::vector<PairRule> &pairRules() {
  static const std::vector<PairRule> rules = {
      {"moe.dropout",
       "moe.dropout_grad",
       {},
       {},
       /*byStream=*/true,
       false,
       {{"rate", std::nullopt}, {"shard_axes", std::vector<int64_t>{}}}},
      {"moe.linear",
       "moe.linear_grad",
       {1, 2},
       {0, 1},
       false,
       false,
       {{"transpose_weight", int64_t{0}}}},
      {"moe.layer_norm",
       "moe.layer_norm_grad",
       {1, 2},
       {0, 1},
       false,
       false,
       {{"epsilon", 1.0e-5}}},
      {"moe.attention",
       "moe.attention_grad",
       {1, 2, 3},
       {0, 1, 2},
       false,
       false,
       {{"num_heads", std::nullopt}, {"causal", int64_t{0}}}},
      {"moe.cross_entropy",
       "moe.cross_entropy_grad",
       {1, 2},
       {0, 1},
       false,
       false,
       {{"label_smoothing", 0.0}, {"ignore_index", int64_t{-100}}}},
      // The gate's gradient reads the routing the gate produced (its results
      // 0 and 1, the expert ids and slots); found through the producer.
      {"moe.gate", "moe.gate_grad", {}, {}, false, /*allAttributes=*/true, {}},
  };
  return rules;
}

/// What pairs a gradient with its forward op under `rule`: the random
/// stream, or the buffers of `operands` (none when the instruction lacks
/// them).
std::optional<std::vector<int64_t>> pairKey(const PairRule &rule,
                                            const Instruction &inst,
                                            const std::vector<int> &operands) {
  if (rule.byStream) {
    auto it = inst.attrs.find("stream");
    if (it == inst.attrs.end())
      return std::nullopt;
    if (const auto *stream = std::get_if<int64_t>(&it->second))
      return std::vector<int64_t>{*stream};
    return std::nullopt;
  }
  std::vector<int64_t> key;
  for (int operand : operands) {
    if (operand >= static_cast<int>(inst.operands.size()))
      return std::nullopt;
    key.push_back(inst.operands[operand]);
  }
  return key;
}

std::string valueText(const std::optional<AttrValue> &value) {
  if (!value)
    return "absent";
  std::ostringstream os;
  if (const auto *i = std::get_if<int64_t>(&*value))
    os << *i;
  else if (const auto *d = std::get_if<double>(&*value))
    os << *d;
  else if (const auto *s = std::get_if<std::string>(&*value))
    os << '"' << *s << '"';
  else {
    os << '[';
    const auto &v = std::get<std::vector<int64_t>>(*value);
    for (size_t i = 0; i < v.size(); ++i)
      os << (i ? ", " : "") << v[i];
    os << ']';
  }
  return os.str();
}

std::optional<AttrValue> lookup(const Instruction &inst,
                                const std::string &name,
                                const std::optional<AttrValue> &absent) {
  auto it = inst.attrs.find(name);
  if (it == inst.attrs.end())
    return absent;
  return it->second;
}

/// The first attribute in which `grad` disagrees with `forward` under
/// `rule`, as a message; empty if they agree.
std::string firstDifference(const PairRule &rule, size_t gradIndex,
                            const Instruction &grad, size_t forwardIndex,
                            const Instruction &forward,
                            const std::string &link) {
  std::vector<SharedAttribute> compared = rule.attributes;
  if (rule.allAttributes) {
    std::set<std::string> names;
    for (const auto &[name, value] : forward.attrs)
      names.insert(name);
    for (const auto &[name, value] : grad.attrs)
      names.insert(name);
    for (const std::string &name : names)
      compared.push_back({name, std::nullopt});
  }
  for (const SharedAttribute &attribute : compared) {
    std::optional<AttrValue> g = lookup(grad, attribute.name, attribute.absent);
    std::optional<AttrValue> f =
        lookup(forward, attribute.name, attribute.absent);
    if (g == f)
      continue;
    return describeInstruction(gradIndex, grad) + ": " + attribute.name +
           " = " + valueText(g) + " differs from " + attribute.name + " = " +
           valueText(f) + " of " + describeInstruction(forwardIndex, forward) +
           ", " + link +
           "; a gradient must be computed with its forward op's " +
           "attributes";
  }
  return {};
}

} // namespace

Status checkGradientPairs(const Program &program) {
  const std::vector<Instruction> &insts = program.instructions;
  // Producers of buffers and the instructions by kernel name, once.
  std::map<int32_t, size_t> producer;
  std::map<std::string, std::vector<size_t>> byKernel;
  for (size_t i = 0; i < insts.size(); ++i) {
    for (int32_t result : insts[i].results)
      producer.emplace(result, i);
    byKernel[insts[i].kernel].push_back(i);
  }

  for (const PairRule &rule : pairRules()) {
    auto gradients = byKernel.find(rule.gradient);
    if (gradients == byKernel.end())
      continue;
    const std::vector<size_t> &forwards = byKernel[rule.forward];
    // Forward instructions keyed by what their gradients share with them.
    std::map<std::vector<int64_t>, std::vector<size_t>> forwardByKey;
    for (size_t f : forwards) {
      std::optional<std::vector<int64_t>> key =
          pairKey(rule, insts[f], rule.forwardOperands);
      if (!key)
        continue;
      forwardByKey[*key].push_back(f);
    }

    for (size_t g : gradients->second) {
      const Instruction &grad = insts[g];
      std::vector<size_t> matches;
      std::string link;
      if (rule.allAttributes) {
        // moe.gate_grad: operands 4 and 5 are the expert ids and slots
        // (results 0 and 1) of the gate that routed these tokens.
        if (grad.operands.size() > 4)
          if (auto it = producer.find(grad.operands[4]);
              it != producer.end() && insts[it->second].kernel == rule.forward)
            matches.push_back(it->second);
        link = "whose routing it differentiates";
      } else {
        std::optional<std::vector<int64_t>> key =
            pairKey(rule, grad, rule.gradOperands);
        if (!key)
          continue;
        link = rule.byStream ? "which draws the same random stream " +
                                   std::to_string(key->front())
                             : "whose operands it differentiates";
        if (auto it = forwardByKey.find(*key); it != forwardByKey.end())
          matches = it->second;
      }
      for (size_t f : matches) {
        std::string difference =
            firstDifference(rule, g, grad, f, insts[f], link);
        if (!difference.empty())
          return invalidArgument(difference);
      }
    }
  }
  return Status::success();
}

} // namespace exec
} // namespace moert
