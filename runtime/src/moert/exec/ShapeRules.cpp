//===- ShapeRules.cpp - Operand and result shapes of every op --------------===//
#include "moert/exec/ShapeRules.h"

#include "moert/Ops.h"

#include <algorithm>
#include <optional>
#include <string>

namespace moert {
namespace exec {

namespace {

class Checker {
public:
  Checker(const Instruction &inst, const Program &program)
      : inst_(inst), program_(program) {}

  const TensorType &operand(size_t i) const {
    return program_.buffers[inst_.operands[i]].type;
  }
  const TensorType &result(size_t i) const {
    return program_.buffers[inst_.results[i]].type;
  }
  size_t numOperands() const { return inst_.operands.size(); }

  /// The first violation, kept.
  void require(bool ok, const std::string &message) {
    if (!ok && error_.empty())
      error_ = message;
  }
  void sameShape(const TensorType &a, const char *aName, const TensorType &b,
                 const char *bName) {
    require(a.shape == b.shape, std::string(aName) + " is " + a.str() +
                                    ", expected the shape of " + bName + " " +
                                    b.str());
  }
  void dtype(const TensorType &t, DType want, const char *name) {
    require(t.dtype == want, std::string(name) + " is " + t.str() +
                                 ", expected " + dtypeName(want) +
                                 " elements");
  }
  void scalar(const TensorType &t, const char *name) {
    require(t.numElements() == 1,
            std::string(name) + " is " + t.str() + ", expected a scalar");
  }
  void rank(const TensorType &t, size_t want, const char *name) {
    require(t.shape.size() == want, std::string(name) + " is " + t.str() +
                                        ", expected " + std::to_string(want) +
                                        " dimensions");
  }
  static int64_t last(const TensorType &t) {
    return t.shape.empty() ? 1 : t.shape.back();
  }
  static std::vector<int64_t> leading(const TensorType &t) {
    return t.shape.empty()
               ? std::vector<int64_t>{}
               : std::vector<int64_t>(t.shape.begin(), t.shape.end() - 1);
  }
  bool flag(const char *name) const {
    auto it = inst_.attrs.find(name);
    if (it == inst_.attrs.end())
      return false;
    const int64_t *v = std::get_if<int64_t>(&it->second);
    return !v || *v != 0;
  }
  std::optional<int64_t> intAttr(const char *name) const {
    auto it = inst_.attrs.find(name);
    if (it == inst_.attrs.end())
      return std::nullopt;
    const int64_t *v = std::get_if<int64_t>(&it->second);
    return v ? std::optional<int64_t>(*v) : std::nullopt;
  }
  const std::string &error() const { return error_; }

private:
  const Instruction &inst_;
  const Program &program_;
  std::string error_;
};

void linearRules(Checker &c, size_t input, const TensorType *output,
                 const TensorType *bias) {
  const TensorType &x = c.operand(input), &w = c.operand(input + 1);
  c.rank(w, 2, "the weight");
  if (w.shape.size() != 2)
    return;
  const bool transposed = c.flag("transpose_weight");
  const int64_t k = transposed ? w.shape[1] : w.shape[0];
  const int64_t n = transposed ? w.shape[0] : w.shape[1];
  c.require(Checker::last(x) == k,
            "the input " + x.str() + " has " +
                std::to_string(Checker::last(x)) +
                " features, the weight " + w.str() + " expects " +
                std::to_string(k));
  if (bias)
    c.require(bias->shape == std::vector<int64_t>{n},
              "the bias is " + bias->str() + ", expected [" +
                  std::to_string(n) + "]");
  if (output) {
    std::vector<int64_t> want = Checker::leading(x);
    want.push_back(n);
    c.require(output->shape == want, "the result is " + output->str() +
                                         ", expected " +
                                         TensorType{x.dtype, want}.str());
  }
}

void routingRules(Checker &c, const TensorType &experts,
                  const TensorType &slots, int64_t tokens) {
  c.dtype(experts, DType::I32, "the expert ids");
  c.dtype(slots, DType::I32, "the slots");
  c.require(experts.shape == slots.shape,
            "the expert ids " + experts.str() + " and slots " + slots.str() +
                " differ in shape");
  c.require(experts.numElements() ==
                tokens * Checker::last(experts),
            "the routing " + experts.str() + " is not [" +
                std::to_string(tokens) + " tokens, k]");
}

} // namespace

Status checkInstructionShapes(const Instruction &inst, const Program &program) {
  std::optional<Op> op = opFromName(inst.kernel);
  if (!op)
    return Status::success();
  Checker c(inst, program);
  switch (*op) {
  case Op::linear:
    linearRules(c, 0, &c.result(0),
                c.numOperands() == 3 ? &c.operand(2) : nullptr);
    break;
  case Op::linear_grad:
    linearRules(c, 1, &c.operand(0), nullptr);
    c.sameShape(c.result(0), "the input gradient", c.operand(1), "the input");
    c.sameShape(c.result(1), "the weight gradient", c.operand(2),
                "the weight");
    break;
  case Op::bias_grad:
    c.require(c.result(0).shape ==
                  std::vector<int64_t>{Checker::last(c.operand(0))},
              "the bias gradient is " + c.result(0).str() + ", expected [" +
                  std::to_string(Checker::last(c.operand(0))) + "]");
    break;
  case Op::layer_norm:
    for (size_t i : {1, 2})
      c.require(c.operand(i).shape ==
                    std::vector<int64_t>{Checker::last(c.operand(0))},
                "the scale or shift is " + c.operand(i).str() +
                    ", expected [" +
                    std::to_string(Checker::last(c.operand(0))) + "]");
    c.sameShape(c.result(0), "the result", c.operand(0), "the input");
    break;
  case Op::layer_norm_grad:
    c.sameShape(c.operand(0), "the output gradient", c.operand(1),
                "the input");
    c.sameShape(c.result(0), "the input gradient", c.operand(1), "the input");
    c.sameShape(c.result(1), "the scale gradient", c.operand(2), "the scale");
    c.sameShape(c.result(2), "the shift gradient", c.operand(2), "the scale");
    break;
  case Op::activation:
  case Op::dropout:
  case Op::dropout_grad:
    c.sameShape(c.result(0), "the result", c.operand(0), "the operand");
    break;
  case Op::activation_grad:
  case Op::add:
  case Op::mul:
  case Op::div:
    c.sameShape(c.operand(1), "the second operand", c.operand(0),
                "the first operand");
    c.sameShape(c.result(0), "the result", c.operand(0), "the operand");
    break;
  case Op::embedding: {
    const TensorType &tokens = c.operand(0), &table = c.operand(1);
    c.dtype(tokens, DType::I32, "the tokens");
    c.rank(table, 2, "the table");
    if (table.shape.size() == 2) {
      std::vector<int64_t> want = tokens.shape;
      want.push_back(table.shape[1]);
      c.require(c.result(0).shape == want,
                "the result is " + c.result(0).str() + ", expected " +
                    TensorType{DType::F32, want}.str());
    }
    break;
  }
  case Op::embedding_at: {
    const TensorType &tokens = c.operand(0), &table = c.operand(1),
                     &offset = c.operand(c.numOperands() - 1);
    c.dtype(tokens, DType::I32, "the tokens");
    c.dtype(offset, DType::I32, "the position offset");
    c.require(offset.shape.empty(),
              "the position offset is " + offset.str() + ", expected a scalar");
    c.rank(table, 2, "the table");
    if (table.shape.size() == 2) {
      std::vector<int64_t> want = tokens.shape;
      want.push_back(table.shape[1]);
      c.require(c.result(0).shape == want,
                "the result is " + c.result(0).str() + ", expected " +
                    TensorType{DType::F32, want}.str());
      if (c.numOperands() == 4)
        c.require(c.operand(2).shape.size() == 2 &&
                      c.operand(2).shape[1] == table.shape[1],
                  "the positions table is " + c.operand(2).str() +
                      ", expected [P, " + std::to_string(table.shape[1]) + "]");
    }
    break;
  }
  case Op::cache_update: {
    const TensorType &cache = c.operand(0), &rows = c.operand(1),
                     &offset = c.operand(2);
    c.rank(cache, 3, "the cache");
    c.rank(rows, 3, "the rows");
    c.dtype(offset, DType::I32, "the position offset");
    c.require(offset.shape.empty(),
              "the position offset is " + offset.str() + ", expected a scalar");
    c.sameShape(c.result(0), "the result", cache, "the cache");
    c.require(rows.dtype == cache.dtype, "the rows are " + rows.str() +
                                             ", expected the cache's element "
                                             "type " +
                                             cache.str());
    if (cache.shape.size() == 3 && rows.shape.size() == 3)
      c.require(rows.shape[0] == cache.shape[0] &&
                    rows.shape[2] == cache.shape[2] &&
                    rows.shape[1] <= cache.shape[1],
                "the rows are " + rows.str() + ", expected [" +
                    std::to_string(cache.shape[0]) + ", L <= " +
                    std::to_string(cache.shape[1]) + ", " +
                    std::to_string(cache.shape[2]) + "] (the cache " +
                    cache.str() + ")");
    break;
  }
  case Op::attention:
  case Op::attention_grad: {
    const size_t q = *op == Op::attention ? 0 : 1;
    const TensorType &query = c.operand(q), &key = c.operand(q + 1),
                     &value = c.operand(q + 2);
    c.rank(query, 3, "the queries");
    c.rank(key, 3, "the keys");
    c.sameShape(value, "the values", key, "the keys");
    if (query.shape.size() == 3 && key.shape.size() == 3)
      c.require(query.shape[0] == key.shape[0] &&
                    query.shape[2] == key.shape[2],
                "the queries " + query.str() + " and keys " + key.str() +
                    " differ in batch or width");
    if (auto heads = c.intAttr("num_heads");
        heads && *heads > 0 && query.shape.size() == 3)
      c.require(query.shape[2] % *heads == 0,
                "num_heads = " + std::to_string(*heads) +
                    " does not divide the model width of the queries " +
                    query.str());
    if (c.numOperands() == q + 4 && key.shape.size() == 3)
      c.require(c.operand(q + 3).shape ==
                    std::vector<int64_t>{key.shape[0], key.shape[1]},
                "the key mask is " + c.operand(q + 3).str() +
                    ", expected [batch, keys] of " + key.str());
    if (*op == Op::attention) {
      c.sameShape(c.result(0), "the result", query, "the queries");
    } else {
      c.sameShape(c.operand(0), "the output gradient", query, "the queries");
      c.sameShape(c.result(0), "the query gradient", query, "the queries");
      c.sameShape(c.result(1), "the key gradient", key, "the keys");
      c.sameShape(c.result(2), "the value gradient", value, "the values");
    }
    break;
  }
  case Op::cross_entropy:
  case Op::cross_entropy_grad: {
    const size_t l = *op == Op::cross_entropy ? 0 : 1;
    const TensorType &logits = c.operand(l), &labels = c.operand(l + 1);
    c.dtype(labels, DType::I32, "the labels");
    c.require(labels.shape == Checker::leading(logits),
              "the labels are " + labels.str() + ", expected the leading "
                                                 "dimensions of the logits " +
                  logits.str());
    if (*op == Op::cross_entropy) {
      c.scalar(c.result(0), "the loss");
    } else {
      c.scalar(c.operand(0), "the loss gradient");
      c.sameShape(c.result(0), "the logits gradient", logits, "the logits");
    }
    break;
  }
  case Op::gate: {
    const TensorType &x = c.operand(0), &w = c.operand(1);
    c.rank(w, 2, "the gate weight");
    if (w.shape.size() != 2)
      break;
    c.require(Checker::last(x) == w.shape[0],
              "the gate input " + x.str() + " does not match the weight " +
                  w.str());
    const int64_t tokens = x.numElements() / std::max<int64_t>(1, Checker::last(x));
    routingRules(c, c.result(0), c.result(1), tokens);
    c.sameShape(c.result(2), "the combine weights", c.result(0),
                "the expert ids");
    c.require(c.result(3).shape == std::vector<int64_t>{w.shape[1]},
              "the expert counts are " + c.result(3).str() + ", expected [" +
                  std::to_string(w.shape[1]) + "]");
    c.scalar(c.result(4), "the aux loss");
    break;
  }
  case Op::gate_grad: {
    const TensorType &x = c.operand(2);
    routingRules(c, c.operand(4), c.operand(5),
                 x.numElements() / std::max<int64_t>(1, Checker::last(x)));
    c.sameShape(c.operand(0), "the weights gradient", c.operand(4),
                "the expert ids");
    c.scalar(c.operand(1), "the aux loss gradient");
    c.sameShape(c.result(0), "the input gradient", x, "the input");
    c.sameShape(c.result(1), "the gate weight gradient", c.operand(3),
                "the gate weight");
    break;
  }
  case Op::dispatch:
  case Op::dispatch_grad:
  case Op::combine:
  case Op::combine_grad: {
    // Tokens [..., M] and a buffer [E, C, M].
    const bool forward = *op == Op::dispatch;
    const TensorType &tokens = *op == Op::dispatch     ? c.operand(0)
                               : *op == Op::combine_grad ? c.operand(0)
                                                         : c.result(0);
    const TensorType &buffer = *op == Op::dispatch    ? c.result(0)
                               : *op == Op::combine_grad ? c.operand(1)
                                                        : c.operand(0);
    c.rank(buffer, 3, "the expert buffer");
    if (buffer.shape.size() == 3)
      c.require(buffer.shape[2] == Checker::last(tokens),
                "the expert buffer " + buffer.str() +
                    " and the tokens " + tokens.str() + " differ in width");
    const size_t routing = *op == Op::combine_grad ? 2 : 1;
    routingRules(c, c.operand(routing), c.operand(routing + 1),
                 tokens.numElements() /
                     std::max<int64_t>(1, Checker::last(tokens)));
    if (*op == Op::combine || *op == Op::combine_grad)
      c.sameShape(c.operand(routing + 2), "the combine weights",
                  c.operand(routing), "the expert ids");
    if (*op == Op::combine_grad) {
      c.sameShape(c.result(0), "the buffer gradient", buffer, "the buffer");
      c.sameShape(c.result(1), "the weights gradient", c.operand(2),
                  "the expert ids");
    }
    (void)forward;
    break;
  }
  case Op::expert_ffn:
  case Op::expert_ffn_grad: {
    const size_t in = *op == Op::expert_ffn ? 0 : 1;
    const TensorType &x = c.operand(in), &w1 = c.operand(in + 1),
                     &b1 = c.operand(in + 2), &w2 = c.operand(in + 3);
    c.rank(x, 3, "the expert input");
    c.rank(w1, 3, "the first expert weight");
    c.rank(w2, 3, "the second expert weight");
    if (x.shape.size() != 3 || w1.shape.size() != 3 || w2.shape.size() != 3)
      break;
    const int64_t e = x.shape[0], m = x.shape[2], h = w1.shape[2];
    c.require(w1.shape == std::vector<int64_t>{e, m, h},
              "the first expert weight is " + w1.str() + ", expected [" +
                  std::to_string(e) + ", " + std::to_string(m) + ", H] for " +
                  "the input " + x.str());
    c.require(w2.shape == std::vector<int64_t>{e, h, m},
              "the second expert weight is " + w2.str() + ", expected [" +
                  std::to_string(e) + ", " + std::to_string(h) + ", " +
                  std::to_string(m) + "]");
    c.require(b1.shape == std::vector<int64_t>{e, h},
              "the first expert bias is " + b1.str() + ", expected [" +
                  std::to_string(e) + ", " + std::to_string(h) + "]");
    if (*op == Op::expert_ffn) {
      c.require(c.operand(4).shape == std::vector<int64_t>{e, m},
                "the second expert bias is " + c.operand(4).str() +
                    ", expected [" + std::to_string(e) + ", " +
                    std::to_string(m) + "]");
      c.sameShape(c.result(0), "the result", x, "the input");
    } else {
      c.sameShape(c.operand(0), "the output gradient", x, "the input");
      c.sameShape(c.result(0), "the input gradient", x, "the input");
      c.sameShape(c.result(1), "the first weight gradient", w1,
                  "the first weight");
      c.sameShape(c.result(2), "the first bias gradient", b1,
                  "the first bias");
      c.sameShape(c.result(3), "the second weight gradient", w2,
                  "the second weight");
      c.require(c.result(4).shape == std::vector<int64_t>{e, m},
                "the second bias gradient is " + c.result(4).str() +
                    ", expected [" + std::to_string(e) + ", " +
                    std::to_string(m) + "]");
    }
    break;
  }
  case Op::sum_squares:
    c.scalar(c.result(0), "the sum of squares");
    break;
  case Op::clip_by_global_norm:
    c.scalar(c.operand(0), "the sum of squares");
    c.scalar(c.result(0), "the norm");
    c.scalar(c.result(1), "the clipping factor");
    break;
  case Op::lr_schedule:
    c.scalar(c.operand(0), "the step");
    c.dtype(c.operand(0), DType::I64, "the step");
    c.scalar(c.result(0), "the learning rate");
    break;
  case Op::adamw:
    c.sameShape(c.operand(1), "the gradient", c.operand(0), "the parameter");
    c.sameShape(c.operand(2), "the first moment", c.operand(0),
                "the parameter");
    c.sameShape(c.operand(3), "the second moment", c.operand(0),
                "the parameter");
    for (size_t i : {4, 5, 6})
      c.scalar(c.operand(i), i == 4   ? "the learning rate"
                             : i == 5 ? "the clipping factor"
                                      : "the step");
    c.dtype(c.operand(6), DType::I64, "the step");
    for (size_t r = 0; r < 3; ++r)
      c.sameShape(c.result(r), "an updated tensor", c.operand(0),
                  "the parameter");
    break;
  case Op::pack: {
    c.rank(c.result(0), 1, "the packed result");
    int64_t elements = 0;
    for (size_t i = 0; i < c.numOperands(); ++i) {
      c.require(c.operand(i).dtype == c.result(0).dtype,
                "operand #" + std::to_string(i) + " is " + c.operand(i).str() +
                    ", expected the result's element type " +
                    c.result(0).str());
      elements += c.operand(i).numElements();
    }
    c.require(c.result(0).numElements() == elements,
              "the packed result is " + c.result(0).str() + ", expected " +
                  std::to_string(elements) + " elements (the operands' sum)");
    const int64_t chunks = c.intAttr("chunks").value_or(1);
    for (size_t i = 0; i < c.numOperands(); ++i)
      c.require(chunks >= 1 && c.operand(i).numElements() % chunks == 0,
                "operand #" + std::to_string(i) + " " + c.operand(i).str() +
                    " does not split into " + std::to_string(chunks) +
                    " equal chunks");
    break;
  }
  case Op::unpack: {
    c.rank(c.operand(0), 1, "the packed operand");
    c.require(c.operand(0).dtype == c.result(0).dtype,
              "the result is " + c.result(0).str() +
                  ", expected the operand's element type " +
                  c.operand(0).str());
    const int64_t offset = c.intAttr("offset").value_or(-1);
    const int64_t chunks = c.intAttr("chunks").value_or(1);
    const bool splits = chunks >= 1 &&
                        c.operand(0).numElements() % chunks == 0 &&
                        c.result(0).numElements() % chunks == 0;
    c.require(splits, "the packed operand " + c.operand(0).str() +
                          " and the result " + c.result(0).str() +
                          " do not split into " + std::to_string(chunks) +
                          " equal chunks");
    if (!splits)
      break;
    // Within one row of the operand (the whole operand without chunks).
    const int64_t size = c.operand(0).numElements() / chunks;
    const int64_t part = c.result(0).numElements() / chunks;
    c.require(offset >= 0 && offset <= size && part <= size - offset,
              "elements [" + std::to_string(offset) + ", " +
                  std::to_string(offset + part) +
                  ") are not inside the packed operand " + c.operand(0).str() +
                  (chunks > 1
                       ? " (in each of its " + std::to_string(chunks) + " rows)"
                       : std::string()));
    break;
  }
  default:
    break;
  }
  if (!c.error().empty())
    return invalidArgument(c.error());
  return Status::success();
}

} // namespace exec
} // namespace moert
