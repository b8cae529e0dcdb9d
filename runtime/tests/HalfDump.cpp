//===- HalfDump.cpp - Conversions of given fp32 values, for the torch check
//-===//
//
// moert-half-dump IN OUT_DIR: reads little-endian fp32 values from IN and
// writes OUT_DIR/bf16.bin and OUT_DIR/f16.bin (uint16 patterns of
// floatToBf16Bits / floatToF16Bits), plus OUT_DIR/bf16_to_f32.bin and
// OUT_DIR/f16_to_f32.bin (fp32 of every one of the 65536 patterns).
//
//===----------------------------------------------------------------------===//
#include "moert/Half.h"

#include <cstdio>
#include <string>
#include <vector>

namespace {

bool writeFile(const std::string &path, const void *data, size_t bytes) {
  std::FILE *file = std::fopen(path.c_str(), "wb");
  if (!file) {
    std::fprintf(stderr, "moert-half-dump: cannot write '%s'\n", path.c_str());
    return false;
  }
  bool ok = std::fwrite(data, 1, bytes, file) == bytes;
  ok = std::fclose(file) == 0 && ok;
  if (!ok)
    std::fprintf(stderr, "moert-half-dump: short write to '%s'\n",
                 path.c_str());
  return ok;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: moert-half-dump IN.f32 OUT_DIR\n");
    return 2;
  }
  std::FILE *in = std::fopen(argv[1], "rb");
  if (!in) {
    std::fprintf(stderr, "moert-half-dump: cannot read '%s'\n", argv[1]);
    return 1;
  }
  std::vector<float> values;
  float buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, sizeof(float), 4096, in)) > 0)
    values.insert(values.end(), buffer, buffer + n);
  std::fclose(in);
  std::vector<uint16_t> bf16(values.size()), f16(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    bf16[i] = moert::floatToBf16Bits(values[i]);
    f16[i] = moert::floatToF16Bits(values[i]);
  }
  std::vector<float> fromBf16(65536), fromF16(65536);
  for (uint32_t p = 0; p < 65536; ++p) {
    fromBf16[p] = moert::bf16BitsToFloat(static_cast<uint16_t>(p));
    fromF16[p] = moert::f16BitsToFloat(static_cast<uint16_t>(p));
  }
  std::string dir = argv[2];
  bool ok = writeFile(dir + "/bf16.bin", bf16.data(), bf16.size() * 2) &&
            writeFile(dir + "/f16.bin", f16.data(), f16.size() * 2) &&
            writeFile(dir + "/bf16_to_f32.bin", fromBf16.data(), 65536 * 4) &&
            writeFile(dir + "/f16_to_f32.bin", fromF16.data(), 65536 * 4);
  return ok ? 0 : 1;
}
