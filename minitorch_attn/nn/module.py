"""`Module` and `Parameter`: the bookkeeping every layer shares, shaped like `torch.nn.Module`.

Rules this file keeps:
- assigning a `Parameter` or a `Module` to an attribute registers it, in assignment order; assigning
  `None` to a registered parameter keeps the slot (like torch: `Linear(bias=False).bias is None`) and
  it is skipped everywhere;
- names are dotted paths, exactly as torch writes them: `encoder.layers.0.weight`, `weight_ih_l0`;
- `named_parameters()` lists a shared (tied) parameter once; `state_dict()` lists it under every name;
- `state_dict()` holds NumPy copies; `load_state_dict()` takes NumPy arrays, our tensors, or torch
  tensors (anything with `.detach().cpu().numpy()`), and checks every key and shape before it
  changes anything: a failed load leaves the model as it was;
- buffers (`register_buffer`) are NumPy arrays saved in `state_dict()` but never trained.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from ..autograd.tensor import Tensor


class Parameter(Tensor):
    """A tensor that a `Module` trains: a leaf with `requires_grad=True`.

    dtype follows `Tensor`'s rule: a float NumPy array keeps its dtype; Python numbers, lists and
    integer arrays become float32. Pass `dtype=` to choose.
    """

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        if dtype is None and np.asarray(data).dtype.kind != "f":
            dtype = np.float32
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict(strict=False)` skipped (torch returns the same pair)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _to_numpy(value) -> np.ndarray:
    """A NumPy array from an ndarray, one of our tensors, or a torch tensor (duck-typed)."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


class Module:
    """Base class of every layer. Subclasses call `super().__init__()` first, assign their parameters
    and submodules as attributes, and define `forward`; call the module itself, not `forward`."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration ------------------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() ran: call super().__init__() first "
                f"in {type(self).__name__}.__init__"
            )
        params, buffers = self._parameters, self._buffers
        if isinstance(value, Parameter):
            self._unregister(name, keep=params)  # keep: reassigning keeps the original position
            params[name] = value
        elif isinstance(value, Module):
            self._unregister(name, keep=self._modules)
            self._modules[name] = value
        elif name in params and value is None:
            params[name] = None
        elif name in buffers and (value is None or isinstance(value, np.ndarray)):
            buffers[name] = value
        elif name in params and isinstance(value, Tensor):
            raise TypeError(f"cannot assign a plain Tensor to parameter {name!r}; wrap it: nn.Parameter(...)")
        else:
            self._unregister(name)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._unregister(name)
        object.__delattr__(self, name)

    def _unregister(self, name: str, keep=None) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not keep:
                registry.pop(name, None)
        self._non_persistent.discard(name)

    def register_buffer(self, name: str, array, persistent: bool = True) -> None:
        """Keep a NumPy array (e.g. a causal mask) with the module: in `state_dict()` when `persistent`,
        converted by `to_dtype` when floating, never in `parameters()`."""
        array = None if array is None else _to_numpy(array)
        self._unregister(name)
        self._buffers[name] = array
        if not persistent:
            self._non_persistent.add(name)
        object.__setattr__(self, name, array)

    # ---- calling -----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- traversal ---------------------------------------------------------------------------
    def children(self):
        yield from self._modules.values()

    def named_children(self):
        yield from self._modules.items()

    def named_modules(self, prefix: str = "", _seen: set | None = None):
        """(dotted name, module) for this module ("" is itself) and every descendant, pre-order;
        a module reachable by two paths is listed once, under the first."""
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, seen)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = ""):
        """(dotted name, parameter) in registration order; a shared parameter appears once."""
        seen = set()
        for mod_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self):
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = ""):
        for mod_name, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def num_parameters(self) -> int:
        """How many numbers the model trains (shared parameters counted once)."""
        return sum(p.size for p in self.parameters())

    # ---- modes and gradients -----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active) on this module and every descendant; returns self."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def to_dtype(self, dtype) -> Module:
        """Convert every parameter and floating buffer to `dtype` in place (grads are dropped); returns self.
        `model.double()` before `mta.gradcheck`, which needs float64."""
        dtype = np.dtype(dtype)
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    p.data, p.grad = p.data.astype(dtype), None
            for name, b in m._buffers.items():
                if b is not None and b.dtype.kind == "f":
                    m._buffers[name] = b.astype(dtype)
                    object.__setattr__(m, name, m._buffers[name])
        return self

    def double(self) -> Module:
        return self.to_dtype(np.float64)

    def float(self) -> Module:
        return self.to_dtype(np.float32)

    # ---- saving and loading ------------------------------------------------------------------
    def _state_items(self, prefix: str = ""):
        """(name, Parameter or ndarray) in torch's state_dict order: own parameters, own persistent
        buffers, then each child's, recursively. Shared tensors appear under every name."""
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                yield prefix + name, b
        for name, m in self._modules.items():
            if m is not None:
                yield from m._state_items(prefix + name + ".")

    def state_dict(self) -> OrderedDict:
        """name -> NumPy copy of every parameter and persistent buffer."""
        items = self._state_items()
        return OrderedDict((k, (v.data if isinstance(v, Tensor) else v).copy()) for k, v in items)

    def load_state_dict(self, state, strict: bool = True) -> IncompatibleKeys:
        """Copy `state` (name -> array or tensor) into this model, cast to each parameter's dtype.

        Shape mismatches always raise; missing and unexpected keys raise only when `strict`. Everything is
        checked first, so a failed load changes nothing. Returns the (missing_keys, unexpected_keys) pair.
        """
        own = OrderedDict(self._state_items())
        incoming = OrderedDict((k, _to_numpy(v)) for k, v in state.items())
        missing = [k for k in own if k not in incoming]
        unexpected = [k for k in incoming if k not in own]
        mismatched = []
        for k, target in own.items():
            if k in incoming and tuple(incoming[k].shape) != tuple(target.shape):
                mismatched.append((k, tuple(incoming[k].shape), tuple(target.shape)))
        if mismatched or (strict and (missing or unexpected)):
            raise RuntimeError(_load_error(type(self).__name__, missing if strict else [],
                                           unexpected if strict else [], mismatched))
        for k, target in own.items():
            if k not in incoming:
                continue
            if isinstance(target, Tensor):
                target.data = np.array(incoming[k], dtype=target.dtype, order="C")  # a fresh copy
            else:  # a buffer: copy in place, so every module sharing it sees the new values
                target[...] = incoming[k]
        return IncompatibleKeys(missing, unexpected)

    # ---- printing ----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's line in `repr` (override in layers)."""
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + _indent(repr(m)) for name, m in self._modules.items()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(([extra] if extra else []) + lines)
        return f"{type(self).__name__}(\n  {body}\n)"


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")


def _load_error(cls: str, missing, unexpected, mismatched) -> str:
    lines = [f"Error(s) in loading state_dict for {cls}:"]
    if missing:
        lines.append("  Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
    if unexpected:
        lines.append("  Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
    for k, got, want in mismatched:
        hint = " (it looks transposed)" if len(got) == 2 and got == want[::-1] else ""
        lines.append(f"  size mismatch for {k}: copying a param with shape {got} from checkpoint, "
                     f"the shape in current model is {want}{hint}.")
    if missing or unexpected:
        lines.append("  Names are the dotted paths of named_parameters(); check that both models are built "
                     "with the same architecture and attribute names.")
    return "\n".join(lines)


class ModuleList(Module):
    """A list of modules, registered as `0`, `1`, ... so their parameters are found and named."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList holds Modules; got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def extend(self, modules) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, i):
        items = list(self._modules.values())
        return ModuleList(items[i]) if isinstance(i, slice) else items[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(Module):
    """Modules applied one after another: `Sequential(a, b, c)(x) == c(b(a(x)))`.
    Pass an OrderedDict to name the steps instead of `0`, `1`, ...."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                setattr(self, name, m)
        else:
            for i, m in enumerate(modules):
                setattr(self, str(i), m)

    def __getitem__(self, i):
        items = list(self._modules.values())
        return Sequential(*items[i]) if isinstance(i, slice) else items[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x
