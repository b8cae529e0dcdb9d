//===- CudaDevice.h - A CUDA GPU behind the device interface ----*- C++ -*-===//
//
// One GPU, one stream, a cuBLAS and a cuBLASLt handle bound to that stream.
// Memory comes from cudaMalloc (one allocation for each region of a plan);
// copies to the host go through the stream and wait for it. The driver API
// (for the PTX modules a plan carries) is reached through
// cudaGetDriverEntryPoint, so the binaries never link libcuda and start on
// machines without a driver, where opening the device is a clear error.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_CUDADEVICE_H
#define MOERT_BACKENDS_CUDA_CUDADEVICE_H

#include "moert/backends/cuda/CudaStatus.h"
#include "moert/hal/Device.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moert {
namespace cuda {

/// Work on the stream that waits for other processes (NCCL collectives):
/// before every host wait on the stream, the device lets it wait for that
/// work first (polling, with a deadline and its error checks) so that a
/// peer that stopped does not leave the host blocked in
/// cudaStreamSynchronize forever.
class StreamWatch {
public:
  virtual ~StreamWatch() = default;
  /// Returns once the watched work enqueued so far has completed; an error
  /// when it failed. May end the process (a collective timeout).
  virtual Status waitPending() = 0;
};

class CudaDevice final : public hal::Device {
public:
  /// Opens GPU `ordinal` (see hal::DeviceOptions for -1). No GPU or no
  /// driver: FailedPrecondition naming what CUDA reported.
  static Expected<std::unique_ptr<CudaDevice>> open(int ordinal);
  ~CudaDevice() override;

  hal::Backend backend() const override { return hal::Backend::Cuda; }
  std::string description() const override;
  bool hostAccessible() const override { return false; }
  Expected<uint64_t> availableMemory() const override;

  Expected<hal::DeviceBuffer> allocate(size_t bytes,
                                       const char *what) override;
  Status copyToDevice(void *device, const void *host, size_t bytes) override;
  Status copyToHost(void *host, const void *device, size_t bytes) override;
  Status copyOnDevice(void *to, const void *from, size_t bytes) override;
  Status fill(void *device, uint8_t value, size_t bytes) override;
  Status pinHostMemory(void *host, size_t bytes) override;
  void unpinHostMemory(void *host) override;
  Status synchronize() override;
  void *nativeStream() override { return stream_; }

  cudaStream_t stream() const { return stream_; }
  /// Installs `watch` (null: none), consulted before every host wait on the
  /// stream; one per device (a second replaces the first). Shared, so that
  /// either of the device and its installer may go first.
  void setStreamWatch(std::shared_ptr<StreamWatch> watch) {
    streamWatch_ = std::move(watch);
  }
  /// Waits on the host for everything enqueued on the stream, the watched
  /// work first (what synchronize() and the copies to the host do).
  Status waitForStream();

  /// Copies between host and device that return at once, on `stream` (the
  /// device's or another of its streams: the offload's transfer stream):
  ///   downloadAsync  device -> `host` (page-locked memory, the executor's
  ///                  host region); waitForDownload(host) waits on the
  ///                  host for the last download into `host` alone
  ///                  (nothing else on its stream), the watched work first;
  ///   uploadAsync    `fill` writes the bytes into page-locked memory of
  ///                  the device's (one of two blocks used in turn, grown
  ///                  as needed, each handed out again once the copy that
  ///                  last read it has completed), which then goes to
  ///                  `device`: the caller's memory is free at once and
  ///                  the copy runs while the host goes on.
  /// Called from one thread at a time (the executor's).
  Status downloadAsync(void *host, const void *device, size_t bytes,
                       cudaStream_t stream);
  Status waitForDownload(const void *host);
  Status uploadAsync(void *device, size_t bytes, cudaStream_t stream,
                     const std::function<void(void *)> &fill);
  cublasHandle_t cublas() const { return cublas_; }
  cublasLtHandle_t cublasLt() const { return cublasLt_; }
  const cudaDeviceProp &properties() const { return properties_; }
  int ordinal() const { return ordinal_; }
  /// Compute capability as 10 * major + minor (90 for an H100/H200).
  int computeCapability() const {
    return properties_.major * 10 + properties_.minor;
  }

  /// Kernel `entry` of a PTX or cubin image (the plan's executables), loaded
  /// with the driver API once per (image, entry) and kept until the device
  /// goes. The handle is a CUfunction.
  Expected<void *> loadFunction(const std::vector<uint8_t> &image,
                                const std::string &entry);
  /// Enqueues `function` on the stream; `args[i]` points at the value of
  /// parameter i (a device pointer for the plan's generated kernels).
  Status launchFunction(void *function, const uint32_t grid[3],
                        const uint32_t block[3], uint32_t sharedBytes,
                        void **args);

protected:
  void deallocate(void *data, size_t bytes) override;

private:
  CudaDevice() = default;

  int ordinal_ = 0;
  cudaDeviceProp properties_{};
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cublasLtHandle_t cublasLt_ = nullptr;
  /// Driver API entry points (null until the first module is loaded).
  struct DriverApi;
  std::unique_ptr<DriverApi> driver_;
  std::map<const void *, void *> modules_; // image -> CUmodule
  std::map<std::pair<void *, std::string>, void *> functions_;
  std::shared_ptr<StreamWatch> streamWatch_;
  /// Waits for `event` on the host, the watched work first.
  Status waitForEvent(cudaEvent_t event);
  Expected<cudaEvent_t> takeEvent();
  std::vector<cudaEvent_t> freeEvents_;
  std::map<const void *, cudaEvent_t> downloads_; // host -> completion
  struct UploadBlock {
    void *host = nullptr;
    size_t bytes = 0;
    cudaEvent_t done = nullptr; // after the copy that last read it
  };
  UploadBlock uploads_[2];
  int nextUpload_ = 0;
};

/// The CUDA device a kernel call runs on (the executor only calls CUDA
/// kernels with one).
inline CudaDevice &cudaDeviceOf(hal::Device &device) {
  return static_cast<CudaDevice &>(device);
}

} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_CUDADEVICE_H
