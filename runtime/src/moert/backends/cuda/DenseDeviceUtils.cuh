//===- DenseDeviceUtils.cuh - Launch and reduction helpers ------*- CUDA
//-*-===//
//
// Shared by the CUDA kernel files of the dense and partition ops (include
// from .cu files only): launch sizes, warp and block reductions with a fixed
// order (so a reduction gives the same bits on every run), the layout of a
// call's workspace, and the device error record that data-dependent checks
// write to (a token id outside the vocabulary, a bad label).
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_BACKENDS_CUDA_DENSEDEVICEUTILS_CUH
#define MOERT_BACKENDS_CUDA_DENSEDEVICEUTILS_CUH

#include "moert/Half.h"
#include "moert/backends/cuda/CudaStatus.h"
#include "moert/backends/cuda/DenseBlock.cuh"
#include "moert/exec/Executor.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace moert {
namespace cuda {
namespace dense_device {

constexpr int kThreads = 256;

/// Blocks for a grid-stride loop over `count` items, `threads` per block:
/// enough to fill any GPU several times over, never more than needed.
inline unsigned gridFor(int64_t count, int threads = kThreads) {
  const int64_t blocks = (count + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 1 << 16));
}

/// Product of all but the last dimension, and the last dimension.
inline int64_t leadingElements(const exec::TensorType &type) {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < type.shape.size(); ++i)
    rows *= type.shape[i];
  return rows;
}
inline int64_t lastDim(const exec::TensorType &type) {
  return type.shape.empty() ? 1 : type.shape.back();
}

/// The type of operand / result `i` of an instruction, for WorkspaceFns.
inline const exec::TensorType &operandTypeOf(const exec::Instruction &inst,
                                             const exec::Program &program,
                                             size_t i) {
  return program.buffers[inst.operands[i]].type;
}
inline const exec::TensorType &resultTypeOf(const exec::Instruction &inst,
                                            const exec::Program &program,
                                            size_t i) {
  return program.buffers[inst.results[i]].type;
}

//===----------------------------------------------------------------------===//
// Reduced-precision compute (the instruction's `compute_type`)
//===----------------------------------------------------------------------===//

/// The instruction's compute_type; f32 when it has none.
inline Expected<ComputeType> computeTypeOf(const exec::KernelCall &call) {
  if (!call.hasAttr("compute_type"))
    return ComputeType::F32;
  MOERT_ASSIGN_OR_RETURN(std::string name, call.stringAttr("compute_type"));
  ComputeType type = ComputeType::F32;
  if (!parseComputeType(name.c_str(), type))
    return invalidArgument("compute_type '" + name +
                           "' is not f32, bf16 or f16");
  return type;
}

/// The same for a WorkspaceFn (an unreadable value counts as f32 there; the
/// kernel reports it).
inline ComputeType computeTypeOf(const exec::Instruction &inst) {
  auto it = inst.attrs.find("compute_type");
  ComputeType type = ComputeType::F32;
  if (it != inst.attrs.end())
    if (const std::string *name = std::get_if<std::string>(&it->second))
      parseComputeType(name->c_str(), type);
  return type;
}

/// to[i] = from[i] in the compute type's 16-bit format (bf16 / f16 bits,
/// round to nearest even), for GEMMs that read that format.
Status lowerToComputeType(cudaStream_t stream, ComputeType compute,
                          int64_t count, const float *from, void *to);

/// to[i] = from[i] rounded to the compute type's precision, kept as float
/// (kernels that compute in fp32 on reduced-precision inputs).
Status roundToComputeType(cudaStream_t stream, ComputeType compute,
                          int64_t count, const float *from, float *to);

//===----------------------------------------------------------------------===//
// Workspace
//===----------------------------------------------------------------------===//

/// Carves aligned pieces out of a call's workspace, or (base == null)
/// only counts the bytes: the WorkspaceFn and the kernel share one layout
/// function, so they cannot disagree.
class Scratch {
public:
  explicit Scratch(void *base = nullptr) : base_(static_cast<char *>(base)) {}
  template <typename T> T *take(int64_t count) {
    used_ = (used_ + 255) / 256 * 256;
    T *piece = base_ ? reinterpret_cast<T *>(base_ + used_) : nullptr;
    used_ += static_cast<size_t>(std::max<int64_t>(count, 0)) * sizeof(T);
    return piece;
  }
  size_t bytes() const { return (used_ + 255) / 256 * 256; }

private:
  char *base_;
  size_t used_ = 0;
};

/// Clears the record at the start of a call.
inline Status clearErrorRecord(DeviceErrorRecord *record, cudaStream_t stream) {
  MOERT_CUDA_RETURN_IF_ERROR(
      cudaMemsetAsync(record, 0, sizeof(unsigned) * 2, stream));
  MOERT_CUDA_RETURN_IF_ERROR(
      cudaMemsetAsync(&record->index, 0xff, sizeof(record->index), stream));
  return Status::success();
}

} // namespace dense_device
} // namespace cuda
} // namespace moert

#endif // MOERT_BACKENDS_CUDA_DENSEDEVICEUTILS_CUH
