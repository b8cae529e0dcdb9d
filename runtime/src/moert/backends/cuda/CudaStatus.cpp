//===- CudaStatus.cpp - CUDA, cuBLAS and driver errors as Status ----------===//
#include "moert/backends/cuda/CudaStatus.h"

#include <string>

namespace moert {
namespace cuda {

namespace {
std::string where(const char *file, int line) {
  std::string path = file;
  size_t slash = path.find("moert/");
  if (slash != std::string::npos)
    path = path.substr(slash);
  return path + ":" + std::to_string(line);
}
} // namespace

Status cudaError(cudaError_t error, const char *call, const char *file,
                 int line) {
  StatusCode code = StatusCode::Internal;
  switch (error) {
  case cudaErrorMemoryAllocation:
    code = StatusCode::ResourceExhausted;
    break;
  case cudaErrorNoDevice:
  case cudaErrorInsufficientDriver:
  case cudaErrorInvalidDevice:
  case cudaErrorDevicesUnavailable:
  case cudaErrorCompatNotSupportedOnDevice:
    code = StatusCode::FailedPrecondition;
    break;
  case cudaErrorInvalidValue:
  case cudaErrorInvalidConfiguration:
    code = StatusCode::InvalidArgument;
    break;
  default:
    break;
  }
  return Status(code, std::string(call) + " failed: " +
                          cudaGetErrorName(error) + " (" +
                          cudaGetErrorString(error) + ") at " +
                          where(file, line));
}

Status cublasError(cublasStatus_t error, const char *call, const char *file,
                   int line) {
  StatusCode code = error == CUBLAS_STATUS_ALLOC_FAILED
                        ? StatusCode::ResourceExhausted
                    : error == CUBLAS_STATUS_NOT_SUPPORTED ||
                            error == CUBLAS_STATUS_ARCH_MISMATCH
                        ? StatusCode::Unimplemented
                        : StatusCode::Internal;
  return Status(code, std::string(call) + " failed: " +
                          cublasGetStatusName(error) + " (" +
                          cublasGetStatusString(error) + ") at " +
                          where(file, line));
}

} // namespace cuda
} // namespace moert
