//===- TempDir.h - A scratch directory per test ---------------------------===//
#ifndef MOERT_CHECKPOINT_TESTS_TEMPDIR_H
#define MOERT_CHECKPOINT_TESTS_TEMPDIR_H

#include <gtest/gtest.h>

#include <dirent.h>
#include <fstream>
#include <iterator>
#include <stdlib.h>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace moert::checkpoint::testing {

/// A fresh directory, removed (with its files) at the end of the test.
class TempDir {
public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "moert-ckpt-XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    char *made = ::mkdtemp(buffer.data());
    EXPECT_NE(made, nullptr);
    path_ = made ? made : "";
  }
  ~TempDir() {
    ::chmod(path_.c_str(), 0755);
    for (const std::string &name : entries()) {
      std::string child = path_ + "/" + name;
      if (::unlink(child.c_str()) != 0)
        ::rmdir(child.c_str());
    }
    ::rmdir(path_.c_str());
  }
  const std::string &path() const { return path_; }
  std::string file(const std::string &name) const { return path_ + "/" + name; }
  /// Names in the directory (without "." and "..").
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    if (DIR *dir = ::opendir(path_.c_str())) {
      while (dirent *entry = ::readdir(dir)) {
        std::string name = entry->d_name;
        if (name != "." && name != "..")
          names.push_back(name);
      }
      ::closedir(dir);
    }
    return names;
  }

private:
  std::string path_;
};

inline std::vector<uint8_t> readFileBytes(const std::string &path) {
  std::ifstream file(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(file)),
                              std::istreambuf_iterator<char>());
}

} // namespace moert::checkpoint::testing

#endif // MOERT_CHECKPOINT_TESTS_TEMPDIR_H
