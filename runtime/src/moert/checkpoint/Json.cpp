//===- Json.cpp - A small strict JSON reader and string quoting -----------===//

#include "moert/checkpoint/Json.h"

#include <fmt/format.h>

#include <set>

namespace moert::checkpoint {
namespace {

constexpr int kMaxDepth = 64;

class JsonParser {
public:
  explicit JsonParser(std::string_view text) : text_(text) {}

  Expected<JsonValue> parseDocument() {
    JsonValue value;
    MOERT_RETURN_IF_ERROR(parseValue(value, 0));
    skipWhitespace();
    if (position_ != text_.size())
      return error("unexpected data after the JSON value");
    return value;
  }

private:
  Status error(const std::string &message) const {
    return dataLoss(
        fmt::format("invalid JSON at byte {}: {}", position_, message));
  }

  void skipWhitespace() {
    while (position_ < text_.size() &&
           (text_[position_] == ' ' || text_[position_] == '\t' ||
            text_[position_] == '\n' || text_[position_] == '\r'))
      ++position_;
  }

  bool consume(std::string_view literal) {
    if (text_.substr(position_, literal.size()) != literal)
      return false;
    position_ += literal.size();
    return true;
  }

  Status parseValue(JsonValue &value, int depth) {
    if (depth > kMaxDepth)
      return error(fmt::format("nesting deeper than {}", kMaxDepth));
    skipWhitespace();
    if (position_ >= text_.size())
      return error("unexpected end of input, expected a value");
    char c = text_[position_];
    if (c == '{')
      return parseObject(value, depth);
    if (c == '[')
      return parseArray(value, depth);
    if (c == '"') {
      value.kind = JsonValue::Kind::String;
      return parseString(value.text);
    }
    if (c == '-' || (c >= '0' && c <= '9'))
      return parseNumber(value);
    if (consume("true")) {
      value.kind = JsonValue::Kind::Bool;
      value.boolean = true;
      return Status::success();
    }
    if (consume("false")) {
      value.kind = JsonValue::Kind::Bool;
      return Status::success();
    }
    if (consume("null")) {
      value.kind = JsonValue::Kind::Null;
      return Status::success();
    }
    return error(fmt::format("unexpected character '{}'", c));
  }

  Status parseObject(JsonValue &value, int depth) {
    value.kind = JsonValue::Kind::Object;
    ++position_; // '{'
    skipWhitespace();
    if (position_ < text_.size() && text_[position_] == '}') {
      ++position_;
      return Status::success();
    }
    std::set<std::string> keys;
    while (true) {
      skipWhitespace();
      if (position_ >= text_.size() || text_[position_] != '"')
        return error("expected a string key");
      size_t keyPosition = position_;
      std::string key;
      MOERT_RETURN_IF_ERROR(parseString(key));
      if (!keys.insert(key).second) {
        position_ = keyPosition;
        return error(fmt::format("duplicate key {}", quoteJson(key)));
      }
      skipWhitespace();
      if (position_ >= text_.size() || text_[position_] != ':')
        return error("expected ':' after a key");
      ++position_;
      JsonValue member;
      MOERT_RETURN_IF_ERROR(parseValue(member, depth + 1));
      value.members.emplace_back(std::move(key), std::move(member));
      skipWhitespace();
      if (position_ < text_.size() && text_[position_] == ',') {
        ++position_;
        continue;
      }
      if (position_ < text_.size() && text_[position_] == '}') {
        ++position_;
        return Status::success();
      }
      return error("expected ',' or '}' in an object");
    }
  }

  Status parseArray(JsonValue &value, int depth) {
    value.kind = JsonValue::Kind::Array;
    ++position_; // '['
    skipWhitespace();
    if (position_ < text_.size() && text_[position_] == ']') {
      ++position_;
      return Status::success();
    }
    while (true) {
      JsonValue item;
      MOERT_RETURN_IF_ERROR(parseValue(item, depth + 1));
      value.items.push_back(std::move(item));
      skipWhitespace();
      if (position_ < text_.size() && text_[position_] == ',') {
        ++position_;
        continue;
      }
      if (position_ < text_.size() && text_[position_] == ']') {
        ++position_;
        return Status::success();
      }
      return error("expected ',' or ']' in an array");
    }
  }

  Status parseNumber(JsonValue &value) {
    value.kind = JsonValue::Kind::Number;
    size_t start = position_;
    auto digits = [&]() {
      size_t first = position_;
      while (position_ < text_.size() && text_[position_] >= '0' &&
             text_[position_] <= '9')
        ++position_;
      return position_ - first;
    };
    if (text_[position_] == '-')
      ++position_;
    size_t integerStart = position_;
    size_t integerDigits = digits();
    if (integerDigits == 0)
      return error("expected digits in a number");
    if (integerDigits > 1 && text_[integerStart] == '0')
      return error("leading zero in a number");
    if (position_ < text_.size() && text_[position_] == '.') {
      ++position_;
      if (digits() == 0)
        return error("expected digits after the decimal point");
    }
    if (position_ < text_.size() &&
        (text_[position_] == 'e' || text_[position_] == 'E')) {
      ++position_;
      if (position_ < text_.size() &&
          (text_[position_] == '+' || text_[position_] == '-'))
        ++position_;
      if (digits() == 0)
        return error("expected digits in the exponent");
    }
    value.text = std::string(text_.substr(start, position_ - start));
    return Status::success();
  }

  Status parseHex4(uint32_t &unit) {
    if (position_ + 4 > text_.size())
      return error("truncated \\u escape");
    unit = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[position_++];
      unit <<= 4;
      if (c >= '0' && c <= '9')
        unit |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f')
        unit |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        unit |= uint32_t(c - 'A' + 10);
      else
        return error("invalid hex digit in a \\u escape");
    }
    return Status::success();
  }

  static void appendUtf8(std::string &out, uint32_t codePoint) {
    if (codePoint < 0x80) {
      out += char(codePoint);
    } else if (codePoint < 0x800) {
      out += char(0xc0 | (codePoint >> 6));
      out += char(0x80 | (codePoint & 0x3f));
    } else if (codePoint < 0x10000) {
      out += char(0xe0 | (codePoint >> 12));
      out += char(0x80 | ((codePoint >> 6) & 0x3f));
      out += char(0x80 | (codePoint & 0x3f));
    } else {
      out += char(0xf0 | (codePoint >> 18));
      out += char(0x80 | ((codePoint >> 12) & 0x3f));
      out += char(0x80 | ((codePoint >> 6) & 0x3f));
      out += char(0x80 | (codePoint & 0x3f));
    }
  }

  /// Copies one UTF-8 encoded code point, rejecting overlong forms,
  /// surrogates and values past U+10FFFF.
  Status copyUtf8(std::string &out) {
    unsigned char lead = static_cast<unsigned char>(text_[position_]);
    int length;
    uint32_t minimum;
    if (lead >= 0xc2 && lead <= 0xdf) {
      length = 2;
      minimum = 0x80;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      minimum = 0x800;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      minimum = 0x10000;
    } else {
      return error("invalid UTF-8 in a string");
    }
    if (position_ + length > text_.size())
      return error("truncated UTF-8 sequence in a string");
    uint32_t codePoint = lead & (0xff >> (length + 1));
    for (int i = 1; i < length; ++i) {
      unsigned char next =
          static_cast<unsigned char>(text_[position_ + size_t(i)]);
      if ((next & 0xc0) != 0x80)
        return error("invalid UTF-8 in a string");
      codePoint = (codePoint << 6) | (next & 0x3f);
    }
    if (codePoint < minimum || codePoint > 0x10ffff ||
        (codePoint >= 0xd800 && codePoint <= 0xdfff))
      return error("invalid UTF-8 in a string");
    out.append(text_.substr(position_, size_t(length)));
    position_ += size_t(length);
    return Status::success();
  }

  Status parseString(std::string &out) {
    ++position_; // '"'
    while (true) {
      if (position_ >= text_.size())
        return error("unterminated string");
      char c = text_[position_];
      if (c == '"') {
        ++position_;
        return Status::success();
      }
      if (static_cast<unsigned char>(c) < 0x20)
        return error("control character in a string");
      if (static_cast<unsigned char>(c) >= 0x80) {
        MOERT_RETURN_IF_ERROR(copyUtf8(out));
        continue;
      }
      ++position_;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (position_ >= text_.size())
        return error("unterminated escape");
      char escape = text_[position_++];
      switch (escape) {
      case '"':
      case '\\':
      case '/':
        out += escape;
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        uint32_t unit;
        MOERT_RETURN_IF_ERROR(parseHex4(unit));
        if (unit >= 0xdc00 && unit <= 0xdfff)
          return error("lone low surrogate in a \\u escape");
        if (unit >= 0xd800 && unit <= 0xdbff) {
          uint32_t low;
          if (!consume("\\u"))
            return error("high surrogate without a low surrogate");
          MOERT_RETURN_IF_ERROR(parseHex4(low));
          if (low < 0xdc00 || low > 0xdfff)
            return error("high surrogate without a low surrogate");
          unit = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
        }
        appendUtf8(out, unit);
        break;
      }
      default:
        return error(fmt::format("invalid escape '\\{}'", escape));
      }
    }
  }

  std::string_view text_;
  size_t position_ = 0;
};

} // namespace

const JsonValue *JsonValue::find(std::string_view key) const {
  for (const auto &member : members)
    if (member.first == key)
      return &member.second;
  return nullptr;
}

bool JsonValue::asUnsigned(uint64_t &out) const {
  if (kind != Kind::Number || text.empty())
    return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return false;
    uint64_t digit = uint64_t(c - '0');
    if (value > (UINT64_MAX - digit) / 10)
      return false;
    value = value * 10 + digit;
  }
  out = value;
  return true;
}

const char *jsonKindName(JsonValue::Kind kind) {
  switch (kind) {
  case JsonValue::Kind::Null:
    return "null";
  case JsonValue::Kind::Bool:
    return "boolean";
  case JsonValue::Kind::Number:
    return "number";
  case JsonValue::Kind::String:
    return "string";
  case JsonValue::Kind::Array:
    return "array";
  case JsonValue::Kind::Object:
    return "object";
  }
  return "unknown";
}

Expected<JsonValue> parseJson(std::string_view text) {
  return JsonParser(text).parseDocument();
}

std::string quoteJson(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (static_cast<unsigned char>(c) < 0x20)
        out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
      else
        out += c;
    }
  }
  return out + "\"";
}

} // namespace moert::checkpoint
