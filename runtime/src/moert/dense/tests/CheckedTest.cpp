//===- CheckedTest.cpp - Error paths of the validating entry points -------===//
//
// Every rule that user input can break must produce a message (op, operand,
// expected vs found) and leave the outputs untouched.
//
//===----------------------------------------------------------------------===//
#include "moert/dense/Checked.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace moert {
namespace dense {
namespace {

using ::testing::HasSubstr;

TEST(Checked, LinearRunsOnMatchingShapes) {
  const std::vector<float> x = {1, 2, 3, 4, 5, 6}; // [1, 2, 3]
  const std::vector<float> w = {1, 0, 0, 1, 1, 1}; // [3, 2]
  const std::vector<float> b = {10, 20};
  std::vector<float> y(4);
  const ConstFloatRef bias{b.data(), {2}};
  const Status status =
      checked::linear({x.data(), {1, 2, 3}}, {w.data(), {3, 2}}, &bias, false,
                      {y.data(), {1, 2, 2}});
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(y, (std::vector<float>{14, 25, 20, 31}));
}

TEST(Checked, LinearRejectsMismatchedShapes) {
  const std::vector<float> x(6), w(6), b(3);
  std::vector<float> y(4, 7.0f);
  Status status = checked::linear({x.data(), {2, 3}}, {w.data(), {2, 3}},
                                  nullptr, false, {y.data(), {2, 3}});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::InvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("linear: input has last dimension 3"));
  EXPECT_THAT(status.message(), HasSubstr("expects 2"));

  // The transposed layout accepts [N, K]; a wrong bias length is reported.
  const ConstFloatRef badBias{b.data(), {3}};
  status = checked::linear({x.data(), {2, 3}}, {w.data(), {2, 3}}, &badBias,
                           true, {y.data(), {2, 2}});
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(),
              HasSubstr("bias has shape [3] but expected [2]"));

  status = checked::linear({x.data(), {2, 3}}, {w.data(), {3, 2}}, nullptr,
                           false, {y.data(), {2, 3}});
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(),
              HasSubstr("result has shape [2, 3] but expected [2, 2]"));
  for (float v : y)
    EXPECT_EQ(v, 7.0f);
}

TEST(Checked, LinearGradRejectsWrongWeightGradShape) {
  const std::vector<float> x(6), w(6), dy(4);
  std::vector<float> dw(6);
  const FloatRef weightGrad{dw.data(), {2, 3}};
  const Status status = checked::linearGrad(
      {dy.data(), {2, 2}}, {x.data(), {2, 3}}, {w.data(), {3, 2}}, false,
      nullptr, &weightGrad, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("linear_grad: weight_grad"));
}

TEST(Checked, EmbeddingReportsBadTokenId) {
  const std::vector<int32_t> tokens = {1, 2, 9, 0}; // [2, 2], V = 5
  const std::vector<float> table(5 * 3, 1.0f);
  std::vector<float> out(12, 7.0f);
  Status status = checked::embedding(
      {tokens.data(), {2, 2}}, {table.data(), {5, 3}}, nullptr,
      PositionKind::Sinusoidal, true, {out.data(), {2, 2, 3}});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::OutOfRange);
  EXPECT_EQ(status.message(), "embedding: token id 9 at flat index 2 of "
                              "tokens [2, 2] is outside [0, 5)");
  for (float v : out)
    EXPECT_EQ(v, 7.0f);

  std::vector<float> dtable(15);
  status =
      checked::embeddingGrad({out.data(), {2, 2, 3}}, {tokens.data(), {2, 2}},
                             false, {dtable.data(), {5, 3}}, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("embedding_grad: token id 9"));
}

TEST(Checked, EmbeddingRejectsShortPositionTable) {
  const std::vector<int32_t> tokens = {1, 2, 3, 0};
  const std::vector<float> table(15), positions(3);
  std::vector<float> out(12);
  const ConstFloatRef pos{positions.data(), {1, 3}};
  Status status =
      checked::embedding({tokens.data(), {1, 4}}, {table.data(), {5, 3}}, &pos,
                         PositionKind::Learned, false, {out.data(), {1, 4, 3}});
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("with P >= 4"));
  status = checked::embedding({tokens.data(), {1, 4}}, {table.data(), {5, 3}},
                              nullptr, PositionKind::Learned, false,
                              {out.data(), {1, 4, 3}});
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("learned positions need a table"));
}

TEST(Checked, AttentionRejectsInconsistentOperands) {
  const std::vector<float> q(2 * 3 * 4), k(2 * 5 * 4), v(2 * 5 * 4);
  const std::vector<uint8_t> mask(2 * 5, 1);
  std::vector<float> out(q.size());
  const FloatRef result{out.data(), {2, 3, 4}};
  // Heads must divide D.
  Status status =
      checked::attention({q.data(), {2, 3, 4}}, {k.data(), {2, 5, 4}},
                         {v.data(), {2, 5, 4}}, nullptr, 3, false, result);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("num_heads 3 does not divide"));
  // Causal needs Sq == Sk.
  status = checked::attention({q.data(), {2, 3, 4}}, {k.data(), {2, 5, 4}},
                              {v.data(), {2, 5, 4}}, nullptr, 2, true, result);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("causal"));
  // Key mask must be [B, Sk].
  const ConstMaskRef badMask{mask.data(), {2, 3}};
  status =
      checked::attention({q.data(), {2, 3, 4}}, {k.data(), {2, 5, 4}},
                         {v.data(), {2, 5, 4}}, &badMask, 2, false, result);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(),
              HasSubstr("key_mask has shape [2, 3] but expected [2, 5]"));
  // Value must match key.
  status = checked::attention({q.data(), {2, 3, 4}}, {k.data(), {2, 5, 4}},
                              {v.data(), {2, 4, 5}}, nullptr, 2, false, result);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("attention: value has shape"));
  // And a consistent call runs.
  const ConstMaskRef goodMask{mask.data(), {2, 5}};
  status =
      checked::attention({q.data(), {2, 3, 4}}, {k.data(), {2, 5, 4}},
                         {v.data(), {2, 5, 4}}, &goodMask, 2, false, result);
  EXPECT_TRUE(status.ok()) << status.message();
}

TEST(Checked, CrossEntropyReportsBadLabelsAndShapes) {
  const std::vector<float> logits(2 * 3 * 4);
  const std::vector<int32_t> labels = {0, 1, 2, 3, 4, -100};
  float loss = 7.0f;
  Status status = checked::crossEntropy({logits.data(), {2, 3, 4}},
                                        {labels.data(), {2, 3}}, {}, &loss);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::OutOfRange);
  EXPECT_THAT(status.message(),
              HasSubstr("label 4 at flat index 4 is outside [0, 4)"));
  EXPECT_EQ(loss, 7.0f);
  status = checked::crossEntropy({logits.data(), {2, 3, 4}},
                                 {labels.data(), {3, 2}}, {}, &loss);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(),
              HasSubstr("labels has shape [3, 2] but expected [2, 3]"));
  status = checked::crossEntropy({logits.data(), {2, 3, 4}},
                                 {labels.data(), {2, 3}}, {1.5, -100}, &loss);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("label_smoothing"));
}

TEST(Checked, ElementwiseAndNormRejectMismatches) {
  const std::vector<float> a(6), b(6);
  std::vector<float> out(6);
  Status status = checked::add({a.data(), {2, 3}}, {b.data(), {3, 2}},
                               {out.data(), {2, 3}});
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("add: rhs has shape [3, 2]"));
  status = checked::layerNorm({a.data(), {2, 3}}, {b.data(), {2}},
                              {b.data(), {3}}, 1e-5, {out.data(), {2, 3}});
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(),
              HasSubstr("layer_norm: scale has shape [2] but expected [3]"));
  status = checked::activation(ActivationKind::Gelu, {a.data(), {2, 3}},
                               {out.data(), {6}});
  ASSERT_FALSE(status.ok());
  status = checked::dropout({1.5, 0, 0, 0, true}, {a.data(), {6}},
                            {out.data(), {6}});
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("dropout: rate"));
  std::vector<uint8_t> mask(6);
  const std::vector<int32_t> tokens(6);
  status = checked::paddingMask({tokens.data(), {6}}, 0, {mask.data(), {5}});
  ASSERT_FALSE(status.ok());
  // Missing data with a non-empty shape.
  status = checked::add({nullptr, {2}}, {b.data(), {2}}, {out.data(), {2}});
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("lhs has no data"));
}

} // namespace
} // namespace dense
} // namespace moert
