//===- CommandLine.cpp - Argument parsing of the runtime's tools ----------===//
#include "moert/runner/CommandLine.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace moert {
namespace runner {

bool CommandLine::next() {
  if (index_ + 1 >= argc_)
    return false;
  arg_ = argv_[++index_];
  return true;
}

bool CommandLine::value(std::string &out) {
  if (index_ + 1 >= argc_)
    return error(arg_ + " expects a value");
  out = argv_[++index_];
  return true;
}

bool CommandLine::integer(int64_t minimum, int64_t &out, int64_t maximum) {
  std::string flag = arg_, text;
  if (!value(text))
    return false;
  char *end = nullptr;
  errno = 0;
  long long parsed = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end || errno == ERANGE || parsed < minimum ||
      parsed > maximum) {
    std::string expected = maximum == std::numeric_limits<int64_t>::max()
                               ? ">= " + std::to_string(minimum)
                               : "in [" + std::to_string(minimum) + ", " +
                                     std::to_string(maximum) + "]";
    std::fprintf(stderr, "%s: %s expects an integer %s, found '%s'\n", tool_,
                 flag.c_str(), expected.c_str(), text.c_str());
    return false;
  }
  out = parsed;
  return true;
}

bool CommandLine::error(const std::string &message) const {
  std::fprintf(stderr, "%s: %s\n%s", tool_, message.c_str(), usage_);
  return false;
}

bool CommandLine::unknownOption() const {
  return error("unknown option '" + arg_ + "'");
}

} // namespace runner
} // namespace moert
