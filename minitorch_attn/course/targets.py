"""Load a lesson's learner or solution file, and run the library on it.

    impl = load("lesson01_autograd", "exercises")   # <root>/exercises/lesson01_autograd.py, as a module
    use("exercises")                                 # the library now runs on the learner's definitions
    use("exercises", only=["1.2", "1.4"])            # ... on some of them
    use("library")                                   # back to the library's own code
    with use("solutions"): ...                       # for a block, then back to what was active before

`use` swaps each catalog definition into its defining module and into every already-imported
`minitorch_attn*` module that holds the same object under that name (`tensor.py` imports `unbroadcast`
from `function.py`, `autograd/__init__.py` re-exports `topological_order`, ...). Library code that looks
names up at call time (`ops.Mul.apply`, `fused.Softmax.apply`, `merge_normalisers(...)`) then runs the
swapped-in version. What captured the original elsewhere keeps it: a name your own script imported before
calling `use` (`from minitorch_attn.autograd.ops import Mul`; use `ops.Mul` or import after), a dict built
at import time, a subclass of a swapped class.

CUDA C exercises (lesson 11) are strings of CUDA C in the learner's file: `use` records them, and
`cuda_source(path)` -- what the lesson's kernel progression compiles -- is the .cu file with each recorded
definition spliced in place of the library's.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from . import catalog

TARGETS = ("exercises", "solutions")
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
RELEASE_FILE = Path(__file__).resolve().parent / "release.json"


class CourseRootNotFound(FileNotFoundError):
    pass


def is_release() -> bool:
    """True in a student release (made by `course release`): no solutions, the library's exercise code
    is stubbed and `import minitorch_attn` runs the library on `exercises/`."""
    return RELEASE_FILE.is_file()


def release_settings() -> dict:
    return json.loads(RELEASE_FILE.read_text(encoding="utf-8")) if is_release() else {}


def find_root(root: str | os.PathLike | None = None) -> Path:
    """The course folder holding `exercises/` (and, for instructors, `solutions/`).

    In order: `root` if given; $MTA_COURSE_ROOT; the checkout this package was installed from (an
    editable install) if it has `exercises/`; the nearest parent of the working directory with one."""
    if root is not None:
        return Path(root).resolve()
    env = os.environ.get("MTA_COURSE_ROOT")
    if env:
        path = Path(env).resolve()
        if not path.is_dir():
            raise CourseRootNotFound(f"MTA_COURSE_ROOT={env} is not a folder")
        return path
    here = _PACKAGE_DIR.parent
    if (here / "exercises").is_dir():
        return here
    cwd = Path.cwd().resolve()
    for folder in [cwd, *cwd.parents]:
        if (folder / "exercises").is_dir():
            return folder
    raise CourseRootNotFound(
        "cannot find the course folder (the one with exercises/): run from inside the course checkout, "
        "install it with `pip install -e .`, or set MTA_COURSE_ROOT=/path/to/course. Instructors: "
        "`python -m minitorch_attn course generate` creates exercises/ and solutions/."
    )


def lesson_file(lesson: str, target: str = "exercises", root=None) -> Path:
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}; got {target!r}")
    stem = catalog.lesson_stem(catalog.resolve_lesson(lesson))
    base = find_root(root)
    path = base / target / f"{stem}.py"
    if not path.is_file():
        if target == "solutions" and not (base / "solutions").exists():
            raise FileNotFoundError(
                f"there is no solutions/ folder in {base}: this looks like a student release, which ships "
                "without solutions. Grade your own code with --target=exercises (the default)."
            )
        raise FileNotFoundError(f"{path} does not exist. Instructors: run `python -m minitorch_attn course "
                                "generate`; learners: restore the file from the course release.")
    return path


_CACHE: dict[Path, tuple[float, ModuleType]] = {}


def load(lesson: str, target: str = "exercises", root=None, reload: bool = False) -> ModuleType:
    """Import `<root>/<target>/lessonNN_topic.py` by path (module name `mta_<target>.lessonNN_topic`).

    `lesson` may be the file stem ("lesson01_autograd"), the lesson id ("01_autograd") or its number
    ("01"). The module is cached per path and re-imported when the file changed (or `reload=True`)."""
    path = lesson_file(lesson, target, root)
    mtime = path.stat().st_mtime_ns
    cached = _CACHE.get(path)
    if cached is not None and cached[0] == mtime and not reload:
        return cached[1]
    name = f"mta_{target}.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    _CACHE[path] = (mtime, module)
    return module


# ---- use --------------------------------------------------------------------------------------------------
@dataclass
class _Patch:
    module: ModuleType
    name: str
    original: object


@dataclass
class _State:
    target: str = "library"
    only: tuple | None = None
    root: Path | None = None
    patches: list[_Patch] = field(default_factory=list)
    swapped: list[str] = field(default_factory=list)
    cuda: dict[str, str] = field(default_factory=dict)  # exercise id -> the CUDA C definition in use


_state = _State()


class Selection:
    """What `use` returns: a description of what the library now runs, usable as a context manager that
    restores the previous selection on exit."""

    def __init__(self, target: str, swapped: list[str], previous: tuple):
        self.target, self.swapped, self._previous = target, list(swapped), previous

    def __enter__(self) -> Selection:
        return self

    def __exit__(self, *exc) -> None:
        target, only, root = self._previous
        use(target, only=only, root=root)

    def __repr__(self) -> str:
        if self.target == "library":
            return "<minitorch_attn runs on its own code>"
        return f"<minitorch_attn runs on {self.target}/ for exercises {', '.join(self.swapped)}>"


def current() -> str:
    """"library", "exercises" or "solutions": what the catalog definitions currently run."""
    return _state.target


def _restore() -> None:
    for p in reversed(_state.patches):
        setattr(p.module, p.name, p.original)
    _state.patches.clear()
    _state.swapped.clear()
    _state.cuda.clear()
    _state.target, _state.only, _state.root = "library", None, None


def _library_modules():
    return [m for name, m in list(sys.modules.items())
            if m is not None and (name == "minitorch_attn" or name.startswith("minitorch_attn."))]


def use(target: str = "exercises", only=None, root=None) -> Selection:
    """Run the library on `target`'s definitions ("exercises" or "solutions"), or on its own ("library").

    `only`: exercise ids ("1.2"), lessons ("01", "01_autograd") or a list of them; default all. A
    stub that still raises NotImplementedError raises it when the library reaches that op."""
    previous = (_state.target, _state.only, _state.root)
    if target not in (*TARGETS, "library"):
        raise ValueError(f"use(target): expected 'exercises', 'solutions' or 'library'; got {target!r}")
    chosen = catalog.select(only)  # validate before touching anything
    # Load every file first, so that an error (a learner's syntax error) leaves the library as it was.
    replacements = []
    if target != "library":
        for ex in chosen:
            module = load(ex.lesson, target, root)
            if not hasattr(module, ex.name):
                raise AttributeError(f"{module.__file__} has no {ex.name!r} (exercise {ex.id}); regenerate "
                                     "it with `python -m minitorch_attn course generate` or restore it")
            value = getattr(module, ex.name)
            if ex.language == "cuda":
                from .source import cuda_text

                value = cuda_text(value, ex)
            replacements.append((ex, value))
    _restore()
    for ex, new in replacements:
        if ex.language == "cuda":  # nothing to patch: cuda_source() reads it
            _state.cuda[ex.id] = new
            _state.swapped.append(ex.id)
            continue
        defining = importlib.import_module(ex.module)
        original = getattr(defining, ex.name)
        for module in _library_modules():
            if module.__dict__.get(ex.name) is original:
                _state.patches.append(_Patch(module, ex.name, original))
                setattr(module, ex.name, new)
        _state.swapped.append(ex.id)
    if target != "library":
        _state.target = target
        _state.only = tuple(only) if isinstance(only, (list, tuple)) else only
        _state.root = Path(root) if root is not None else None
    return Selection(target, _state.swapped, previous)


def cuda_source(path: str | os.PathLike) -> str:
    """The CUDA C in the library's .cu file `path`, with the definitions of the CUDA exercises that `use`
    swapped in (the learner's or the solutions') in place of the library's own."""
    from .source import cuda_path, splice_cuda_definition

    path = Path(path).resolve()
    text = path.read_text(encoding="utf-8")
    for ex_id, definition in _state.cuda.items():
        ex = catalog.get(ex_id)
        if cuda_path(ex).resolve() == path:
            text = splice_cuda_definition(text, ex, definition, f"{_state.target}/ for exercise {ex_id}")
    return text


def original(module: str, name: str):
    """The library's own object for `module.name`, whatever `use` swapped in."""
    for p in _state.patches:
        if p.module.__name__ == module and p.name == name:
            return p.original
    return getattr(importlib.import_module(module), name)


def activate_release() -> None:
    """Called at the end of `import minitorch_attn` in a student release: run the library on the learner's
    exercises (unless $MTA_USE says "library"). A learner file that fails to import gives a warning, not
    an import error, so the rest of the course keeps working."""
    if not is_release():
        return
    target = os.environ.get("MTA_USE") or release_settings().get("default_target", "exercises")
    if target == "library":
        return
    try:
        use(target)
    except Exception as e:  # noqa: BLE001 - reported, not swallowed
        warnings.warn(f"minitorch_attn: could not run the library on {target}/ ({type(e).__name__}: {e}); "
                      "the library's own (stubbed) code is active. Fix the file, then re-import or call "
                      f"minitorch_attn.course.use({target!r}).", RuntimeWarning, stacklevel=2)
