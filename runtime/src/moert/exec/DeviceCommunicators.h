//===- DeviceCommunicators.h - Communicators on a device's memory -*- C++ -*-===//
//
// Collectives of a plan on a GPU can move device memory directly (NCCL on
// the device's stream) instead of staging through host communicators (MPI).
// This is the backend-neutral way to ask for them; the CUDA backend answers
// with NCCL (backends/cuda/NcclCommunicator.h), a build or device without
// one with an error saying so.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_EXEC_DEVICECOMMUNICATORS_H
#define MOERT_EXEC_DEVICECOMMUNICATORS_H

#include "moert/comm/Communicator.h"
#include "moert/hal/Device.h"

#include <memory>
#include <string>
#include <vector>

namespace moert {
namespace exec {

/// Whether `device` can have device communicators here (the library
/// loads); the reason when not.
Status deviceCommunicatorsAvailable(hal::Device &device);

struct DeviceGridOptions {
  /// Seconds a host wait may spend on one collective (another rank stopped
  /// or hung) before the communicators are aborted and the job ends with a
  /// message naming the collective, group, rank and step; 0: no limit.
  double collectiveTimeoutSeconds = 0;
};

/// Grid communicators on `device`'s memory and stream, bootstrapped over
/// `bootstrap` (an MPI grid, or a single-rank grid for one process) of the
/// same shape. Collective over the job.
Expected<std::unique_ptr<comm::GridCommunicators>>
makeDeviceGrid(std::unique_ptr<comm::GridCommunicators> bootstrap,
               hal::Device &device,
               const std::vector<std::string> &axisNames = {},
               const DeviceGridOptions &options = {});

} // namespace exec
} // namespace moert

#endif // MOERT_EXEC_DEVICECOMMUNICATORS_H
