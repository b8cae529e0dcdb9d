//===- Device.cpp - Backend names, device buffers, opening a device -------===//
#include "moert/hal/Device.h"

#include "moert/backends/cpu/CpuDevice.h"
#if defined(MOERT_HAVE_CUDA)
#include "moert/backends/cuda/CudaDevice.h"
#endif

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace moert {
namespace hal {

const char *backendName(Backend backend) {
  switch (backend) {
  case Backend::Cpu:
    return "cpu";
  case Backend::Cuda:
    return "cuda";
  }
  return "unknown";
}

Expected<Backend> parseBackend(const std::string &name) {
  if (name == "cpu")
    return Backend::Cpu;
  if (name == "cuda")
    return Backend::Cuda;
  return invalidArgument("unknown device '" + name +
                         "': expected cpu or cuda");
}

bool backendBuilt(Backend backend) {
  switch (backend) {
  case Backend::Cpu:
    return true;
  case Backend::Cuda:
#if defined(MOERT_HAVE_CUDA)
    return true;
#else
    return false;
#endif
  }
  return false;
}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&other) noexcept {
  if (this != &other) {
    reset();
    device_ = other.device_;
    data_ = other.data_;
    bytes_ = other.bytes_;
    other.device_ = nullptr;
    other.data_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::reset() {
  if (device_ && data_)
    device_->deallocate(data_, bytes_);
  device_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

Expected<std::unique_ptr<Device>> createDevice(Backend backend,
                                               const DeviceOptions &options) {
  switch (backend) {
  case Backend::Cpu:
    return std::unique_ptr<Device>(new cpu::CpuDevice());
  case Backend::Cuda: {
#if defined(MOERT_HAVE_CUDA)
    MOERT_ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaDevice> device,
                           cuda::CudaDevice::open(options.ordinal));
    return std::unique_ptr<Device>(std::move(device));
#else
    (void)options;
    return Status(StatusCode::Unimplemented,
                  "this build has no CUDA backend (the CUDA toolkit was not "
                  "found at configure time, or MOE_CUDA=OFF); rebuild with "
                  "the toolkit to use --device cuda");
#endif
  }
  }
  return invalidArgument("unknown backend");
}

namespace {

/// The first number in file `path` ("max" or an unreadable file: none).
bool readNumber(const std::string &path, uint64_t &value) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text.empty() || text[0] < '0' || text[0] > '9')
    return false;
  value = std::stoull(text);
  return true;
}

/// This process's cgroup v2 path relative to the hierarchy ("/..." from
/// "0::/..." in /proc/self/cgroup), or "" when there is none.
std::string cgroupPath() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("0::", 0) == 0)
      return line.substr(3);
  return "";
}

std::string mib(uint64_t bytes) {
  char text[48];
  std::snprintf(text, sizeof(text), "%.1f MiB", bytes / (1024.0 * 1024.0));
  return text;
}

} // namespace

Expected<uint64_t> Device::availableMemory() const {
  return unimplemented("the " + description() +
                       " device does not report its free memory");
}

Expected<uint64_t> hostAvailableMemory(const std::string &meminfo,
                                       const std::string &cgroupRoot) {
  std::ifstream in(meminfo);
  if (!in)
    return unimplemented("cannot read '" + meminfo +
                         "' to find the available host memory");
  uint64_t available = 0;
  bool found = false;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key, unit;
    uint64_t kib = 0;
    if (fields >> key >> kib && key == "MemAvailable:") {
      available = kib * 1024;
      found = true;
      break;
    }
  }
  if (!found)
    return unimplemented("'" + meminfo + "' has no MemAvailable line");
  // A cgroup limit (a container, a batch job) can be far below what the
  // machine has free: take the smaller headroom. The process's own cgroup
  // first, then the root of the mounted hierarchy (inside a container the
  // mount is the container's cgroup).
  for (const std::string &dir :
       {cgroupRoot + cgroupPath(), cgroupRoot}) {
    uint64_t limit = 0, usage = 0;
    if (readNumber(dir + "/memory.max", limit) &&
        readNumber(dir + "/memory.current", usage)) {
      uint64_t headroom = limit > usage ? limit - usage : 0;
      available = std::min(available, headroom);
      break;
    }
    if (readNumber(dir + "/memory/memory.limit_in_bytes", limit) &&
        readNumber(dir + "/memory/memory.usage_in_bytes", usage) &&
        limit < (uint64_t(1) << 60)) {
      uint64_t headroom = limit > usage ? limit - usage : 0;
      available = std::min(available, headroom);
      break;
    }
  }
  return available;
}

Status checkMemoryFits(uint64_t needed, const std::string &detail,
                       uint64_t available, const std::string &where) {
  if (needed <= available)
    return Status::success();
  return Status(StatusCode::ResourceExhausted,
                "the plan needs " + mib(needed) + " (" + detail + ") on " +
                    where + ", but only " + mib(available) +
                    " are available; nothing was allocated");
}

} // namespace hal
} // namespace moert
