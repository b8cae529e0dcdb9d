#!/usr/bin/env bash
# Builds the compiler and the tools its tests run (moe-opt, moe-model-gen,
# moe-plan, moe-kernel-check, moe-train) under AddressSanitizer and
# UndefinedBehaviorSanitizer (preset `asan-compiler`, g++, build dir
# build-asan-compiler/; libMLIR and libLLVM are linked as installed, not
# instrumented) and runs the compiler's unit tests and its lit suites
# (Dialect, Transforms, Codegen, Models, Plan, Tools) with them. Any
# sanitizer report fails the run: the tools abort on the first one, and a
# test that expects a tool to fail (`not moe-opt ...`) does not accept an
# abort.
#
#   scripts/sanitize-compiler.sh          build, then run everything
#   JOBS=N scripts/sanitize-compiler.sh   N parallel compile jobs
#
# LLVM's allocator headers poison and unpoison memory when inlined into
# instrumented code; the uninstrumented library does not, which gives
# false use-after-poison reports, so manual poisoning is ignored
# (allow_user_poisoning=0); heap overflows, use after free or scope, leaks
# and undefined behaviour are still reported. The runtime's lit suites
# (Runtime, Eval) are left out: they start OpenMPI, whose own allocations
# are reported as leaks, and the runtime's unit tests have their own
# sanitizer stage (scripts/sanitize.sh, scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${JOBS:-$(nproc)}"
build=build-asan-compiler
cmake --preset asan-compiler >/dev/null
ninja -C "$build" -j"$jobs" moe-opt moe-model-gen moe-plan moe-kernel-check \
  moe-train moe-compiler-unit-tests
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:allow_user_poisoning=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
"$build/tests/unit/moe-compiler-unit-tests" --gtest_brief=1
lit="$(sed -n 's/^MOE_LIT:FILEPATH=//p' "$build/CMakeCache.txt")"
suites=()
for suite in Dialect Transforms Codegen Models Plan Tools; do
  suites+=("$build/tests/lit/$suite")
done
"$lit" -sv "${suites[@]}"
