//===- AtomicFile.h - All-or-nothing file writes ----------------*- C++ -*-===//
//
// A checkpoint or plan file must never exist half-written: a job killed (or
// a disk that fills up) during a save must leave the previous file intact
// and no partial file that a resume could pick up. The writer therefore
// writes to `<path>.tmp.<pid>` in the target's directory (same file system,
// so the final rename is atomic), fsyncs it, renames it over `path` and
// fsyncs the directory so the rename itself is durable. Any failure removes
// the temporary file. A process killed during a save cannot remove its
// temporary; the next writer of the same target does
// (removeStaleTemporaries).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CHECKPOINT_ATOMICFILE_H
#define MOERT_CHECKPOINT_ATOMICFILE_H

#include "moert/Status.h"

#include <cstddef>
#include <string>

namespace moert::checkpoint {

class AtomicFileWriter {
public:
  /// Creates the temporary file next to `path`.
  static Expected<AtomicFileWriter> create(const std::string &path);

  AtomicFileWriter(AtomicFileWriter &&other) noexcept;
  AtomicFileWriter &operator=(AtomicFileWriter &&other) = delete;
  AtomicFileWriter(const AtomicFileWriter &) = delete;
  AtomicFileWriter &operator=(const AtomicFileWriter &) = delete;
  /// Discards the temporary file unless commit() succeeded.
  ~AtomicFileWriter();

  /// Appends `size` bytes. After a failure the writer only discards.
  Status write(const void *data, size_t size);
  /// Appends `count` zero bytes (alignment padding).
  Status writeZeros(size_t count);
  /// fsync, close, rename over the target, fsync the directory.
  Status commit();
  /// Removes the temporary file now (also done by the destructor).
  void discard();

  const std::string &targetPath() const { return targetPath_; }
  const std::string &temporaryPath() const { return temporaryPath_; }
  size_t bytesWritten() const { return bytesWritten_; }

private:
  AtomicFileWriter(std::string targetPath, std::string temporaryPath, int fd)
      : targetPath_(std::move(targetPath)),
        temporaryPath_(std::move(temporaryPath)), fd_(fd) {}

  std::string targetPath_;
  std::string temporaryPath_;
  int fd_ = -1;
  bool finished_ = false; // committed or discarded
  size_t bytesWritten_ = 0;
};

/// Removes `<path>.tmp.<pid>` files that writers of `path` killed during a
/// save left behind. One is stale when its process is not running on this
/// host and the file has not been modified for `quietSeconds` (a writer on
/// another host sharing the directory keeps its file's time current), or when
/// it has not been modified for a day (a pid reused by another process).
/// Returns the number removed; AtomicFileWriter::create calls it, so every
/// save of a target cleans up after the killed saves of that target.
size_t removeStaleTemporaries(const std::string &path, long quietSeconds = 600);

/// Writes `size` bytes to `path` with an AtomicFileWriter.
Status writeFileAtomically(const std::string &path, const void *data,
                           size_t size);

} // namespace moert::checkpoint

#endif // MOERT_CHECKPOINT_ATOMICFILE_H
