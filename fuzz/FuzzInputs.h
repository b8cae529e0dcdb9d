//===- FuzzInputs.h - The committed fuzz inputs, for the unit tests -------===//
//
// The unit tests replay every committed fuzz input (fuzz/corpus/<target>:
// seeds; fuzz/regressions/<target>: minimized crashers) in every build, so
// a machine without clang checks them too. These list and read them.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_FUZZ_FUZZINPUTS_H
#define MOE_FUZZ_FUZZINPUTS_H

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace moe::fuzz {

/// The regular files of `directory` (e.g. fuzz/corpus/plan-loader), sorted
/// by name; none when the directory does not exist (a target without
/// committed regression inputs has no fuzz/regressions/<target>).
inline std::vector<std::string> filesIn(const std::string &directory) {
  std::vector<std::string> files;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(directory, ec), end;
       !ec && it != end; it.increment(ec))
    if (it->is_regular_file() && it->path().filename().string()[0] != '.')
      files.push_back(it->path().string());
  std::sort(files.begin(), files.end());
  return files;
}

/// The bytes of the file at `path` (empty when it cannot be read).
inline std::vector<uint8_t> readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

} // namespace moe::fuzz

#endif // MOE_FUZZ_FUZZINPUTS_H
