#!/usr/bin/env bash
# The GPU check: one prepared command for a machine with an NVIDIA GPU.
#
#   ./scripts/gpu-check.sh prepare [BUNDLE]       # here, on a build machine
#   ./scripts/gpu-check.sh run [BUNDLE] [OUTDIR]  # on the GPU machine
#
# `prepare` builds the runtime with the CUDA backend (sm_80, sm_90 and sm_90
# PTX; build-gpu/, no MLIR needed), compiles the plans the check trains with
# the compiler of build/ (./scripts/test.sh or run.sh builds it), and packs
# the binaries, the shared libraries they need beyond the C/C++ runtime and
# the CUDA driver (OpenBLAS, MPI, fmt, ...), the plans and the check's
# scripts into BUNDLE (default gpu-bundle.tar.xz in the repository root,
# ignored by git). The GPU machine then needs only its driver, cuBLAS 13
# (a CUDA 13 toolkit or PyTorch's nvidia-cublas wheel) and, for the
# PyTorch baseline, python3 with torch.
#
# `run` unpacks the bundle and, in well under 8 minutes on one H200:
#   1. device and registry tests (the CUDA device opens, every op has a
#      kernel, the GPU unit tests of the kernels; moert-cuda-nccl-tests
#      also checks the NCCL collective timeout: a collective stalled on the
#      stream past a 5 s timeout ends its process with exit code 124 and
#      the timeout message, under 30 s);
#   2. the conformance suite on CUDA (each op forward/backward and the MoE
#      layer's routing against the CPU backend, finite differences);
#   3. the demo plan trained 20 steps on the CPU and on the GPU, loss curves
#      and routing compared (scripts/compare_runs.py);
#   4. E+Z-Offload with bf16 device parameters (offload=params) trained 10
#      steps, its host work overlapped (the default) and in program order:
#      each checkpoint must equal the bf16 plan's without offload;
#   5. a toy translation model (trained at `prepare`) decoded incrementally
#      and scored on the CPU and on the GPU: held-out loss to 1e-4, BLEU
#      within 2 points (tests/lit/Eval/Inputs/compare_loss.py);
#   6. benchmarks: the MoE layer at a Mixtral-8x7B shape with its GEMM and
#      copy baselines, PyTorch eager's index-based layer on the same GPU, a
#      training step of a 0.69 B-parameter model with its FLOP rate, and
#      E+Z-Offload's step (demo and 0.69 B model in bf16) with its host work
#      overlapped and in program order against the plan without offload.
# It writes OUTDIR/report.md (default $OUT when set, else gpu-report/) with
# every command, its result and the numbers, and exits non-zero when a
# correctness step failed (benchmarks never fail the check).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

mode=${1:-}
bundle=${2:-gpu-bundle.tar.xz}

prepare() {
  set -e
  local jobs
  jobs=$(nproc)
  if [ ! -x build/bin/moe-opt ]; then
    echo "gpu-check: build/bin/moe-opt is missing: run ./scripts/test.sh (or cmake --preset default && cmake --build --preset default) first" >&2
    exit 1
  fi
  echo "== build the runtime with the CUDA backend (build-gpu/)"
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DMOE_ENABLE_COMPILER=OFF -DMOE_CUDA=ON \
    -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld >/dev/null
  grep -q "MOERT_HAVE_CUDA:INTERNAL=ON" build-gpu/CMakeCache.txt || {
    echo "gpu-check: the CUDA backend is not configured (no nvcc found)" >&2
    exit 1
  }
  cmake --build build-gpu -- -j"$jobs" moe-train moe-eval moe-bench-step \
    moe-bench-layer-device moe-bench-offload moert-conformance-tests \
    moert-hal-tests \
    moert-kernel-registry-tests
  # GPU unit tests of the kernel files, where they exist.
  local gpu_tests
  gpu_tests=$(ninja -C build-gpu -t targets all 2>/dev/null |
    sed -n 's/^\(moert-cuda-[a-z-]*tests\): .*/\1/p' | sort -u)
  if [ -n "$gpu_tests" ]; then
    # shellcheck disable=SC2086
    cmake --build build-gpu -- -j"$jobs" $gpu_tests
  fi

  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/gpu-bundle/bin" "$stage/gpu-bundle/lib" \
    "$stage/gpu-bundle/plans" "$stage/gpu-bundle/scripts"
  echo "== plans"
  local plans=$stage/gpu-bundle/plans
  build/bin/moe-opt models/demo.mlir \
    --moe-training-pipeline="lr=0.003 warmup-steps=20 clip-norm=1.0" \
    --moe-emit-plan="output=$plans/demo.moeplan seed=1" -o /dev/null
  # E+Z-Offload with 16-bit device parameters, and its reference.
  local offload
  for offload in none params; do
    build/bin/moe-opt models/demo.mlir \
      --moe-training-pipeline="lr=0.003 warmup-steps=20 precision=bf16 offload=$offload" \
      --moe-emit-plan="output=$plans/demo-bf16-$offload.moeplan seed=1" \
      -o /dev/null
  done
  build/bin/moe-model-gen models/gpu-bench.json -o "$stage/gpu-bench.mlir"
  build/bin/moe-opt "$stage/gpu-bench.mlir" \
    --moe-training-pipeline="lr=0.0003 warmup-steps=100" \
    --moe-emit-plan="output=$plans/gpu-bench.moeplan seed=1" \
    --moe-partition-report="json=$plans/gpu-bench.report.json" -o /dev/null \
    >/dev/null
  # The same model in bf16 with and without E+Z-Offload (offload=params):
  # the offload's step time with its host work overlapped or not.
  for offload in none params; do
    build/bin/moe-opt "$stage/gpu-bench.mlir" \
      --moe-training-pipeline="lr=0.0003 warmup-steps=100 precision=bf16 offload=$offload" \
      --moe-emit-plan="output=$plans/gpu-bench-bf16-$offload.moeplan seed=1" \
      -o /dev/null
  done

  echo "== decoding: a toy translation model trained here (CPU)"
  local dec=$stage/gpu-bundle/decode
  mkdir -p "$dec"
  python3 tests/lit/Eval/Inputs/toy_corpus.py "$dec/corpus"
  build/bin/moe-data spm "$dec/corpus" --vocab 200 >/dev/null 2>&1
  build/bin/moe-data encode "$dec/corpus" >/dev/null
  python3 tests/lit/Eval/Inputs/toy_corpus.py --config "$dec/corpus" \
    "$stage/toy.json" 2.0
  build/bin/moe-model-gen "$stage/toy.json" -o "$stage/toy.mlir"
  build/bin/moe-opt "$stage/toy.mlir" \
    --moe-training-pipeline="lr=0.003 warmup-steps=50 decoder=true" \
    --moe-emit-plan="output=$dec/toy.moeplan seed=1 gpu-kernels=none" \
    -o /dev/null
  OMP_NUM_THREADS=1 build/bin/moe-train "$dec/toy.moeplan" \
    --data "$dec/corpus" --steps 300 --save "$dec/ck.safetensors" >/dev/null

  echo "== binaries and their libraries"
  local bin
  for bin in build-gpu/bin/moe-train build-gpu/bin/moe-eval \
    build-gpu/bin/moe-bench-step build-gpu/bin/moe-bench-layer-device \
    build-gpu/bin/moe-bench-offload; do
    cp "$bin" "$stage/gpu-bundle/bin/"
  done
  find build-gpu -type f -perm -u+x \( -name 'moert-conformance-tests' \
    -o -name 'moert-hal-tests' -o -name 'moert-kernel-registry-tests' \
    -o -name 'moert-cuda-*tests' \) -exec cp {} "$stage/gpu-bundle/bin/" \;
  strip "$stage"/gpu-bundle/bin/* 2>/dev/null || true
  # Every library the binaries load, except the C/C++ runtime (the GPU
  # machine's own is newer) and what the GPU machine must provide itself.
  ldd "$stage"/gpu-bundle/bin/* | awk '/=> \// {print $1, $3}' | sort -u |
    while read -r name path; do
      case "$name" in
      libc.so* | libm.so* | libstdc++.so* | libgcc_s.so* | ld-linux* | \
        libpthread.so* | libdl.so* | librt.so* | libcuda.so* | \
        libcublas* | libcudart* | libnvidia*) ;;
      *) cp -L "$path" "$stage/gpu-bundle/lib/$name" ;;
      esac
    done
  cp scripts/gpu-check.sh scripts/compare_runs.py bench/moe_layer_gpu_bench.py \
    tests/lit/Eval/Inputs/compare_loss.py "$stage/gpu-bundle/scripts/"
  git rev-parse HEAD >"$stage/gpu-bundle/COMMIT" 2>/dev/null || true
  tar -C "$stage" -cJf "$REPO/$bundle" gpu-bundle
  rm -rf "$stage"
  echo "gpu-check: wrote $bundle ($(du -h "$REPO/$bundle" | cut -f1)); on" \
    "the GPU machine: ./scripts/gpu-check.sh run $bundle"
}

run() {
  local out=${3:-${OUT:-gpu-report}}
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  local report=$out/report.md
  local work
  work=$(mktemp -d)
  tar -C "$work" -xJf "$bundle" || {
    echo "gpu-check: cannot unpack $bundle" >&2
    exit 1
  }
  local B=$work/gpu-bundle
  # cuBLAS from the CUDA toolkit or from PyTorch's wheel, whichever is here.
  local cublas_dirs=""
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -e "$d/libcublas.so.13" ] && cublas_dirs="$cublas_dirs:$d"
  done
  local wheel
  wheel=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null || true)
  [ -n "$wheel" ] && cublas_dirs="$cublas_dirs:$wheel"
  # NCCL (loaded at run time by --comm nccl) likewise: toolkit or wheel.
  for d in /usr/local/cuda/lib /usr/local/cuda/lib64; do
    [ -e "$d/libnccl.so.2" ] && cublas_dirs="$cublas_dirs:$d"
  done
  wheel=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null || true)
  [ -n "$wheel" ] && cublas_dirs="$cublas_dirs:$wheel"
  export LD_LIBRARY_PATH="$B/lib$cublas_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}

  local failed=0
  {
    echo "# GPU check"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- commit: $(cat "$B/COMMIT" 2>/dev/null || echo unknown)"
    echo "- GPU: $(nvidia-smi -L 2>&1 | head -1)"
    echo "- driver: $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>&1 | head -1)"
    echo
  } >"$report"

  # step NAME TIMEOUT COMMAND...: runs it, logs it, records pass/fail.
  step() {
    local name=$1 limit=$2
    shift 2
    local log=$out/$name.log
    local start=$SECONDS
    timeout "$limit" "$@" >"$log" 2>&1
    local rc=$?
    local verdict=PASS
    [ $rc -ne 0 ] && verdict="FAIL (exit $rc)"
    {
      echo "## $name: $verdict ($((SECONDS - start)) s)"
      echo
      echo '```'
      echo "\$ $*" | sed "s|$B|BUNDLE|g"
      tail -n 40 "$log"
      echo '```'
      echo
    } >>"$report"
    echo "gpu-check: $name: $verdict"
    return $rc
  }

  step device-tests 120 "$B/bin/moert-hal-tests" || failed=1
  step registry-tests 60 "$B/bin/moert-kernel-registry-tests" || failed=1
  for t in "$B"/bin/moert-cuda-*tests; do
    [ -x "$t" ] && { step "$(basename "$t")" 180 "$t" || failed=1; }
  done
  step conformance-cuda 300 "$B/bin/moert-conformance-tests" \
    --gtest_filter='*/cuda' || failed=1
  step demo-cpu 120 "$B/bin/moe-train" "$B/plans/demo.moeplan" --steps 20 \
    --seed 1 --device cpu --metrics "$out/demo-cpu.jsonl" || failed=1
  step demo-cuda 120 "$B/bin/moe-train" "$B/plans/demo.moeplan" --steps 20 \
    --seed 1 --device cuda --metrics "$out/demo-cuda.jsonl" || failed=1
  step demo-compare 30 python3 "$B/scripts/compare_runs.py" \
    "$out/demo-cpu.jsonl" "$out/demo-cuda.jsonl" || failed=1
  # The same run with a one-rank NCCL world (collectives through NCCL).
  step demo-cuda-nccl 120 "$B/bin/moe-train" "$B/plans/demo.moeplan" \
    --steps 20 --seed 1 --device cuda --comm nccl \
    --metrics "$out/demo-cuda-nccl.jsonl" || failed=1
  step demo-compare-nccl 30 python3 "$B/scripts/compare_runs.py" \
    "$out/demo-cpu.jsonl" "$out/demo-cuda-nccl.jsonl" || failed=1

  # E+Z-Offload (offload=params): fp32 masters and moments in host memory,
  # AdamW on the host, bf16 copies rounded on the host and copied up; the
  # checkpoint must equal the bf16 plan's without offload, as on the CPU.
  step offload-reference 120 "$B/bin/moe-train" \
    "$B/plans/demo-bf16-none.moeplan" --steps 10 --seed 1 --device cuda \
    --save "$out/offload-none.safetensors" || failed=1
  step offload-params 120 "$B/bin/moe-train" \
    "$B/plans/demo-bf16-params.moeplan" --steps 10 --seed 1 --device cuda \
    --save "$out/offload-params.safetensors" || failed=1
  step offload-compare 10 cmp "$out/offload-none.safetensors" \
    "$out/offload-params.safetensors" || failed=1
  # Its host work (gradient copies, host AdamW, 16-bit copies up) beside
  # the device's on a transfer stream (the default on CUDA) or in program
  # order: the same bytes.
  step offload-params-inorder 120 "$B/bin/moe-train" \
    "$B/plans/demo-bf16-params.moeplan" --steps 10 --seed 1 --device cuda \
    --overlap-offload off --save "$out/offload-params-inorder.safetensors" \
    || failed=1
  step offload-compare-inorder 10 cmp "$out/offload-none.safetensors" \
    "$out/offload-params-inorder.safetensors" || failed=1

  # Incremental decoding (the plan's encode and decode_step programs) and
  # the held-out loss (its evaluate program) on the GPU: the CPU's loss to
  # 1e-4 and about its BLEU, per direction.
  local decode=(--checkpoint "$B/decode/ck.safetensors" --data
    "$B/decode/corpus" --sentences 100 --direction both)
  step decode-cpu 120 "$B/bin/moe-eval" "$B/decode/toy.moeplan" \
    "${decode[@]}" --device cpu --json "$out/decode-cpu.json" || failed=1
  step decode-cuda 120 "$B/bin/moe-eval" "$B/decode/toy.moeplan" \
    "${decode[@]}" --device cuda --json "$out/decode-cuda.json" || failed=1
  step decode-compare 30 python3 "$B/scripts/compare_loss.py" \
    "$out/decode-cuda.json" "$out/decode-cpu.json" 1.5 --tolerance 1e-4 \
    --bleu 2 || failed=1

  # Benchmarks: numbers for the report, never a failure of the check.
  step bench-layer-ours 240 "$B/bin/moe-bench-layer-device" --device cuda \
    --repeats 5 --json "$out/layer-ours.json" || true
  step bench-layer-ours-bf16 240 "$B/bin/moe-bench-layer-device" \
    --device cuda --compute bf16 --repeats 5 \
    --json "$out/layer-ours-bf16.json" || true
  step bench-layer-torch-fp32 240 python3 "$B/scripts/moe_layer_gpu_bench.py" \
    --dtype fp32 --json "$out/layer-torch-fp32.json" || true
  step bench-layer-torch-bf16 240 python3 "$B/scripts/moe_layer_gpu_bench.py" \
    --dtype bf16 --json "$out/layer-torch-bf16.json" || true
  local flops
  flops=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["flops"])' \
    "$B/plans/gpu-bench.report.json" 2>/dev/null || echo "")
  step bench-step-0.69b 300 "$B/bin/moe-bench-step" "$B/plans/gpu-bench.moeplan" \
    --device cuda --steps 5 --warmup 2 ${flops:+--model-flops "$flops"} || true
  # E+Z-Offload's step with the host work overlapped (transfer stream) and
  # in program order, and the bf16 plan without offload, in one run.
  step bench-offload-demo 120 "$B/bin/moe-bench-offload" \
    "$B/plans/demo-bf16-params.moeplan" --baseline \
    "$B/plans/demo-bf16-none.moeplan" --device cuda --steps 10 --rounds 3 \
    || true
  step bench-offload-0.69b 300 "$B/bin/moe-bench-offload" \
    "$B/plans/gpu-bench-bf16-params.moeplan" --baseline \
    "$B/plans/gpu-bench-bf16-none.moeplan" --device cuda --steps 3 \
    --warmup 1 --rounds 3 || true

  python3 - "$out" >>"$report" <<'EOF' || true
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
runs = {"fp32": load("layer-ours.json"), "bf16": load("layer-ours-bf16.json")}
torch = {"fp32": load("layer-torch-fp32.json"),
         "bf16": load("layer-torch-bf16.json")}
print("## Ratios (this run)\n")
for name, ours in runs.items():
    if not ours:
        continue
    print(f"- MoE layer fwd+bwd, ours ({name}): {ours['layer_ms']:.2f} ms")
    print(f"- expert GEMMs ({name}): {ours['expert_tflops']:.1f} TFLOP/s = "
          f"{100 * ours['expert_tflops'] / ours['gemm_tflops']:.1f} % of the "
          f"backend's {name} GEMM ({ours['gemm_tflops']:.1f} TFLOP/s)")
    print(f"- dispatch + combine ({name} run): "
          f"{ours['dispatch_combine_gbs']:.0f} GB/s = "
          f"{100 * ours['dispatch_combine_gbs'] / ours['copy_gbs']:.1f} % of "
          f"the device copy ({ours['copy_gbs']:.0f} GB/s)")
    ref = torch.get(name)
    if ref:
        print(f"- PyTorch eager index-based ({name}): {ref['layer_ms']:.2f} ms;"
              f" ours / PyTorch: {ref['layer_ms'] / ours['layer_ms']:.2f}x"
              f" faster; PyTorch's {name} 8192^3 GEMM: "
              f"{ref['gemm_tflops_8192']:.0f} TFLOP/s")
EOF
  {
    echo
    if [ $failed -eq 0 ]; then
      echo "**Result: every correctness step passed.**"
    else
      echo "**Result: a correctness step FAILED (see above).**"
    fi
  } >>"$report"
  echo "gpu-check: report in $report"
  rm -rf "$work"
  return $failed
}

case "$mode" in
prepare) prepare ;;
run) run "$@" ;;
*)
  echo "usage: $0 prepare [BUNDLE] | run [BUNDLE] [OUTDIR]" >&2
  exit 2
  ;;
esac
