//===- SafetensorsFuzzer.cpp - libFuzzer target: the checkpoint reader ----===//
//
// Any byte string given to Checkpoint::fromBytes must give a Status or a
// checkpoint whose every tensor lies inside the file: each tensor's bytes
// are read (ASan reports a read outside the buffer) and its element count
// must match its byte size.
//
//===----------------------------------------------------------------------===//
#include "moert/checkpoint/Safetensors.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace moert::checkpoint;
  std::vector<uint8_t> bytes(data, data + size);
  moert::Expected<Checkpoint> checkpoint =
      Checkpoint::fromBytes(std::move(bytes), "<fuzz>");
  if (!checkpoint.ok())
    return 0;
  (void)checkpoint->step();
  for (const std::string &name : checkpoint->tensorNames()) {
    moert::Expected<TensorView> view = checkpoint->tensor(name);
    if (!view.ok())
      std::abort(); // a listed tensor must be there
    unsigned sum = 0;
    for (size_t i = 0; i < view->bytes; ++i)
      sum += view->data[i];
    if (static_cast<size_t>(view->numElements()) * dtypeSize(view->dtype) !=
        view->bytes)
      std::abort(); // the reader's size check was bypassed
    (void)sum;
    if (view->dtype == DType::F32)
      (void)checkpoint->readF32(name, view->shape);
  }
  return 0;
}
