"""What the grader takes from a submitted notebook: the code of each exercise, and nothing else it trusts.

The list of exercises, their names and points come from the instructor's catalog and graded tests, never
from the submission. From the notebook the grader reads only the source of the code cells whose nbgrader
`grade_id` is `ex-<id>-code` for an exercise of the lesson (the handout's own metadata; a learner who
deletes it loses that exercise's code: "code cell missing"); check cells, outputs and every other cell are
ignored (the notebook's checks are for the learner's instant feedback). The setup cell is the official one.

Before anything runs, `review` reads each exercise's code with `ast` and rejects what an exercise never
needs and a cheat always does: imports beyond numpy, math, numba, functools/itertools/typing/dataclasses/
collections and the library (not its `course` package); the builtins that reach around the language
(`eval`, `exec`, `compile`, `__import__`, `globals`, `locals`, `vars`, `setattr`, `delattr`, `open`,
`breakpoint`, `exit`, `quit`), unless the cell binds that name itself (a parameter called `input`);
dunder attributes other than `__init__`/`__name__`/`__class__`/
`__call__` and frame attributes (`tb_frame`, `f_back`, `f_locals`, ...), also through `getattr`/`hasattr`
(whose name must be a literal); assigning or deleting an attribute
of an imported module (`np.allclose = ...`); and, in the instructor's copy, whose library holds the answers,
taking the exercise's name from the library (`from minitorch_attn.autograd.ops import Softmax`,
`ops.Softmax`). A rejected cell is not run; its exercise earns nothing and says why.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field

from . import catalog
from .handout import code_grade_id
from .source import parse as parse_python

ALLOWED_MODULES = {"numpy", "math", "numba", "functools", "itertools", "typing", "dataclasses", "collections",
                   "__future__", "minitorch_attn"}
DENIED_NAMES = {"eval", "exec", "compile", "__import__", "globals", "locals", "vars", "setattr", "delattr",
                "open", "breakpoint", "exit", "quit", "__builtins__", "__loader__", "__spec__"}
ALLOWED_DUNDERS = {"__init__", "__name__", "__class__", "__call__", "__future__"}
FRAME_ATTRS = {"tb_frame", "tb_next", "f_back", "f_locals", "f_globals", "f_code", "f_builtins", "gi_frame",
               "cr_frame", "ag_frame", "co_code", "func_globals"}

REJECTED = "rejected"
CODE_MISSING = "code cell missing"
LIBRARY = "uses the library's implementation"


@dataclass
class Cell:
    exercise: str
    source: str
    problem: str = ""  # why review rejected it ("" = accepted)
    status: str = ""  # REJECTED or LIBRARY when rejected


@dataclass
class Extracted:
    cells: list[Cell] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # exercises with no code cell
    duplicates: int = 0

    def code(self) -> str:
        """The code that was graded (accepted cells, in order): what the report's checksum covers."""
        return "\n\n".join(f"# ---- exercise {c.exercise}\n{c.source}" for c in self.cells if not c.problem)

    def checksum(self) -> str:
        return hashlib.sha256(self.code().encode("utf-8")).hexdigest()


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def imported_names(source: str) -> set[str]:
    """The names an import statement binds in `source` (the setup cell's `np`, `F`, `Function`, ...)."""
    out = set()
    for node in ast.walk(parse_python(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name.split(".")[0]) for a in node.names)
    return out


def extract(submission: dict, lesson: str, setup: str = "", release: bool = False) -> Extracted:
    """The code cells of `lesson`'s exercises in `submission` (a parsed notebook), reviewed; `setup` is the
    official setup cell (its imports count as imported modules for `review`)."""
    known = imported_names(setup) if setup else set()
    wanted = {code_grade_id(ex.id): ex for ex in catalog.for_lesson(lesson)}
    out, seen = Extracted(), set()
    for cell in submission.get("cells", []):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        nbg = meta.get("nbgrader") if isinstance(meta.get("nbgrader"), dict) else {}
        ex = wanted.get(nbg.get("grade_id"))
        if ex is None:
            continue
        if ex.id in seen:  # a second cell claiming the same exercise: only the first is graded
            out.duplicates += 1
            continue
        seen.add(ex.id)
        c = Cell(ex.id, _source(cell))
        c.problem, c.status = review(c.source, lesson, release, known)
        out.cells.append(c)
    out.missing = [ex.id for ex in catalog.for_lesson(lesson) if ex.id not in seen]
    return out


def review(source: str, lesson: str, release: bool = False, known: set[str] = frozenset()) -> tuple[str, str]:
    """("", "") when `source` may run; else (what was found, REJECTED | LIBRARY). `known`: names the setup
    cell imported."""
    try:
        tree = parse_python(source)
    except SyntaxError:
        return "", ""  # runs, and fails as a syntax error with the learner's own message
    names = {ex.name for ex in catalog.for_lesson(lesson)}
    modules: set[str] = set(known)
    bound = {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)} | \
        {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)} | \
        {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] not in ALLOWED_MODULES or a.name.startswith("minitorch_attn.course"):
                    return f"imports {a.name}", REJECTED
                modules.add(a.asname or a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level or mod.split(".")[0] not in ALLOWED_MODULES or mod.startswith("minitorch_attn.course") \
                    or mod == "minitorch_attn" and any(a.name == "course" for a in node.names):
                return f"imports from {'.' * node.level}{mod}", REJECTED
            for a in node.names:
                if not release and mod.startswith("minitorch_attn") and a.name in names:
                    return f"imports {a.name} from {mod}", LIBRARY
                if a.name == "*":
                    return f"imports * from {mod}", REJECTED
                modules.add(a.asname or a.name)
        elif isinstance(node, ast.Name) and node.id in DENIED_NAMES and node.id not in bound:
            return f"uses {node.id}", REJECTED
        elif isinstance(node, ast.Name) and node.id in ("getattr", "hasattr") and node.id not in bound and \
                not any(isinstance(p, ast.Call) and p.func is node for p in ast.walk(tree)):
            return f"passes {node.id} around (call it with a literal name)", REJECTED
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("getattr", "hasattr") and len(node.args) > 1:
            name = node.args[1]
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                return f"calls {node.func.id} with a computed name", REJECTED
            if name.value.startswith("__") and name.value not in ALLOWED_DUNDERS or name.value in FRAME_ATTRS:
                return f"uses the attribute {name.value}", REJECTED
            if not release and name.value in names:
                return f"takes {name.value} with {node.func.id}", LIBRARY
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("__") and node.attr not in ALLOWED_DUNDERS or node.attr in FRAME_ATTRS:
                return f"uses the attribute {node.attr}", REJECTED
            if not release and node.attr in names and isinstance(node.value, (ast.Name, ast.Attribute)):
                return f"takes {node.attr} from {ast.unparse(node.value)}", LIBRARY
    for node in ast.walk(tree):  # second pass: the module aliases are known now
        targets = []
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for t in targets:
            for sub in _changed(t):
                if _root_name(sub) in modules:
                    return f"changes {ast.unparse(sub)}, which belongs to an imported module", REJECTED
    return "", ""


def _changed(target):
    """The attribute nodes an assignment to `target` writes through (`np.x`, `np.x[0]`, `a, np.y`), not the
    ones it only reads (`out[np.arange(3)] = 0`)."""
    if isinstance(target, (ast.Tuple, ast.List)):
        for t in target.elts:
            yield from _changed(t)
        return
    node = target.value if isinstance(target, ast.Starred) else target
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Attribute):
            yield node
        node = node.value


def _root_name(node) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None
