//===- Json.h - A small strict JSON reader and string quoting ---*- C++ -*-===//
//
// Just enough JSON for the safetensors header, and strict where common
// parsers are lenient: duplicate object keys, invalid UTF-8, lone
// surrogates, leading zeros, trailing commas and anything after the value
// (other than whitespace) are errors, and nesting depth is bounded. A
// checkpoint header that two readers could interpret differently must not
// load. Numbers keep their literal text; callers convert what they need.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CHECKPOINT_JSON_H
#define MOERT_CHECKPOINT_JSON_H

#include "moert/Status.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moert::checkpoint {

struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };

  Kind kind = Kind::Null;
  bool boolean = false;
  /// The decoded string, or the literal text of a number.
  std::string text;
  std::vector<JsonValue> items;
  /// Object members in file order (keys are unique).
  std::vector<std::pair<std::string, JsonValue>> members;

  bool isObject() const { return kind == Kind::Object; }
  bool isArray() const { return kind == Kind::Array; }
  bool isString() const { return kind == Kind::String; }
  /// The member named `key`, or nullptr.
  const JsonValue *find(std::string_view key) const;
  /// True for a number written as a non-negative integer (no sign,
  /// fraction or exponent) that fits in `out`.
  bool asUnsigned(uint64_t &out) const;
};

/// "string", "object", ...
const char *jsonKindName(JsonValue::Kind kind);

/// Parses `text` as exactly one JSON value (surrounding whitespace
/// allowed). Errors give the byte offset.
Expected<JsonValue> parseJson(std::string_view text);

/// `text` as a JSON string literal, quotes included.
std::string quoteJson(std::string_view text);

} // namespace moert::checkpoint

#endif // MOERT_CHECKPOINT_JSON_H
