//===- MemoryTest.cpp - Available memory and the fit check ----------------===//
//
// hostAvailableMemory reads MemAvailable and lowers it to a cgroup's
// headroom; the files are fakes in a temporary directory, so each case
// (no limit, a v2 limit, a v1 limit, usage over the limit, no meminfo) is
// exercised whatever machine runs the test.
//
//===----------------------------------------------------------------------===//

#include "moert/hal/Device.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <unistd.h>
#include <filesystem>
#include <fstream>

namespace moert::hal {
namespace {

namespace fs = std::filesystem;

class HostMemory : public ::testing::Test {
protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("moert-memory-test-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "cgroup");
    write("meminfo", "MemTotal:       16000000 kB\n"
                     "MemFree:         1000000 kB\n"
                     "MemAvailable:    8000000 kB\n");
  }
  void TearDown() override { fs::remove_all(root_); }
  void write(const std::string &relative, const std::string &text) {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text;
  }
  Expected<uint64_t> available() {
    return hostAvailableMemory((root_ / "meminfo").string(),
                               (root_ / "cgroup").string());
  }
  fs::path root_;
};

TEST_F(HostMemory, MemAvailableWithoutALimit) {
  Expected<uint64_t> bytes = available();
  ASSERT_TRUE(bytes.ok()) << bytes.status().toString();
  EXPECT_EQ(*bytes, uint64_t(8000000) * 1024);
  write("cgroup/memory.max", "max\n");
  write("cgroup/memory.current", "123\n");
  EXPECT_EQ(*available(), uint64_t(8000000) * 1024);
}

TEST_F(HostMemory, CgroupV2HeadroomIsTheSmaller) {
  write("cgroup/memory.max", "3221225472\n");     // 3 GiB
  write("cgroup/memory.current", "1073741824\n"); // 1 GiB used
  EXPECT_EQ(*available(), uint64_t(2) << 30);
  write("cgroup/memory.current", "4294967296\n"); // over the limit
  EXPECT_EQ(*available(), 0u);
}

TEST_F(HostMemory, CgroupV1Limit) {
  write("cgroup/memory/memory.limit_in_bytes", "1073741824\n");
  write("cgroup/memory/memory.usage_in_bytes", "536870912\n");
  EXPECT_EQ(*available(), uint64_t(512) << 20);
  // v1's "no limit" is a huge number, not "max".
  write("cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(*available(), uint64_t(8000000) * 1024);
}

TEST_F(HostMemory, UnreadableMeminfo) {
  Expected<uint64_t> bytes = hostAvailableMemory(
      (root_ / "absent").string(), (root_ / "cgroup").string());
  ASSERT_FALSE(bytes.ok());
  EXPECT_NE(bytes.status().message().find("cannot read"), std::string::npos);
}

TEST(MemoryFits, MessageHasTheNumbers) {
  EXPECT_TRUE(checkMemoryFits(100, "arena", 100, "cpu").ok());
  Status status = checkMemoryFits(uint64_t(6) << 30, "arena 5120.0 MiB + "
                                  "persistent 1024.0 MiB per rank",
                                  uint64_t(3) << 30, "cpu (2 threads)");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::ResourceExhausted);
  EXPECT_EQ(status.message(),
            "the plan needs 6144.0 MiB (arena 5120.0 MiB + persistent "
            "1024.0 MiB per rank) on cpu (2 threads), but only 3072.0 MiB "
            "are available; nothing was allocated");
}

TEST(MemoryFits, TheMachineReportsSomething) {
  Expected<uint64_t> bytes = hostAvailableMemory();
  ASSERT_TRUE(bytes.ok()) << bytes.status().toString();
  EXPECT_GT(*bytes, 0u);
}

} // namespace
} // namespace moert::hal
