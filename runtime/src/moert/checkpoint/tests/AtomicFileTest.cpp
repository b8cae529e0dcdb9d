//===- AtomicFileTest.cpp - Saves are all or nothing ----------------------===//
//
// A failed save must leave no file (no temporary, no partial target) and
// must not touch a checkpoint already at the target path. Failures are
// real ones: a missing or non-directory parent, a read-only directory (not
// for root, who bypasses permissions), a file size limit (RLIMIT_FSIZE, so
// write() itself fails mid-file with EFBIG) and a rename onto a directory.
//
//===----------------------------------------------------------------------===//

#include "TempDir.h"

#include "moert/checkpoint/AtomicFile.h"
#include "moert/checkpoint/Safetensors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace moert::checkpoint {
namespace {

using testing::readFileBytes;
using testing::TempDir;

Status writeCheckpoint(const std::string &path, int64_t step,
                       size_t numFloats) {
  std::vector<float> values(numFloats);
  for (size_t i = 0; i < numFloats; ++i)
    values[i] = float(i) + float(step);
  CheckpointWriter writer;
  MOERT_RETURN_IF_ERROR(
      writer.addF32("w", {int64_t(numFloats)}, values.data()));
  writer.setStep(step);
  return writer.write(path);
}

/// Lowers the file size limit for its lifetime; SIGXFSZ is ignored so the
/// write fails with EFBIG instead of killing the test.
class FileSizeLimit {
public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    previousHandler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, previousHandler_);
  }

private:
  rlimit saved_;
  void (*previousHandler_)(int);
};

TEST(AtomicFile, WritesAndReplaces) {
  TempDir dir;
  std::string path = dir.file("c.safetensors");
  ASSERT_TRUE(writeCheckpoint(path, 1, 16).ok());
  ASSERT_TRUE(writeCheckpoint(path, 2, 32).ok());
  Expected<Checkpoint> loaded = Checkpoint::open(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_EQ(*loaded->step(), 2);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"c.safetensors"});
}

TEST(AtomicFile, NoFileWhenTheDirectoryDoesNotExist) {
  TempDir dir;
  Status status = writeCheckpoint(dir.file("missing/c.safetensors"), 1, 4);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::NotFound) << status.toString();
  EXPECT_NE(status.message().find("writing checkpoint"), std::string::npos);
  EXPECT_TRUE(dir.entries().empty());
}

TEST(AtomicFile, NoFileWhenTheParentIsAFile) {
  TempDir dir;
  std::ofstream(dir.file("plain")) << "x";
  Status status = writeCheckpoint(dir.file("plain/c.safetensors"), 1, 4);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"plain"});
}

TEST(AtomicFile, NoFileWhenTheDirectoryIsReadOnly) {
  if (::geteuid() == 0)
    GTEST_SKIP() << "root ignores directory permissions";
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0555), 0);
  Status status = writeCheckpoint(dir.file("c.safetensors"), 1, 4);
  ::chmod(dir.path().c_str(), 0755);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(dir.entries().empty());
}

TEST(AtomicFile, FailedWriteLeavesNoFile) {
  TempDir dir;
  Status status;
  {
    FileSizeLimit limit(4096);
    status = writeCheckpoint(dir.file("c.safetensors"), 1, 64 * 1024);
  }
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::ResourceExhausted) << status.toString();
  EXPECT_TRUE(dir.entries().empty());
}

TEST(AtomicFile, FailedWriteKeepsTheExistingCheckpoint) {
  TempDir dir;
  std::string path = dir.file("c.safetensors");
  ASSERT_TRUE(writeCheckpoint(path, 7, 256).ok());
  std::vector<uint8_t> before = readFileBytes(path);
  Status status;
  {
    FileSizeLimit limit(4096);
    status = writeCheckpoint(path, 8, 64 * 1024);
  }
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(readFileBytes(path), before);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"c.safetensors"});
  Expected<Checkpoint> loaded = Checkpoint::open(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_EQ(*loaded->step(), 7);
}

TEST(AtomicFile, FailedRenameLeavesNoTemporary) {
  TempDir dir;
  // The target is a non-empty directory: rename() must fail.
  std::string target = dir.file("c.safetensors");
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  std::ofstream(target + "/inside") << "x";
  Status status = writeCheckpoint(target, 1, 4);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("cannot rename"), std::string::npos)
      << status.toString();
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"c.safetensors"});
  ::unlink((target + "/inside").c_str());
}

TEST(AtomicFile, UncommittedWriterRemovesItsTemporary) {
  TempDir dir;
  {
    Expected<AtomicFileWriter> writer = AtomicFileWriter::create(dir.file("x"));
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(writer->write("abc", 3).ok());
    EXPECT_EQ(dir.entries().size(), 1u); // the temporary
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(AtomicFile, StaleTemporaryOfTheSamePidIsReplaced) {
  TempDir dir;
  std::string path = dir.file("x");
  std::ofstream(path + ".tmp." + std::to_string(::getpid())) << "stale";
  ASSERT_TRUE(writeFileAtomically(path, "fresh", 5).ok());
  EXPECT_EQ(readFileBytes(path),
            (std::vector<uint8_t>{'f', 'r', 'e', 's', 'h'}));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"x"});
}

/// Sets a file's modification time `seconds` into the past.
void age(const std::string &path, long seconds) {
  struct timespec times[2];
  ::clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= seconds;
  times[1] = times[0];
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

/// The pid of a process that has exited (reaped): no process has it now
/// (unless reused in the microseconds since, which the test tolerates by
/// picking a fresh child each time).
pid_t deadPid() {
  pid_t child = ::fork();
  if (child == 0)
    ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

TEST(AtomicFile, TemporariesOfKilledSavesAreRemovedByTheNextSave) {
  TempDir dir;
  std::string path = dir.file("ckpt.safetensors");
  // Two saves killed earlier (their processes are gone), one save of
  // another target, one in progress in a live process (our parent), one
  // just written by a process that may live on another host, and files
  // that only look similar.
  std::string killed1 = path + ".tmp." + std::to_string(deadPid());
  std::string killed2 = path + ".tmp." + std::to_string(deadPid());
  std::string otherTarget =
      dir.file("other.safetensors") + ".tmp." + std::to_string(deadPid());
  std::string live = path + ".tmp." + std::to_string(::getppid());
  std::string recent = path + ".tmp." + std::to_string(deadPid());
  std::string notPid = path + ".tmp.backup";
  for (const std::string &file :
       {killed1, killed2, otherTarget, live, recent, notPid})
    std::ofstream(file) << "partial";
  for (const std::string &file : {killed1, killed2, otherTarget, live, notPid})
    age(file, 3600);

  ASSERT_TRUE(writeFileAtomically(path, "fresh", 5).ok());
  std::vector<std::string> expected = {
      "ckpt.safetensors",
      "ckpt.safetensors.tmp." + recent.substr(recent.rfind('.') + 1),
      "ckpt.safetensors.tmp." + live.substr(live.rfind('.') + 1),
      "ckpt.safetensors.tmp.backup",
      "other.safetensors.tmp." +
          otherTarget.substr(otherTarget.rfind('.') + 1)};
  std::sort(expected.begin(), expected.end());
  std::vector<std::string> entries = dir.entries();
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, expected);

  // A day without a change: removed even if the pid is in use again.
  age(live, 2 * 24 * 3600);
  EXPECT_EQ(removeStaleTemporaries(path), 1u);
  // Once quiet long enough, the recent one of a finished process goes too.
  age(recent, 3600);
  EXPECT_EQ(removeStaleTemporaries(path), 1u);
  EXPECT_EQ(removeStaleTemporaries(path), 0u);
}

TEST(AtomicFile, UseAfterCommitIsAnError) {
  TempDir dir;
  Expected<AtomicFileWriter> writer = AtomicFileWriter::create(dir.file("x"));
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(writer->commit().ok());
  EXPECT_EQ(writer->write("a", 1).code(), StatusCode::FailedPrecondition);
  EXPECT_EQ(writer->commit().code(), StatusCode::FailedPrecondition);
}

} // namespace
} // namespace moert::checkpoint
