#!/usr/bin/env bash
# ThreadSanitizer over the runtime's threaded code (preset `tsan`: clang-22,
# runtime only, build dir build-tsan/): the OpenMP kernels (gate, dispatch
# and combine, experts, dense GEMMs, the multithreaded CPU AdamW), the
# communicator with its collective watchdog thread, the executor's
# collectives, the MPI ones under mpirun with 2 ranks (with the executor's
# communication thread overlapping them with compute), and that thread's
# queue on its own. Any report fails the
# run (halt_on_error).
#
#   scripts/sanitize-threads.sh      build, check the probe, run the tests
#   JOBS=N                           N parallel compile jobs (default: nproc)
#
# OpenMP runs on LLVM's libomp with libarcher loaded (OMP_TOOL_LIBRARIES),
# which tells TSan about OpenMP's barriers and reductions; interceptors
# called from uninstrumented libraries (libomp's own locks, OpenMPI's
# internals, OpenBLAS) are ignored (ignore_noninstrumented_modules), while
# every access in our code stays checked. Before the tests, a planted data
# race between OpenMP threads (tests/sanitizers/openmp_race_probe.cpp) must
# be reported under the same settings, or the run fails: a clean result is
# only worth something if a race would have been seen.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${JOBS:-$(nproc)}"
build=build-tsan
archer=/usr/lib/llvm-22/lib/libarcher.so
if ! command -v clang++-22 >/dev/null || [[ ! -f "$archer" ]]; then
  echo "sanitize-threads.sh: clang++-22 and $archer are needed (scripts/setup.sh installs clang-22 and libomp-22-dev)" >&2
  exit 2
fi
suites=(
  runtime/tests/moert-unit-tests
  runtime/src/moert/train/tests/moert-train-tests
  runtime/src/moert/dense/tests/moert-dense-tests
  runtime/src/moert/comm/tests/moert-comm-tests
  runtime/src/moert/exec/tests/moert-exec-collective-schedule-tests
)
mpi_suites=(
  runtime/src/moert/comm/tests/moert-comm-mpi-tests
  runtime/src/moert/exec/tests/moert-exec-collective-mpi-tests
)
cmake --preset tsan >/dev/null
targets=()
for path in "${suites[@]}" "${mpi_suites[@]}"; do
  targets+=("$(basename "$path")")
done
ninja -C "$build" -j"$jobs" "${targets[@]}"

export TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1"
export OMP_TOOL_LIBRARIES="$archer"
export OMP_NUM_THREADS=4
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

probe="$build/openmp_race_probe"
clang++-22 -fopenmp=libomp -fsanitize=thread -g -O1 \
  tests/sanitizers/openmp_race_probe.cpp -o "$probe"
set +e
"$probe" > "$build/probe.log" 2>&1
status=$?
set -e
if [[ $status -ne 66 ]] || ! grep -q "ThreadSanitizer: data race" "$build/probe.log"; then
  cat "$build/probe.log" >&2
  echo "sanitize-threads.sh: the planted OpenMP data race was not reported (exit $status): ThreadSanitizer would not see races in OpenMP regions" >&2
  exit 1
fi
echo "== probe: the planted OpenMP data race is reported"

for path in "${suites[@]}"; do
  echo "== $(basename "$path")"
  "$build/$path" --gtest_brief=1
done
for path in "${mpi_suites[@]}"; do
  echo "== $(basename "$path") (mpirun -np 2)"
  mpirun -np 2 "$build/$path" --gtest_brief=1
done
echo "sanitize-threads.sh: no ThreadSanitizer report"
