#!/usr/bin/env bash
# Every benchmark of docs/benchmarks.md, built and run in one go; each
# prints its table, every ratio measured in this run on this machine:
#   1. expert FFN kernels vs their bare OpenBLAS GEMMs (and the sgemm peak);
#   2. the fused MoE layer (fwd+bwd) vs PyTorch's einsum (GShard/DeepSpeed)
#      and index-based formulations at E = 8, 32, 64;
#   3. demo-model training tokens/s: moe-train vs the same model in PyTorch
#      eager, and the model FLOP utilization against the sgemm peak;
#   4. where the demo's training step spends its time, per kernel;
#   5. the demo's step on 2 MPI ranks (dp=2, and dp=2 zero=2 with small
#      buckets) with collective overlap off and on (moe-bench-overlap);
#   7. the demo's E+Z-Offload step (bf16, offload=params) with its host
#      work overlapped and in program order, and the bf16 step without
#      offload (moe-bench-offload; on a GPU: --device cuda).
#
#   ./scripts/bench.sh [--quick] [--no-build] [--bin DIR] [--threads N]
#
#   --quick     tiny shapes and few steps: checks that everything runs (the
#               numbers mean nothing); what the bench/smoke test runs
#   --no-build  use the binaries in --bin as they are
#   --bin DIR   where the tools are (default build/bin, the default preset's)
#   --threads N threads for both sides (default 2: OpenMP, OpenBLAS, torch)
#
# Benchmarks, not tests: nothing here fails on a slow number. Run it on a
# quiet machine (the load average is printed first); PyTorch comes from
# Debian's python3-torch (/usr/bin/python3). Without torch the PyTorch
# comparisons are skipped; without moe-opt (a runtime-only build) the
# training comparison is.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 build=1 bin=build/bin threads=2
while [[ $# -gt 0 ]]; do
  case "$1" in
  --quick) quick=1 ;;
  --no-build) build=0 ;;
  --bin) bin=${2:?--bin expects a directory}; shift ;;
  --threads) threads=${2:?--threads expects a number}; shift ;;
  -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
  *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ $build == 1 ]]; then
  cmake --preset default >/dev/null
  cmake --build --preset default --target moe-opt moe-model-gen moe-train \
    moe-bench-experts moe-bench-layer moe-bench-step moe-bench-overlap \
    moe-bench-offload -- -j"$(nproc)" >&2
fi

# Same threads for everyone. The OpenMP wait policy is left to libgomp for
# the runtime (it runs OpenBLAS single-threaded inside its own team, and a
# passive fork/join costs ~40 us); the PyTorch comparisons give PyTorch
# passive waiting, faster for it (bench/moe_layer_bench.py).
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
unset OMP_WAIT_POLICY
python=/usr/bin/python3
have_torch=0
if [[ -x $python ]] && $python -c "import torch" 2>/dev/null; then
  have_torch=1
fi
have_compiler=0
if [[ -x $bin/moe-opt && -x $bin/moe-model-gen ]]; then
  have_compiler=1
fi
quick_flag=()
[[ $quick == 1 ]] && quick_flag=(--quick)

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $threads threads; load average$(uptime | sed 's/.*load average//')"

echo
echo "== 1. expert FFN kernels vs raw OpenBLAS sgemm (moe-bench-experts)"
experts_out=$("$bin/moe-bench-experts" "${quick_flag[@]}")
echo "$experts_out"
peak=$(echo "$experts_out" | sed -n 's/^sgemm peak: \([0-9.]*\) GFLOP.*/\1/p')

echo
echo "== 2. MoE layer fwd+bwd vs PyTorch einsum / indexed (bench/moe_layer_bench.py)"
if [[ $have_torch == 1 ]]; then
  $python bench/moe_layer_bench.py --bin "$bin" --threads "$threads" \
    "${quick_flag[@]}"
else
  echo "skipped: $python cannot import torch"
fi

echo
echo "== 3. demo training tokens/s vs PyTorch eager, model FLOP utilization (bench/train_bench.py)"
workdir=$(mktemp -d "${TMPDIR:-/tmp}/moe-bench.XXXXXX")
trap 'rm -rf "$workdir"' EXIT
if [[ $have_torch == 1 && $have_compiler == 1 ]]; then
  $python bench/train_bench.py --compiler-bin "$bin" --runtime-bin "$bin" \
    --threads "$threads" --sgemm-peak "$peak" --workdir "$workdir" \
    "${quick_flag[@]}"
else
  echo "skipped: needs torch for $python and moe-opt / moe-model-gen in $bin"
fi

echo
echo "== 4. the demo's training step per kernel (moe-bench-step)"
if [[ $have_compiler == 1 ]]; then
  plan=$workdir/demo.moeplan
  if [[ ! -f $plan ]]; then
    "$bin/moe-model-gen" models/demo.json -o "$workdir/demo.mlir"
    "$bin/moe-opt" "$workdir/demo.mlir" \
      --moe-training-pipeline="lr=0.003 warmup-steps=20" -o /dev/null \
      --moe-emit-plan="output=$plan seed=1"
  fi
  if [[ $quick == 1 ]]; then
    "$bin/moe-bench-step" "$plan" --steps 2 --warmup 1
  else
    "$bin/moe-bench-step" "$plan" --steps 60 --warmup 10
  fi
else
  echo "skipped: needs moe-opt / moe-model-gen in $bin"
fi

echo
echo "== 5. the demo's step on 2 ranks, collective overlap off vs on (moe-bench-overlap)"
if [[ $have_compiler == 1 && -x $bin/moe-bench-overlap ]] && command -v mpirun >/dev/null; then
  "$bin/moe-model-gen" models/demo.json -o "$workdir/demo2.mlir"
  for grid in "dp=2" "dp=2 zero=2 bucket-mb=0.0625"; do
    plan=$workdir/overlap-${grid// /-}.moeplan
    "$bin/moe-opt" "$workdir/demo2.mlir" \
      --moe-training-pipeline="lr=0.003 warmup-steps=20 $grid" -o /dev/null \
      --moe-emit-plan="output=$plan seed=1"
    # One OpenMP thread per rank: the two ranks fill the two cores.
    rounds=(--steps 10 --rounds 6 --warmup 3)
    [[ $quick == 1 ]] && rounds=(--steps 1 --rounds 1 --warmup 0)
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 \
      OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
      mpirun -np 2 "$bin/moe-bench-overlap" "$plan" "${rounds[@]}"
  done
else
  echo "skipped: needs moe-opt / moe-model-gen / moe-bench-overlap in $bin and mpirun"
fi

echo
echo "== 7. the demo's E+Z-Offload step, host work overlapped vs in program order (moe-bench-offload)"
if [[ $have_compiler == 1 && -x $bin/moe-bench-offload ]]; then
  for offload in none params; do
    "$bin/moe-opt" models/demo.mlir \
      --moe-training-pipeline="lr=0.003 warmup-steps=20 precision=bf16 offload=$offload" \
      -o /dev/null --moe-emit-plan="output=$workdir/offload-$offload.moeplan seed=1"
  done
  rounds=(--steps 10 --rounds 6 --warmup 3)
  [[ $quick == 1 ]] && rounds=(--steps 1 --rounds 1 --warmup 0)
  "$bin/moe-bench-offload" "$workdir/offload-params.moeplan" \
    --baseline "$workdir/offload-none.moeplan" "${rounds[@]}"
else
  echo "skipped: needs moe-opt and moe-bench-offload in $bin"
fi
