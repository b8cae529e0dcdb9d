"""Process environment shared by the PyTorch comparisons.

Thread counts and the OpenMP wait policy are read when OpenBLAS and OpenMP
start, so ``set_up`` runs before torch is imported. Each side gets the wait
policy that is faster for it: PyTorch runs OpenBLAS's own (spinning) threads
next to its OpenMP team and is faster with passive OpenMP waiting (measured:
the indexed MoE layer at E=64 in 71 ms instead of 103 ms); the runtime keeps
OpenBLAS single-threaded inside its OpenMP team, where a passive fork/join
costs ~40 us.
"""

from __future__ import annotations

import os


def with_wait_policy(env, policy):
    """A copy of ``env`` with OMP_WAIT_POLICY set to ``policy`` (unset when
    empty)."""
    env = dict(env)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    return env


def set_up(threads, moert_policy, torch_policy):
    """Sets this process's environment for PyTorch (``threads`` threads for
    OpenMP and OpenBLAS, ``torch_policy``) and returns the environment for
    the runtime's processes (the same threads, ``moert_policy``)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    moert_env = with_wait_policy(os.environ, moert_policy)
    os.environ.clear()
    os.environ.update(with_wait_policy(moert_env, torch_policy))
    return moert_env
