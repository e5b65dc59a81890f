"""The import rule of autograd/__init__.py: imports go one way down the list, at the top of each file."""

import ast
import importlib
from pathlib import Path

import pytest

import minitorch_attn as mta

PKG = Path(mta.__file__).parent
ORDER = ["autograd/function.py", "autograd/tensor.py", "autograd/ops.py",
         "autograd/fused.py", "autograd/entmax.py", "autograd/gradcheck.py", "functional/common.py",
         "functional/sdpa.py"]
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
