#!/usr/bin/env bash
# Installs every system dependency of the project from Debian's packages.
# Idempotent: when everything is present it returns in about a second without
# touching the network.
set -euo pipefail

PACKAGES=(
  # Compiler side: MLIR/LLVM 22 with lit/FileCheck and mlir-tblgen.
  libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools
  # Build tooling.
  cmake ninja-build ccache g++ lld python3
  # Plan format, formatting, tests.
  libflatbuffers-dev flatbuffers-compiler libfmt-dev libgtest-dev
  # Runtime: MPI, BLAS, tokenizer.
  libopenmpi-dev openmpi-bin libopenblas-dev libsentencepiece-dev sentencepiece
  # Independent numerical reference for tests (Debian's /usr/bin/python3).
  python3-numpy python3-torch
  # The main job's pictures (loss, BLEU, expert load).
  python3-matplotlib
  # libFuzzer and the sanitizer runtimes for clang (scripts/fuzz.sh; the
  # main build keeps g++); LLVM's OpenMP runtime with libarcher, which tells
  # ThreadSanitizer about OpenMP's synchronization
  # (scripts/sanitize-threads.sh).
  clang-22 libclang-rt-22-dev libomp-22-dev
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
