"""One rule for Numba's threading layer, applied by every module of ours that launches `prange` code.

Numba picks its process-wide thread pool (the "threading layer") at the FIRST parallel launch and keeps it.
`kernels/numba_backend.py` (flash attention) calls it too: the workqueue layer unless the user chose one
(NUMBA_THREADING_LAYER); the training step's kernels (`_layernorm_kernel`, `_gelu_kernel`, `_optim_kernel`)
apply the same rule, so the layer does not depend on which kernel happens to run first. It matters: a GPT
training step whose first parallel launch was a LayerNorm ran on OpenMP, whose spinning threads fought
OpenBLAS's spinning threads for the 2 cores (976 ms per step instead of 44, benchmarks/NOTES_train_step_baby.md).
"""

from __future__ import annotations

import os

import numba


def prefer_workqueue() -> None:
    """Choose Numba's workqueue threading layer unless the user (or an earlier launch) chose one."""
    if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "workqueue"
