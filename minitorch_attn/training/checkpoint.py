"""Checkpoints of a training run: `.npz` files holding the model's state_dict, every optimizer's and
scheduler's state, the step, the loop's generator, the history and a JSON `config` (arrays only, no pickles).

    save_checkpoint(path, model, optimizers, schedulers, step, config, rng, history)
    ckpt = load_checkpoint(path);  step = restore(ckpt, model, optimizers, schedulers, rng)
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

CHECKPOINT_FORMAT = 1


def _listify(opts):
    if opts is None:
        return []
    return list(opts) if isinstance(opts, (list, tuple)) else [opts]


def save_checkpoint(path, model, optimizers=None, schedulers=None, step: int = 0, config: dict | None = None,
                    rng: np.random.Generator | None = None, history: dict | None = None) -> Path:
    """Write an `.npz` checkpoint (arrays only, no pickles): "model/<name>" for every state_dict entry,
    "optim/<j>/<i>/<key>" for optimizer j's state of parameter i, and "meta", a JSON string with the
    config, the step, the optimizers' hyperparameters, the schedulers, the generator state and the history."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    hyper = []
    for j, opt in enumerate(_listify(optimizers)):
        sd = opt.state_dict()
        hyper.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in sd["hyperparams"].items()})
        for i, s in sd["state"].items():
            for k, v in s.items():
                arrays[f"optim/{j}/{i}/{k}"] = np.asarray(v)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "step": int(step),
        "config": config or {},
        "optimizers": hyper,
        "schedulers": [s.state_dict() for s in _listify(schedulers)],
        "rng": None if rng is None else rng.bit_generator.state,
        "history": history or {},
    }
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind
    return path


def load_checkpoint(path) -> dict:
    """Read a checkpoint: {"model": state_dict, "optimizers": [state_dict...], "schedulers": [...],
    "step", "config", "rng" (a generator state or None), "history"}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path.resolve()}; train one first, e.g. "
                                f"`python -m minitorch_attn train-char --preset tiny --out {path.parent}`")
    with np.load(path, allow_pickle=False) as z:
        if "meta" not in z.files:
            raise ValueError(f"{path} is not a minitorch_attn checkpoint (it has no 'meta' entry)")
        meta = json.loads(str(z["meta"]))
        model = OrderedDict((k[len("model/"):], z[k]) for k in z.files if k.startswith("model/"))
        opt_states = [{} for _ in meta["optimizers"]]
        for k in z.files:
            if k.startswith("optim/"):
                _, j, i, name = k.split("/", 3)
                v = z[k]
                opt_states[int(j)].setdefault(int(i), {})[name] = v.item() if v.ndim == 0 else v
    optimizers = []
    for hyper, state in zip(meta["optimizers"], opt_states):
        hyper = {k: (tuple(v) if isinstance(v, list) else v) for k, v in hyper.items()}
        optimizers.append({"hyperparams": hyper, "state": state})
    return {"model": model, "optimizers": optimizers, "schedulers": meta["schedulers"], "step": meta["step"],
            "config": meta["config"], "rng": meta["rng"], "history": meta["history"]}


def restore(checkpoint: dict, model, optimizers=None, schedulers=None, rng: np.random.Generator | None = None):
    """Load a `load_checkpoint` result into a model (and optimizers, schedulers, generator); returns the step."""
    model.load_state_dict(checkpoint["model"])
    opts, scheds = _listify(optimizers), _listify(schedulers)
    if opts and len(opts) != len(checkpoint["optimizers"]):
        raise ValueError(f"the checkpoint holds {len(checkpoint['optimizers'])} optimizer states; got "
                         f"{len(opts)} optimizers")
    for opt, sd in zip(opts, checkpoint["optimizers"]):
        opt.load_state_dict(sd)
    for sched, sd in zip(scheds, checkpoint["schedulers"]):
        sched.load_state_dict(sd)
    if rng is not None and checkpoint["rng"] is not None:
        rng.bit_generator.state = checkpoint["rng"]
    return checkpoint["step"]
