//===- CudaStatus.h - CUDA, cuBLAS and driver errors as Status --*- C++ -*-===//
//
// Every CUDA call of the backend goes through one of these macros, so an
// error names the call, its error string, and the source line:
//   MOERT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(...));
//   MOERT_CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(...));
// After a kernel launch, MOERT_CUDA_RETURN_IF_ERROR(cudaGetLastError())
// reports a bad launch configuration at once; faults inside the kernel
// surface at the next synchronizing call.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_CUDASTATUS_H
#define MOERT_BACKENDS_CUDA_CUDASTATUS_H

#include "moert/Status.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace moert {
namespace cuda {

Status cudaError(cudaError_t error, const char *call, const char *file,
                 int line);
Status cublasError(cublasStatus_t error, const char *call, const char *file,
                   int line);

} // namespace cuda
} // namespace moert

#define MOERT_CUDA_RETURN_IF_ERROR(expr)                                       \
  do {                                                                         \
    cudaError_t moert_cuda_error_ = (expr);                                    \
    if (moert_cuda_error_ != cudaSuccess)                                      \
      return ::moert::cuda::cudaError(moert_cuda_error_, #expr, __FILE__,      \
                                      __LINE__);                               \
  } while (0)

#define MOERT_CUBLAS_RETURN_IF_ERROR(expr)                                     \
  do {                                                                         \
    cublasStatus_t moert_cublas_error_ = (expr);                               \
    if (moert_cublas_error_ != CUBLAS_STATUS_SUCCESS)                          \
      return ::moert::cuda::cublasError(moert_cublas_error_, #expr, __FILE__,  \
                                        __LINE__);                             \
  } while (0)

#endif // MOERT_BACKENDS_CUDA_CUDASTATUS_H
