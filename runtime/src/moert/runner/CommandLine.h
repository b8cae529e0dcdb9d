//===- CommandLine.h - Argument parsing of the runtime's tools ------------===//
//
// The runtime tools link no LLVM, so they parse their few flags with this:
// every error names the tool and the flag and says what was expected and
// what was found, followed by the usage.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_RUNNER_COMMANDLINE_H
#define MOERT_RUNNER_COMMANDLINE_H

#include <cstdint>
#include <limits>
#include <string>

namespace moert {
namespace runner {

class CommandLine {
public:
  CommandLine(const char *tool, const char *usage, int argc, char **argv)
      : tool_(tool), usage_(usage), argc_(argc), argv_(argv) {}

  /// Advances to the next argument; false when there is none.
  bool next();
  /// The current argument.
  const std::string &arg() const { return arg_; }
  bool isFlag() const { return arg_.size() > 1 && arg_[0] == '-'; }

  /// The value after the current flag.
  bool value(std::string &out);
  /// An integer value after the current flag, in [minimum, maximum].
  bool integer(int64_t minimum, int64_t &out,
               int64_t maximum = std::numeric_limits<int64_t>::max());

  /// Prints "<tool>: <message>" and the usage; returns false.
  bool error(const std::string &message) const;
  /// The usual complaint about the current argument.
  bool unknownOption() const;

private:
  const char *tool_;
  const char *usage_;
  int argc_;
  char **argv_;
  int index_ = 0;
  std::string arg_;
};

} // namespace runner
} // namespace moert

#endif // MOERT_RUNNER_COMMANDLINE_H
