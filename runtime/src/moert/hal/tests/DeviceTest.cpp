//===- DeviceTest.cpp - The device interface on the CPU, and CUDA's errors ===//
#include "moert/backends/cpu/CpuDevice.h"
#include "moert/hal/Device.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace moert {
namespace {

TEST(BackendTest, NamesParse) {
  for (hal::Backend backend : {hal::Backend::Cpu, hal::Backend::Cuda}) {
    Expected<hal::Backend> parsed =
        hal::parseBackend(hal::backendName(backend));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, backend);
  }
  Expected<hal::Backend> bad = hal::parseBackend("tpu");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::InvalidArgument);
  EXPECT_NE(bad.status().message().find("expected cpu or cuda"),
            std::string::npos)
      << bad.status().message();
}

TEST(CpuDeviceTest, AllocatesZeroedAlignedMemory) {
  cpu::CpuDevice device;
  Expected<hal::DeviceBuffer> buffer = device.allocate(1000, "test buffer");
  ASSERT_TRUE(buffer.ok());
  ASSERT_NE(buffer->data(), nullptr);
  EXPECT_EQ(buffer->size(), 1000u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer->data()) % 64, 0u);
  for (size_t i = 0; i < 1000; ++i)
    ASSERT_EQ(buffer->bytes()[i], 0) << i;
  Expected<hal::DeviceBuffer> empty = device.allocate(0, "nothing");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->data(), nullptr);
}

TEST(CpuDeviceTest, CopiesAndFills) {
  cpu::CpuDevice device;
  Expected<hal::DeviceBuffer> a = device.allocate(64, "a");
  Expected<hal::DeviceBuffer> b = device.allocate(64, "b");
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<uint8_t> host(64), back(64);
  for (size_t i = 0; i < 64; ++i)
    host[i] = static_cast<uint8_t>(3 * i + 1);
  ASSERT_TRUE(device.copyToDevice(a->data(), host.data(), 64).ok());
  ASSERT_TRUE(device.copyOnDevice(b->data(), a->data(), 64).ok());
  ASSERT_TRUE(device.fill(a->data(), 0xAB, 16).ok());
  ASSERT_TRUE(device.synchronize().ok());
  ASSERT_TRUE(device.copyToHost(back.data(), b->data(), 64).ok());
  EXPECT_EQ(back, host);
  ASSERT_TRUE(device.copyToHost(back.data(), a->data(), 64).ok());
  for (size_t i = 0; i < 64; ++i)
    EXPECT_EQ(back[i], i < 16 ? 0xAB : host[i]) << i;
}

TEST(CpuDeviceTest, BuffersMoveAndFreeOnce) {
  cpu::CpuDevice device;
  Expected<hal::DeviceBuffer> a = device.allocate(128, "a");
  ASSERT_TRUE(a.ok());
  void *data = a->data();
  hal::DeviceBuffer moved = std::move(*a);
  EXPECT_EQ(moved.data(), data);
  EXPECT_EQ(a->data(), nullptr);
  EXPECT_EQ(a->size(), 0u);
  hal::DeviceBuffer other;
  other = std::move(moved);
  EXPECT_EQ(other.data(), data);
  other.reset();
  EXPECT_EQ(other.data(), nullptr);
}

TEST(CudaDeviceTest, OpensOrSaysWhyNot) {
  Expected<std::unique_ptr<hal::Device>> device =
      hal::createDevice(hal::Backend::Cuda, hal::DeviceOptions());
  if (!hal::backendBuilt(hal::Backend::Cuda)) {
    ASSERT_FALSE(device.ok());
    EXPECT_EQ(device.status().code(), StatusCode::Unimplemented);
    EXPECT_NE(device.status().message().find("no CUDA backend"),
              std::string::npos)
        << device.status().message();
    return;
  }
  if (device.ok()) {
    // A machine with a GPU: the device works like the CPU one.
    EXPECT_EQ((*device)->backend(), hal::Backend::Cuda);
    EXPECT_FALSE((*device)->hostAccessible());
    Expected<hal::DeviceBuffer> buffer = (*device)->allocate(256, "probe");
    ASSERT_TRUE(buffer.ok()) << buffer.status().message();
    std::vector<float> host(64, 0.5f), back(64, 1.0f);
    ASSERT_TRUE((*device)->copyToHost(back.data(), buffer->data(), 256).ok());
    for (float v : back)
      EXPECT_EQ(v, 0.0f); // zero-filled
    ASSERT_TRUE((*device)->copyToDevice(buffer->data(), host.data(), 256).ok());
    ASSERT_TRUE((*device)->copyToHost(back.data(), buffer->data(), 256).ok());
    EXPECT_EQ(back, host);
    // Page-locked host memory copies the same way, and unpins.
    std::vector<float> pinned(64, 2.5f), fetched(64, 0.0f);
    ASSERT_TRUE((*device)->pinHostMemory(pinned.data(), 256).ok());
    ASSERT_TRUE(
        (*device)->copyToDevice(buffer->data(), pinned.data(), 256).ok());
    ASSERT_TRUE(
        (*device)->copyToHost(fetched.data(), buffer->data(), 256).ok());
    EXPECT_EQ(fetched, pinned);
    (*device)->unpinHostMemory(pinned.data());
    return;
  }
  // Built with CUDA on a machine without a GPU or driver.
  EXPECT_EQ(device.status().code(), StatusCode::FailedPrecondition);
  EXPECT_NE(device.status().message().find("--device cpu"), std::string::npos)
      << device.status().message();
}

} // namespace
} // namespace moert
