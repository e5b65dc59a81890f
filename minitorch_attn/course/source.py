"""Read the exercises out of the library source: each catalog definition, its solution blocks, and the
imports a file holding it on its own needs. Everything here is plain text and `ast`: nothing imports the
library modules it reads, so the output depends on the source files alone (deterministic).

Markers. A solution block is the lines strictly between a line `### BEGIN SOLUTION` and the next line
`### END SOLUTION` (only whitespace around them). In a learner's file each block becomes

    ### YOUR CODE HERE (Exercise 1.2)
    raise NotImplementedError("Exercise 1.2: Mul.forward -- <hint>")
    ### END YOUR CODE

at the indentation of the marker it replaces.

CUDA C exercises (lesson 11; a catalog entry with `file="01_naive.cu"`). The definition is a top-level
function of that .cu file (from the `//` comment lines right above its first line to the first line that is
exactly `}`), and its solution blocks lie between the lines `// BEGIN SOLUTION` and `// END SOLUTION`. In the
generated Python files it becomes a raw triple-quoted string named after the function
(`softmax_rows = r<triple quote>`, a comment line naming the .cu file above it), holding the definition
verbatim; in exercises/ each block inside it becomes

        // YOUR CODE HERE (Exercise 11.1)
        // Exercise 11.1: softmax_rows -- <hint, as comment lines>
        // END YOUR CODE

so a learner's file, a handout cell and `course.use` all work as for Python. The stub compiles and does
nothing; the graded tests (`checks.cuda_exercise_source`) raise NotImplementedError while a block holds no
code, and otherwise splice the learner's text back into the .cu file in place of the definition
(`splice_cuda_definition`) and run it on the CPU harness. With several blocks, the keys of the exercise's
`part_hints` name them in order ("shared_tiles.stage", "shared_tiles.fold").
"""

from __future__ import annotations

import ast
import json
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from .catalog import Exercise

# The marker lines are assembled, not written out, so that this file never contains one itself
# (a student release checks that no marker line survives anywhere).
BEGIN_SOLUTION = "### BEGIN " + "SOLUTION"
END_SOLUTION = "### END " + "SOLUTION"
BEGIN_HIDDEN = "### BEGIN " + "HIDDEN TESTS"
END_HIDDEN = "### END " + "HIDDEN TESTS"
YOUR_CODE = "### YOUR CODE HERE"
END_YOUR_CODE = "### END YOUR CODE"
# CUDA C exercises: the same markers as C++ comments.
CUDA_BEGIN_SOLUTION = "// BEGIN " + "SOLUTION"
CUDA_END_SOLUTION = "// END " + "SOLUTION"
CUDA_YOUR_CODE = "// YOUR CODE HERE"
CUDA_END_YOUR_CODE = "// END YOUR CODE"

# CPython 3.11's ast.parse is not thread-safe: two threads building AST objects at once can raise
# "SystemError: AST constructor recursion depth mismatch" (seen in CI, where the classroom test grades two
# lessons on a thread pool). Every parse in the course package goes through `parse`, which holds this lock.
_PARSE_LOCK = threading.Lock()


def parse(text: str, filename: str = "<unknown>") -> ast.Module:
    """`ast.parse`, serialised across threads (see _PARSE_LOCK)."""
    with _PARSE_LOCK:
        return ast.parse(text, filename=filename)
_YOUR_CODE_RE = re.compile(r"^(\s*)(?:###|//) YOUR CODE HERE \(Exercise ([0-9.]+)\)\s*$")

LINE_LENGTH = 110
PACKAGE = "minitorch_attn"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


class SourceError(ValueError):
    """The library source does not have the shape the course machinery needs (a marker is missing, ...)."""


def library_dir(root: Path | None = None) -> Path:
    """The library source a project root holds (root/minitorch_attn), else the installed one."""
    if root is not None and (Path(root) / PACKAGE / "__init__.py").is_file():
        return (Path(root) / PACKAGE).resolve()
    return PACKAGE_DIR


def cuda_path(exercise: Exercise, package_dir: Path = PACKAGE_DIR) -> Path:
    """The .cu file of a CUDA C exercise: `exercise.file` in the folder of the package `exercise.module`."""
    folder = module_path(exercise.module, package_dir).parent
    path = folder / exercise.file
    if not path.is_file():
        raise SourceError(f"exercise {exercise.id}: cannot find {exercise.file} in {folder}")
    return path


def module_path(module: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """The source file of a `minitorch_attn...` module, found on disk (the module is not imported)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        raise SourceError(f"exercise module {module!r} is not inside the {PACKAGE} package")
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise SourceError(f"cannot find the source of {module!r} (looked for {base}.py and {base}/__init__.py)")


def _rel(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    try:
        return path.relative_to(package_dir.parent).as_posix()
    except ValueError:  # pragma: no cover - a path outside the checkout
        return str(path)


def is_marker(line: str, marker: str) -> bool:
    return line.strip() == marker


@dataclass(frozen=True)
class Block:
    """One solution block: lines[begin] is the BEGIN marker, lines[end] the END marker (0-based, in the
    definition's own lines), `part` the innermost function around it ("Mul.forward")."""

    begin: int
    end: int
    indent: str
    part: str


@dataclass(frozen=True)
class Definition:
    exercise: Exercise
    path: Path
    first_line: int  # 1-based, decorators included
    last_line: int
    lines: tuple[str, ...]  # the definition's lines, verbatim, without line endings
    blocks: tuple[Block, ...]
    names_used: frozenset[str]  # every Name the definition reads (for the imports)
    language: str = "python"  # "cuda": lines are the Python wrapper around the .cu definition
    offset: int = 0  # lines[offset] is line `first_line` of the file (the wrapper's lines come first)

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def file_index(self, i: int) -> int:
        """0-based line number in the source file of `lines[i]`."""
        return self.first_line - 1 + i - self.offset

    def solution_bodies(self) -> list[str]:
        return ["\n".join(self.lines[b.begin + 1 : b.end]) for b in self.blocks]


def find_blocks(lines, where: str, offset: int = 0, markers=(BEGIN_SOLUTION, END_SOLUTION)) -> list[tuple[int, int]]:
    """(begin, end) index pairs of solution blocks in `lines`, checking the markers pair up."""
    begin_marker, end_marker = markers
    pairs, start = [], None
    for i, line in enumerate(lines):
        if is_marker(line, begin_marker):
            if start is not None:
                raise SourceError(f"{where}:{offset + i + 1}: a second BEGIN SOLUTION marker before the END "
                                  f"of the block opened at line {offset + start + 1}")
            start = i
        elif is_marker(line, end_marker):
            if start is None:
                raise SourceError(f"{where}:{offset + i + 1}: END SOLUTION marker without a BEGIN")
            if lines[i][: len(lines[i]) - len(lines[i].lstrip())] != lines[start][: len(lines[start]) - len(
                    lines[start].lstrip())]:
                raise SourceError(f"{where}:{offset + i + 1}: END SOLUTION is not indented like its BEGIN "
                                  f"(line {offset + start + 1})")
            pairs.append((start, i))
            start = None
    if start is not None:
        raise SourceError(f"{where}:{offset + start + 1}: BEGIN SOLUTION marker without an END")
    return pairs


def _top_level(tree: ast.Module, name: str):
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return node
    return None


def _innermost_function(node, lineno: int, prefix: str = "") -> str:
    """Dotted name of the innermost function/class around line `lineno`, starting at `node`."""
    name = f"{prefix}.{node.name}" if prefix else node.name
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and \
                child.lineno <= lineno <= child.end_lineno:
            return _innermost_function(child, lineno, name)
    return name


def _end_with_trailing_comments(all_lines: list[str], end: int) -> int:
    """`ast` ends a top-level definition at its last statement; a comment indented below it (such as a
    closing END SOLUTION marker) still belongs to its body. Returns the 1-based last line."""
    last, i = end, end
    while i < len(all_lines):
        line = all_lines[i]
        if not line.strip():
            i += 1
            continue
        if line.lstrip().startswith("#") and line[:1].isspace():
            last = i = i + 1
            continue
        break
    return last


def read_definition(exercise: Exercise, package_dir: Path = PACKAGE_DIR) -> Definition:
    if exercise.file:
        return _read_cuda_definition(exercise, package_dir)
    path = module_path(exercise.module, package_dir)
    text = path.read_text(encoding="utf-8")
    tree = parse(text, filename=str(path))
    node = _top_level(tree, exercise.name)
    if node is None:
        raise SourceError(f"exercise {exercise.id}: {exercise.module} ({path}) has no top-level "
                          f"function or class named {exercise.name!r}")
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    all_lines = text.splitlines()
    last = _end_with_trailing_comments(all_lines, node.end_lineno)
    lines = tuple(all_lines[first - 1 : last])
    where = _rel(path, package_dir)
    pairs = find_blocks(lines, where, offset=first - 1)
    if not pairs:
        raise SourceError(f"exercise {exercise.id}: {exercise.module}.{exercise.name} ({path}:{first}) has "
                          "no solution block: mark the part learners write with the SOLUTION markers")
    blocks = []
    for b, e in pairs:
        if e == b + 1:
            raise SourceError(f"{where}:{first + b}: empty solution block")
        line = lines[b]
        blocks.append(Block(b, e, line[: len(line) - len(line.lstrip())],
                            _innermost_function(node, first + b)))
    names = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
    return Definition(exercise, path, first, last, lines, tuple(blocks), names)


# ---- CUDA C definitions ----------------------------------------------------------------------------------
def find_cuda_definition(lines, name: str, where: str) -> tuple[int, int]:
    """(first, last) 0-based line indices of the top-level CUDA C function `name` in `lines`: from the `//`
    comment lines right above its first line (a line at column 0 that names it and opens its parameter
    list) to the first line after it that is exactly `}`."""
    call = re.compile(rf"\b{re.escape(name)}\s*\(")
    starts = [i for i, line in enumerate(lines)
              if line[:1] not in ("", " ", "\t", "/", "#", "}") and call.search(line)]
    if len(starts) != 1:
        raise SourceError(f"{where}: expected one top-level definition of {name!r} (a line at column 0 naming "
                          f"it and its parameters), found {len(starts)}")
    first = start = starts[0]
    while first > 0 and lines[first - 1].startswith("//"):
        first -= 1
    try:
        last = next(i for i in range(start + 1, len(lines)) if lines[i].rstrip() == "}")
    except StopIteration:
        raise SourceError(f"{where}:{start + 1}: the definition of {name!r} never ends with a line '}}'") from None
    return first, last


def cuda_wrapper(exercise: Exercise, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """The Python lines before a CUDA C definition in a generated file (a comment, then `name = r\"\"\"`)."""
    rel = _rel(cuda_path(exercise, package_dir), package_dir)
    note = (f"# CUDA C from {rel}: the graded tests put this definition back into that file and run it on "
            "the CPU harness")
    return [*comment_lines(note[2:], "", "# "), f'{exercise.name} = r"""']


def _read_cuda_definition(exercise: Exercise, package_dir: Path) -> Definition:
    path = cuda_path(exercise, package_dir)
    where = _rel(path, package_dir)
    all_lines = path.read_text(encoding="utf-8").splitlines()
    first, last = find_cuda_definition(all_lines, exercise.name, where)
    body = all_lines[first : last + 1]
    if any('"""' in line for line in body) or any(line.endswith("\\") for line in body):
        raise SourceError(f"{where}: {exercise.name} holds a triple quote or a line ending in a backslash, "
                          "which a raw Python string cannot hold")
    pairs = find_blocks(body, where, offset=first, markers=(CUDA_BEGIN_SOLUTION, CUDA_END_SOLUTION))
    if not pairs:
        raise SourceError(f"exercise {exercise.id}: {exercise.name} ({where}:{first + 1}) has no solution block: "
                          f"mark the part learners write with lines '{CUDA_BEGIN_SOLUTION}' / '{CUDA_END_SOLUTION}'")
    labels = list(exercise.part_hints)
    if len(pairs) > 1 and len(labels) != len(pairs):
        raise SourceError(f"exercise {exercise.id}: {exercise.name} has {len(pairs)} solution blocks; give the "
                          f"catalog entry part_hints with one key per block, in order (it has {labels})")
    wrapper = cuda_wrapper(exercise, package_dir)
    offset = len(wrapper)
    blocks = []
    for k, (b, e) in enumerate(pairs):
        if e == b + 1:
            raise SourceError(f"{where}:{first + b + 1}: empty solution block")
        line = body[b]
        part = f"{exercise.name}.{labels[k]}" if len(pairs) > 1 else exercise.name
        blocks.append(Block(offset + b, offset + e, line[: len(line) - len(line.lstrip())], part))
    lines = (*wrapper, *body, '"""')
    return Definition(exercise, path, first + 1, last + 1, lines, tuple(blocks), frozenset(), "cuda", offset)


def cuda_text(value, exercise: Exercise) -> str:
    """The CUDA C a learner's definition holds (the string's first and last newline removed)."""
    if not isinstance(value, str):
        raise TypeError(f"exercise {exercise.id}: {exercise.name} must be a string of CUDA C (the raw string "
                        f"in the exercise file); got a {type(value).__name__}")
    if value.startswith("\n"):
        value = value[1:]
    return value[:-1] if value.endswith("\n") else value


def unwritten_cuda_blocks(text: str, exercise: Exercise) -> list[int]:
    """Indices of the learner blocks in `text` (a CUDA C definition) that hold no code, only comments and
    blank lines, as the stub's do."""
    lines = text.splitlines()
    empty = []
    for k, (b, e, _) in enumerate(learner_blocks(text, f"exercise {exercise.id}")):
        code = [x for x in lines[b + 1 : e] if x.strip() and not x.strip().startswith("//")]
        if not code:
            empty.append(k)
    return empty


def splice_cuda_definition(file_text: str, exercise: Exercise, definition: str, where: str = "") -> str:
    """`file_text` (a .cu file) with the definition of `exercise.name` replaced by `definition`."""
    lines = file_text.splitlines()
    first, last = find_cuda_definition(lines, exercise.name, where or exercise.file)
    lines[first : last + 1] = definition.splitlines()
    return "\n".join(lines) + "\n"


def hide_cuda_solutions(path: Path, exercises) -> list[str]:
    """The lines of the .cu file `path` with each solution block of `exercises` (catalog entries) replaced by
    one comment line naming the exercise: what a lesson may print without giving the answers away."""
    path = Path(path).resolve()
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for ex in exercises:
        if not ex.file or cuda_path(ex).resolve() != path:
            continue
        d = read_definition(ex)
        found.extend((d.file_index(b.begin), d.file_index(b.end), ex, b) for b in d.blocks)
    for lo, hi, ex, block in sorted(found, key=lambda x: x[0], reverse=True):
        lines[lo : hi + 1] = [f"{block.indent}// ... Exercise {ex.id} ({block.part}): {hi - lo - 1} lines, yours "
                              "to write ..."]
    return lines


def stray_blocks(definitions: list[Definition], package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Solution blocks in the library that belong to no catalog exercise (a problem: they would ship)."""
    inside: dict[Path, list[tuple[int, int]]] = {}
    for d in definitions:
        inside.setdefault(d.path, []).append((d.first_line, d.last_line))
    problems = []
    for path in sorted([*package_dir.rglob("*.py"), *package_dir.rglob("*.cu")]):
        lines = path.read_text(encoding="utf-8").splitlines()
        markers = (CUDA_BEGIN_SOLUTION, CUDA_END_SOLUTION) if path.suffix == ".cu" else (BEGIN_SOLUTION, END_SOLUTION)
        try:
            pairs = find_blocks(lines, _rel(path, package_dir), markers=markers)
        except SourceError as e:
            problems.append(str(e))
            continue
        for b, _ in pairs:
            if not any(lo <= b + 1 <= hi for lo, hi in inside.get(path, [])):
                where = f"{_rel(path, package_dir)}:{b + 1}"
                problems.append(f"{where}: a solution block outside every catalog exercise; add its "
                                "definition to minitorch_attn/course/catalog.py or remove the markers")
    return problems


# ---- stubs ----------------------------------------------------------------------------------------------
def stub_message(exercise: Exercise, part: str) -> str:
    """What a stub says: the exercise, the part (function or method) and its hint."""
    return f"Exercise {exercise.id}: {part} — {exercise.hint_for(part.rsplit('.', 1)[-1])}"


def stub_lines(exercise: Exercise, part: str, indent: str) -> list[str]:
    """The learner's block replacing one solution block."""
    message = stub_message(exercise, part)
    if exercise.file:  # CUDA C: the stub compiles and does nothing; the hint is a comment
        return [f"{indent}{CUDA_YOUR_CODE} (Exercise {exercise.id})",
                *comment_lines(message, indent, "// "),
                f"{indent}{CUDA_END_YOUR_CODE}"]
    return [f"{indent}{YOUR_CODE} (Exercise {exercise.id})",
            *raise_lines("NotImplementedError", message, indent),
            f"{indent}{END_YOUR_CODE}"]


def raise_lines(error: str, message: str, indent: str) -> list[str]:
    """`raise error("message")` at `indent`, wrapped into implicitly concatenated strings if too long."""
    one = f"{indent}raise {error}({_literal(message)})"
    if len(one) <= LINE_LENGTH:
        return [one]
    inner = indent + "    "
    width = LINE_LENGTH - len(inner) - 2
    chunks, current = [], ""
    for word in re.findall(r"\S+\s*", message):  # each chunk ends with its space, as a person writes it
        if current and len(current) + len(word) > width:
            chunks.append(current)
            current = ""
        current += word
    chunks.append(current)
    return [f"{indent}raise {error}(", *(f"{inner}{_literal(c)}" for c in chunks), f"{indent})"]


def comment_lines(message: str, indent: str, prefix: str) -> list[str]:
    """`message` as comment lines (`prefix` each) of at most LINE_LENGTH characters, at `indent`."""
    width = LINE_LENGTH - len(indent) - len(prefix)
    lines, current = [], ""
    for word in message.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = ""
        current = f"{current} {word}" if current else word
    lines.append(current)
    return [f"{indent}{prefix}{line}" for line in lines]


def _literal(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def stub_definition(definition: Definition) -> list[str]:
    out, i = [], 0
    for block in definition.blocks:
        out.extend(definition.lines[i : block.begin])
        out.extend(stub_lines(definition.exercise, block.part, block.indent))
        i = block.end + 1
    out.extend(definition.lines[i:])
    return out


def release_definition_lines(definition: Definition, lines: list[str], exercise_file: str) -> None:
    """In place: replace each solution block of `definition` inside the whole-file `lines` by a raise that
    sends the learner to their exercise file (used by the student release)."""
    for block in reversed(definition.blocks):
        lo, hi = definition.file_index(block.begin), definition.file_index(block.end)
        message = f"Exercise {definition.exercise.id} is yours: complete it in {exercise_file}"
        if definition.language == "cuda":  # a comment: the file still compiles, the block does nothing
            lines[lo : hi + 1] = comment_lines(message, block.indent, "// ")
        else:
            lines[lo : hi + 1] = raise_lines("NotImplementedError", message, block.indent)


def learner_blocks(text: str, where: str) -> list[tuple[int, int, str]]:
    """(begin, end, exercise id) of each learner block (`### YOUR CODE HERE (Exercise k)` ... END)."""
    lines = text.splitlines()
    out, start = [], None
    for i, line in enumerate(lines):
        match = _YOUR_CODE_RE.match(line)
        if match:
            if start is not None:
                raise SourceError(f"{where}:{i + 1}: a second '{YOUR_CODE}' line before the "
                                  f"'{END_YOUR_CODE}' of the block at line {start[0] + 1}")
            start = (i, match.group(2))
        elif is_marker(line, END_YOUR_CODE) or is_marker(line, CUDA_END_YOUR_CODE):
            if start is None:
                raise SourceError(f"{where}:{i + 1}: '{END_YOUR_CODE}' without a '{YOUR_CODE}' line above it")
            out.append((start[0], i, start[1]))
            start = None
    if start is not None:
        raise SourceError(f"{where}:{start[0] + 1}: '{YOUR_CODE}' without its '{END_YOUR_CODE}' line")
    return out


# ---- imports --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Binding:
    """How a generated file gets a name: `import module as alias` or `from module import name as alias`."""

    module: str
    name: str | None  # None: a plain `import module [as alias]`
    alias: str | None

    @property
    def bound(self) -> str:
        if self.alias:
            return self.alias
        return self.name if self.name is not None else self.module.split(".")[0]


def _absolute(module: str | None, level: int, source_module: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    base = source_module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def module_bindings(module: str, package_dir: Path = PACKAGE_DIR) -> dict[str, Binding]:
    """Names bound at the top level of `module`: by its import statements (made absolute) and by its own
    definitions and assignments (which a generated file imports from `module` itself)."""
    path = module_path(module, package_dir)
    tree = parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    out: dict[str, Binding] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                b = Binding(a.name, None, a.asname)
                out[b.bound] = b
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            src = _absolute(node.module, node.level, module, is_package)
            for a in node.names:
                if a.name == "*":
                    continue
                out[a.asname or a.name] = Binding(src, a.name, a.asname)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = Binding(module, node.name, None)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        out[n.id] = Binding(module, n.id, None)
    return out


def imports_for(definitions: list[Definition], package_dir: Path = PACKAGE_DIR) -> list[Binding]:
    """The bindings the definitions read that the generated file does not define itself."""
    defined = {d.exercise.name for d in definitions}
    chosen: dict[str, Binding] = {}
    for d in definitions:
        if d.language == "cuda":  # a string: it imports nothing
            continue
        available = module_bindings(d.exercise.module, package_dir)
        for name in sorted(d.names_used - defined):
            b = available.get(name)
            if b is None:
                continue  # a builtin or a local variable
            if name in chosen and chosen[name] != b:
                raise SourceError(f"generated file for lesson {d.exercise.lesson}: the name {name!r} means "
                                  f"{chosen[name]} in one module and {b} in another")
            chosen[name] = b
    return list(chosen.values())


def _section(module: str) -> int:
    root = module.split(".")[0]
    if root == PACKAGE:
        return 2
    if root in sys.stdlib_module_names:
        return 0
    return 1


def _member_key(name: str):
    # isort's order-by-type (ruff's default): CONSTANTS, then Classes, then everything else
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return (kind, name.lower(), name)


def format_imports(bindings: list[Binding]) -> list[str]:
    """Import statements for `bindings`, sorted and wrapped as ruff's isort rules want them."""
    lines = ["from __future__ import annotations"]
    for section in (0, 1, 2):
        plain = sorted({b for b in bindings if b.name is None and _section(b.module) == section},
                       key=lambda b: (b.module.lower(), b.alias or ""))
        froms: dict[str, list[Binding]] = {}
        for b in bindings:
            if b.name is not None and _section(b.module) == section:
                froms.setdefault(b.module, []).append(b)
        if not plain and not froms:
            continue
        lines.append("")
        for b in plain:
            lines.append(f"import {b.module}" + (f" as {b.alias}" if b.alias else ""))
        for module in sorted(froms, key=str.lower):
            members = sorted(set(froms[module]), key=lambda b: _member_key(b.name))
            names = [b.name + (f" as {b.alias}" if b.alias else "") for b in members]
            one = f"from {module} import {', '.join(names)}"
            if len(one) <= LINE_LENGTH:
                lines.append(one)
            else:
                lines.append(f"from {module} import (")
                lines.extend(f"    {n}," for n in names)
                lines.append(")")
    return lines
