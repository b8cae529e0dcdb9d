//===- Device.h - The backend interface: devices, memory, streams ---------===//
//
// A device is where a plan's buffers live and its kernels run: the host CPU
// or a CUDA GPU. The executor talks to it only through this interface
// (allocate, copy between host and device, fill, order work on the
// device's stream, wait), so it never knows which backend runs a plan.
//
// Memory comes back as a DeviceBuffer: a handle that owns an allocation and
// frees it on destruction. Its pointer is a device address: only a device
// whose hostAccessible() is true (the CPU) lets the host dereference it;
// anything else moves data with copyToDevice / copyToHost.
//
// Work is ordered on one stream per device. Kernels enqueue on it; copies
// to the host and synchronize() wait for what was enqueued before. On the
// CPU every call runs to completion before it returns, so the stream is
// trivially ordered.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_HAL_DEVICE_H
#define MOERT_HAL_DEVICE_H

#include "moert/Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace moert {
namespace hal {

enum class Backend : uint8_t { Cpu = 0, Cuda = 1 };
constexpr int kNumBackends = 2;

/// "cpu", "cuda".
const char *backendName(Backend backend);
/// The inverse of backendName, with an error listing the choices.
Expected<Backend> parseBackend(const std::string &name);
/// Whether this build has the backend's code (CUDA needs the toolkit at
/// build time; whether a GPU is present is createDevice's question).
bool backendBuilt(Backend backend);

class Device;

/// An allocation on a device, freed when the handle goes.
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  DeviceBuffer(Device *device, void *data, size_t bytes)
      : device_(device), data_(data), bytes_(bytes) {}
  DeviceBuffer(DeviceBuffer &&other) noexcept { *this = std::move(other); }
  DeviceBuffer &operator=(DeviceBuffer &&other) noexcept;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  ~DeviceBuffer() { reset(); }

  void reset();
  /// The device address (null for an empty buffer).
  void *data() const { return data_; }
  uint8_t *bytes() const { return static_cast<uint8_t *>(data_); }
  size_t size() const { return bytes_; }
  Device *device() const { return device_; }

private:
  Device *device_ = nullptr;
  void *data_ = nullptr;
  size_t bytes_ = 0;
};

/// Options of createDevice.
struct DeviceOptions {
  /// Which GPU of the node (CUDA). -1: the local rank under mpirun/srun
  /// (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID), else 0.
  int ordinal = -1;
};

class Device {
public:
  virtual ~Device() = default;

  virtual Backend backend() const = 0;
  /// One line for logs: "cpu (2 threads)", "cuda:0 NVIDIA H200 (sm_90,
  /// 139.8 GiB)".
  virtual std::string description() const = 0;
  /// True when device addresses are host addresses (the CPU).
  virtual bool hostAccessible() const = 0;

  /// `bytes` of device memory aligned to at least 256 bytes, zero-filled.
  virtual Expected<DeviceBuffer> allocate(size_t bytes,
                                          const char *what) = 0;
  /// Copies between host memory and device addresses. copyToHost waits
  /// for the work enqueued before it; copyToDevice is ordered before work
  /// enqueued after it.
  virtual Status copyToDevice(void *device, const void *host,
                              size_t bytes) = 0;
  virtual Status copyToHost(void *host, const void *device,
                            size_t bytes) = 0;
  /// Device to device, on the stream.
  virtual Status copyOnDevice(void *to, const void *from, size_t bytes) = 0;
  /// Sets `bytes` bytes at `device` to `value`, on the stream.
  virtual Status fill(void *device, uint8_t value, size_t bytes) = 0;
  /// Waits until everything enqueued on the stream has finished and
  /// reports the first asynchronous error.
  virtual Status synchronize() = 0;
  /// Bytes this process can still allocate on the device: for the CPU the
  /// host's available memory (cgroup-aware, see hostAvailableMemory), for
  /// CUDA the GPU's free memory. Unimplemented where unknown.
  virtual Expected<uint64_t> availableMemory() const;
  /// The backend's native stream (a cudaStream_t for CUDA; null on the CPU).
  virtual void *nativeStream() { return nullptr; }
  /// Page-locks `bytes` of host memory at `host` so that copies between it
  /// and the device run asynchronously at full speed (cudaHostRegister); a
  /// no-op where the device is the host. On failure (a memlock limit, say)
  /// the memory stays pageable: copies still work, only slower.
  virtual Status pinHostMemory(void * /*host*/, size_t /*bytes*/) {
    return Status::success();
  }
  /// Undoes a successful pinHostMemory, before the memory is freed.
  virtual void unpinHostMemory(void * /*host*/) {}

protected:
  friend class DeviceBuffer;
  virtual void deallocate(void *data, size_t bytes) = 0;
};

/// Host memory this process can still allocate: MemAvailable of
/// /proc/meminfo, lowered to the headroom of the process's cgroup (v2
/// memory.max - memory.current, or v1 limit - usage) when that is smaller.
/// `meminfo` and `cgroupRoot` are overridable for tests.
Expected<uint64_t> hostAvailableMemory(
    const std::string &meminfo = "/proc/meminfo",
    const std::string &cgroupRoot = "/sys/fs/cgroup");

/// Refuses a plan whose allocation (`needed` bytes, itemised in `detail`)
/// exceeds `available` bytes on `where`, with the numbers in the message.
Status checkMemoryFits(uint64_t needed, const std::string &detail,
                       uint64_t available, const std::string &where);

/// Opens a device of `backend`. CUDA without a GPU, without a driver, or in
/// a build without the toolkit is a FailedPrecondition / Unimplemented
/// error that says which.
Expected<std::unique_ptr<Device>> createDevice(Backend backend,
                                               const DeviceOptions &options);

} // namespace hal
} // namespace moert

#endif // MOERT_HAL_DEVICE_H
