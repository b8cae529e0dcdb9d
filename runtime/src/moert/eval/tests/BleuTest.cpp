//===- BleuTest.cpp - BLEU and chrF against sacreBLEU's own numbers -------===//
//
// tests/eval/sacrebleu_vectors.json holds corpora scored by sacreBLEU itself
// (tests/eval/make_sacrebleu_vectors.py): punctuation, numbers, entities,
// Unicode, empty hypotheses, several references. Every score, count and 13a
// tokenization must be sacreBLEU's.
//
//===----------------------------------------------------------------------===//
#include "moert/checkpoint/Json.h"
#include "moert/eval/Bleu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

namespace moert {
namespace eval {
namespace {

using checkpoint::JsonValue;

JsonValue loadVectors() {
  std::ifstream in(MOE_EVAL_VECTORS);
  std::stringstream text;
  text << in.rdbuf();
  Expected<JsonValue> parsed = checkpoint::parseJson(text.str());
  EXPECT_TRUE(parsed.ok()) << parsed.status().toString();
  return parsed.ok() ? *parsed : JsonValue();
}

std::vector<std::string> strings(const JsonValue &array) {
  std::vector<std::string> out;
  for (const JsonValue &item : array.items)
    out.push_back(item.text);
  return out;
}

double number(const JsonValue *value) {
  return value ? std::stod(value->text) : NAN;
}

TEST(BleuTest, EqualsSacreBleuOnTheCommittedVectors) {
  const JsonValue vectors = loadVectors();
  const JsonValue *list = vectors.find("vectors");
  ASSERT_NE(list, nullptr);
  ASSERT_GE(list->items.size(), 10u);
  for (const JsonValue &v : list->items) {
    const std::string name = v.find("name")->text;
    SCOPED_TRACE(name);
    const std::vector<std::string> hyps = strings(*v.find("hypotheses"));
    std::vector<std::vector<std::string>> refs;
    for (const JsonValue &stream : v.find("references")->items)
      refs.push_back(strings(stream));

    Expected<BleuScore> bleu = corpusBleu(hyps, refs);
    ASSERT_TRUE(bleu.ok()) << bleu.status().toString();
    EXPECT_NEAR(bleu->score, number(v.find("bleu")), 1e-9);
    const JsonValue *counts = v.find("bleu_counts");
    const JsonValue *totals = v.find("bleu_totals");
    for (size_t n = 0; n < 4; ++n) {
      EXPECT_EQ(bleu->correct[n], std::stoll(counts->items[n].text)) << n;
      EXPECT_EQ(bleu->total[n], std::stoll(totals->items[n].text)) << n;
    }
    EXPECT_EQ(bleu->hypothesisLength, std::stoll(v.find("bleu_sys_len")->text));
    EXPECT_EQ(bleu->referenceLength, std::stoll(v.find("bleu_ref_len")->text));
    EXPECT_EQ(bleu->format(2), "BLEU = " + v.find("bleu_text")->text);

    Expected<ChrfScore> chrf = corpusChrf(hyps, refs);
    ASSERT_TRUE(chrf.ok()) << chrf.status().toString();
    EXPECT_NEAR(chrf->score, number(v.find("chrf")), 1e-9);

    const std::vector<std::string> tokenized = strings(*v.find("tokenized"));
    for (size_t i = 0; i < hyps.size(); ++i) {
      std::string line = hyps[i];
      while (!line.empty() && (line.back() == ' ' || line.back() == '\t'))
        line.pop_back();
      EXPECT_EQ(tokenize13a(line), tokenized[i]) << "segment " << i;
    }
  }
}

TEST(BleuTest, BadInputIsAnErrorNamingTheSegment) {
  Expected<BleuScore> mismatched = corpusBleu({"a", "b"}, {{"a"}});
  ASSERT_FALSE(mismatched.ok());
  EXPECT_NE(mismatched.status().message().find(
                "reference stream 1 has 1 segments, the hypotheses 2"),
            std::string::npos)
      << mismatched.status().toString();
  Expected<ChrfScore> invalid = corpusChrf({"ok", "\xff\xfe"}, {{"ok", "x"}});
  ASSERT_FALSE(invalid.ok());
  EXPECT_NE(invalid.status().message().find(
                "hypothesis segment 2 is not valid UTF-8"),
            std::string::npos)
      << invalid.status().toString();
  EXPECT_FALSE(corpusBleu({"a"}, {}).ok());
}

} // namespace
} // namespace eval
} // namespace moert
