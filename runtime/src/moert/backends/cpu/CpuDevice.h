//===- CpuDevice.h - The host as a device ---------------------*- C++ -*-===//
//
// Device memory is host memory (64-byte aligned, zero-filled), copies are
// memcpy, and every kernel finishes before it returns, so the stream needs
// no synchronization. Kernels use OpenMP threads and OpenBLAS.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CPU_CPUDEVICE_H
#define MOERT_BACKENDS_CPU_CPUDEVICE_H

#include "moert/hal/Device.h"

namespace moert {
namespace cpu {

class CpuDevice final : public hal::Device {
public:
  hal::Backend backend() const override { return hal::Backend::Cpu; }
  std::string description() const override;
  bool hostAccessible() const override { return true; }
  Expected<uint64_t> availableMemory() const override {
    return hal::hostAvailableMemory();
  }

  Expected<hal::DeviceBuffer> allocate(size_t bytes,
                                       const char *what) override;
  Status copyToDevice(void *device, const void *host, size_t bytes) override;
  Status copyToHost(void *host, const void *device, size_t bytes) override;
  Status copyOnDevice(void *to, const void *from, size_t bytes) override;
  Status fill(void *device, uint8_t value, size_t bytes) override;
  Status synchronize() override { return Status::success(); }

protected:
  void deallocate(void *data, size_t bytes) override;
};

/// The process's CPU device (for code that has no other).
CpuDevice &hostDevice();

} // namespace cpu
} // namespace moert

#endif // MOERT_BACKENDS_CPU_CPUDEVICE_H
