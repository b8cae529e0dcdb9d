//===- JsonTest.cpp - The strict JSON reader ------------------------------===//

#include "moert/checkpoint/Json.h"

#include <gtest/gtest.h>

namespace moert::checkpoint {
namespace {

void expectInvalid(const std::string &text, const std::string &fragment) {
  Expected<JsonValue> parsed = parseJson(text);
  ASSERT_FALSE(parsed.ok()) << "accepted: " << text;
  EXPECT_NE(parsed.status().message().find(fragment), std::string::npos)
      << parsed.status().message();
}

TEST(Json, ParsesNestedValuesInOrder) {
  Expected<JsonValue> parsed = parseJson(
      " {\"b\": [1, 2.5e-3, -0, true, false, null], \"a\": {\"x\": \"y\"}} ");
  ASSERT_TRUE(parsed.ok()) << parsed.status().toString();
  ASSERT_TRUE(parsed->isObject());
  ASSERT_EQ(parsed->members.size(), 2u);
  EXPECT_EQ(parsed->members[0].first, "b");
  const JsonValue *array = parsed->find("b");
  ASSERT_TRUE(array && array->isArray());
  ASSERT_EQ(array->items.size(), 6u);
  EXPECT_EQ(array->items[1].text, "2.5e-3");
  EXPECT_TRUE(array->items[3].boolean);
  EXPECT_EQ(array->items[5].kind, JsonValue::Kind::Null);
  EXPECT_EQ(parsed->find("a")->find("x")->text, "y");
  uint64_t value = 0;
  EXPECT_TRUE(array->items[0].asUnsigned(value));
  EXPECT_EQ(value, 1u);
  EXPECT_FALSE(array->items[1].asUnsigned(value));
  EXPECT_FALSE(array->items[2].asUnsigned(value)); // "-0" has a sign
}

TEST(Json, DecodesEscapesAndUtf8) {
  Expected<JsonValue> parsed =
      parseJson("\"a\\\"b\\\\c\\/\\n\\u00e9\\ud83d\\ude00\xc3\xa9\"");
  ASSERT_TRUE(parsed.ok()) << parsed.status().toString();
  EXPECT_EQ(parsed->text, "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80\xc3\xa9");
}

TEST(Json, QuoteRoundTrips) {
  std::string original = "tab\there \"quoted\" back\\slash \x01 \xc3\xa9";
  Expected<JsonValue> parsed = parseJson(quoteJson(original));
  ASSERT_TRUE(parsed.ok()) << parsed.status().toString();
  EXPECT_EQ(parsed->text, original);
}

TEST(Json, UnsignedOverflowIsRejected) {
  Expected<JsonValue> parsed = parseJson("18446744073709551616");
  ASSERT_TRUE(parsed.ok());
  uint64_t value;
  EXPECT_FALSE(parsed->asUnsigned(value));
  ASSERT_TRUE(parseJson("18446744073709551615")->asUnsigned(value));
  EXPECT_EQ(value, UINT64_MAX);
}

TEST(Json, StrictErrors) {
  expectInvalid("{\"a\": 1, \"a\": 2}", "duplicate key \"a\"");
  expectInvalid("{\"a\": 1,}", "expected a string key");
  expectInvalid("[1, 2,]", "unexpected character ']'");
  expectInvalid("{\"a\": 1} x", "unexpected data after the JSON value");
  expectInvalid("01", "leading zero in a number");
  expectInvalid("-", "expected digits");
  expectInvalid("1.", "expected digits after the decimal point");
  expectInvalid("1e", "expected digits in the exponent");
  expectInvalid("\"abc", "unterminated string");
  expectInvalid("\"a\tb\"", "control character");
  expectInvalid("\"\\x\"", "invalid escape");
  expectInvalid("\"\\ud800\"", "high surrogate without a low surrogate");
  expectInvalid("\"\\udc00\"", "lone low surrogate");
  expectInvalid("\"\\u12zz\"", "invalid hex digit");
  expectInvalid("\"\\u12", "truncated \\u escape");
  expectInvalid("\"\xff\"", "invalid UTF-8");
  expectInvalid("\"\xc0\xaf\"", "invalid UTF-8");     // overlong '/'
  expectInvalid("\"\xed\xa0\x80\"", "invalid UTF-8"); // encoded surrogate
  expectInvalid("\"\xe2\x82\"", "invalid UTF-8");
  expectInvalid("\"\xe2\x82", "truncated UTF-8");
  expectInvalid("tru", "unexpected character 't'");
  expectInvalid("", "unexpected end of input");
  expectInvalid(std::string(100, '[') + std::string(100, ']'),
                "nesting deeper than 64");
}

} // namespace
} // namespace moert::checkpoint
