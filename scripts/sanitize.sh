#!/usr/bin/env bash
# Builds the runtime (no compiler, no CUDA) under AddressSanitizer and
# UndefinedBehaviorSanitizer (preset `asan`, build dir build-asan/) and runs
# its unit tests; any sanitizer report fails the run (halt_on_error).
#
#   scripts/sanitize.sh            every runtime unit test
#   scripts/sanitize.sh REGEX      only the tests whose names match REGEX
#   JOBS=N scripts/sanitize.sh     N parallel compile jobs (default: nproc)
#
# MPI tests run under mpirun and are excluded (OpenMPI's own allocations
# are reported as leaks). The lit tests need moe-opt and are not part of a
# runtime-only build.
set -euo pipefail
cd "$(dirname "$0")/.."
regex="${1:-}"
jobs="${JOBS:-$(nproc)}"
cmake --preset asan >/dev/null
ninja -C build-asan -j"$jobs"
args=(--preset asan -LE "mpi|gpu" --timeout 600)
if [[ -n "$regex" ]]; then
  args+=(-R "$regex")
fi
ctest "${args[@]}"
