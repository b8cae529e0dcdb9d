//===- DeviceCommunicators.cpp - Communicators on a device's memory -------===//
#include "moert/exec/DeviceCommunicators.h"

#if defined(MOERT_HAVE_CUDA)
#include "moert/backends/cuda/NcclCommunicator.h"
#endif

namespace moert {
namespace exec {

Status deviceCommunicatorsAvailable(hal::Device &device) {
  if (device.backend() != hal::Backend::Cuda)
    return failedPrecondition("device collectives (NCCL) need a CUDA device; "
                              "the device is " +
                              device.description());
#if defined(MOERT_HAVE_CUDA)
  return cuda::ncclAvailable();
#else
  return failedPrecondition("this build has no CUDA backend");
#endif
}

Expected<std::unique_ptr<comm::GridCommunicators>>
makeDeviceGrid(std::unique_ptr<comm::GridCommunicators> bootstrap,
               hal::Device &device, const std::vector<std::string> &axisNames,
               const DeviceGridOptions &options) {
  MOERT_RETURN_IF_ERROR(deviceCommunicatorsAvailable(device));
#if defined(MOERT_HAVE_CUDA)
  return cuda::makeNcclGrid(std::move(bootstrap), device, axisNames,
                            options.collectiveTimeoutSeconds);
#else
  (void)bootstrap;
  (void)axisNames;
  (void)options;
  return failedPrecondition("this build has no CUDA backend");
#endif
}

} // namespace exec
} // namespace moert
