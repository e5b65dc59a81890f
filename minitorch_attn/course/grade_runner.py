"""Inside the sandbox: run one lesson's official graded tests on one learner's extracted code.

    python -m minitorch_attn.course.grade_runner SPEC.json RESULT_FD   (the record key on stdin)

Started by `sandbox.run_sandboxed` (never by hand). SPEC names the graded test file, the learner's code
cells (already extracted and reviewed by the trusted grader, `extract.py`) and the time limits; RESULT_FD is
a file descriptor the grader opened on a file that lies outside the sandbox's view: one JSON line per cell
and per test goes there, never to stdout (which the grader keeps only as a log and never parses). Each
record carries a sequence number and an HMAC-SHA256 under a key the grader writes to stdin (read before any
learner code exists, kept only in the channel): a line the learner's code writes to that descriptor, or
anywhere, is not a record the grader accepts.

The order is the point of this file. 1. pytest starts, loads the course plugin and imports the graded test
file: its references and helpers (`ref_softmax`, `assert_close`, numpy, pytest itself) are bound before any
learner code exists. 2. Only then, when the first test asks for `impl`, the harness snapshots the objects
the verdicts rest on (`Fingerprint`), installs an audit hook (`sys.addaudithook`: it cannot be removed) that
refuses, while a learner frame is on the stack, the events a cheat needs (new imports beyond numpy/math/the
library, open, exec/compile, gc, signals, fork, os.system, subprocess, sockets, tracing; frames and ctypes when
the learner calls them directly), and executes the learner's cells one by one, each under a per-cell
timeout, in a fresh module. File events that library code raises on the learner's behalf are let through
for the library's own files, the Python installation and the private /tmp (lazy imports, numba's cache), and
refused elsewhere (`_library_file_access`). 3. After every cell and every test the fingerprint (and the
number of Python threads: 3.11 audits no thread start) is compared; a changed helper, numpy function,
builtin, test global or harness method, a new thread or a refused audit event is recorded against the
exercise that was running ("tampering"); the grader gives that exercise no points and grades the others
again without it. In the instructor's copy a definition that is the library's own object (or a subclass)
is reported as such (`_library_object`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import sys
import time
import types

LEARNER_PREFIX = "<submission"  # the filename every learner cell is compiled with
ALLOWED_IMPORTS = {"numpy", "math", "numba", "functools", "itertools", "typing", "dataclasses", "collections",
                   "__future__", "minitorch_attn"}
DENIED_ANYWHERE = ("open", "os.", "subprocess.", "socket.", "gc.", "sys.settrace",
                   "sys.setprofile", "_thread.start", "sys._current_frames", "sys.addaudithook",
                   "shutil.", "webbrowser.", "pty.", "signal.", "resource.setrlimit")
# numba uses ctypes when it compiles a learner's @njit function; typing, enum, dataclasses read frames
DENIED_DIRECT_PREFIX = ("ctypes.", "sys._getframe")
DENIED_DIRECT = ("exec", "compile", "object.__getattr__", "object.__setattr__", "object.__delattr__",
                 "builtins.input", "code.__new__", "function.__new__")


class CellTimeout(BaseException):
    """Raised in the learner's cell (or test) by the per-cell alarm; a BaseException so `except Exception`
    in learner code does not swallow it."""


def sign(key: bytes, seq: int, record: dict) -> str:
    """The MAC of one record (the grader checks it with the same function)."""
    body = json.dumps({k: v for k, v in record.items() if k not in ("seq", "mac")}, sort_keys=True)
    return hmac.new(key, f"{seq}:{body}".encode(), hashlib.sha256).hexdigest()


class Channel:
    """The result file descriptor: signed JSON lines, written only by the harness."""

    def __init__(self, fd: int, key: bytes):
        self.write_fd, self._key, self._seq = fd, key, 0

    def send(self, record: dict) -> None:
        self._seq += 1
        record = dict(record, seq=self._seq, mac=sign(self._key, self._seq, record))
        os.write(self.write_fd, (json.dumps(record) + "\n").encode("utf-8"))


class Guard:
    """The audit hook and the record of what it refused (kept in this closure, out of the learner's reach)."""

    def __init__(self):
        self.violations: list[str] = []
        self.active = False

    def _learner_frames(self):
        frame = sys._getframe(2)
        direct = None
        while frame is not None:
            name = frame.f_code.co_filename
            if direct is None and not name.startswith("<frozen importlib"):
                direct = name.startswith(LEARNER_PREFIX)
            if name.startswith(LEARNER_PREFIX):
                return True, bool(direct)
            frame = frame.f_back
        return False, False

    def hook(self, event: str, args) -> None:
        if not self.active:
            return
        direct_only = event in DENIED_DIRECT or event.startswith(DENIED_DIRECT_PREFIX)
        watched = event == "import" or event.startswith(DENIED_ANYWHERE) or direct_only
        if not watched:
            return
        self.active = False  # the hook's own calls raise events too
        try:
            anywhere, direct = self._learner_frames()
        finally:
            self.active = True
        if not anywhere:
            return
        if not direct and event in FILE_EVENTS:
            verdict = _library_file_access(event, args)
            if verdict == "allow":
                return  # the library imports a module lazily, numba caches its own code in the private /tmp
            if verdict == "refuse":  # a write into the read-only code: the mount would refuse it anyway
                raise PermissionError(f"refused by the grader: {event} {str(args[0])[:60]}")
        if event == "import":
            top = str(args[0]).split(".")[0] if args else ""
            if not direct or top in ALLOWED_IMPORTS and not str(args[0]).startswith("minitorch_attn.course"):
                return
            what = f"import {args[0]}"
        elif direct_only:
            if not direct:
                return
            what = event if not args else f"{event} {str(args[-1])[:40]}"
        else:
            what = f"{event} {str(args[0])[:60]}" if args else event
        self.violations.append(what)
        raise PermissionError(f"refused by the grader: {what}")


_CODE_DIRS = tuple(sorted({os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
                           os.path.realpath(sys.prefix) + os.sep, os.path.realpath(sys.base_prefix) + os.sep,
                           os.path.realpath(os.path.dirname(os.__file__)) + os.sep, "/usr/"}))
_SYSTEM_FILES = ("/proc/cpuinfo", "/sys/devices/system/cpu/")  # numba and numpy read the CPU's features
FILE_EVENTS = ("open", "os.listdir", "os.scandir", "os.mkdir", "os.remove", "os.rename", "os.rmdir", "os.chmod",
               "os.utime", "os.link", "os.symlink", "os.truncate")


def _private_dirs() -> tuple[str, ...]:
    import tempfile

    dirs = {os.path.realpath(tempfile.gettempdir())}
    if os.environ.get("NUMBA_CACHE_DIR"):
        dirs.add(os.path.realpath(os.environ["NUMBA_CACHE_DIR"]))
    return tuple(d.rstrip(os.sep) + os.sep for d in dirs)


_PRIVATE_DIRS = _private_dirs()


def _library_file_access(event: str, args) -> str:
    """What the guard does with a file event that library code (numpy, numba, the import system) raised
    while a learner frame is on the stack: "allow" reads of the library and Python, the CPU's description
    and anything in the private /tmp; "refuse" (unrecorded) writes into the read-only code; "" for the rest
    and listing folders; "" for the rest (reading the graded tests, /proc/self/...: recorded as tampering)."""
    path, mode, flags = (list(args) + [None, None, None])[:3]
    if not isinstance(path, (str, bytes, os.PathLike)):
        return ""
    path = os.path.realpath(os.fsdecode(path))
    if path.startswith(_PRIVATE_DIRS) or path + os.sep in _PRIVATE_DIRS:
        return "allow"
    writes = event not in ("open", "os.listdir", "os.scandir") or isinstance(mode, str) and \
        any(c in mode for c in "wax+") or isinstance(flags, int) and \
        bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))
    if path.startswith(_CODE_DIRS) or path in _SYSTEM_FILES[:1] or path.startswith(_SYSTEM_FILES[1]):
        return "refuse" if writes else "allow"
    if not writes and os.path.isdir(path):
        return "allow"  # the import system lists the folders of sys.path (names only, no contents)
    return ""


class Fingerprint:
    """Identity of every function, class and module held by the modules the verdicts rest on (builtins,
    math, numpy, pytest's runner and reports, the library, the course's checks, the graded test file),
    taken before learner code runs: monkeypatching any of them shows up as a difference. Plain values (a
    flag such as the library's grad mode) change legitimately and are not watched."""

    WATCHED = ("builtins", "math", "numpy", "pytest", "_pytest.runner", "_pytest.reports", "_pytest.python",
               "_pytest.main", "_pytest.outcomes", "_pytest.fixtures", "minitorch_attn", "__main__", "json", "hmac",
               "os", "sys", "types", "signal")

    def __init__(self, test_file: str):
        self.modules = {}
        for name, m in list(sys.modules.items()):
            if not isinstance(m, types.ModuleType):
                continue
            if name in self.WATCHED or name.startswith(("numpy.", "minitorch_attn.")) or \
                    getattr(m, "__file__", None) == test_file:
                self.modules[name] = m
        self.ids = {name: self._ids(m) for name, m in self.modules.items()}

    @staticmethod
    def _ids(module) -> dict:
        """id of every callable and module in `module`, and of every attribute of the classes it defines
        (`Recorder._finish`, `CheckFailed.__init__`): a replaced method shows up too."""
        out = {}
        try:
            items = list(vars(module).items())
        except TypeError:
            return out
        for k, v in items:
            if callable(v) or isinstance(v, types.ModuleType):
                out[k] = id(v)
            if isinstance(v, type) and getattr(v, "__module__", None) == module.__name__:
                out.update((f"{k}.{a}", id(b)) for a, b in list(vars(v).items()))
        return out

    def changes(self) -> list[str]:
        found = []
        for name, module in self.modules.items():
            if name in sys.modules and sys.modules[name] is not module:
                found.append(f"sys.modules[{name!r}] replaced")
            now = self._ids(module)
            for key, ident in self.ids[name].items():
                if now.get(key) != ident:
                    found.append(f"{name}.{key} replaced")
            if name == "__main__":
                found.extend(f"{name}.{key} added" for key in now.keys() - self.ids[name].keys())
            if name == "builtins":
                found.extend(f"builtins.{key} added" for key in now.keys() - self.ids[name].keys())
        return found


class _Alarm:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        def ring(signum, frame):
            raise CellTimeout(f"ran past the {self.seconds:g} s limit")

        self.previous = signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)
        return False


def _first_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().rstrip(":")
    return text.splitlines()[0][:300] if text else type(e).__name__


class _Missing:
    """Stands in for an exercise's definition that its code cell did not make (rejected, failed, taken out
    of the run): using it fails with the reason, and a test of another exercise that swaps in the graders'
    reference for it (`monkeypatch.setattr(impl, "merge_normalisers", ref)`) still can."""

    def __init__(self, name: str, why: str):
        self._message = f"{name} is not defined ({why})"

    def __getattr__(self, attr):
        raise AttributeError(self._message)

    def __call__(self, *args, **kwargs):
        raise NameError(self._message)

    def __repr__(self):
        return f"<{self._message}>"


def _thread_count() -> int:
    import _thread

    return _thread._count()


def _new_threads(before: int) -> list[str]:
    """Python 3.11 raises no audit event when a thread starts: count them (a learner's thread would run
    on into the tests; numba's own worker threads are native and not counted)."""
    now = _thread_count()
    return [f"started {now - before} thread(s)"] if now > before else []


def _no_numba_cache() -> None:
    """`@njit(cache=True)` in a learner's cell: there is no source file to cache against, and the sandbox
    keeps nothing; compile without a cache instead of failing."""
    try:
        from numba.core import dispatcher
    except ImportError:
        return
    dispatcher.Dispatcher.enable_caching = lambda self: None


def build_module(spec: dict, guard: Guard, channel: Channel, fingerprint_of) -> types.ModuleType:
    """Execute the official setup cell, then each learner cell (reviewed by the grader) in a fresh module."""
    module = types.ModuleType(f"mta_exercises.{spec['stem']}")
    module.__file__ = f"{LEARNER_PREFIX}: {spec['stem']}>"
    problems: dict[str, str] = {}


    if any("cache" in c["source"] for c in spec["cells"]):
        _no_numba_cache()
    exec(compile(spec["setup"], "<official setup cell>", "exec"), module.__dict__)  # noqa: S102
    fingerprint = fingerprint_of()
    threads = _thread_count()
    for cell in spec["cells"]:
        ex = cell["exercise"]
        start = time.perf_counter()
        record = {"kind": "cell", "exercise": ex, "outcome": "ok", "message": ""}
        guard.violations.clear()
        channel.send({"kind": "running", "exercise": ex, "what": "code cell"})
        try:
            code = compile(cell["source"], f"{LEARNER_PREFIX}: exercise {ex}>", "exec")
            guard.active = True
            with _Alarm(spec["cell_timeout"]):
                exec(code, module.__dict__)  # noqa: S102 - the learner's cell, inside the sandbox
        except CellTimeout as e:
            record.update(outcome="timeout", message=f"the cell {e}")
        except SyntaxError as e:
            record.update(outcome="syntax error", message=_first_line(e))
        except MemoryError:
            record.update(outcome="error", message="MemoryError")
        except BaseException as e:  # noqa: BLE001 - SystemExit, KeyboardInterrupt too: the cell failed
            record.update(outcome="error", message=_first_line(e))
        finally:
            guard.active = False
        tampered = guard.violations + fingerprint.changes() + _new_threads(threads)
        if tampered:
            record.update(outcome="tampering", message="; ".join(dict.fromkeys(tampered))[:300])
            fingerprint, threads = fingerprint_of(), _thread_count()  # later cells are judged on their own
        if record["outcome"] == "ok":
            borrowed = _library_object(spec, ex, module)
            if borrowed:
                record.update(outcome="library", message=borrowed)
        if record["outcome"] != "ok":
            problems[ex] = record["message"]
        record["seconds"] = round(time.perf_counter() - start, 3)
        channel.send(record)
    for ex, name in spec["names"].items():
        if name not in module.__dict__:
            why = f"its code cell: {problems.get(ex) or spec.get('absent', {}).get(ex, 'does not define it')}"
            module.__dict__[name] = _Missing(name, why)
    return module


def _library_object(spec: dict, ex: str, module) -> str:
    """In the instructor's copy (whose library holds the answers): the learner's definition of `ex` is the
    library's own object, or a subclass of it, however it was reached."""
    if spec.get("release"):
        return ""
    import importlib

    name, where = spec["names"][ex], spec["modules"][ex]
    mine = module.__dict__.get(name)
    try:
        theirs = getattr(importlib.import_module(where), name)
    except (ImportError, AttributeError):
        return ""
    if mine is theirs or isinstance(mine, type) and isinstance(theirs, type) and issubclass(mine, theirs):
        return f"{name} is the library's own {where}.{name}"
    return ""


class Recorder:
    """Pytest plugin: one record per graded test, with the exercise it was running when anything changed."""

    def __init__(self, spec, channel: Channel, guard: Guard):
        self.spec, self.channel, self.guard = spec, channel, guard
        self.fingerprint, self.threads = None, 0
        self.outcomes: dict[str, dict] = {}

    def name_of(self, item) -> str:
        parts = item.nodeid.split("::")[1:]
        parts[-1] = parts[-1].split("[")[0]
        return "::".join(parts)

    def pytest_runtest_protocol(self, item, nextitem):
        self.guard.violations.clear()
        from minitorch_attn.course.pytest_plugin import exercise_mark

        mark = exercise_mark(item)
        self.channel.send({"kind": "running", "exercise": mark[0] if mark else None, "what": self.name_of(item)})

    def pytest_runtest_call(self, item):
        self.guard.active = True

    def pytest_runtest_makereport(self, item, call):
        self.guard.active = False
        if call.when == "teardown" and call.excinfo is None:
            self._finish(item, None)
        elif call.excinfo is not None or call.when == "call":
            self._note(item, call)

    def _note(self, item, call):
        name = self.name_of(item)
        rec = self.outcomes.setdefault(name, {"kind": "test", "name": name, "outcome": "passed", "message": "",
                                              "seconds": 0.0})
        rec["seconds"] = round(rec["seconds"] + call.duration, 3)
        if call.excinfo is not None and rec["outcome"] == "passed":
            e = call.excinfo.value
            if isinstance(e, CellTimeout):
                rec.update(outcome="timeout", message=f"the test {e}")
            else:
                try:
                    crash = item.repr_failure(call.excinfo)
                    text = getattr(getattr(crash, "reprcrash", None), "message", None) or str(crash)
                except Exception:  # noqa: BLE001
                    text = _first_line(e)
                lines = [line.strip() for line in str(text).splitlines() if line.strip()]
                rec.update(outcome="failed", message=(lines[0] if lines else _first_line(e))[:300])

    def _finish(self, item, _):
        name = self.name_of(item)
        rec = self.outcomes.setdefault(name, {"kind": "test", "name": name, "outcome": "passed", "message": "",
                                              "seconds": 0.0})
        tampered = list(self.guard.violations) + (self.fingerprint.changes() if self.fingerprint else []) + \
            (_new_threads(self.threads) if self.fingerprint else [])
        if tampered:
            rec.update(outcome="tampering", message="; ".join(dict.fromkeys(tampered))[:300])
        self.guard.violations.clear()
        # one record per test case (a parametrised test sends one per case; the grader needs all to pass)
        self.channel.send(dict(rec, case=item.nodeid.split("::")[-1]))
        if rec["outcome"] != "passed":
            self.outcomes[name] = dict(rec)
        else:
            self.outcomes.pop(name, None)


def main(argv: list[str]) -> int:
    spec_path, fd = argv[0], int(argv[1])
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    key = bytes.fromhex(sys.stdin.readline().strip())
    sys.stdin.close()
    channel = Channel(fd, key)
    del key
    guard = Guard()
    import pytest

    from minitorch_attn.course import pytest_plugin

    recorder = Recorder(spec, channel, guard)
    state: dict = {}

    def fingerprint_of():
        return Fingerprint(spec["test_file"])

    def load(lesson, target="exercises", root=None):
        if "module" not in state:
            sys.addaudithook(guard.hook)
            state["module"] = build_module(spec, guard, channel, fingerprint_of)
            recorder.fingerprint, recorder.threads = fingerprint_of(), _thread_count()
        return state["module"]

    class TestAlarm:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_call(self, item):
            with _Alarm(spec["test_timeout"]):
                yield

    pytest_plugin.load = load  # the `load_target` fixture resolves `load` when it is called
    channel.send({"kind": "start", "pid": os.getpid()})
    rc = pytest.main([spec["test_file"], "-q", "--no-header", "--tb=line", "-p", "no:cacheprovider",
                      "-p", "no:faulthandler", "-p", "no:doctest", "-p", "no:pastebin", "-p", "no:junitxml",
                      f"--rootdir={spec['course']}", f"--course-root={spec['course']}", "--target=exercises",
                      "-W", "ignore"], plugins=[recorder, TestAlarm()])
    channel.send({"kind": "end", "exit": int(rc)})
    sys.stdout.flush()
    os._exit(0)  # no interpreter shutdown: learner objects' finalizers do not get to run after the end record


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
