//===- IsaVariants.cpp - Instruction-set variants picked at run time ------===//
#include "moert/dense/IsaVariants.h"

namespace moert {
namespace dense {

const char *isaName(Isa isa) {
  switch (isa) {
  case Isa::Baseline:
    return "baseline";
  case Isa::Avx2:
    return "avx2";
  case Isa::Avx512:
    return "avx512";
  }
  return "unknown";
}

const std::vector<Isa> &supportedIsas() {
  static const std::vector<Isa> isas = [] {
    std::vector<Isa> result;
#ifdef MOERT_X86_ISA_VARIANTS
    __builtin_cpu_init();
    const bool fma = __builtin_cpu_supports("fma");
    if (fma && __builtin_cpu_supports("avx512f"))
      result.push_back(Isa::Avx512);
    if (fma && __builtin_cpu_supports("avx2"))
      result.push_back(Isa::Avx2);
#endif
    result.push_back(Isa::Baseline);
    return result;
  }();
  return isas;
}

Isa bestIsa() { return supportedIsas().front(); }

} // namespace dense
} // namespace moert
