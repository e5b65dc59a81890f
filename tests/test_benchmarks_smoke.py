"""The benchmark script's code paths, on tiny sizes (`--quick`): it must run, print its table and write its
JSON and plot. The numbers of a quick run mean nothing (contenders run concurrently)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_attention_cpu_quick(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "attention_cpu.py"), "--quick", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "contender" in text and "GFLOP/s" in text and "vs torch" in text
    for name in ("naive", "tiled", "numba"):
        assert f" {name} " in text, f"no row for {name} in:\n{text}"
    assert "roof: NumPy SGEMM" in text and "peak RSS growth" in text and "tracemalloc peak" in text
    report = json.loads((tmp_path / "attention_cpu.json").read_text())
    assert {r["contender"] for r in report["results"]} >= {"naive", "tiled", "numba"}
    assert all(r["fwd_s"] > 0 and r["fwdbwd_s"] > 0 for r in report["results"])
    assert (tmp_path / "attention_cpu.png").stat().st_size > 10_000
