"""One training loop for the whole course, checkpoints, and the character-level LM commands.

    history = train_loop(model, next_batch, step_loss, optimizers, steps=2000,
                         warmup_steps=100, min_lr=1e-4, clip=1.0,
                         eval_fn=estimate_loss, eval_interval=250,
                         checkpoint="out/ckpt.npz", config={...}, seed=1337)

- `next_batch(rng)` returns a batch drawn with the loop's own generator `rng` (seeded by `seed`, saved in
  checkpoints, so a resumed run draws the same batches as an uninterrupted one);
- `step_loss(model, batch)` returns the loss Tensor, or `(loss, {"name": float, ...})` extra metrics;
- each step: zero the gradients, backward, clip the global gradient norm to `clip`, step every optimizer,
  advance the warmup + cosine schedule (`optim.WarmupCosine`, or nanoGPT's `NanoGPTSchedule` with
  `schedule="nanogpt"`, or `NanoGPT2023Schedule` with `"nanogpt-2023"`; one per optimizer);
- before the first step, `retain_freed_memory()` (glibc's malloc keeps what a step frees for the next one);
- a tqdm bar shows the smoothed loss, the metrics and tokens/s (`tokens_per_step` tokens per batch);
- `eval_fn(model)` (run in eval mode without gradients) every `eval_interval` steps and after the last one;
  its dict is recorded in `history["eval"]` and written under the bar;
- checkpoints are `.npz` files: the model's state_dict, every optimizer's and scheduler's state, the step, the
  loop's generator, the history and a JSON `config` (`save_checkpoint` / `load_checkpoint`); `resume=path`
  continues a run exactly where it stopped.

Command line (`python -m minitorch_attn train-char ...`, `python -m minitorch_attn sample ...`): see `main`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from . import optim
from .autograd.tensor import no_grad

__all__ = ["PRESETS", "SCHEDULES", "NanoGPT2023Schedule", "NanoGPTSchedule", "estimate_loss", "load_checkpoint",
           "main", "restore", "retain_freed_memory", "sample", "save_checkpoint", "train_char", "train_loop"]

CHECKPOINT_FORMAT = 1


# ---- checkpoints ------------------------------------------------------------------------------------------
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


# ---- the allocator ----------------------------------------------------------------------------------------
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def retain_freed_memory(max_chunk: int = 64 << 20, trim: int = 512 << 20) -> bool:
    """Let glibc's malloc keep the memory a training step frees, for the next step to reuse.

    A step allocates and frees the same arrays every time (activations, gradients: ~20 MB for the baby GPT).
    By default glibc serves allocations from 128 KiB up (adaptively more) with fresh mmap pages and gives the
    heap's free top back to the kernel, so every step faults its memory in again, zero-filled: ~4,300 page
    faults and ~7 ms of a 37 ms baby step (benchmarks/NOTES_train_step_baby.md). With M_MMAP_THRESHOLD =
    `max_chunk` allocations up to that size come from the heap, and with M_TRIM_THRESHOLD = `trim` the heap
    keeps up to that much free memory instead of returning it. The process's memory then stays at its peak
    (plus at most `trim`) until it exits. Process-wide, Linux/glibc only; returns whether it was applied."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(max_chunk))) and bool(mallopt(M_TRIM_THRESHOLD, int(trim)))


# ---- the loop ---------------------------------------------------------------------------------------------
class NanoGPTSchedule(optim.WarmupCosine):
    """nanoGPT's `get_lr(it)` (train.py), which differs from `optim.warmup_cosine` only during warmup:

        it < warmup:              lr * (it + 1) / (warmup + 1)       (optim.warmup_cosine: / warmup)
        warmup <= it <= decay:    min_lr + (lr - min_lr) * (1 + cos(π (it - warmup) / (decay - warmup))) / 2
        it > decay:               min_lr
    """

    def get_lr(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / (self.warmup_steps + 1)
        if step > self.total_steps or self.total_steps == self.warmup_steps:
            return self.min_lr
        ratio = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return self.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (self.base_lr - self.min_lr)


class NanoGPT2023Schedule(NanoGPTSchedule):
    """nanoGPT's `get_lr(it)` as it was from its first commit until December 2024 (so when its README reported
    the CPU baby run's 1.88, February 2023): the warmup is lr * it / warmup, so the first step has lr 0."""

    def get_lr(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * step / self.warmup_steps
        return super().get_lr(step)


SCHEDULES = {"warmup_cosine": optim.WarmupCosine, "nanogpt": NanoGPTSchedule, "nanogpt-2023": NanoGPT2023Schedule}


def train_loop(model, next_batch, step_loss, optimizers, steps: int, *, warmup_steps: int = 0,
               min_lr: float | None = None, decay_steps: int | None = None, clip: float | None = 1.0,
               eval_fn=None, eval_interval: int = 0, seed: int | np.random.Generator = 0,
               tokens_per_step: int | None = None, progress: bool = True, desc: str = "train",
               checkpoint=None, config: dict | None = None, resume=None, smoothing: float = 0.9,
               schedule: str = "warmup_cosine", final_eval_fn=None, retain_memory: bool = True) -> dict:
    """Train `model` for `steps` optimizer steps (see the module docstring). Returns the history:
    {"loss": [...], one list per metric, "lr": [...], "eval": [{"step": s, ...}], "seconds": wall time of
    this call, "step": the final step}.

    Schedule: with `min_lr` not None, each optimizer's lr follows `optim.warmup_cosine` from its own lr down
    to `min_lr` over `decay_steps` (default `steps`) after `warmup_steps`; with `min_lr=None` the lr is constant.
    `schedule="nanogpt"` uses nanoGPT's warmup instead (`NanoGPTSchedule`), `"nanogpt-2023"` its warmup of
    2023 (`NanoGPT2023Schedule`). `final_eval_fn`: the evaluation
    after the last step, when it should differ from `eval_fn` (e.g. more batches, so the final number is not
    noise). `checkpoint`: a path written after every evaluation and at the end. `resume`: a checkpoint path
    to continue from (model, optimizers, schedules, generator and history are restored). `retain_memory`:
    call `retain_freed_memory()` first, so the steps reuse each other's memory instead of faulting it in anew.
    """
    from tqdm import tqdm

    if steps < 1:
        raise ValueError(f"train_loop: steps must be positive; got {steps}")
    opts = _listify(optimizers)
    if not opts:
        raise ValueError("train_loop needs at least one optimizer")
    params = [p for opt in opts for p in opt.params]
    if schedule not in SCHEDULES:
        raise ValueError(f"train_loop: schedule must be one of {', '.join(map(repr, SCHEDULES))}; got {schedule!r}")
    sched_cls = SCHEDULES[schedule]
    scheds = ([sched_cls(o, warmup_steps, decay_steps or steps, min_lr) for o in opts]
              if min_lr is not None else [])
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if retain_memory:
        retain_freed_memory()
    history: dict = {"loss": [], "lr": [], "eval": []}
    start_step = 0
    if resume is not None:
        ckpt = load_checkpoint(resume)
        start_step = restore(ckpt, model, opts, scheds, rng)
        history.update({k: list(v) for k, v in ckpt["history"].items() if isinstance(v, list)})

    def evaluate(step, fn=None):
        was_training = model.training
        model.eval()
        with no_grad():
            result = {"step": step, **{k: float(v) for k, v in (fn or eval_fn)(model).items()}}
        model.train(was_training)
        history["eval"].append(result)
        if progress:
            bar.write(f"{desc} step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()
                                                           if k != "step"))

    def save(step):
        if checkpoint is not None:
            history["step"] = step
            save_checkpoint(checkpoint, model, opts, scheds, step, config, rng,
                            {k: v for k, v in history.items() if isinstance(v, list)})

    smooth: dict = {}
    start = time.perf_counter()
    bar = tqdm(range(start_step, steps), desc=desc, disable=not progress, mininterval=0.5, ncols=100,
               initial=start_step, total=steps)
    model.train()
    last_time, tok_rate = time.perf_counter(), None
    for step in bar:
        # evaluate (and checkpoint) before the update of every eval_interval-th step; a resumed run starts
        # from such a checkpoint, whose evaluation is already in the history
        if eval_fn is not None and eval_interval and step % eval_interval == 0 and not (
                resume is not None and step == start_step):
            evaluate(step)
            save(step)
        batch = next_batch(rng)
        out = step_loss(model, batch)
        loss, metrics = (out if isinstance(out, tuple) else (out, {}))
        for opt in opts:
            opt.zero_grad()
        loss.backward()
        if clip:
            optim.clip_grad_norm_(params, clip)
        history["lr"].append(opts[0].lr)
        for opt in opts:
            opt.step()
        for s in scheds:
            s.step()
        values = {"loss": loss.item(), **{k: float(v) for k, v in metrics.items()}}
        postfix = {}
        for k, v in values.items():
            history.setdefault(k, []).append(v)
            smooth[k] = v if k not in smooth else smoothing * smooth[k] + (1 - smoothing) * v
            postfix[k] = f"{smooth[k]:.3f}"
        now = time.perf_counter()
        if tokens_per_step:
            rate = tokens_per_step / max(now - last_time, 1e-9)
            tok_rate = rate if tok_rate is None else smoothing * tok_rate + (1 - smoothing) * rate
            postfix["tok/s"] = f"{tok_rate:,.0f}"
        last_time = now
        bar.set_postfix(postfix, refresh=False)
    if start_step < steps or resume is None:
        if eval_fn is not None:
            evaluate(steps, final_eval_fn)
        save(steps)
    model.eval()
    history["seconds"] = time.perf_counter() - start
    history["step"] = steps
    return history


# ---- the character-level language model -------------------------------------------------------------------
PRESETS: dict[str, dict] = {
    # nanoGPT's CPU "baby" run: config/train_shakespeare_char.py with --block_size=64 --batch_size=12
    # --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0 --eval_iters=20.
    # Matched to nanoGPT's train.py/model.py: its warmup lr * (it+1)/(warmup+1) (`NanoGPTSchedule`; we used
    # / warmup before), AdamW eps 1e-8 with decay 0.1 on the >= 2-D parameters only (embeddings and Linear
    # weights), grad clip 1.0, exact GELU, LayerNorm eps 1e-5 without bias, init N(0, 0.02²) with c_proj
    # N(0, (0.02/√(2L))²), 90/10 split, batches drawn uniformly from [0, len - block). nanoGPT's evaluations
    # are the mean of eval_iters=20 random batches per split, whose mean has a standard error of ~0.015 (per-
    # batch sd 0.065 on the trained model; its 1.88 is one such number); we keep 20 for the periodic
    # evaluations and take the FINAL one over final_eval_iters=200 batches (153,600 tokens per split; standard
    # error ~0.005, nanoGPT's shakespeare_char default eval_iters) so the reported val loss is not noise.
    "baby": {
        "model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0, "bias": False,
                  "gelu": "none"},
        "train": {"batch_size": 12, "max_iters": 2000, "learning_rate": 1e-3, "min_lr": 1e-4, "warmup_iters": 100,
                  "lr_decay_iters": 2000, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99, "grad_clip": 1.0,
                  "decay": "matrices", "schedule": "nanogpt",
                  "eval_interval": 250, "eval_iters": 20, "final_eval_iters": 200},
    },
    # The same run as nanoGPT trained it when its README first reported "a loss of only 1.88" for this command
    # (commit 23a8e70, 2023-02-05), for comparison: train.py's weight_decay=1e-2 (0.1 from 8b1e432, the next
    # day); configure_optimizers decaying only nn.Linear weights, not the embeddings, LayerNorm or the tied
    # lm_head (every >= 2-D parameter from 7fe4a09, May 2023); model.py's new_gelu, the tanh form (nn.GELU from
    # 594068e, May 2023); get_lr's warmup lr * it / warmup, lr 0 at step 0 (`NanoGPT2023Schedule`; (it+1) /
    # (warmup+1) from dc81cb3, Dec 2024); bias=False already (train.py's default since 0e90ee9, Jan 2023).
    # It does NOT reach 1.88 either: final val loss (200 batches) 1.9032 / 1.8963 / 1.9112 for seeds
    # 1337 / 1338 / 1339 in the torch twin, ours 1.9032 for 1337 (benchmarks/NOTES_train_step_baby.md);
    # "baby" gives 1.9078 / 1.9051, the same within seed noise. The README's number is one --eval_iters=20
    # reading: on the seed-1337 model (mean of 2000 random val batches 1.909) such a reading has a standard
    # error of 0.015 and is <= 1.88 about 2% of the time. nanoGPT's own code at that commit, run on our CPU with
    # the README's command, prints 1.8868 / 1.8827 / 1.9002 / 1.9123 for seeds 1337-1340 (same NOTES file).
    # "baby" stays today's recipe (what nanoGPT's code
    # does now, the one learners will compare with).
    "baby-2023": {
        "model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0, "bias": False,
                  "gelu": "tanh"},
        "train": {"batch_size": 12, "max_iters": 2000, "learning_rate": 1e-3, "min_lr": 1e-4, "warmup_iters": 100,
                  "lr_decay_iters": 2000, "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.99, "grad_clip": 1.0,
                  "decay": "linear", "schedule": "nanogpt-2023",
                  "eval_interval": 250, "eval_iters": 20, "final_eval_iters": 200},
    },
    # seconds on a laptop: for tests and smoke runs
    "tiny": {
        "model": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "dropout": 0.0, "bias": False},
        "train": {"batch_size": 8, "max_iters": 60, "learning_rate": 3e-3, "min_lr": 3e-4, "warmup_iters": 10,
                  "lr_decay_iters": 60, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99, "grad_clip": 1.0,
                  "eval_interval": 30, "eval_iters": 4},
    },
}


def estimate_loss(model, corpus, batch_size: int, block_size: int, eval_iters: int, seed: int = 0) -> dict:
    """nanoGPT's estimate_loss: the mean loss over `eval_iters` random batches of each split (a fixed seed,
    so successive evaluations see the same batches)."""
    out = {}
    for split in ("train", "val"):
        rng = np.random.default_rng(seed)
        losses = [model(*corpus.get_batch(split, batch_size, block_size, rng))[1].item() for _ in range(eval_iters)]
        out[f"{split}_loss"] = float(np.mean(losses))
    return out


def with_iters(train_cfg: dict, iters: int | None) -> dict:
    """A copy of a preset's "train" part shortened (or lengthened) to `iters` iterations, as nanoGPT's configs
    do it: lr_decay_iters = max_iters, and the warmup at most a tenth of the run."""
    tc = dict(train_cfg)
    if iters is not None:
        if iters < 1:
            raise ValueError(f"iters must be positive; got {iters}")
        tc["max_iters"] = iters
        tc["lr_decay_iters"] = iters
        tc["warmup_iters"] = min(tc["warmup_iters"], iters // 10)
    return tc


def build_char_model(corpus_chars, preset: dict, seed: int = 1337):
    from .nn.gpt import GPT, GPTConfig

    cfg = GPTConfig(vocab_size=len(corpus_chars), **preset["model"])
    return GPT(cfg, rng=np.random.default_rng(seed)), cfg


def train_char(data=None, preset: str | dict = "baby", iters: int | None = None, out="out/char",
               seed: int = 1337, max_chars: int | None = None, progress: bool = True, resume: bool = False,
               eval_interval: int | None = None, eval_iters: int | None = None) -> dict:
    """Train a character-level GPT on a text file (nanoGPT's shakespeare_char recipe) and write
    `<out>/ckpt.npz`. Returns the history (with "eval": train and val losses)."""
    from .data.text import load_char_corpus

    spec = PRESETS[preset] if isinstance(preset, str) else preset
    if isinstance(preset, str) and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    tc = with_iters(spec["train"], iters)
    if eval_interval is not None:
        tc["eval_interval"] = eval_interval
    if eval_iters is not None:
        tc["eval_iters"] = eval_iters
        tc["final_eval_iters"] = max(eval_iters, tc.get("final_eval_iters", 0))
    corpus = load_char_corpus(data, max_chars=max_chars)
    model, cfg = build_char_model(corpus.chars, spec, seed)
    opts = model.configure_optimizers(tc["weight_decay"], tc["learning_rate"], (tc["beta1"], tc["beta2"]),
                                      decay=tc.get("decay", "matrices"))
    B, T = tc["batch_size"], cfg.block_size
    config = {"model": cfg.to_dict(), "train": tc, "chars": corpus.chars, "corpus": corpus.source,
              "seed": seed}
    ckpt = Path(out) / "ckpt.npz"
    print(f"corpus {corpus.source}: {len(corpus.text):,} characters, vocab {corpus.vocab_size}; "
          f"model {model.num_parameters():,} parameters; {tc['max_iters']} iterations of {B}x{T} tokens",
          file=sys.stderr)
    return train_loop(
        model,
        next_batch=lambda rng: corpus.get_batch("train", B, T, rng),
        step_loss=lambda m, batch: m(*batch)[1],
        optimizers=opts, steps=tc["max_iters"], warmup_steps=tc["warmup_iters"], min_lr=tc["min_lr"],
        decay_steps=tc["lr_decay_iters"], clip=tc["grad_clip"],
        eval_fn=lambda m: estimate_loss(m, corpus, B, T, tc["eval_iters"]), eval_interval=tc["eval_interval"],
        final_eval_fn=lambda m: estimate_loss(m, corpus, B, T, tc.get("final_eval_iters", tc["eval_iters"])),
        schedule=tc.get("schedule", "nanogpt"),
        seed=seed, tokens_per_step=B * T, progress=progress, desc="train-char", checkpoint=ckpt, config=config,
        resume=ckpt if resume else None)


def load_char_model(checkpoint):
    """(model, chars, config) from a train-char checkpoint."""
    from .nn.gpt import GPT, GPTConfig

    ckpt = load_checkpoint(checkpoint)
    config = ckpt["config"]
    if "model" not in config or "chars" not in config:
        raise ValueError(f"{checkpoint} is not a train-char checkpoint (its config has no model/chars)")
    model = GPT(GPTConfig.from_dict(config["model"]), rng=np.random.default_rng(0))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, config["chars"], config


def sample(checkpoint, prompt: str = "\n", tokens: int = 200, temperature: float = 0.8, top_k: int | None = 200,
           seed: int = 0) -> str:
    """Generate `tokens` characters after `prompt` from a train-char checkpoint; returns prompt + text."""
    model, chars, _ = load_char_model(checkpoint)
    stoi = {c: i for i, c in enumerate(chars)}
    unknown = sorted(set(prompt) - set(stoi))
    if unknown:
        raise ValueError(f"the prompt has characters the model never saw: {unknown!r}")
    idx = np.array([[stoi[c] for c in prompt or chars[0]]], dtype=np.int64)
    out = model.generate(idx, tokens, temperature=temperature, top_k=top_k, rng=np.random.default_rng(seed))
    return "".join(chars[i] for i in out[0])


def main(argv: list[str] | None = None, command: str = "train-char") -> int:
    """`train-char --data PATH --preset baby|tiny [--iters N --out DIR --max-chars N --resume]` and
    `sample --checkpoint PATH [--prompt TEXT --tokens N --temperature T --top-k K --seed S]`."""
    from .data.text import CorpusNotFound

    if command == "train-char":
        p = argparse.ArgumentParser(prog="python -m minitorch_attn train-char",
                                    description="train a character-level GPT (nanoGPT's shakespeare_char)")
        p.add_argument("--data", help="a UTF-8 text file (default: $MTA_DATA, then ../shared/data/tinyshakespeare.txt)")
        p.add_argument("--preset", default="baby", choices=sorted(PRESETS))
        p.add_argument("--iters", type=int, help="override the preset's number of iterations")
        p.add_argument("--out", default="out/char", help="folder for ckpt.npz (default out/char)")
        p.add_argument("--max-chars", type=int, help="use only the first N characters of the corpus")
        p.add_argument("--eval-interval", type=int)
        p.add_argument("--eval-iters", type=int)
        p.add_argument("--seed", type=int, default=1337)
        p.add_argument("--resume", action="store_true", help="continue from <out>/ckpt.npz")
        p.add_argument("--no-progress", action="store_true")
        a = p.parse_args(argv)
        try:
            hist = train_char(a.data, a.preset, a.iters, a.out, a.seed, a.max_chars, not a.no_progress, a.resume,
                              a.eval_interval, a.eval_iters)
        except CorpusNotFound as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        last = hist["eval"][-1] if hist["eval"] else {}
        print(f"done: {hist['step']} iterations in {hist['seconds']:.1f} s "
              f"({1000 * hist['seconds'] / max(1, len(hist['loss'])):.1f} ms/iter, evaluations included); "
              + ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "step")
              + f"; checkpoint {Path(a.out) / 'ckpt.npz'}")
        return 0
    if command == "sample":
        p = argparse.ArgumentParser(prog="python -m minitorch_attn sample",
                                    description="generate text from a train-char checkpoint")
        p.add_argument("--checkpoint", default="out/char/ckpt.npz")
        p.add_argument("--prompt", default="\n")
        p.add_argument("--tokens", type=int, default=500)
        p.add_argument("--temperature", type=float, default=0.8)
        p.add_argument("--top-k", type=int, default=200)
        p.add_argument("--seed", type=int, default=0)
        a = p.parse_args(argv)
        try:
            print(sample(a.checkpoint, a.prompt, a.tokens, a.temperature, a.top_k, a.seed))
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    raise ValueError(f"unknown command {command!r}")
