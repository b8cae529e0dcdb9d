//===- Checked.cpp - Shape-validating entry points of the dense kernels ---===//
//
// Each entry point is a list of checks on a Checker (which keeps the first
// failure) followed by the raw kernel call, so the rules read like the op
// verifiers they mirror.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/Checked.h"

#include "moert/dense/Attention.h"
#include "moert/dense/Elementwise.h"
#include "moert/dense/LayerNorm.h"
#include "moert/dense/Linear.h"

#include <sstream>

namespace moert {
namespace dense {

std::string shapeToString(const std::vector<int64_t> &shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

namespace {

// Collects the first failed rule of one op call.
class Checker {
public:
  explicit Checker(const char *op) : op_(op) {}

  bool ok() const { return message_.empty(); }
  Status status() const {
    return ok() ? Status::success() : invalidArgument(message_);
  }

  // Fails with "<op>: <message>" unless `condition` holds.
  Checker &require(bool condition, const std::string &message) {
    if (ok() && !condition)
      message_ = std::string(op_) + ": " + message;
    return *this;
  }

  // Non-negative dimensions and data present when there are elements.
  template <typename T>
  Checker &valid(const char *name, const TensorRef<T> &ref) {
    for (int64_t dim : ref.shape)
      require(dim >= 0, std::string(name) + " has a negative dimension in " +
                            shapeToString(ref.shape));
    return require(ref.data || ref.numElements() == 0,
                   std::string(name) + " has no data");
  }

  template <typename T>
  Checker &rankAtLeast(const char *name, const TensorRef<T> &ref, size_t rank) {
    valid(name, ref);
    return require(ref.shape.size() >= rank,
                   std::string(name) + " has rank " +
                       std::to_string(ref.shape.size()) +
                       " but needs at least " + std::to_string(rank));
  }

  template <typename T>
  Checker &shapeIs(const char *name, const TensorRef<T> &ref,
                   const std::vector<int64_t> &expected) {
    valid(name, ref);
    return require(ref.shape == expected, std::string(name) + " has shape " +
                                              shapeToString(ref.shape) +
                                              " but expected " +
                                              shapeToString(expected));
  }

private:
  const char *op_;
  std::string message_;
};

// Product of all dimensions but the last.
int64_t leadingCount(const std::vector<int64_t> &shape) {
  int64_t count = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i)
    count *= shape[i];
  return count;
}

std::vector<int64_t> withLast(std::vector<int64_t> shape, int64_t last) {
  shape.back() = last;
  return shape;
}

} // namespace

namespace checked {

Status linear(const ConstFloatRef &input, const ConstFloatRef &weight,
              const ConstFloatRef *bias, bool transposeWeight,
              const FloatRef &output) {
  Checker check("linear");
  check.rankAtLeast("input", input, 1).rankAtLeast("weight", weight, 2);
  if (!check.ok())
    return check.status();
  check.require(weight.shape.size() == 2, "weight has shape " +
                                              shapeToString(weight.shape) +
                                              " but must be a matrix");
  const int64_t k = input.shape.back();
  const int64_t weightK = weight.shape[transposeWeight ? 1 : 0];
  const int64_t n = weight.shape[transposeWeight ? 0 : 1];
  check.require(weightK == k, "input has last dimension " + std::to_string(k) +
                                  " but weight " + shapeToString(weight.shape) +
                                  (transposeWeight ? " (transposed)" : "") +
                                  " expects " + std::to_string(weightK));
  if (bias)
    check.shapeIs("bias", *bias, {n});
  check.shapeIs("result", output, withLast(input.shape, n));
  if (!check.ok())
    return check.status();
  linearForward({leadingCount(input.shape), k, n, transposeWeight}, input.data,
                weight.data, bias ? bias->data : nullptr, output.data);
  return Status::success();
}

Status linearGrad(const ConstFloatRef &outputGrad, const ConstFloatRef &input,
                  const ConstFloatRef &weight, bool transposeWeight,
                  const FloatRef *inputGrad, const FloatRef *weightGrad,
                  const FloatRef *biasGrad) {
  Checker check("linear_grad");
  check.rankAtLeast("input", input, 1).rankAtLeast("weight", weight, 2);
  if (!check.ok())
    return check.status();
  check.require(weight.shape.size() == 2, "weight has shape " +
                                              shapeToString(weight.shape) +
                                              " but must be a matrix");
  const int64_t k = input.shape.back();
  const int64_t weightK = weight.shape[transposeWeight ? 1 : 0];
  const int64_t n = weight.shape[transposeWeight ? 0 : 1];
  check.require(weightK == k, "input has last dimension " + std::to_string(k) +
                                  " but weight " + shapeToString(weight.shape) +
                                  " expects " + std::to_string(weightK));
  check.shapeIs("result_grad", outputGrad, withLast(input.shape, n));
  if (inputGrad)
    check.shapeIs("input_grad", *inputGrad, input.shape);
  if (weightGrad)
    check.shapeIs("weight_grad", *weightGrad, weight.shape);
  if (biasGrad)
    check.shapeIs("bias_grad", *biasGrad, {n});
  if (!check.ok())
    return check.status();
  linearBackward({leadingCount(input.shape), k, n, transposeWeight},
                 outputGrad.data, input.data, weight.data,
                 inputGrad ? inputGrad->data : nullptr,
                 weightGrad ? weightGrad->data : nullptr,
                 biasGrad ? biasGrad->data : nullptr);
  return Status::success();
}

Status layerNorm(const ConstFloatRef &input, const ConstFloatRef &scale,
                 const ConstFloatRef &bias, double epsilon,
                 const FloatRef &output) {
  Checker check("layer_norm");
  check.rankAtLeast("input", input, 1);
  if (!check.ok())
    return check.status();
  const int64_t dim = input.shape.back();
  check.shapeIs("scale", scale, {dim})
      .shapeIs("bias", bias, {dim})
      .shapeIs("result", output, input.shape)
      .require(epsilon > 0.0, "epsilon must be positive");
  if (!check.ok())
    return check.status();
  layerNormForward(leadingCount(input.shape), dim, static_cast<float>(epsilon),
                   input.data, scale.data, bias.data, output.data, nullptr,
                   nullptr);
  return Status::success();
}

Status layerNormGrad(const ConstFloatRef &outputGrad,
                     const ConstFloatRef &input, const ConstFloatRef &scale,
                     double epsilon, const FloatRef &inputGrad,
                     const FloatRef &scaleGrad, const FloatRef &biasGrad) {
  Checker check("layer_norm_grad");
  check.rankAtLeast("input", input, 1);
  if (!check.ok())
    return check.status();
  const int64_t dim = input.shape.back();
  check.shapeIs("result_grad", outputGrad, input.shape)
      .shapeIs("scale", scale, {dim})
      .shapeIs("input_grad", inputGrad, input.shape)
      .shapeIs("scale_grad", scaleGrad, {dim})
      .shapeIs("bias_grad", biasGrad, {dim})
      .require(epsilon > 0.0, "epsilon must be positive");
  if (!check.ok())
    return check.status();
  layerNormBackward(leadingCount(input.shape), dim, static_cast<float>(epsilon),
                    outputGrad.data, input.data, scale.data, nullptr, nullptr,
                    inputGrad.data, scaleGrad.data, biasGrad.data);
  return Status::success();
}

Status activation(ActivationKind kind, const ConstFloatRef &input,
                  const FloatRef &output) {
  Checker check("activation");
  check.valid("input", input).shapeIs("result", output, input.shape);
  if (!check.ok())
    return check.status();
  activationForward(kind, input.numElements(), input.data, output.data);
  return Status::success();
}

Status activationGrad(ActivationKind kind, const ConstFloatRef &outputGrad,
                      const ConstFloatRef &input, const FloatRef &inputGrad) {
  Checker check("activation_grad");
  check.valid("input", input)
      .shapeIs("result_grad", outputGrad, input.shape)
      .shapeIs("input_grad", inputGrad, input.shape);
  if (!check.ok())
    return check.status();
  activationBackward(kind, input.numElements(), outputGrad.data, input.data,
                     inputGrad.data);
  return Status::success();
}

namespace {

// Shape of an embedding call from the tokens and the table; a rank-0 token
// tensor is one sequence of length one.
EmbeddingShape embeddingShape(const ConstTokenRef &tokens, int64_t vocabSize,
                              int64_t modelDim, int64_t numPositions) {
  const int64_t seqLen = tokens.shape.empty() ? 1 : tokens.shape.back();
  const int64_t count = tokens.numElements();
  return {seqLen ? count / seqLen : 0, seqLen, vocabSize, modelDim,
          numPositions};
}

std::vector<int64_t> appended(std::vector<int64_t> shape, int64_t last) {
  shape.push_back(last);
  return shape;
}

std::string badTokenMessage(const ConstTokenRef &tokens, int64_t index,
                            int64_t vocabSize) {
  return "token id " + std::to_string(tokens.data[index]) + " at flat index " +
         std::to_string(index) + " of tokens " + shapeToString(tokens.shape) +
         " is outside [0, " + std::to_string(vocabSize) + ")";
}

} // namespace

Status embedding(const ConstTokenRef &tokens, const ConstFloatRef &table,
                 const ConstFloatRef *positions, PositionKind position,
                 bool scaled, const FloatRef &output) {
  Checker check("embedding");
  check.valid("tokens", tokens).rankAtLeast("table", table, 2);
  if (!check.ok())
    return check.status();
  check.require(table.shape.size() == 2, "table has shape " +
                                             shapeToString(table.shape) +
                                             " but must be [V, M]");
  const int64_t vocabSize = table.shape[0], dim = table.shape[1];
  EmbeddingShape shape = embeddingShape(tokens, vocabSize, dim, 0);
  if (position == PositionKind::Learned) {
    check.require(positions != nullptr, "learned positions need a table");
    if (positions) {
      check.rankAtLeast("positions", *positions, 2);
      if (check.ok()) {
        check.require(positions->shape.size() == 2 &&
                          positions->shape[1] == dim &&
                          positions->shape[0] >= shape.seqLen,
                      "positions has shape " + shapeToString(positions->shape) +
                          " but expected [P, " + std::to_string(dim) +
                          "] with P >= " + std::to_string(shape.seqLen));
        shape.numPositions = positions->shape[0];
      }
    }
  }
  check.shapeIs("result", output, appended(tokens.shape, dim));
  if (!check.ok())
    return check.status();
  const int64_t bad = embeddingForward(
      shape, position, scaled, tokens.data, table.data,
      positions && position == PositionKind::Learned ? positions->data
                                                     : nullptr,
      output.data);
  if (bad != kAllTokensValid)
    return outOfRange("embedding: " + badTokenMessage(tokens, bad, vocabSize));
  return Status::success();
}

Status embeddingGrad(const ConstFloatRef &outputGrad,
                     const ConstTokenRef &tokens, bool scaled,
                     const FloatRef &tableGrad, const FloatRef *positionsGrad) {
  Checker check("embedding_grad");
  check.valid("tokens", tokens).rankAtLeast("table_grad", tableGrad, 2);
  if (!check.ok())
    return check.status();
  check.require(tableGrad.shape.size() == 2,
                "table_grad has shape " + shapeToString(tableGrad.shape) +
                    " but must be [V, M]");
  const int64_t vocabSize = tableGrad.shape[0], dim = tableGrad.shape[1];
  EmbeddingShape shape = embeddingShape(tokens, vocabSize, dim, 0);
  check.shapeIs("result_grad", outputGrad, appended(tokens.shape, dim));
  if (positionsGrad) {
    check.rankAtLeast("positions_grad", *positionsGrad, 2);
    if (check.ok()) {
      check.require(
          positionsGrad->shape.size() == 2 && positionsGrad->shape[1] == dim &&
              positionsGrad->shape[0] >= shape.seqLen,
          "positions_grad has shape " + shapeToString(positionsGrad->shape) +
              " but expected [P, " + std::to_string(dim) +
              "] with P >= " + std::to_string(shape.seqLen));
      shape.numPositions = positionsGrad->shape[0];
    }
  }
  if (!check.ok())
    return check.status();
  const int64_t bad = embeddingBackward(
      shape, scaled, outputGrad.data, tokens.data, tableGrad.data,
      positionsGrad ? positionsGrad->data : nullptr);
  if (bad != kAllTokensValid)
    return outOfRange("embedding_grad: " +
                      badTokenMessage(tokens, bad, vocabSize));
  return Status::success();
}

namespace {

// The rules shared by attention and attention_grad; fills `shape`.
void checkAttentionOperands(Checker &check, const ConstFloatRef &query,
                            const ConstFloatRef &key,
                            const ConstFloatRef &value,
                            const ConstMaskRef *keyMask, int64_t numHeads,
                            bool causal, AttentionShape &shape) {
  check.valid("query", query).valid("key", key).valid("value", value);
  if (!check.ok())
    return;
  check.require(query.shape.size() == 3, "query has shape " +
                                             shapeToString(query.shape) +
                                             " but must be [B, Sq, D]");
  check.require(key.shape.size() == 3, "key has shape " +
                                           shapeToString(key.shape) +
                                           " but must be [B, Sk, D]");
  if (!check.ok())
    return;
  const int64_t batch = query.shape[0], dim = query.shape[2];
  check.shapeIs("key", key, {batch, key.shape[1], dim});
  check.shapeIs("value", value, key.shape);
  check.require(numHeads > 0 && dim % numHeads == 0,
                "num_heads " + std::to_string(numHeads) +
                    " does not divide the model dimension " +
                    std::to_string(dim));
  check.require(!causal || query.shape[1] == key.shape[1],
                "causal attention needs as many queries as keys, found " +
                    std::to_string(query.shape[1]) + " and " +
                    std::to_string(key.shape[1]));
  if (keyMask)
    check.shapeIs("key_mask", *keyMask, {batch, key.shape[1]});
  shape = {batch, query.shape[1], key.shape[1], dim, numHeads, causal};
}

} // namespace

Status attention(const ConstFloatRef &query, const ConstFloatRef &key,
                 const ConstFloatRef &value, const ConstMaskRef *keyMask,
                 int64_t numHeads, bool causal, const FloatRef &output) {
  Checker check("attention");
  AttentionShape shape;
  checkAttentionOperands(check, query, key, value, keyMask, numHeads, causal,
                         shape);
  if (check.ok())
    check.shapeIs("result", output, query.shape);
  if (!check.ok())
    return check.status();
  attentionForward(shape, query.data, key.data, value.data,
                   keyMask ? keyMask->data : nullptr, output.data, nullptr);
  return Status::success();
}

Status attentionGrad(const ConstFloatRef &outputGrad,
                     const ConstFloatRef &query, const ConstFloatRef &key,
                     const ConstFloatRef &value, const ConstMaskRef *keyMask,
                     int64_t numHeads, bool causal, const FloatRef &queryGrad,
                     const FloatRef &keyGrad, const FloatRef &valueGrad) {
  Checker check("attention_grad");
  AttentionShape shape;
  checkAttentionOperands(check, query, key, value, keyMask, numHeads, causal,
                         shape);
  if (check.ok())
    check.shapeIs("result_grad", outputGrad, query.shape)
        .shapeIs("query_grad", queryGrad, query.shape)
        .shapeIs("key_grad", keyGrad, key.shape)
        .shapeIs("value_grad", valueGrad, value.shape);
  if (!check.ok())
    return check.status();
  attentionBackward(shape, outputGrad.data, query.data, key.data, value.data,
                    keyMask ? keyMask->data : nullptr, nullptr, queryGrad.data,
                    keyGrad.data, valueGrad.data);
  return Status::success();
}

namespace {

void checkCrossEntropyOperands(Checker &check, const ConstFloatRef &logits,
                               const ConstTokenRef &labels,
                               const CrossEntropyOptions &options) {
  check.rankAtLeast("logits", logits, 1).valid("labels", labels);
  if (!check.ok())
    return;
  std::vector<int64_t> expectedLabels(logits.shape.begin(),
                                      logits.shape.end() - 1);
  check.shapeIs("labels", labels, expectedLabels);
  check.require(logits.shape.back() > 0, "logits have an empty vocabulary");
  check.require(options.labelSmoothing >= 0.0 && options.labelSmoothing <= 1.0,
                "label_smoothing " + std::to_string(options.labelSmoothing) +
                    " is outside [0, 1]");
}

Status badLabel(const char *op, const ConstTokenRef &labels, int64_t index,
                int64_t vocabSize, const CrossEntropyOptions &options) {
  return outOfRange(
      std::string(op) + ": label " + std::to_string(labels.data[index]) +
      " at flat index " + std::to_string(index) + " is outside [0, " +
      std::to_string(vocabSize) + ") and is not the ignore index " +
      std::to_string(options.ignoreIndex));
}

} // namespace

Status crossEntropy(const ConstFloatRef &logits, const ConstTokenRef &labels,
                    const CrossEntropyOptions &options, float *loss) {
  Checker check("cross_entropy");
  checkCrossEntropyOperands(check, logits, labels, options);
  check.require(loss != nullptr, "no place for the loss");
  if (!check.ok())
    return check.status();
  const int64_t vocabSize = logits.shape.back();
  const int64_t bad =
      crossEntropyForward(labels.numElements(), vocabSize, logits.data,
                          labels.data, options, loss, nullptr, nullptr);
  if (bad != kAllLabelsValid)
    return badLabel("cross_entropy", labels, bad, vocabSize, options);
  return Status::success();
}

Status crossEntropyGrad(float lossGrad, const ConstFloatRef &logits,
                        const ConstTokenRef &labels,
                        const CrossEntropyOptions &options,
                        const FloatRef &logitsGrad) {
  Checker check("cross_entropy_grad");
  checkCrossEntropyOperands(check, logits, labels, options);
  check.shapeIs("logits_grad", logitsGrad, logits.shape);
  if (!check.ok())
    return check.status();
  const int64_t vocabSize = logits.shape.back();
  const int64_t bad = crossEntropyBackward(labels.numElements(), vocabSize,
                                           lossGrad, logits.data, labels.data,
                                           options, nullptr, logitsGrad.data);
  if (bad != kAllLabelsValid)
    return badLabel("cross_entropy_grad", labels, bad, vocabSize, options);
  return Status::success();
}

Status dropout(const DropoutParams &params, const ConstFloatRef &input,
               const FloatRef &output) {
  Checker check("dropout");
  check.valid("input", input)
      .shapeIs("result", output, input.shape)
      .require(params.rate >= 0.0 && params.rate <= 1.0,
               "rate " + std::to_string(params.rate) + " is outside [0, 1]");
  if (!check.ok())
    return check.status();
  dropoutForward(params, contiguousDropoutLayout(input.numElements()),
                 input.data, output.data);
  return Status::success();
}

Status paddingMask(const ConstTokenRef &tokens, int64_t padId,
                   const MaskRef &mask) {
  Checker check("padding_mask");
  check.valid("tokens", tokens).shapeIs("result", mask, tokens.shape);
  if (!check.ok())
    return check.status();
  dense::paddingMask(tokens.numElements(), tokens.data, padId, mask.data);
  return Status::success();
}

Status add(const ConstFloatRef &lhs, const ConstFloatRef &rhs,
           const FloatRef &output) {
  Checker check("add");
  check.valid("lhs", lhs)
      .shapeIs("rhs", rhs, lhs.shape)
      .shapeIs("result", output, lhs.shape);
  if (!check.ok())
    return check.status();
  dense::add(lhs.numElements(), lhs.data, rhs.data, output.data);
  return Status::success();
}

} // namespace checked
} // namespace dense
} // namespace moert
