//===- HostDevice.h - Functions compiled for the host and the GPU ---------===//
//
// Kernel logic the CPU and CUDA backends share (Philox random numbers,
// capacity formulas, number conversions) is written once, in headers, and
// marked MOERT_HOST_DEVICE: nvcc compiles it for both sides, any other
// compiler sees plain inline functions. The CPU tests then cover the code
// the GPU runs.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_HOSTDEVICE_H
#define MOERT_HOSTDEVICE_H

#if defined(__CUDACC__)
#define MOERT_HOST_DEVICE __host__ __device__
#else
#define MOERT_HOST_DEVICE
#endif

#endif // MOERT_HOSTDEVICE_H
