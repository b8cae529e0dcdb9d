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

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
tools = [
    ToolSubst("moe-opt", unresolved="fatal"),
    ToolSubst("moe-model-gen", unresolved="ignore"),
    ToolSubst("moe-train", unresolved="ignore"),
    ToolSubst("moe-step-dump", unresolved="ignore"),
]
llvm_config.add_tool_substitutions(tools, [config.moe_tools_dir, config.llvm_tools_dir])
# Absolute tool paths, for scripts that start the tools themselves.
config.substitutions.append(("%moe_opt", os.path.join(config.moe_tools_dir, "moe-opt")))
config.substitutions.append(("%moe_train", os.path.join(config.moe_tools_dir, "moe-train")))
