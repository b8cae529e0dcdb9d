//===- AtomicFile.cpp - All-or-nothing file writes ------------------------===//

#include "moert/checkpoint/AtomicFile.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace moert::checkpoint {
namespace {

std::string errnoText(int error) {
  return std::string(std::strerror(error)) + " (errno " +
         std::to_string(error) + ")";
}

std::string directoryOf(const std::string &path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  if (slash == 0)
    return "/";
  return path.substr(0, slash);
}

Status ioError(const std::string &what, const std::string &path, int error) {
  StatusCode code = error == ENOSPC || error == EFBIG || error == EDQUOT
                        ? StatusCode::ResourceExhausted
                        : StatusCode::FailedPrecondition;
  if (error == ENOENT || error == ENOTDIR)
    code = StatusCode::NotFound;
  return Status(code, what + " '" + path + "': " + errnoText(error));
}

} // namespace

size_t removeStaleTemporaries(const std::string &path, long quietSeconds) {
  if (path.empty() || path.back() == '/')
    return 0;
  std::string directory = directoryOf(path);
  size_t slash = path.rfind('/');
  std::string prefix =
      (slash == std::string::npos ? path : path.substr(slash + 1)) + ".tmp.";
  DIR *dir = ::opendir(directory.c_str());
  if (!dir)
    return 0;
  std::vector<std::string> stale;
  time_t now = ::time(nullptr);
  constexpr long kDay = 24 * 3600;
  while (dirent *entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix))
      continue;
    std::string digits = name.substr(prefix.size());
    if (digits.size() > 9 ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      continue;
    pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (pid == ::getpid())
      continue; // create() replaces our own
    std::string full = directory + "/" + name;
    struct stat info;
    if (::lstat(full.c_str(), &info) != 0 || !S_ISREG(info.st_mode))
      continue;
    long age = static_cast<long>(now - info.st_mtime);
    bool running = pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM);
    if ((!running && age >= quietSeconds) || age >= kDay)
      stale.push_back(full);
  }
  ::closedir(dir);
  size_t removed = 0;
  for (const std::string &file : stale)
    removed += ::unlink(file.c_str()) == 0;
  return removed;
}

Expected<AtomicFileWriter> AtomicFileWriter::create(const std::string &path) {
  if (path.empty() || path.back() == '/')
    return invalidArgument("cannot write to '" + path + "': not a file path");
  removeStaleTemporaries(path);
  std::string temporary = path + ".tmp." + std::to_string(::getpid());
  int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
  int fd = ::open(temporary.c_str(), flags, 0644);
  if (fd < 0 && errno == EEXIST) {
    // Left over by a crashed process that had our pid; it is garbage.
    ::unlink(temporary.c_str());
    fd = ::open(temporary.c_str(), flags, 0644);
  }
  if (fd < 0)
    return ioError("cannot create temporary file", temporary, errno);
  return AtomicFileWriter(path, std::move(temporary), fd);
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter &&other) noexcept
    : targetPath_(std::move(other.targetPath_)),
      temporaryPath_(std::move(other.temporaryPath_)), fd_(other.fd_),
      finished_(other.finished_), bytesWritten_(other.bytesWritten_) {
  other.fd_ = -1;
  other.finished_ = true;
}

AtomicFileWriter::~AtomicFileWriter() { discard(); }

void AtomicFileWriter::discard() {
  if (finished_)
    return;
  finished_ = true;
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
  ::unlink(temporaryPath_.c_str());
}

Status AtomicFileWriter::write(const void *data, size_t size) {
  if (finished_ || fd_ < 0)
    return failedPrecondition("write to '" + targetPath_ +
                              "' after it was committed or discarded");
  const char *bytes = static_cast<const char *>(data);
  while (size > 0) {
    ssize_t written = ::write(fd_, bytes, size);
    if (written < 0) {
      if (errno == EINTR)
        continue;
      int error = errno;
      discard();
      return ioError("cannot write", temporaryPath_, error);
    }
    if (written == 0) {
      discard();
      return ioError("cannot write", temporaryPath_, EIO);
    }
    bytes += written;
    size -= static_cast<size_t>(written);
    bytesWritten_ += static_cast<size_t>(written);
  }
  return Status::success();
}

Status AtomicFileWriter::writeZeros(size_t count) {
  static const char zeros[64] = {};
  while (count > 0) {
    size_t chunk = count < sizeof(zeros) ? count : sizeof(zeros);
    MOERT_RETURN_IF_ERROR(write(zeros, chunk));
    count -= chunk;
  }
  return Status::success();
}

Status AtomicFileWriter::commit() {
  if (finished_ || fd_ < 0)
    return failedPrecondition("commit of '" + targetPath_ +
                              "' after it was committed or discarded");
  if (::fsync(fd_) != 0) {
    int error = errno;
    discard();
    return ioError("cannot flush", temporaryPath_, error);
  }
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    int error = errno;
    discard();
    return ioError("cannot close", temporaryPath_, error);
  }
  if (::rename(temporaryPath_.c_str(), targetPath_.c_str()) != 0) {
    int error = errno;
    discard();
    return ioError("cannot rename '" + temporaryPath_ + "' to", targetPath_,
                   error);
  }
  finished_ = true;
  // Make the rename durable. The data is already safe under its final name,
  // so a directory that cannot be opened or synced (some file systems
  // refuse) is not an error worth failing a save for.
  int directory =
      ::open(directoryOf(targetPath_).c_str(), O_RDONLY | O_DIRECTORY);
  if (directory >= 0) {
    ::fsync(directory);
    ::close(directory);
  }
  return Status::success();
}

Status writeFileAtomically(const std::string &path, const void *data,
                           size_t size) {
  MOERT_ASSIGN_OR_RETURN(AtomicFileWriter writer,
                         AtomicFileWriter::create(path));
  MOERT_RETURN_IF_ERROR(writer.write(data, size));
  return writer.commit();
}

} // namespace moert::checkpoint
