#!/usr/bin/env bash
# Builds the libFuzzer targets (preset `fuzz`: clang-22 with ASan + UBSan,
# build dir build-fuzz/) and runs each for a fixed time on its committed
# inputs. Fails on any crash, hang (10 s per input), leak, out-of-memory
# (2 GiB RSS, 1 GiB per allocation) or sanitizer report.
#
#   scripts/fuzz.sh              60 s per target
#   scripts/fuzz.sh SECONDS      SECONDS per target
#   TARGETS="plan-loader" scripts/fuzz.sh 30   only these targets
#   FUZZ_IR=1 scripts/fuzz.sh    also the IR parser + verifier target
#                                (preset fuzz-ir, build dir build-fuzz-ir/:
#                                builds the moe dialect under the sanitizers)
#   JOBS=N                       N parallel compile jobs (default: nproc)
#
# Every target first replays fuzz/corpus/<target> (seeds from real files)
# and fuzz/regressions/<target> (minimized crashers found before), then
# mutates. New inputs go to a scratch directory, never into the repository;
# a crasher is left in build-fuzz/artifacts/ with the commands to minimize
# it and commit it as a regression input (fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
jobs="${JOBS:-$(nproc)}"
preset=fuzz
default_targets="plan-loader safetensors mo-reader tokenizer model-config"
if [[ "${FUZZ_IR:-0}" == 1 ]]; then
  preset=fuzz-ir
  default_targets="$default_targets ir-parser"
fi
targets=(${TARGETS:-$default_targets})
build="build-$preset"

if ! command -v clang++-22 >/dev/null; then
  echo "fuzz.sh: clang++-22 not found (scripts/setup.sh installs clang-22 and libclang-rt-22-dev)" >&2
  exit 2
fi
cmake --preset "$preset" >/dev/null
ninja -C "$build" -j"$jobs" "${targets[@]/#/fuzz-}"

artifacts="$PWD/$build/artifacts"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$artifacts"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:allocator_may_return_null=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
failed=()
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target"
  echo "== fuzz-$target: ${seconds}s on fuzz/corpus/$target + fuzz/regressions/$target"
  # libMLIR/libLLVM are not instrumented, but LLVM's allocator headers
  # poison and unpoison memory when inlined into instrumented code: mixing
  # both gives false use-after-poison reports, so the IR target ignores
  # manual poisoning (heap overflows and use-after-free are still caught).
  extra=""
  [[ "$target" == ir-parser ]] && extra=":allow_user_poisoning=0"
  # libFuzzer stops when a named input directory is missing; a target
  # without committed regression inputs has no fuzz/regressions/<target>.
  inputs=("$scratch/$target" "fuzz/corpus/$target")
  [[ -d "fuzz/regressions/$target" ]] && inputs+=("fuzz/regressions/$target")
  if ! ASAN_OPTIONS="$ASAN_OPTIONS$extra" "$build/fuzz/fuzz-$target" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=1024 -print_final_stats=1 \
      -artifact_prefix="$artifacts/$target-" \
      "${inputs[@]}" \
      > "$scratch/$target.log" 2>&1; then
    failed+=("$target")
    tail -n 60 "$scratch/$target.log"
    echo "fuzz.sh: fuzz-$target failed; the input is in $artifacts/$target-*"
    echo "  minimize: $build/fuzz/fuzz-$target -minimize_crash=1 -runs=100000 -exact_artifact_path=fuzz/regressions/$target/<name> <crash file>"
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$scratch/$target.log" | tr '\n' ' '
    echo
  fi
done
if ((${#failed[@]})); then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: all targets clean"
