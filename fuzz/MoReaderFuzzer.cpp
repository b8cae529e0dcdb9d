//===- MoReaderFuzzer.cpp - libFuzzer target: the gettext catalog reader --===//
//
// Any byte string given to parseMoCatalog must give a Status or entries
// whose strings were read inside the buffer (ASan reports any read outside
// it); every entry then goes through the corpus cleaner, which scans its
// text for format specifiers, markup and accelerators.
//
//===----------------------------------------------------------------------===//
#include "moert/data/Corpus.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace moert::data;
  std::string bytes(reinterpret_cast<const char *>(data), size);
  moert::Expected<std::vector<CatalogEntry>> entries =
      parseMoCatalog(bytes, "<fuzz>");
  if (!entries.ok())
    return 0;
  CleaningOptions options;
  for (const CatalogEntry &entry : *entries) {
    Pair pair;
    (void)clean(entry, options, pair);
  }
  return 0;
}
