#!/usr/bin/env bash
# The test command: installs dependencies (idempotent), builds the compiler
# and runtime (with the CUDA backend when the CUDA toolkit is installed: it
# compiles and links here, its GPU tests skip without a GPU), runs the whole
# suite (lit + gtest + docs checks) with ctest, then proves the runtime
# builds and passes its tests without MLIR/LLVM and without the CUDA toolkit.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

jobs=$(nproc)
# ctest runs tests in parallel and each may start OpenMP/OpenBLAS threads:
# passive waiting keeps oversubscribed threads from spinning on the cores.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

echo "== configure + build (compiler and runtime)"
cmake --preset default >/dev/null
cmake --build --preset default -- -j"$jobs"

echo "== tests (compiler and runtime)"
ctest --preset default -j"$jobs"

echo "== runtime-only build (no MLIR/LLVM, no CUDA looked for)"
cmake --preset runtime-only >/dev/null
cmake --build --preset runtime-only -- -j"$jobs"
ctest --preset runtime-only -j"$jobs"

# Sanitizers and fuzzers (skipped with MOE_SKIP_SANITIZE=1). Measured on a
# 2-core machine with the compiler cache off: ASan build of the three test
# binaries 207 s, their run 1 s, TSan build of six test binaries about 70 s,
# their run 8 s, build of the first four fuzz targets (the moe dialect
# included) 132 s (the catalog target adds the data library), fuzzing
# 6 x 30 s.
if [[ "${MOE_SKIP_SANITIZE:-0}" != 1 ]]; then
  echo "== ASan+UBSan: plan, checkpoint and HAL unit tests (runtime only)"
  cmake --preset asan >/dev/null
  ninja -C build-asan -j"$jobs" moert-plan-tests moert-checkpoint-tests moert-hal-tests
  export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  for suite in plan checkpoint hal; do
    "build-asan/runtime/src/moert/$suite/tests/moert-$suite-tests" --gtest_brief=1
  done
  unset ASAN_OPTIONS UBSAN_OPTIONS

  echo "== ASan+UBSan: compiler unit tests and compiler lit suites"
  scripts/sanitize-compiler.sh

  echo "== ThreadSanitizer: OpenMP kernels, AdamW, communicator and watchdog (runtime only)"
  scripts/sanitize-threads.sh

  echo "== fuzzers: ${FUZZ_SECONDS:-30} s per target on the committed inputs"
  FUZZ_IR=1 scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi
