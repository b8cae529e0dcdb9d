//===- IsaVariants.h - Instruction-set variants picked at run time --------===//
//
// The element-wise kernels (activations, cross-entropy, layer norm, AdamW,
// sums of squares) are memory- or exp-bound loops that the compiler
// vectorizes. The binary targets the x86-64 baseline (SSE2, 4 floats), so
// each such kernel also exists as an AVX2+FMA and an AVX-512 copy of the same
// source, compiled through target attributes, and the widest copy this CPU
// runs is picked once at run time. A kernel writes its loop as an
// always-inline function and wraps it three times:
//
//   void passBaseline(...) { passBody(...); }
//   MOERT_TARGET_AVX2 void passAvx2(...) { passBody(...); }     // x86-64 only
//   MOERT_TARGET_AVX512 void passAvx512(...) { passBody(...); } // x86-64 only
//
// Tests run every variant the CPU supports against the baseline one.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_DENSE_ISAVARIANTS_H
#define MOERT_DENSE_ISAVARIANTS_H

#include <vector>

/// For the loop bodies the variants share: inlined, they are compiled for
/// each variant's instruction set (a separate copy would be baseline code).
#if defined(__GNUC__)
#define MOERT_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define MOERT_ALWAYS_INLINE inline
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#define MOERT_X86_ISA_VARIANTS 1
#define MOERT_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define MOERT_TARGET_AVX512 __attribute__((target("avx512f,fma")))
#endif

namespace moert {
namespace dense {

enum class Isa {
  Baseline, // whatever the whole build targets (SSE2 on x86-64)
  Avx2,     // AVX2 + FMA
  Avx512,   // AVX-512F + FMA
};

/// "baseline", "avx2", "avx512".
const char *isaName(Isa isa);

/// The variants this CPU runs, widest first; Baseline is always last.
const std::vector<Isa> &supportedIsas();

/// supportedIsas().front(): the variant the kernels use.
Isa bestIsa();

/// Returns the variant of a kernel for `isa`: baseline, avx2 and avx512 are
/// its three copies (the last two are ignored where MOERT_X86_ISA_VARIANTS
/// is not defined; pass the baseline there).
template <typename Fn>
Fn selectIsaVariant(Isa isa, Fn baseline, Fn avx2, Fn avx512) {
  switch (isa) {
  case Isa::Avx512:
    return avx512;
  case Isa::Avx2:
    return avx2;
  case Isa::Baseline:
    break;
  }
  return baseline;
}

} // namespace dense
} // namespace moert

/// selectIsaVariant(isa, nameBaseline, nameAvx2, nameAvx512) where the x86
/// copies exist, nameBaseline elsewhere.
#ifdef MOERT_X86_ISA_VARIANTS
#define MOERT_SELECT_ISA_VARIANT(isa, name)                                    \
  ::moert::dense::selectIsaVariant(isa, name##Baseline, name##Avx2,            \
                                   name##Avx512)
#else
#define MOERT_SELECT_ISA_VARIANT(isa, name) ((void)(isa), name##Baseline)
#endif

#endif // MOERT_DENSE_ISAVARIANTS_H
