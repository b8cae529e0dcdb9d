//===- Device.cpp - Backend names, device buffers, opening a device -------===//
#include "moert/hal/Device.h"

#include "moert/backends/cpu/CpuDevice.h"
#if defined(MOERT_HAVE_CUDA)
#include "moert/backends/cuda/CudaDevice.h"
#endif

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

} // namespace hal
} // namespace moert
