"""One training loop for the whole course (its checkpoints: checkpoint.py; the character-level LM: char_lm.py).

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
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from .. import optim
from ..autograd.tensor import no_grad
from .checkpoint import _listify, load_checkpoint, restore, save_checkpoint

__all__ = ["SCHEDULES", "NanoGPT2023Schedule", "NanoGPTSchedule", "estimate_loss", "retain_freed_memory",
           "train_loop"]


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


def estimate_loss(model, corpus, batch_size: int, block_size: int, eval_iters: int, seed: int = 0) -> dict:
    """nanoGPT's estimate_loss: the mean loss over `eval_iters` random batches of each split (a fixed seed,
    so successive evaluations see the same batches)."""
    out = {}
    for split in ("train", "val"):
        rng = np.random.default_rng(seed)
        losses = [model(*corpus.get_batch(split, batch_size, block_size, rng))[1].item() for _ in range(eval_iters)]
        out[f"{split}_loss"] = float(np.mean(losses))
    return out


