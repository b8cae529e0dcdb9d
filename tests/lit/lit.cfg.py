# lit configuration of the moe compiler's FileCheck tests.
import os
import shutil

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moe_obj_root, "tests", "lit")
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "Inputs"]

config.substitutions.append(("%models", os.path.join(config.moe_src_root, "models")))
config.substitutions.append(("%src_root", config.moe_src_root))
# Any Python 3 runs the small checks of the end-to-end tests (no packages).
config.substitutions.append(("%python", config.python_executable))

# Graphviz, when installed, checks that the emitted .dot files are valid.
if shutil.which("dot"):
    config.available_features.add("graphviz")

# The CUDA backend: "cuda-backend" when it is built, "cuda-gpu" when this
# machine also has a GPU with its driver (nvidia-smi lists one).
if getattr(config, "moe_have_cuda", False):
    config.available_features.add("cuda-backend")
    smi = shutil.which("nvidia-smi")
    if smi:
        import subprocess
        try:
            listed = subprocess.run([smi, "-L"], capture_output=True, timeout=20)
            if listed.returncode == 0 and b"GPU" in listed.stdout:
                config.available_features.add("cuda-gpu")
        except (OSError, subprocess.TimeoutExpired):
            pass

# ptxas (the CUDA toolkit's PTX assembler) checks the generated kernels'
# PTX; found on PATH or under CUDA_HOME / /usr/local/cuda.
ptxas = shutil.which("ptxas")
for home in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
    if not ptxas and home and os.path.exists(os.path.join(home, "bin", "ptxas")):
        ptxas = os.path.join(home, "bin", "ptxas")
if ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))

# Checkpoint hashes depend on the BLAS kernels OpenBLAS picks for this CPU:
# "openblas-core-<name>" lets a golden test say where it was recorded.
try:
    import ctypes
    openblas = ctypes.CDLL("libopenblas.so.0")
    openblas.openblas_get_corename.restype = ctypes.c_char_p
    core = openblas.openblas_get_corename().decode().lower()
    config.available_features.add("openblas-core-" + core)
except (OSError, AttributeError):
    pass

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
tools = [
    ToolSubst("moe-opt", unresolved="fatal"),
    ToolSubst("moe-model-gen", unresolved="ignore"),
    ToolSubst("moe-train", unresolved="ignore"),
    ToolSubst("moe-step-dump", unresolved="ignore"),
    ToolSubst("moe-kernel-check", unresolved="ignore"),
    ToolSubst("moe-bleu", unresolved="ignore"),
    ToolSubst("moe-plan", unresolved="ignore"),
    ToolSubst("moe-prune", unresolved="ignore"),
    ToolSubst("moe-eval", unresolved="ignore"),
    ToolSubst("moe-data", unresolved="ignore"),
    ToolSubst("moe-bench-overlap", unresolved="ignore"),
]
llvm_config.add_tool_substitutions(tools, [config.moe_tools_dir, config.llvm_tools_dir])
# Absolute tool paths, for scripts that start the tools themselves.
config.substitutions.append(("%moe_opt", os.path.join(config.moe_tools_dir, "moe-opt")))
config.substitutions.append(("%moe_train", os.path.join(config.moe_tools_dir, "moe-train")))
