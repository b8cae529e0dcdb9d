//===- CpuDevice.cpp - The host as a device -------------------------------===//
#include "moert/backends/cpu/CpuDevice.h"

#include <fstream>
#include <string>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace moert {
namespace cpu {

namespace {
constexpr size_t kAlignment = 64;
} // namespace

std::string CpuDevice::description() const {
#if defined(_OPENMP)
  int threads = omp_get_max_threads();
#else
  int threads = 1;
#endif
  return "cpu (" + std::to_string(threads) + " thread" +
         (threads == 1 ? "" : "s") + ")";
}

Expected<hal::DeviceBuffer> CpuDevice::allocate(size_t bytes,
                                                const char *what) {
  if (bytes == 0)
    return hal::DeviceBuffer(this, nullptr, 0);
  size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded < bytes)
    return Status(StatusCode::ResourceExhausted,
                  std::string("cannot allocate the ") + what + " of " +
                      std::to_string(bytes) + " bytes");
  void *data = std::aligned_alloc(kAlignment, rounded);
  if (!data)
    return Status(StatusCode::ResourceExhausted,
                  std::string("cannot allocate the ") + what + " of " +
                      std::to_string(bytes) + " bytes of host memory");
  std::memset(data, 0, rounded);
  return hal::DeviceBuffer(this, data, bytes);
}

void CpuDevice::deallocate(void *data, size_t) { std::free(data); }

Status CpuDevice::copyToDevice(void *device, const void *host, size_t bytes) {
  if (bytes && device != host)
    std::memcpy(device, host, bytes);
  return Status::success();
}

Status CpuDevice::copyToHost(void *host, const void *device, size_t bytes) {
  if (bytes && device != host)
    std::memcpy(host, device, bytes);
  return Status::success();
}

Status CpuDevice::copyOnDevice(void *to, const void *from, size_t bytes) {
  if (bytes && to != from)
    std::memmove(to, from, bytes);
  return Status::success();
}

Status CpuDevice::fill(void *device, uint8_t value, size_t bytes) {
  if (bytes)
    std::memset(device, value, bytes);
  return Status::success();
}

CpuDevice &hostDevice() {
  static CpuDevice device;
  return device;
}

} // namespace cpu
} // namespace moert
