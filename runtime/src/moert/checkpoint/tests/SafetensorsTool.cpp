//===- SafetensorsTool.cpp - Fixed checkpoints for the Python cross-check -===//
//
//   moert-safetensors-tool write <path>   writes the fixed checkpoint that
//                                         check_safetensors_format.py reads
//   moert-safetensors-tool check <path>   loads the file the script wrote and
//                                         compares every tensor bitwise
// Exit status 0 on success, 1 with a message on stderr otherwise.
//
//===----------------------------------------------------------------------===//

#include "moert/checkpoint/Safetensors.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace moert;
using namespace moert::checkpoint;

namespace {

int failWith(const std::string &message) {
  std::fprintf(stderr, "moert-safetensors-tool: %s\n", message.c_str());
  return 1;
}

int writeFixture(const std::string &path) {
  // The Python script recomputes these values independently.
  std::vector<float> weight(12);
  for (int i = 0; i < 12; ++i)
    weight[i] = 0.5f * float(i) - 1.0f;
  std::vector<float> special = {0.0f, -0.0f, 1e30f, -2.5f, 1.0e-45f};
  std::vector<int32_t> ids = {-3, -2, -1, 0, 1, 2};
  std::vector<int64_t> counters = {int64_t(1) << 40, -7};
  std::vector<uint8_t> mask = {1, 0, 1, 1};
  float scalar = 3.25f;
  CheckpointWriter writer;
  Status status = writer.addF32("decoder.proj.weight", {3, 4}, weight.data());
  if (status.ok())
    status = writer.addF32("b.special", {5}, special.data());
  if (status.ok())
    status = writer.addTensor("c.ids", DType::I32, {2, 3}, ids.data(), 24);
  if (status.ok())
    status =
        writer.addTensor("a.counters", DType::I64, {2}, counters.data(), 16);
  if (status.ok())
    status = writer.addTensor("e.mask", DType::Bool, {4}, mask.data(), 4);
  if (status.ok())
    status = writer.addTensor("f.empty", DType::F32, {0, 3}, nullptr, 0);
  if (status.ok())
    status = writer.addF32("g.scalar", {}, &scalar);
  if (!status.ok())
    return failWith(status.toString());
  writer.setStep(42);
  status = writer.write(path);
  return status.ok() ? 0 : failWith(status.toString());
}

template <typename T>
bool sameBytes(const Checkpoint &checkpoint, const std::string &name,
               DType dtype, const std::vector<int64_t> &shape,
               const std::vector<T> &expected, std::string &error) {
  Expected<TensorView> view = checkpoint.tensor(name, dtype, shape);
  if (!view.ok()) {
    error = view.status().toString();
    return false;
  }
  if (view->bytes != expected.size() * sizeof(T) ||
      (view->bytes &&
       std::memcmp(view->data, expected.data(), view->bytes) != 0)) {
    error = "tensor '" + name + "' differs from what the script wrote";
    return false;
  }
  return true;
}

int checkFixture(const std::string &path) {
  Expected<Checkpoint> loaded = Checkpoint::open(path);
  if (!loaded.ok())
    return failWith(loaded.status().toString());
  std::string error;
  bool ok = sameBytes<float>(*loaded, "z.weight", DType::F32, {2, 2},
                             {1.0f, 2.0f, 3.0f, 4.0f}, error) &&
            sameBytes<int64_t>(*loaded, "a.ids", DType::I64, {3}, {5, -6, 7},
                               error) &&
            // 1.5 and -2.0 in IEEE half precision.
            sameBytes<uint16_t>(*loaded, "m.half", DType::F16, {2},
                                {0x3e00, 0xc000}, error) &&
            sameBytes<uint8_t>(*loaded, "u.bytes", DType::U8, {3},
                               {0, 127, 255}, error);
  if (!ok)
    return failWith(error);
  if (loaded->tensorNames().size() != 4)
    return failWith("expected 4 tensors");
  Expected<int64_t> step = loaded->step();
  if (!step.ok() || *step != 7)
    return failWith("expected step 7");
  if (loaded->metadata().count("note") == 0 ||
      loaded->metadata().at("note") != "written by python")
    return failWith("metadata 'note' missing or wrong");
  std::printf("ok: %zu tensors, step %lld\n", loaded->tensorNames().size(),
              static_cast<long long>(*step));
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 3)
    return failWith("usage: moert-safetensors-tool write|check <path>");
  std::string mode = argv[1];
  if (mode == "write")
    return writeFixture(argv[2]);
  if (mode == "check")
    return checkFixture(argv[2]);
  return failWith("unknown mode '" + mode + "'");
}
