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
