"""Time one training step of nanoGPT's "baby" configuration (4 layers, 4 heads, 128 wide, block 64, batch 12,
vocab 65) in our engine and in the same model written in torch, each in its own process, and print the ratio.

    python benchmarks/train_step_baby.py                    # default BLAS/torch threads
    python benchmarks/train_step_baby.py --threads 1        # one thread for both (fairer on a busy machine)
    python benchmarks/train_step_baby.py --profile          # cProfile of our step, top entries by own time
    python benchmarks/train_step_baby.py --threads 1 --repeats 3   # interleaved ours/torch, best of 3 each
    python benchmarks/train_step_baby.py --threads 1 --full        # the whole capstone in both engines
    python benchmarks/train_step_baby.py --threads 1 --full --preset baby-2023 --seed 1338 --only torch
    python benchmarks/train_step_baby.py --eval-noise out/char/ckpt.npz      # noise of a 20-batch val loss
    python benchmarks/train_step_baby.py --threads 1 --full --iters 20 --data PATH   # a quick check (a test runs it)

A step is: forward + loss, zero_grad, backward, clip the gradient norm to 1, AdamW step (nanoGPT's two
parameter groups). Batches are random tokens (the data do not change the cost). Each run times `--steps` steps
one by one (after 3 warm-up steps) and reports their median; `--repeats` runs alternate ours/torch in fresh
processes and the best run of each counts. `--threads N` sets OMP/OpenBLAS/MKL/Numba threads and torch's.
Both engines' processes first call `minitorch_attn.training.loop.retain_freed_memory()`, as train_loop does (glibc
keeps freed memory for the next step; `--no-retain-memory` skips it in both).
Not a test; measurements and what they found: NOTES_train_step_baby.md.

`--full` runs the capstone (`train-char --preset baby`: tiny Shakespeare, 2000 iterations, nanoGPT's
schedule, evaluations every 250 steps) in our engine and in torch, one after the other in separate processes,
from the SAME initial weights (ours, copied into the torch model) and the same batches (the loop's generator,
seed 1337), and prints the wall time per step of each (evaluations included, as nanoGPT's timing), the ratio,
and both final val losses (mean over 200 batches per split). About 2 + 2 minutes on one thread. `--preset`,
`--seed` and `--override '{"train": {...}, "model": {...}}'` (merged into the preset) pick the recipe; `--only`
runs one engine (the torch twin follows the recipe's gelu, bias, decay groups and schedule as ours does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

V, T, C, L, H, B = 65, 64, 128, 4, 4, 12


def _median_step_ms(step, steps: int) -> float:
    """The median wall time of `steps` calls of `step`, in ms: on a shared machine a step now and then waits
    for a core (several times its own time), and the median ignores those stalls where the mean does not."""
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return 1000 * sorted(times)[len(times) // 2]


def _allocator(retain: bool) -> None:
    """Both engines run under the same malloc settings: `retain_freed_memory` (what train_loop does) or none."""
    if retain:
        from minitorch_attn.training.loop import retain_freed_memory

        retain_freed_memory()


def ours(steps: int, profile: bool) -> tuple[float, str]:
    import numpy as np

    from minitorch_attn import nn, optim

    model = nn.GPT(nn.GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C, dropout=0.0, bias=False),
                   rng=np.random.default_rng(0))
    opts = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    params = list(model.parameters())
    rng = np.random.default_rng(0)

    def step():
        x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
        _, loss = model(x, y)
        for o in opts:
            o.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(params, 1.0)
        for o in opts:
            o.step()

    for _ in range(3):
        step()
    ms = _median_step_ms(step, steps)
    report = ""
    if profile:
        import cProfile
        import io
        import pstats

        pr = cProfile.Profile()
        pr.enable()
        for _ in range(10):
            step()
        pr.disable()
        buf = io.StringIO()
        pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(25)
        report = "cProfile of 10 steps of ours, by own time:\n" + buf.getvalue()
    return ms, report


def _torch_gpt(vocab: int = V, gelu: str = "none", bias: bool = False):
    """The baby GPT in torch with nanoGPT's module names (so our state_dict loads with load_state_dict);
    `gelu`: torch's `approximate` ("tanh": nanoGPT's early `new_gelu`); `bias`: in Linear and LayerNorm."""
    import torch
    import torch.nn as tnn
    from torch.nn import functional as TF

    torch.manual_seed(0)

    class Attn(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn, self.c_proj = tnn.Linear(C, 3 * C, bias=bias), tnn.Linear(C, C, bias=bias)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (z.view(b, t, H, C // H).transpose(1, 2) for z in (q, k, v))
            y = TF.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, C)
            return self.c_proj(y)

    class MLP(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc, self.c_proj = tnn.Linear(C, 4 * C, bias=bias), tnn.Linear(4 * C, C, bias=bias)

        def forward(self, x):
            return self.c_proj(TF.gelu(self.c_fc(x), approximate=gelu))

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = tnn.LayerNorm(C, bias=bias), tnn.LayerNorm(C, bias=bias)
            self.attn, self.mlp = Attn(), MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = tnn.ModuleDict(dict(
                wte=tnn.Embedding(vocab, C), wpe=tnn.Embedding(T, C),
                h=tnn.ModuleList([Block() for _ in range(L)]), ln_f=tnn.LayerNorm(C, bias=bias)))
            self.lm_head = tnn.Linear(C, vocab, bias=False)
            self.transformer.wte.weight = self.lm_head.weight

        def forward(self, idx, y):
            tr = self.transformer
            x = tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1]))
            for b in tr.h:
                x = b(x)
            logits = self.lm_head(tr.ln_f(x))
            return TF.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-1)

    return GPT()


def torch_step(steps: int) -> float:
    import numpy as np
    import torch

    model = _torch_gpt()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    rng = np.random.default_rng(0)

    def step():
        x, y = (torch.from_numpy(rng.integers(0, V, (B, T))) for _ in range(2))
        loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(3):
        step()
    return _median_step_ms(step, steps)


def _torch_param_groups(model, weight_decay: float, decay: str) -> list:
    """nanoGPT's two AdamW groups (see `GPT.configure_optimizers`): "matrices" decays every parameter with
    dim >= 2, "linear" only the weights of nn.Linear layers other than the tied lm_head."""
    import torch

    if decay == "matrices":
        decayed = {id(p) for p in model.parameters() if p.dim() >= 2}
    else:
        decayed = {id(m.weight) for m in model.modules()
                   if isinstance(m, torch.nn.Linear) and m is not model.lm_head}
    params = list(model.parameters())
    return [{"params": [p for p in params if id(p) in decayed], "weight_decay": weight_decay},
            {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0}]


def recipe(preset: str, override: str | None, iters: int | None = None) -> dict:
    """PRESETS[preset] with the JSON `override` ({"model": {...}, "train": {...}}) merged in, shortened to
    `iters` iterations as `train-char --iters` does (`minitorch_attn.training.char_lm.with_iters`)."""
    from minitorch_attn.training.char_lm import PRESETS, with_iters

    spec = {k: dict(v) for k, v in PRESETS[preset].items()}
    for part, values in json.loads(override or "{}").items():
        spec[part].update(values)
    spec["train"] = with_iters(spec["train"], iters)
    return spec


def full_run(engine: str, spec: dict, seed: int = 1337, data: str | None = None) -> dict:
    """The capstone in one engine: {"seconds", "steps", "val_loss", "train_loss"} (see the module docstring)."""
    import tempfile

    if engine == "ours":
        from minitorch_attn.training.char_lm import train_char

        with tempfile.TemporaryDirectory() as out:
            hist = train_char(data, spec, out=out, seed=seed, progress=False)
        return {"seconds": hist["seconds"], "steps": hist["step"], **{k: v for k, v in hist["eval"][-1].items()
                                                                     if k != "step"}}
    import types

    import numpy as np
    import torch

    from minitorch_attn.data.text import load_char_corpus
    from minitorch_attn.training.char_lm import build_char_model
    from minitorch_attn.training.loop import SCHEDULES

    tc = spec["train"]
    corpus = load_char_corpus(data)
    ours_model, cfg = build_char_model(corpus.chars, spec, seed)  # the same initial weights as ours
    model = _torch_gpt(corpus.vocab_size, cfg.gelu, cfg.bias)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours_model.state_dict().items()})
    opt = torch.optim.AdamW(_torch_param_groups(model, tc["weight_decay"], tc.get("decay", "matrices")),
                            lr=tc["learning_rate"], betas=(tc["beta1"], tc["beta2"]), eps=1e-8)
    sched = SCHEDULES[tc.get("schedule", "nanogpt")](types.SimpleNamespace(lr=tc["learning_rate"]),
                                                     tc["warmup_iters"], tc["lr_decay_iters"], tc["min_lr"])
    bsz, blk, steps = tc["batch_size"], cfg.block_size, tc["max_iters"]

    def estimate(n):  # as minitorch_attn.training.loop.estimate_loss: the same n batches (seed 0) of each split
        model.eval()
        out = {}
        with torch.no_grad():
            for split in ("train", "val"):
                r = np.random.default_rng(0)
                out[f"{split}_loss"] = float(np.mean([
                    model(*(torch.from_numpy(a) for a in corpus.get_batch(split, bsz, blk, r))).item()
                    for _ in range(n)]))
        model.train()
        return out

    rng = np.random.default_rng(seed)  # the loop's generator: the same batches as train_loop draws
    start = time.perf_counter()
    for it in range(steps):
        if it % tc["eval_interval"] == 0:
            estimate(tc["eval_iters"])
        for g in opt.param_groups:
            g["lr"] = sched.get_lr(it)
        x, y = (torch.from_numpy(a) for a in corpus.get_batch("train", bsz, blk, rng))
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
        opt.step()
    final = estimate(tc.get("final_eval_iters", tc["eval_iters"]))
    return {"seconds": time.perf_counter() - start, "steps": steps, **final}


def eval_noise(checkpoint: str, batches: int = 2000, seed: int = 12345) -> str:
    """How noisy nanoGPT's 20-batch evaluation is: the val loss of a train-char checkpoint on `batches` random
    batches, the standard error of a mean of 20 and of 200, and how often a 20-batch mean is <= 1.88
    (bootstrap of 100,000 means)."""
    import numpy as np

    from minitorch_attn.autograd.tensor import no_grad
    from minitorch_attn.data.text import load_char_corpus
    from minitorch_attn.training.char_lm import load_char_model

    model, _, config = load_char_model(checkpoint)
    corpus = load_char_corpus(None)
    bsz, blk = config["train"]["batch_size"], config["model"]["block_size"]
    rng = np.random.default_rng(seed)
    with no_grad():
        losses = np.array([model(*corpus.get_batch("val", bsz, blk, rng))[1].item() for _ in range(batches)])
    sd = losses.std(ddof=1)
    boot = rng.choice(losses, size=(100_000, 20)).mean(axis=1)
    return (f"{checkpoint}: {batches} random val batches: mean {losses.mean():.4f}, per-batch sd {sd:.4f}; "
            f"standard error of a 20-batch mean {sd / 20 ** 0.5:.4f}, of a 200-batch mean {sd / 200 ** 0.5:.4f}; "
            f"P(20-batch mean <= 1.88) = {(boot <= 1.88).mean():.3f} (5th percentile {np.percentile(boot, 5):.4f})")


def _child(engine: str, a, env) -> list[str]:
    cmd = [sys.executable, __file__, "--engine", engine, "--steps", str(a.steps)]
    cmd += ["--threads", str(a.threads)] if a.threads else []
    cmd += ["--full", "--preset", a.preset, "--seed", str(a.seed)] if a.full else []
    cmd += ["--iters", str(a.iters)] if a.full and a.iters else []
    cmd += ["--data", a.data] if a.full and a.data else []
    cmd += ["--no-retain-memory"] if a.no_retain_memory else []
    cmd += ["--override", a.override] if a.full and a.override else []
    cmd += ["--profile"] if a.profile and engine == "ours" else []
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout.strip().splitlines()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int,
                   help="OMP/OpenBLAS/MKL/Numba threads (and torch.set_num_threads) for both")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--repeats", type=int, default=1,
                   help="run ours and torch this many times, interleaved, and keep each one's best")
    p.add_argument("--full", action="store_true", help="the whole capstone (2000 steps) in both engines")
    p.add_argument("--preset", default="baby", help="with --full: the train-char preset (default baby)")
    p.add_argument("--seed", type=int, default=1337, help="with --full: the seed of the weights and batches")
    p.add_argument("--override", help='with --full: JSON merged into the preset, e.g. \'{"train": {"decay": '
                                      '"linear"}}\' (for recipe experiments)')
    p.add_argument("--only", choices=("ours", "torch"), help="with --full: run one engine only")
    p.add_argument("--iters", type=int, help="with --full: this many iterations instead of the preset's "
                                             "(as train-char --iters; for quick checks)")
    p.add_argument("--data", help="with --full: the corpus (default: $MTA_DATA or ../shared/data/tinyshakespeare.txt)")
    p.add_argument("--no-retain-memory", action="store_true",
                   help="skip minitorch_attn.training.loop.retain_freed_memory() (train_loop calls it) in both engines")
    p.add_argument("--eval-noise", metavar="CHECKPOINT",
                   help="how noisy a 20-batch val estimate of this train-char checkpoint is (see eval_noise)")
    p.add_argument("--engine", choices=("ours", "torch"), help=argparse.SUPPRESS)  # the child processes
    a = p.parse_args()
    if a.eval_noise:
        print(eval_noise(a.eval_noise))
        return 0
    if a.engine:
        _allocator(not a.no_retain_memory)
    if a.engine and a.full:
        if a.threads and a.engine == "torch":
            import torch

            torch.set_num_threads(a.threads)
        print(json.dumps(full_run(a.engine, recipe(a.preset, a.override, a.iters), a.seed, a.data)))
        return 0
    if a.engine == "ours":
        ms, report = ours(a.steps, a.profile)
        print(f"{ms:.2f}\n{report}")
        return 0
    if a.engine == "torch":
        if a.threads:
            import torch

            torch.set_num_threads(a.threads)
        print(f"{torch_step(a.steps):.2f}")
        return 0
    env = dict(os.environ)
    if a.threads:
        env.update({k: str(a.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                                "NUMBA_NUM_THREADS")})
    threads = a.threads or "default"
    if a.full:
        engines = (a.only,) if a.only else ("ours", "torch")
        runs = {engine: json.loads(_child(engine, a, env)[-1]) for engine in engines}
        ms = {e: 1000 * r["seconds"] / r["steps"] for e, r in runs.items()}
        print(f"preset {a.preset}, seed {a.seed}" + (f", override {a.override}" if a.override else ""))
        for e, r in runs.items():
            print(f"{e:>5}: {r['steps']} steps in {r['seconds']:.1f} s ({ms[e]:.1f} ms/step, evaluations "
                  f"included); final train loss {r['train_loss']:.5f}, val loss {r['val_loss']:.5f}")
        if a.only:
            return 0
        print(f"capstone ({a.preset}, tiny Shakespeare), threads={threads}: wall time per step ours/torch "
              f"{ms['ours'] / ms['torch']:.2f}x; final val loss ours {runs['ours']['val_loss']:.5f}, "
              f"torch {runs['torch']['val_loss']:.5f}")
        return 0
    results: dict = {"ours": [], "torch": []}
    for _ in range(max(1, a.repeats)):  # interleaved, so both see the same machine load
        for engine in ("ours", "torch"):
            out = _child(engine, a, env)
            results[engine].append(float(out[0]))
            if len(out) > 1:
                print("\n".join(out[1:]))
    best = {e: min(v) for e, v in results.items()}
    print(f"baby GPT training step (B={B}, T={T}), threads={threads}, median step of {a.steps}, best of "
          f"{max(1, a.repeats)} runs: "
          f"ours {best['ours']:.1f} ms, torch {best['torch']:.1f} ms, ratio {best['ours'] / best['torch']:.2f}x "
          f"(all runs: ours {', '.join(f'{v:.1f}' for v in results['ours'])}; "
          f"torch {', '.join(f'{v:.1f}' for v in results['torch'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
