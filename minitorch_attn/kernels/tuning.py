"""Tile shapes and inner kernel of the Numba flash kernels, chosen for the CPU they run on.

    from minitorch_attn.kernels import tuning
    tuning.forward_config()     # {"Br": 256, "Bc": 64, "microkernel": True}, the forward's choice on this machine
    tuning.backward_config()    # {"Br": 64, "Bc": 256, "microkernel": True}
    tuning.report()             # what was chosen, how (cache, timing, default, environment) and the timings

Why. The best (Br, Bc) and the better inner matmul (`tile_matmul`'s loops or `microkernel.py`'s register tile)
differ between CPUs and between versions of the kernels: the loops once won on an AMD Zen 5; since the tile
buffers are aligned the register tile wins there and on an Intel Xeon (AVX-512), and with its AVX2 shape on an
AMD Zen 3; the best tiles differ on all three (benchmarks/NOTES_attention_cpu.md). So the first call on a
machine times a few candidates on a small problem (B = 1, H = 4, N = 1024, d = 64, float32: about 1 to 2 s
once the kernels are compiled) and keeps the fastest; the choice is cached per
machine in a JSON file, and every later process reads it.

The rules:
- The cache key is what the compiled code depends on: LLVM's CPU name and features as Numba compiles them
  (`kernels/ops/threads.numba_target`), Numba's thread count, the Numba version, and a hash of the kernels'
  source files (an edited kernel is timed again). Another CPU, another
  vector width (MTA_NUMBA_VECTORS, NUMBA_CPU_NAME) or another thread count tunes again.
- Where: `$MTA_CACHE_DIR/tuning.json`, else `$XDG_CACHE_HOME/minitorch_attn/tuning.json`, else
  `~/.cache/minitorch_attn/tuning.json`. A cache that cannot be written is not an error (the choice is then
  kept for this process only).
- MTA_TUNE=off: no timing, no cache: the defaults below (`DEFAULTS`). MTA_TUNE=force: time again and overwrite.
- MTA_FLASH_FWD / MTA_FLASH_BWD = "Br,Bc" or "Br,Bc,loops" / "Br,Bc,microkernel": a fixed choice, never timed.
- Explicit `Br=`, `Bc=`, `microkernel=` arguments of `flash_forward_numba` always win.
- Nothing is printed (notebook outputs must not depend on whether a cache existed); `report()` says what happened.

Every candidate computes the same attention (the tests run both inner kernels and several tile shapes against
torch), so a choice changes speed and the last bits of float32 sums, never the result beyond rounding.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from .ops.threads import codegen_target, wide_vectors  # sets Numba's vector width before the codegen starts


def _register_tile_by_default() -> bool:
    """The inner matmul without timing: the register tile on the x86 CPUs where it was measured to win (AVX-512:
    Intel Emerald Rapids, AMD Zen 5; AVX2: AMD Zen 3, with its 4 × 2 ymm shape), the loops elsewhere (not measured:
    e.g. ARM), where the tuner decides on first use."""
    return wide_vectors() or "+avx2" in codegen_target()[2].split(",")


# Without timing (MTA_TUNE=off, or before the first tuning).
_REGS = _register_tile_by_default()
DEFAULTS = {"forward": {"Br": 256, "Bc": 64, "microkernel": _REGS},
            "backward": {"Br": 64, "Bc": 256, "microkernel": _REGS}}
CANDIDATES = {"forward": [(256, 64), (128, 64), (256, 128), (128, 128)],
              "backward": [(64, 256), (64, 128), (128, 128)]}
PROBLEM = dict(B=1, H=4, N=1024, d=64)
ENV = {"forward": "MTA_FLASH_FWD", "backward": "MTA_FLASH_BWD"}
KERNEL_FILES = ("numba_backend.py", "tile_matmul.py", "microkernel.py", "fastexp.py")  # a change re-tunes

_chosen: dict[str, dict] = {}
_how: dict[str, str] = {}
_timings: dict[str, dict] = {}


def cache_path() -> Path:
    if os.environ.get("MTA_CACHE_DIR"):
        return Path(os.environ["MTA_CACHE_DIR"]) / "tuning.json"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minitorch_attn" / "tuning.json"


def machine_key() -> str:
    """What the compiled kernels depend on: LLVM CPU and features, threads, Numba version."""
    import numba

    _, cpu, features = codegen_target()
    digest = hashlib.sha256(features.encode()).hexdigest()[:12]
    here = Path(__file__).resolve().parent
    code = hashlib.sha256(b"".join((here / f).read_bytes() for f in KERNEL_FILES)).hexdigest()[:12]
    return f"{cpu}|features:{digest}|threads:{numba.get_num_threads()}|numba:{numba.__version__}|code:{code}"


def _mode() -> str:
    mode = os.environ.get("MTA_TUNE", "auto").strip().lower()
    if mode not in ("auto", "off", "force"):
        raise ValueError(f"MTA_TUNE={mode!r}: expected 'auto' (time once per machine, then cache), 'off' (the "
                         "defaults, no timing) or 'force' (time again and overwrite the cache)")
    return mode


def _from_env(kind: str) -> dict | None:
    raw = os.environ.get(ENV[kind])
    if not raw:
        return None
    parts = [p.strip() for p in raw.split(",")]
    try:
        Br, Bc = int(parts[0]), int(parts[1])
        inner = parts[2] if len(parts) > 2 else "loops"
        if len(parts) > 3 or inner not in ("loops", "microkernel") or Br <= 0 or Bc <= 0:
            raise ValueError
    except (ValueError, IndexError):
        raise ValueError(f"{ENV[kind]}={raw!r}: expected 'Br,Bc' or 'Br,Bc,loops' or 'Br,Bc,microkernel' with "
                         "positive integers, e.g. '256,64,microkernel'") from None
    return {"Br": Br, "Bc": Bc, "microkernel": inner == "microkernel"}


def _read_cache() -> dict:
    try:
        return json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, kind: str, entry: dict) -> None:
    path = cache_path()
    data = _read_cache()
    data.setdefault(key, {})[kind] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: the choice holds for this process only


def _best_of(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _time_candidates(kind: str) -> dict:
    """{'Br,Bc,inner': seconds} for every candidate, on PROBLEM (float32, not causal)."""
    from .numba_backend import flash_backward_numba, flash_forward_numba

    p = PROBLEM
    rng = np.random.default_rng(0)
    q, k, v, do = (rng.standard_normal((p["B"], p["H"], p["N"], p["d"])).astype(np.float32) for _ in range(4))
    o, lse = flash_forward_numba(q, k, v, Br=256, Bc=64, microkernel=False)
    out = {}
    for Br, Bc in CANDIDATES[kind]:
        for mk in (False, True):
            if kind == "forward":
                def run(Br=Br, Bc=Bc, mk=mk):
                    flash_forward_numba(q, k, v, Br=Br, Bc=Bc, microkernel=mk)
            else:
                def run(Br=Br, Bc=Bc, mk=mk):
                    flash_backward_numba(q, k, v, o, lse, do, Br=Br, Bc=Bc, microkernel=mk)
            run()  # compile / warm up
            out[f"{Br},{Bc},{'microkernel' if mk else 'loops'}"] = _best_of(run)
    return out


def _parse(label: str) -> dict:
    Br, Bc, inner = label.split(",")
    return {"Br": int(Br), "Bc": int(Bc), "microkernel": inner == "microkernel"}


def config(kind: str) -> dict:
    """The (Br, Bc, microkernel) of `kind` ("forward" or "backward") on this machine (see the module rules)."""
    if kind not in DEFAULTS:
        raise ValueError(f"tuning.config: kind must be 'forward' or 'backward'; got {kind!r}")
    if kind in _chosen:
        return _chosen[kind]
    fixed = _from_env(kind)
    mode = _mode()
    if fixed is not None:
        choice, how = fixed, f"{ENV[kind]}={os.environ[ENV[kind]]}"
    elif mode == "off":
        choice, how = dict(DEFAULTS[kind]), "defaults (MTA_TUNE=off)"
    else:
        key = machine_key()
        cached = _read_cache().get(key, {}).get(kind) if mode == "auto" else None
        if cached and "choice" in cached:
            choice, how = _parse(cached["choice"]), f"cache {cache_path()}"
            _timings[kind] = cached.get("seconds", {})
        else:
            t0 = time.perf_counter()
            seconds = _time_candidates(kind)
            best = min(seconds, key=seconds.get)
            choice, how = _parse(best), f"timed {len(seconds)} candidates in {time.perf_counter() - t0:.1f} s"
            _timings[kind] = seconds
            _write_cache(key, kind, {"choice": best, "seconds": seconds, "problem": PROBLEM,
                                     "when": time.strftime("%Y-%m-%d %H:%M:%S")})
    _chosen[kind], _how[kind] = choice, how
    return choice


def forward_config() -> dict:
    return config("forward")


def backward_config() -> dict:
    return config("backward")


def report(kinds=("forward", "backward")) -> dict:
    """What each kernel uses and how it was chosen, plus the candidates' timings (seconds) when known."""
    return {kind: {"choice": config(kind), "how": _how[kind], "seconds": _timings.get(kind, {})} for kind in kinds}


def reset() -> None:
    """Forget the choices of this process (the next call reads the environment and the cache again)."""
    _chosen.clear()
    _how.clear()
    _timings.clear()
