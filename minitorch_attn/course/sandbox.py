"""The child process that grades one submission, and the walls around it.

Process and timeout model. For each submission the grader (trusted, never runs learner code) makes a
private folder WORK that only it can see, writes WORK/view/ (what the sandbox may read: the spec, the
course's conftest.py and the lesson's graded test file) and opens WORK/results.jsonl, then starts

    bwrap <read-only system and venv> <read-only library> <WORK/view at /grade, read-only> <tmpfs /tmp>
          --unshare-all --die-with-parent --new-session --clearenv ...
          python -m minitorch_attn.course.grade_runner /grade/spec.json 3

with the results file as file descriptor 3 (the only writable thing of the grader's the child can reach;
it has no path to it) and stdout/stderr to WORK/child.log (kept for a look, never parsed). Inside:

* no network (a new network namespace with only loopback), its own PID namespace (it cannot see or signal
  the grader, the other submissions or any process outside; when its first process ends every process in
  it is killed, so threads and children left behind die with it), a private /tmp (tmpfs) as the only
  writable folder, and no view of the instructor's checkout (solutions/, hidden tests of other lessons),
  the submissions folder or the output folder: only the paths bound above exist;
* limits set before the interpreter starts (`resource.setrlimit`, inherited): address space (--memory-mb),
  CPU seconds (the wall-clock limit plus a minute), file size (64 MiB), processes (64), no core dumps;
* a per-cell and per-test timeout (SIGALRM in the harness: `grade_runner._Alarm`) and a wall-clock limit
  for the whole run (the grader kills bwrap's process group; --die-with-parent and the PID namespace take
  the rest down). Records already written stay: a run killed half-way keeps what it earned before.

Without bubblewrap (or where it cannot create namespaces) the same child runs as a plain subprocess in a
new session with the same limits and a private working folder: process isolation only, with a warning on
stderr and in the report. Set MTA_REQUIRE_SANDBOX=1 to make that an error instead (CI does); MTA_SANDBOX=process
chooses the fallback (the tests grade the hostile class both ways).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BWRAP = "bubblewrap"
PROCESS = "process isolation (no sandbox)"
FALLBACK_WARNING = ("grade-class: bubblewrap (bwrap) is not available or cannot create namespaces here: "
                    "submissions run with process isolation only (no network, filesystem or PID isolation). "
                    "Install it (`apt-get install bubblewrap`) to grade untrusted submissions.")
TMP_MB = 256  # the sandbox's private /tmp (tmpfs): a full disk is a full /tmp, nothing else
PACKAGE = Path(__file__).resolve().parents[1]  # minitorch_attn/


class SandboxUnavailable(RuntimeError):
    pass


@dataclass
class Limits:
    wall_seconds: float
    memory_mb: int
    file_mb: int = 64
    processes: int = 64


@dataclass
class Run:
    records: list[dict]
    returncode: int | None
    timed_out: bool
    seconds: float
    log_tail: str
    forged: int = 0  # lines of the results file that are not the harness's records (bad MAC or order)


def _system_binds() -> list[str]:
    args = []
    for path in ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/etc/alternatives", "/etc/ld.so.cache",
                 "/etc/ssl"):
        if os.path.lexists(path):
            args += ["--ro-bind", path, path]
    for path in {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parents[1]),
                 sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        if path and os.path.isdir(path) and not path.startswith(("/usr", "/bin", "/lib")):
            args += ["--ro-bind", path, path]
    return args


def bwrap_command(view: Path) -> list[str]:
    exe = shutil.which("bwrap")
    if exe is None:
        raise SandboxUnavailable("bwrap not found")
    # the private /tmp first: bwrap mounts in order, so a venv or checkout that lives under /tmp (a CI clone in
    # a mktemp folder) is bound on top of it, read-only, instead of being hidden by it
    return [exe, "--size", str(TMP_MB * 2**20), "--tmpfs", "/tmp", *_system_binds(),
            "--ro-bind", str(PACKAGE), "/mta/minitorch_attn",
            "--ro-bind", str(view), "/grade",
            "--proc", "/proc", "--dev", "/dev", "--chdir", "/tmp",
            "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "PYTHONPATH", "/mta",
            "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--setenv", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1",
            "--setenv", "MPLBACKEND", "Agg", "--setenv", "NUMBA_CACHE_DIR", "/tmp",
            "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "OPENBLAS_NUM_THREADS", "1",
            "--setenv", "MTA_COURSE_ROOT", "/grade/course", "--"]


@functools.lru_cache(maxsize=1)
def detect() -> str:
    """BWRAP when bubblewrap can build the sandbox here, else PROCESS (and MTA_REQUIRE_SANDBOX=1 raises).
    MTA_SANDBOX=process skips bubblewrap (to try the fallback)."""
    why = ""
    if os.environ.get("MTA_SANDBOX") == "process":
        why = "MTA_SANDBOX=process"
    else:
        why = _try_bwrap()
        if not why:
            return BWRAP
    if os.environ.get("MTA_REQUIRE_SANDBOX") == "1":
        raise SandboxUnavailable(f"MTA_REQUIRE_SANDBOX=1 but bubblewrap cannot run here: {why}")
    print(f"{FALLBACK_WARNING} ({why})", file=sys.stderr)
    return PROCESS


def _try_bwrap() -> str:
    """"" when bubblewrap runs Python with numpy and pytest here, else why not."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cmd = bwrap_command(Path(tmp)) + [sys.executable, "-c", "import numpy, pytest"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if proc.returncode == 0:
                return ""
            return (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        except (SandboxUnavailable, OSError, subprocess.TimeoutExpired) as e:
            return str(e) or type(e).__name__


def _set_limits(limits: Limits) -> None:
    import resource

    wanted = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_AS, limits.memory_mb * 2**20),
              (resource.RLIMIT_CPU, int(limits.wall_seconds) + 60), (resource.RLIMIT_FSIZE, limits.file_mb * 2**20),
              (resource.RLIMIT_NPROC, limits.processes)]
    for which, value in wanted:
        try:
            _, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, hard))
        except (ValueError, OSError):
            pass


def run_sandboxed(work: Path, spec: dict, limits: Limits, kind: str, key: bytes) -> Run:
    """Run the harness on `spec` (paths in it as the sandbox sees them) in `work`; the records of the results
    file whose MAC under `key` (handed to the harness on stdin) is right, in order."""
    from .grade_runner import sign

    view = work / "view"
    (view / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    results = work / "results.jsonl"
    fd = os.open(results, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    harness = [sys.executable, "-m", "minitorch_attn.course.grade_runner"]
    if kind == BWRAP:
        cmd, cwd, env = bwrap_command(view) + harness + ["/grade/spec.json", "3"], "/", None
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    else:
        private = work / "tmp"
        private.mkdir()
        cmd, cwd = harness + [str(view / "spec.json"), "3"], str(private)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(private),
               "PYTHONPATH": str(PACKAGE.parent), "PYTHONDONTWRITEBYTECODE": "1",
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "MPLBACKEND": "Agg", "NUMBA_CACHE_DIR": str(private),
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "TMPDIR": str(private),
               "MTA_COURSE_ROOT": str(view / "course")}
    start = time.perf_counter()
    timed_out = False
    try:
        with open(work / "child.log", "wb") as log:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.PIPE, start_new_session=True, pass_fds=tuple({fd, 3}),
                                    preexec_fn=functools.partial(_child_setup, fd, limits))
            try:
                proc.stdin.write(key.hex().encode() + b"\n")
                proc.stdin.close()
            except OSError:  # it died at once; the log says why
                pass
            try:
                proc.wait(timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                proc.wait()
    finally:
        os.close(fd)
    seconds = time.perf_counter() - start
    records, forged = [], 0
    for line in results.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            forged += 1
            continue
        seq = rec.get("seq") if isinstance(rec, dict) else None
        if seq == len(records) + 1 and rec.get("mac") == sign(key, seq, rec):
            records.append({k: v for k, v in rec.items() if k not in ("seq", "mac")})
        else:
            forged += 1
    tail = (work / "child.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
    return Run(records, proc.returncode, timed_out, seconds, " | ".join(tail)[-400:], forged)


def _child_setup(fd: int, limits: Limits) -> None:
    """In the forked child before exec: the results file becomes fd 3, then the limits."""
    if fd != 3:
        os.dup2(fd, 3)
    _set_limits(limits)
