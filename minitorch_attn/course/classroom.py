"""Grade a class: `python -m minitorch_attn grade-class SUBMISSIONS_DIR --lesson NN`.

    SUBMISSIONS_DIR/alice.ipynb                      student "alice" (the file's stem)
    SUBMISSIONS_DIR/bob/handouts/lesson02_softmax.ipynb   student "bob" (the folder's name; the notebook is
                                                     found anywhere below it: the one named like the handout,
                                                     else the only lessonNN_*.ipynb, else the only .ipynb)

Each submission is graded on its own: the grader builds the grading copy (the learner's cells with the
official check cells put back and the hidden checks added: `handout.grading_notebook`), writes it into a new
temporary folder, and runs `pytest --nbval-lax` on it in a child process of its own, in a new session, with
a per-cell timeout (nbval interrupts the cell), a per-notebook timeout (the child's whole session is killed),
and resource limits set in the child before the kernel starts (address space, CPU seconds, file size, no core
dumps), which the kernel inherits. The child records each cell's outcome, as it finishes, in a file outside
the kernel's working folder. A submission that breaks (a syntax error, an infinite loop, `os._exit`, a cell
that deletes files or eats memory) costs its own points only; see docs/instructors.md for what is and is not
protected.

Outputs (in --out, default out/classroom/lessonNN): grades.csv (student, exercise, points, max, status,
first_error) and grades.json (the same per exercise, plus every check's outcome and the integrity findings).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from . import catalog
from .handout import MISSING, MODIFIED, GradedTest, grading_notebook, official_checks

DEFAULT_CELL_TIMEOUT = 60.0
DEFAULT_NOTEBOOK_TIMEOUT = 600.0
DEFAULT_MEMORY_MB = 4096
RESULTS = "results.jsonl"

# statuses, per check and per exercise
PASS, PARTIAL, FAIL = "pass", "partial", "fail"
TIMEOUT, KERNEL_DIED, NOTEBOOK_TIMEOUT = "timeout", "kernel died", "notebook timeout"
SYNTAX_ERROR, CODE_ERROR = "syntax error", "error in code cell"
UNREADABLE, NO_NOTEBOOK, GRADER_ERROR, NOT_RUN = "unreadable notebook", "no notebook", "grader error", "not run"


# ---- finding the submissions ------------------------------------------------------------------------------
@dataclass
class Submission:
    student: str
    path: Path | None
    problem: str = ""


def find_submissions(folder: Path, lesson: str) -> list[Submission]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of submissions")
    wanted = f"{catalog.lesson_stem(lesson)}.ipynb"
    prefix = catalog.lesson_stem(lesson).split("_")[0] + "_"
    out = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            out.append(Submission(entry.stem, entry))
        elif entry.is_dir():
            found = sorted(p for p in entry.rglob("*.ipynb")
                           if ".ipynb_checkpoints" not in p.parts and not any(
                               part.startswith(".") for part in p.relative_to(entry).parts))
            for choose in ([p for p in found if p.name == wanted], [p for p in found if p.name.startswith(prefix)],
                           found):
                if len(choose) == 1:
                    out.append(Submission(entry.name, choose[0]))
                    break
                if len(choose) > 1:
                    names = ", ".join(str(p.relative_to(entry)) for p in choose)
                    out.append(Submission(entry.name, None, f"several notebooks ({names}); keep one"))
                    break
            else:
                out.append(Submission(entry.name, None, "no .ipynb in the folder"))
    return out


# ---- the child: run one grading copy under nbval ---------------------------------------------------------
class KernelDied(RuntimeError):
    pass


def _patch_nbval_kernel_death() -> None:
    """nbval waits the whole cell timeout for a reply from a kernel that has died; poll, and fail at once."""
    from queue import Empty

    from nbval import kernel as nbval_kernel

    def await_reply(self, msg_id, timeout=None):
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        while True:
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            try:
                msg = self.get_message(stream="shell", timeout=wait)
            except Empty:
                if not self.is_alive():
                    raise KernelDied("kernel died while running this cell") from None
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                if msg["content"]["status"] == "aborted":
                    raise RuntimeError("Kernel aborted execution request")
                self.mta_reply_status = msg["content"].get("status")  # checked by _CellRecorder
                return

    if hasattr(nbval_kernel.RunningKernel, "await_reply"):
        nbval_kernel.RunningKernel.await_reply = await_reply


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failed|Warning)): ?(.*)$")


def failure_message(text: str) -> tuple[str, str]:
    """(status, first error line) from nbval's report of a failed cell."""
    text = _ANSI.sub("", text or "")
    if "Timeout of" in text:
        return TIMEOUT, "the cell ran past the cell timeout and was interrupted"
    if "KernelDied" in text or "kernel died" in text or "Kernel dead" in text or "Kernel died" in text:
        return KERNEL_DIED, "the kernel died (os._exit, a signal, or out of memory)"
    lines = [line.rstrip() for line in text.splitlines()]
    for line in lines:
        if line.startswith("CheckFailed: "):
            return FAIL, line[len("CheckFailed: "):]
    matches = [m for m in map(_EXC_LINE.match, lines) if m]
    if matches:
        m = matches[-1]
        status = SYNTAX_ERROR if m.group(1) in ("SyntaxError", "IndentationError", "TabError") else FAIL
        return status, f"{m.group(1)}: {m.group(2)}".rstrip(": ")
    rest = [line.strip() for line in lines if line.strip()]
    return FAIL, rest[0] if rest else "the cell failed"


class _CellRecorder:
    """Pytest plugin in the child: one JSON line per notebook cell, written as soon as it has run."""

    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed at session finish
        self.kernel_written = False

    def _write(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def pytest_runtest_call(self, item):
        if not self.kernel_written:
            kernel = getattr(item.parent, "kernel", None)
            km = getattr(kernel, "km", None)
            pid = getattr(getattr(km, "provisioner", None), "pid", None)
            if pid:
                self._write({"kernel_pid": pid})
                self.kernel_written = True

    def pytest_runtest_makereport(self, item, call):
        cell = getattr(item, "cell", None)
        if cell is None or call.when == "teardown" or (call.when == "setup" and call.excinfo is None):
            return
        meta = cell.get("metadata", {})
        mine = meta.get("minitorch_attn", {}) if isinstance(meta.get("minitorch_attn"), dict) else {}
        nbg = meta.get("nbgrader", {}) if isinstance(meta.get("nbgrader"), dict) else {}
        record = {"cell": getattr(item, "cell_num", None), "grade_id": nbg.get("grade_id"),
                  "role": mine.get("role"), "exercise": mine.get("exercise"), "when": call.when,
                  "seconds": round(call.duration, 3)}
        if call.excinfo is None:
            record["outcome"] = "passed"
            doubt = self._doubt(item, mine)
            if doubt:
                record["outcome"], record["status"], record["message"] = "failed", *doubt
        else:
            try:
                text = str(item.repr_failure(call.excinfo))
            except Exception as e:  # noqa: BLE001 - a report must still be written
                text = f"{type(e).__name__}: {e}"
            if call.excinfo.errisinstance(KernelDied):
                text = "KernelDied"
            record["outcome"] = "failed"
            record["status"], record["message"] = failure_message(text)
        self._write(record)

    @staticmethod
    def _doubt(item, mine: dict) -> tuple[str, str] | None:
        """nbval passes a cell when no error message reached it; a kernel short of memory can lose that
        message. A cell passes here only if the kernel's reply said "ok" and, for a check, the check printed
        its confirmation line."""
        kernel = getattr(item.parent, "kernel", None)
        alive = kernel is not None and kernel.is_alive()
        reply = getattr(kernel, "mta_reply_status", "ok")
        if kernel is not None:
            kernel.mta_reply_status = None
        confirmed = True
        if mine.get("role") == "check":
            line = f"Exercise {mine.get('exercise')}: {mine.get('test')} passed"
            text = "".join(o.get("text", "") for o in getattr(item, "test_outputs", None) or []
                           if o.get("output_type") == "stream")
            confirmed = line in text
        if reply == "ok" and confirmed:
            return None
        if not alive:
            return KERNEL_DIED, "the kernel died (os._exit, a signal, or out of memory)"
        return FAIL, ("the cell reported an error that did not arrive (out of memory?)" if reply != "ok"
                      else "the check did not confirm that it passed")

    def pytest_sessionfinish(self):
        self.file.close()


def _set_limits(spec: dict) -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    limits = [(resource.RLIMIT_CORE, 0)]
    if spec.get("memory_mb"):
        limits.append((resource.RLIMIT_AS, int(spec["memory_mb"]) * 2**20))
    if spec.get("cpu_seconds"):
        limits.append((resource.RLIMIT_CPU, int(spec["cpu_seconds"])))
    limits.append((resource.RLIMIT_FSIZE, 2**30))
    for which, value in limits:
        try:
            soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, hard))
        except (ValueError, OSError):
            pass


def child_main(workdir: str) -> int:
    """Entry point of the child process: `python -m minitorch_attn.course.classroom WORKDIR`."""
    import pytest

    work = Path(workdir)
    spec = json.loads((work / "spec.json").read_text(encoding="utf-8"))
    _set_limits(spec)
    _patch_nbval_kernel_death()
    notebook = work / spec["notebook"]
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # nbval only (set before pytest reads it)
    args = [str(notebook), "-p", "nbval.plugin", "--nbval-lax", "--nbval-current-env",
            f"--nbval-cell-timeout={spec['cell_timeout']}", "-p", "no:cacheprovider", "-q",
            "-c", str(work / "pytest.ini"), f"--rootdir={notebook.parent}"]
    pytest.main(args, plugins=[_CellRecorder(work / RESULTS)])
    return 0


# ---- the parent: grade one submission ------------------------------------------------------------------------
@dataclass
class Options:
    root: Path
    cell_timeout: float = DEFAULT_CELL_TIMEOUT
    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    keep: bool = False


@dataclass
class Graded:
    student: str
    notebook: str
    exercises: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    integrity: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self):
        return _num(sum(r["points"] for r in self.exercises))

    @property
    def max(self):
        return _num(sum(r["max"] for r in self.exercises))


def _num(x):
    x = round(float(x), 6)
    return int(x) if x.is_integer() else x


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40] or "student"


def _kill_kernel(pid: int) -> None:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"ipykernel" in cmdline:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def run_notebook(notebook: dict, opts: Options, student: str) -> tuple[list[dict], str]:
    """Run a grading copy in its own temporary folder and child process; ([cell records], problem)."""
    work = Path(tempfile.mkdtemp(prefix=f"mta-grade-{_safe(student)}-"))
    problem = ""
    try:
        nbdir = work / "nb"
        nbdir.mkdir()
        (nbdir / "submission.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
        (work / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        (work / "spec.json").write_text(json.dumps({
            "notebook": "nb/submission.ipynb", "cell_timeout": opts.cell_timeout, "memory_mb": opts.memory_mb,
            "cpu_seconds": int(opts.notebook_timeout * 2 + 60)}), encoding="utf-8")
        for sub in ("runtime", "ipython"):
            (work / sub).mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("MTA_USE", "PYTEST_ADDOPTS", "MTA_TARGET")}
        env.update(MTA_COURSE_ROOT=str(opts.root), JUPYTER_RUNTIME_DIR=str(work / "runtime"),
                   IPYTHONDIR=str(work / "ipython"), JUPYTER_PLATFORM_DIRS="1", MPLBACKEND="Agg",
                   PYTHONDONTWRITEBYTECODE="1")
        with open(work / "child.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "minitorch_attn.course.classroom", str(work)],
                                    cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                proc.wait(timeout=opts.notebook_timeout)
            except subprocess.TimeoutExpired:
                problem = NOTEBOOK_TIMEOUT
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                proc.wait()
        records = []
        results = work / RESULTS
        if results.is_file():
            for line in results.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        for r in records:
            if "kernel_pid" in r:
                _kill_kernel(int(r["kernel_pid"]))
        if not problem and proc.returncode != 0:
            tail = (work / "child.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
            problem = f"{GRADER_ERROR}: the grading process exited with code {proc.returncode}" + (
                f" ({tail[0][:200]})" if tail else "")
        return [r for r in records if "kernel_pid" not in r], problem
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept the working copy of {student}: {work}", file=sys.stderr)


def _exercise_rows(student: str, lesson: str, checks, code: dict, problem: str) -> list[dict]:
    rows = []
    for ex in catalog.for_lesson(lesson):
        mine = [c for c in checks if c["exercise"] == ex.id]
        if not mine:
            continue
        earned = sum(c["points"] for c in mine)
        maximum = sum(c["max"] for c in mine)
        statuses = [c["status"] for c in mine]
        code_rec = code.get(ex.id)
        code_status = code_rec.get("status") if code_rec and code_rec.get("outcome") == "failed" else None
        if MODIFIED in statuses:
            status = MODIFIED
        elif MISSING in statuses:
            status = MISSING
        elif all(s == PASS for s in statuses):
            status = PASS
        elif KERNEL_DIED in statuses or code_status == KERNEL_DIED:
            status = KERNEL_DIED
        elif TIMEOUT in statuses or code_status == TIMEOUT:
            status = TIMEOUT
        elif problem and any(s == NOT_RUN for s in statuses):
            status = problem.split(":")[0]
        elif code_status == SYNTAX_ERROR:
            status = SYNTAX_ERROR
        elif code_status is not None:
            status = CODE_ERROR
        else:
            status = PARTIAL if any(s == PASS for s in statuses) else FAIL
        first = ""
        if status != PASS:
            if code_status is not None and status in (SYNTAX_ERROR, CODE_ERROR, TIMEOUT, KERNEL_DIED):
                first = f"code cell: {code_rec.get('message', '')}"
            else:
                first = next((c["error"] for c in mine if c["status"] != PASS and c["error"]), "")
        rows.append({"student": student, "exercise": ex.id, "points": _num(earned), "max": _num(maximum),
                     "status": status, "first_error": first})
    return rows


def grade_submission(sub: Submission, lesson: str, checks: list[GradedTest], opts: Options) -> Graded:
    """Grade one learner's notebook against the official `checks` (`handout.official_checks`)."""
    start = time.perf_counter()
    graded = Graded(sub.student, str(sub.path) if sub.path else "")
    problem, records, integrity = "", [], {}
    if sub.path is None:
        problem = f"{NO_NOTEBOOK}: {sub.problem}"
    else:
        try:
            submission = json.loads(sub.path.read_text(encoding="utf-8"))
            if not isinstance(submission, dict) or not isinstance(submission.get("cells"), list):
                raise ValueError("not a Jupyter notebook (no list of cells)")
        except (OSError, ValueError, UnicodeDecodeError) as e:
            problem = f"{UNREADABLE}: {type(e).__name__}: {str(e)[:160]}"
        else:
            notebook, found = grading_notebook(submission, checks)
            integrity = found.problems
            if found.duplicates:
                graded.notes.append(f"{found.duplicates} repeated check cell(s) dropped")
            records, problem = run_notebook(notebook, opts, sub.student)
    by_id = {r["grade_id"]: r for r in records if r.get("grade_id")}
    code = {r["exercise"]: r for r in records if r.get("role") == "code"}
    for t in checks:
        rec = by_id.get(t.grade_id)
        entry = {"exercise": t.exercise, "test": t.name, "grade_id": t.grade_id, "max": _num(t.points),
                 "hidden": t.hidden, "points": 0, "status": NOT_RUN, "error": ""}
        if t.grade_id in integrity:
            entry["status"] = integrity[t.grade_id]
            entry["error"] = f"{integrity[t.grade_id]}: {t.name} (an edited or deleted check earns no points)"
        elif rec is None:
            entry["error"] = problem.split(":")[0] if problem else "the cell was not run"
        elif rec["outcome"] == "passed":
            entry.update(points=_num(t.points), status=PASS)
        else:
            entry.update(status=rec.get("status", FAIL), error=rec.get("message", ""))
        graded.checks.append(entry)
    graded.integrity = integrity
    if problem:
        graded.notes.append(problem)
    graded.exercises = _exercise_rows(sub.student, lesson, graded.checks, code, problem)
    if problem and (problem.startswith(UNREADABLE) or problem.startswith(NO_NOTEBOOK)):
        for row in graded.exercises:
            row["status"], row["first_error"] = problem.split(":")[0], problem.split(": ", 1)[-1]
    graded.seconds = round(time.perf_counter() - start, 2)
    return graded


# ---- the class ---------------------------------------------------------------------------------------------
def grade_class(folder: Path, lesson: str, opts: Options, jobs: int = 2, progress: bool = True) -> dict:
    lesson = catalog.resolve_lesson(lesson)
    checks = official_checks(opts.root, lesson)
    if not checks:
        raise FileNotFoundError(f"no graded tests for lesson {lesson} in {opts.root}/tests/exercises")
    subs = find_submissions(folder, lesson)
    results: dict[str, Graded] = {}
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(subs), desc=f"grading lesson {lesson.split('_')[0]}", unit="student",
                   file=sys.stderr)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(grade_submission, s, lesson, checks, opts): s for s in subs}
        for fut in as_completed(futures):
            s = futures[fut]
            try:
                results[s.student] = fut.result()
            except Exception as e:  # noqa: BLE001 - one submission never stops the others
                g = Graded(s.student, str(s.path))
                g.notes.append(f"{GRADER_ERROR}: {type(e).__name__}: {e}")
                g.exercises = [{"student": s.student, "exercise": ex.id, "points": 0,
                                "max": _num(sum(t.points for t in checks if t.exercise == ex.id)),
                                "status": GRADER_ERROR, "first_error": f"{type(e).__name__}: {e}"}
                               for ex in catalog.for_lesson(lesson)]
                results[s.student] = g
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(s.student)
    if bar is not None:
        bar.close()
    students = [results[s.student] for s in subs]
    return {
        "lesson": lesson,
        "course_root": str(opts.root),
        "cell_timeout": opts.cell_timeout,
        "notebook_timeout": opts.notebook_timeout,
        "seconds": round(time.perf_counter() - start, 2),
        "max": _num(sum(t.points for t in checks)),
        "students": [{"student": g.student, "notebook": g.notebook, "total": g.total, "max": g.max,
                      "seconds": g.seconds, "notes": g.notes, "integrity": g.integrity,
                      "exercises": g.exercises, "checks": g.checks} for g in students],
    }


CSV_FIELDS = ["student", "exercise", "points", "max", "status", "first_error"]


def write_reports(report: dict, out: Path) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / "grades.csv", out / "grades.json"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for s in report["students"]:
        for row in s["exercises"]:
            writer.writerow({k: row[k] for k in CSV_FIELDS})
    csv_path.write_text(buf.getvalue(), encoding="utf-8")
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return csv_path, json_path


def _clip(s: str, width: int) -> str:
    return s if len(s) <= width else s[: width - 1] + "…"


def format_class_table(report: dict, error_width: int = 70) -> str:
    """One row per student: points per exercise, total, and what went wrong where."""
    ids = [ex.id for ex in catalog.for_lesson(report["lesson"])
           if any(r["exercise"] == ex.id for s in report["students"] for r in s["exercises"])]
    head = ["student", *ids, "total", "notes"]
    rows = [head]
    for s in report["students"]:
        by = {r["exercise"]: r for r in s["exercises"]}
        cells = [s["student"]]
        for i in ids:
            r = by.get(i)
            cells.append(f"{r['points']}/{r['max']}" if r else "-")
        cells.append(f"{s['total']}/{s['max']}")
        notes = [f"{r['exercise']} {r['status']}" + (f" ({r['first_error']})" if r["first_error"] else "")
                 for r in s["exercises"] if r["status"] != PASS]
        cells.append(_clip("; ".join(notes), error_width))
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(f"{c:{w}}" for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  -----")
    n = len(report["students"])
    lines.append(f"{n} submission(s) graded in {report['seconds']} s (lesson {report['lesson']}, max "
                 f"{report['max']} points)")
    return "\n".join(line.rstrip() for line in lines)


def build_parser(prog: str = "python -m minitorch_attn grade-class") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="grade a folder of submitted notebooks",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("submissions", help="folder of NAME.ipynb files or NAME/ folders (one per student)")
    p.add_argument("--lesson", required=True, help="the lesson the notebooks are for (02, 02_softmax, ...)")
    p.add_argument("--out", help="where to write grades.csv and grades.json (default out/classroom/lessonNN)")
    p.add_argument("--cell-timeout", type=float, default=DEFAULT_CELL_TIMEOUT,
                   help=f"seconds one cell may run (default {DEFAULT_CELL_TIMEOUT:g})")
    p.add_argument("--notebook-timeout", type=float, default=DEFAULT_NOTEBOOK_TIMEOUT,
                   help=f"seconds one notebook may run, kernel start included (default {DEFAULT_NOTEBOOK_TIMEOUT:g})")
    p.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB,
                   help=f"address-space limit of each grading process and its kernel (default {DEFAULT_MEMORY_MB})")
    p.add_argument("--jobs", "-j", type=int, default=min(4, os.cpu_count() or 1),
                   help="submissions graded at once (default: min(4, CPUs))")
    p.add_argument("--root", help="the instructor's course checkout (default: found as for `course grade`)")
    p.add_argument("--keep-workdirs", action="store_true", help="keep each submission's temporary folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    from .targets import find_root

    args = build_parser().parse_args(argv)
    try:
        lesson = catalog.resolve_lesson(args.lesson)
        root = find_root(args.root)
        opts = Options(root=root, cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                       memory_mb=args.memory_mb, keep=args.keep_workdirs)
        report = grade_class(Path(args.submissions), lesson, opts, jobs=args.jobs, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as e:
        print(f"grade-class: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("out") / "classroom" / catalog.lesson_stem(lesson)
    csv_path, json_path = write_reports(report, out)
    print(format_class_table(report))
    print(f"wrote {csv_path} and {json_path}")
    return 0


# ---- one check, by either route (GitHub Classroom) ----------------------------------------------------------
_GRADE_ID = re.compile(r"^ex-([0-9]+\.[0-9]+)-(.+)$")


def graded_notebook_cached(notebook: Path, lesson: str, opts: Options, cache_dir: Path) -> Graded:
    """Grade one notebook (as grade-class does), caching the result by the notebook's content."""
    import hashlib

    key = hashlib.sha256(notebook.read_bytes() + str(opts.root).encode()).hexdigest()[:24]
    cache = cache_dir / f"{catalog.lesson_stem(lesson)}-{key}.json"
    if cache.is_file():
        data = json.loads(cache.read_text(encoding="utf-8"))
        return Graded(**data)
    graded = grade_submission(Submission(notebook.stem, notebook), lesson, official_checks(opts.root, lesson), opts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(graded.__dict__), encoding="utf-8")
    return graded


def autograde(grade_id: str, root: Path, opts: Options | None = None) -> int:
    """Exit status 0 when the learner passes graded check `grade_id` ("ex-2.1-test_softmax_backward") by
    either route: the pytest grader on exercises/, or the check in handouts/ (graded in isolation)."""
    match = _GRADE_ID.match(grade_id)
    if not match:
        raise ValueError(f"{grade_id!r} is not a check id (ex-<exercise>-<test>, as in autograding.json)")
    ex = catalog.get(match.group(1))
    test = match.group(2)
    root = Path(root)
    opts = opts or Options(root=root, cell_timeout=120, notebook_timeout=900)
    rel = f"tests/exercises/test_{ex.stem}.py"
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "grade.json"
        proc = subprocess.run([sys.executable, "-m", "pytest", f"{rel}::{test}", "-q", "--no-header",
                               "--tb=short", "-p", "no:cacheprovider", "--target=exercises",
                               f"--course-root={root}", f"--rootdir={root}", f"--grade-json={report_path}"],
                              cwd=root, capture_output=True, text=True)
        report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    if proc.returncode == 0:
        print(f"{grade_id}: passed (pytest on exercises/{ex.stem}.py)")
        return 0
    messages = [t.get("message", "") for t in report.get("tests", []) if t.get("message")]
    if not messages:
        messages = [line for line in proc.stdout.splitlines() if line.strip()][-1:]
    print(f"{grade_id}: not passed by exercises/{ex.stem}.py" + (f": {messages[0]}" if messages else ""))
    notebook = root / "handouts" / f"{ex.stem}.ipynb"
    if notebook.is_file():
        graded = graded_notebook_cached(notebook, ex.lesson, opts, root / "out" / "classroom" / "autograde")
        entry = next((c for c in graded.checks if c["grade_id"] == grade_id), None)
        if entry is not None and entry["status"] == PASS:
            print(f"{grade_id}: passed (handouts/{notebook.name})")
            return 0
        why = f"{entry['status']}: {entry['error']}" if entry else "no such check in the notebook"
        print(f"{grade_id}: not passed by handouts/{notebook.name} ({why})")
    return 1


if __name__ == "__main__":
    if len(sys.argv) == 2 and not sys.argv[1].startswith("-") and (Path(sys.argv[1]) / "spec.json").is_file():
        sys.exit(child_main(sys.argv[1]))
    sys.exit(main())
