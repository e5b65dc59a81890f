"""The import rules of autograd/__init__.py: imports go one way down the list, at the top of each file; and
one way between the package's folders (one folder per role)."""

import ast
import importlib
from pathlib import Path

import pytest

import minitorch_attn as mta

PKG = Path(mta.__file__).parent
ORDER = ["autograd/function.py", "autograd/tensor.py", "autograd/ops.py",
         "autograd/fused.py", "autograd/entmax.py", "autograd/linear_attention.py", "autograd/softplus.py",
         "autograd/gradcheck.py", "functional/common.py", "functional/sdpa.py"]
# modules outside the list that a listed module may import (none of them imports back into the list)
ALSO_ALLOWED = {"random", "shapes", "kernels", "autograd"}


def _module(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def _imports(path: Path):
    """(module imported, relative to the package, is it at the top level) for each `from .x import` in path."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module(str(path.relative_to(PKG))).rsplit(".", 1)[0] if "/" in str(path.relative_to(PKG)) else ""
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".") if package else []
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            names = [".".join(base + ([node.module] if node.module else []))] if node.module else \
                [".".join(base + [a.name]) for a in node.names]
            for name in names:
                yield name.strip("."), id(node) in top


@pytest.mark.parametrize("path", ORDER)
def test_imports_go_one_way_and_stay_at_the_top(path):
    rank = {_module(p): i for i, p in enumerate(ORDER)}
    me = rank[_module(path)]
    for name, at_top in _imports(PKG / path):
        assert at_top, f"{path} imports {name} inside a function; the rule: imports at the top of the file"
        if name in rank:
            assert rank[name] < me, f"{path} imports {name}, which comes after it in the rule's list"
        else:
            assert name in ALSO_ALLOWED, f"{path} imports {name}, which the rule does not place"


def test_function_apply_needs_no_import_and_tensor_has_its_operators():
    function = importlib.import_module("minitorch_attn.autograd.function")
    tensor = importlib.import_module("minitorch_attn.autograd.tensor")

    assert function.Function.apply.__func__ is tensor.apply
    t = mta.tensor([1.0, 2.0])
    for method in ("__add__", "__matmul__", "__getitem__", "sum", "reshape", "permute", "astype", "softmax"):
        assert callable(getattr(t, method)), f"Tensor.{method} was not attached"
    assert mta.functional.scaled_dot_product_attention is mta.functional.sdpa.scaled_dot_product_attention


# the folders (and top-level modules) in the order of the second rule of autograd/__init__.py
LAYERS = ["random", "shapes", "kernels", "autograd", "functional", "optim", "data", "nn", "evaluation", "training"]


def _layer(module: str) -> str | None:
    return module.split(".")[0] if module.split(".")[0] in LAYERS else None


@pytest.mark.parametrize("folder", LAYERS[2:])
def test_folders_import_only_the_folders_before_them(folder):
    rank = {name: i for i, name in enumerate(LAYERS)}
    paths = sorted((PKG / folder).rglob("*.py")) if (PKG / folder).is_dir() else [PKG / f"{folder}.py"]
    assert paths, f"no files in {folder}"
    for path in paths:
        for name, _ in _imports(path):
            layer = _layer(name)
            assert layer is not None, f"{path.relative_to(PKG)} imports {name}, which no role of the rule holds"
            assert rank[layer] <= rank[folder], (f"{path.relative_to(PKG)} imports {name}: {folder}/ may import only "
                                                 f"from {', '.join(LAYERS[:rank[folder] + 1])}")


def test_the_top_level_holds_only_the_listed_modules():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "optim.py", "pretrained.py", "random.py", "shapes.py", "tour.py",
                   "viz.py"], f"a module at the top level of the package: {top}; put it in the folder of its role"


def test_the_readmes_module_table_names_files_that_exist():
    import re

    readme = (PKG.parent / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Where the code lives"):]
    rows = [line for line in table.splitlines() if re.match(r"\| \d\d \|", line)]
    assert len(rows) == 17, f"the module -> lesson table has {len(rows)} lesson rows, not 17"
    for row in rows:
        for path in re.findall(r"`([a-z_/]+(?:\.py|\.cu|/))`", row.split("|")[3]):
            assert (PKG / path).exists(), f"README's table names minitorch_attn/{path}, which does not exist: {row}"


def test_no_file_of_functional_shadows_a_name_of_F():
    import inspect
    import pkgutil

    from minitorch_attn import functional as F

    for info in pkgutil.iter_modules(F.__path__):
        importlib.import_module(f"minitorch_attn.functional.{info.name}")  # sets F.<name> to the module
        assert info.name not in F.__all__, f"functional/{info.name}.py hides F.{info.name} once it is imported"
    for name in F.__all__:
        assert callable(getattr(F, name)) and not inspect.ismodule(getattr(F, name)), f"F.{name} is not a function"


def _top_level(path: Path):
    return ast.parse(path.read_text(encoding="utf-8")).body


def test_nn_holds_classes_and_autograd_every_function():
    # the only functions of nn/: parameter initialisers, a module factory, and torch's name for a causal mask
    allowed = {"layers.uniform", "multihead.xavier_uniform", "seq2seq.make_attention",
               "transformer.generate_square_subsequent_mask"}
    for path in sorted((PKG / "nn").glob("*.py")):
        for node in _top_level(path):
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                assert f"{path.stem}.{node.name}" in allowed, (
                    f"nn/{path.name} defines the function {node.name}: a stateless function belongs in functional/")
    # every autograd Function lives in autograd/, but FlashAttention (its forward and backward are the kernels),
    # which stays beside the function that dispatches to it
    for path in sorted(PKG.rglob("*.py")):
        for node in _top_level(path):
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", None) == "Function" for b in node.bases):
                where = str(path.relative_to(PKG))
                exception = (where, node.name) == ("functional/sdpa.py", "FlashAttention")
                assert where.startswith("autograd/") or exception, (
                    f"{where} defines the autograd Function {node.name}: Functions belong in autograd/")
