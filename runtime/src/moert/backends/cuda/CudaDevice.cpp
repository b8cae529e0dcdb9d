//===- CudaDevice.cpp - A CUDA GPU behind the device interface ------------===//
#include "moert/backends/cuda/CudaDevice.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace moert {
namespace cuda {

namespace {

/// The GPU of this process: the node-local rank under mpirun or srun (one
/// GPU per rank), else 0; modulo the GPUs present.
int defaultOrdinal(int count) {
  for (const char *name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID",
                           "MPI_LOCALRANKID", "LOCAL_RANK"})
    if (const char *value = std::getenv(name)) {
      char *end = nullptr;
      long rank = std::strtol(value, &end, 10);
      if (end != value && *end == '\0' && rank >= 0)
        return static_cast<int>(rank % count);
    }
  return 0;
}

std::string gib(size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f GiB",
                static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return text;
}

} // namespace

Expected<std::unique_ptr<CudaDevice>> CudaDevice::open(int ordinal) {
  int count = 0;
  cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    // Leave no sticky error behind for later CUDA calls of the process.
    (void)cudaGetLastError();
    return failedPrecondition(
        std::string("no usable CUDA GPU: cudaGetDeviceCount reports ") +
        cudaGetErrorName(error) + " (" + cudaGetErrorString(error) +
        "); --device cuda needs an NVIDIA GPU and its driver (use --device "
        "cpu on this machine)");
  }
  if (count == 0)
    return failedPrecondition("no CUDA GPU on this machine (use --device cpu)");
  if (ordinal < 0)
    ordinal = defaultOrdinal(count);
  if (ordinal >= count)
    return invalidArgument("CUDA device " + std::to_string(ordinal) +
                           " requested, but this machine has " +
                           std::to_string(count) + " GPU(s)");
  std::unique_ptr<CudaDevice> device(new CudaDevice());
  device->ordinal_ = ordinal;
  MOERT_CUDA_RETURN_IF_ERROR(cudaSetDevice(ordinal));
  MOERT_CUDA_RETURN_IF_ERROR(
      cudaGetDeviceProperties(&device->properties_, ordinal));
  if (device->properties_.major < 8)
    return failedPrecondition(
        std::string("GPU ") + device->properties_.name + " has compute "
        "capability " + std::to_string(device->properties_.major) + "." +
        std::to_string(device->properties_.minor) +
        "; the CUDA backend is built for 8.0 (A100) and later");
  MOERT_CUDA_RETURN_IF_ERROR(
      cudaStreamCreateWithFlags(&device->stream_, cudaStreamNonBlocking));
  MOERT_CUBLAS_RETURN_IF_ERROR(cublasCreate(&device->cublas_));
  MOERT_CUBLAS_RETURN_IF_ERROR(cublasSetStream(device->cublas_, device->stream_));
  // Deterministic fp32 results: no TF32 unless a plan asks for it.
  MOERT_CUBLAS_RETURN_IF_ERROR(
      cublasSetMathMode(device->cublas_, CUBLAS_DEFAULT_MATH));
  MOERT_CUBLAS_RETURN_IF_ERROR(cublasLtCreate(&device->cublasLt_));
  return device;
}

CudaDevice::~CudaDevice() {
  if (stream_)
    cudaStreamSynchronize(stream_);
  if (cublasLt_)
    cublasLtDestroy(cublasLt_);
  if (cublas_)
    cublasDestroy(cublas_);
  if (stream_)
    cudaStreamDestroy(stream_);
}

std::string CudaDevice::description() const {
  return "cuda:" + std::to_string(ordinal_) + " " + properties_.name +
         " (sm_" + std::to_string(computeCapability()) + ", " +
         gib(properties_.totalGlobalMem) + ")";
}

Expected<hal::DeviceBuffer> CudaDevice::allocate(size_t bytes,
                                                 const char *what) {
  if (bytes == 0)
    return hal::DeviceBuffer(this, nullptr, 0);
  void *data = nullptr;
  cudaError_t error = cudaMalloc(&data, bytes);
  if (error != cudaSuccess) {
    (void)cudaGetLastError();
    size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    return Status(StatusCode::ResourceExhausted,
                  std::string("cannot allocate the ") + what + " of " +
                      std::to_string(bytes) + " bytes on " + description() +
                      ": " + cudaGetErrorString(error) + " (" + gib(free) +
                      " free)");
  }
  hal::DeviceBuffer buffer(this, data, bytes);
  MOERT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(data, 0, bytes, stream_));
  return buffer;
}

void CudaDevice::deallocate(void *data, size_t) {
  // Work still reading the buffer must finish first.
  cudaStreamSynchronize(stream_);
  cudaFree(data);
}

Status CudaDevice::copyToDevice(void *device, const void *host,
                                size_t bytes) {
  if (!bytes)
    return Status::success();
  MOERT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(device, host, bytes,
                                             cudaMemcpyHostToDevice, stream_));
  // The host memory may be reused as soon as this returns.
  MOERT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return Status::success();
}

Status CudaDevice::copyToHost(void *host, const void *device, size_t bytes) {
  if (!bytes)
    return Status::success();
  MOERT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host, device, bytes,
                                             cudaMemcpyDeviceToHost, stream_));
  MOERT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return Status::success();
}

Status CudaDevice::copyOnDevice(void *to, const void *from, size_t bytes) {
  if (!bytes || to == from)
    return Status::success();
  MOERT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(
      to, from, bytes, cudaMemcpyDeviceToDevice, stream_));
  return Status::success();
}

Status CudaDevice::fill(void *device, uint8_t value, size_t bytes) {
  if (!bytes)
    return Status::success();
  MOERT_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(device, value, bytes, stream_));
  return Status::success();
}

Status CudaDevice::synchronize() {
  MOERT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return Status::success();
}

} // namespace cuda
} // namespace moert
