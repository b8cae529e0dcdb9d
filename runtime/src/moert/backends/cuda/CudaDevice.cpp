//===- CudaDevice.cpp - A CUDA GPU behind the device interface ------------===//
#include "moert/backends/cuda/CudaDevice.h"

#include <cuda.h>

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

/// The few driver-API functions the backend needs, resolved through the
/// runtime (cudaGetDriverEntryPointByVersion), so no binary links libcuda.
struct CudaDevice::DriverApi {
  CUresult (*moduleLoadData)(CUmodule *, const void *) = nullptr;
  CUresult (*moduleGetFunction)(CUfunction *, CUmodule, const char *) = nullptr;
  CUresult (*moduleUnload)(CUmodule) = nullptr;
  CUresult (*launchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                           unsigned, unsigned, unsigned, CUstream, void **,
                           void **) = nullptr;
  CUresult (*getErrorString)(CUresult, const char **) = nullptr;

  Status error(CUresult result, const char *call) const {
    const char *text = nullptr;
    if (getErrorString)
      getErrorString(result, &text);
    return internalError(std::string(call) + " failed: error " +
                         std::to_string(static_cast<int>(result)) + " (" +
                         (text ? text : "unknown") + ")");
  }
};

namespace {
template <typename Fn>
Status resolve(const char *symbol, Fn &out) {
  void *address = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  cudaError_t error = cudaGetDriverEntryPointByVersion(
      symbol, &address, 12000, cudaEnableDefault, &found);
  if (error != cudaSuccess || found != cudaDriverEntryPointSuccess || !address)
    return failedPrecondition(std::string("the CUDA driver has no ") + symbol);
  out = reinterpret_cast<Fn>(address);
  return Status::success();
}
} // namespace

Expected<void *> CudaDevice::loadFunction(const std::vector<uint8_t> &image,
                                          const std::string &entry) {
  if (!driver_) {
    auto api = std::make_unique<DriverApi>();
    MOERT_RETURN_IF_ERROR(resolve("cuModuleLoadData", api->moduleLoadData));
    MOERT_RETURN_IF_ERROR(
        resolve("cuModuleGetFunction", api->moduleGetFunction));
    MOERT_RETURN_IF_ERROR(resolve("cuModuleUnload", api->moduleUnload));
    MOERT_RETURN_IF_ERROR(resolve("cuLaunchKernel", api->launchKernel));
    MOERT_RETURN_IF_ERROR(resolve("cuGetErrorString", api->getErrorString));
    driver_ = std::move(api);
  }
  void *&module = modules_[image.data()];
  if (!module) {
    // PTX must be NUL-terminated for the JIT; cubins are used as they are.
    std::vector<uint8_t> text(image);
    if (text.empty() || text.back() != 0)
      text.push_back(0);
    CUmodule loaded = nullptr;
    CUresult result = driver_->moduleLoadData(&loaded, text.data());
    if (result != CUDA_SUCCESS) {
      modules_.erase(image.data());
      return driver_->error(result, "cuModuleLoadData");
    }
    module = loaded;
  }
  void *&function = functions_[{module, entry}];
  if (!function) {
    CUfunction found = nullptr;
    CUresult result = driver_->moduleGetFunction(
        &found, static_cast<CUmodule>(module), entry.c_str());
    if (result != CUDA_SUCCESS) {
      functions_.erase({module, entry});
      return driver_->error(result, ("cuModuleGetFunction(" + entry + ")").c_str());
    }
    function = found;
  }
  return function;
}

Status CudaDevice::launchFunction(void *function, const uint32_t grid[3],
                                  const uint32_t block[3],
                                  uint32_t sharedBytes, void **args) {
  if (!driver_)
    return internalError("launchFunction before loadFunction");
  CUresult result = driver_->launchKernel(
      static_cast<CUfunction>(function), grid[0], grid[1], grid[2], block[0],
      block[1], block[2], sharedBytes, static_cast<CUstream>(stream_), args,
      nullptr);
  if (result != CUDA_SUCCESS)
    return driver_->error(result, "cuLaunchKernel");
  return Status::success();
}

CudaDevice::~CudaDevice() {
  if (stream_)
    (void)waitForStream();
  for (UploadBlock &block : uploads_) {
    if (block.done) {
      cudaEventSynchronize(block.done);
      cudaEventDestroy(block.done);
    }
    if (block.host)
      cudaFreeHost(block.host);
  }
  for (auto &[host, event] : downloads_) {
    cudaEventSynchronize(event);
    cudaEventDestroy(event);
  }
  for (cudaEvent_t event : freeEvents_)
    cudaEventDestroy(event);
  if (driver_)
    for (auto &[image, module] : modules_)
      driver_->moduleUnload(static_cast<CUmodule>(module));
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

Expected<uint64_t> CudaDevice::availableMemory() const {
  size_t free = 0, total = 0;
  MOERT_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free, &total));
  return uint64_t(free);
}

void CudaDevice::deallocate(void *data, size_t) {
  // Work still reading the buffer must finish first.
  (void)waitForStream();
  cudaFree(data);
}

Status CudaDevice::pinHostMemory(void *host, size_t bytes) {
  if (!host || bytes == 0)
    return Status::success();
  MOERT_CUDA_RETURN_IF_ERROR(
      cudaHostRegister(host, bytes, cudaHostRegisterDefault));
  return Status::success();
}

void CudaDevice::unpinHostMemory(void *host) {
  if (host)
    (void)cudaHostUnregister(host);
}

Status CudaDevice::copyToDevice(void *device, const void *host,
                                size_t bytes) {
  if (!bytes)
    return Status::success();
  MOERT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(device, host, bytes,
                                             cudaMemcpyHostToDevice, stream_));
  // The host memory may be reused as soon as this returns.
  MOERT_RETURN_IF_ERROR(waitForStream());
  return Status::success();
}

Status CudaDevice::copyToHost(void *host, const void *device, size_t bytes) {
  if (!bytes)
    return Status::success();
  MOERT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host, device, bytes,
                                             cudaMemcpyDeviceToHost, stream_));
  MOERT_RETURN_IF_ERROR(waitForStream());
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

Status CudaDevice::synchronize() { return waitForStream(); }

Expected<cudaEvent_t> CudaDevice::takeEvent() {
  if (!freeEvents_.empty()) {
    cudaEvent_t event = freeEvents_.back();
    freeEvents_.pop_back();
    return event;
  }
  cudaEvent_t event = nullptr;
  MOERT_CUDA_RETURN_IF_ERROR(
      cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  return event;
}

Status CudaDevice::waitForEvent(cudaEvent_t event) {
  const cudaError_t ready = cudaEventQuery(event);
  if (ready == cudaSuccess)
    return Status::success();
  if (ready != cudaErrorNotReady) {
    MOERT_CUDA_RETURN_IF_ERROR(ready);
  }
  // The copy may wait (through the compute stream) for a collective of
  // other processes: the watch's deadline applies.
  if (streamWatch_)
    MOERT_RETURN_IF_ERROR(streamWatch_->waitPending());
  MOERT_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(event));
  return Status::success();
}

Status CudaDevice::downloadAsync(void *host, const void *device, size_t bytes,
                                 cudaStream_t stream) {
  if (!bytes)
    return Status::success();
  MOERT_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream));
  auto found = downloads_.find(host);
  cudaEvent_t event = nullptr;
  if (found != downloads_.end()) {
    event = found->second; // re-recorded: the later copy completes later
  } else {
    MOERT_ASSIGN_OR_RETURN(event, takeEvent());
    downloads_[host] = event;
  }
  MOERT_CUDA_RETURN_IF_ERROR(cudaEventRecord(event, stream));
  return Status::success();
}

Status CudaDevice::waitForDownload(const void *host) {
  auto found = downloads_.find(host);
  if (found == downloads_.end())
    return Status::success();
  cudaEvent_t event = found->second;
  downloads_.erase(found);
  freeEvents_.push_back(event);
  return waitForEvent(event);
}

Status CudaDevice::uploadAsync(void *device, size_t bytes, cudaStream_t stream,
                               const std::function<void(void *)> &fill) {
  if (!bytes)
    return Status::success();
  UploadBlock &block = uploads_[nextUpload_];
  nextUpload_ = 1 - nextUpload_;
  if (block.done) {
    MOERT_RETURN_IF_ERROR(waitForEvent(block.done));
  } else {
    MOERT_ASSIGN_OR_RETURN(block.done, takeEvent());
  }
  if (block.bytes < bytes) {
    if (block.host)
      MOERT_CUDA_RETURN_IF_ERROR(cudaFreeHost(block.host));
    block.host = nullptr;
    block.bytes = 0;
    MOERT_CUDA_RETURN_IF_ERROR(cudaMallocHost(&block.host, bytes));
    block.bytes = bytes;
  }
  fill(block.host);
  MOERT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(device, block.host, bytes,
                                             cudaMemcpyHostToDevice, stream));
  MOERT_CUDA_RETURN_IF_ERROR(cudaEventRecord(block.done, stream));
  return Status::success();
}

Status CudaDevice::waitForStream() {
  if (streamWatch_)
    MOERT_RETURN_IF_ERROR(streamWatch_->waitPending());
  MOERT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return Status::success();
}

} // namespace cuda
} // namespace moert
