"""Time one training step of nanoGPT's "baby" configuration (4 layers, 4 heads, 128 wide, block 64, batch 12,
vocab 65) in our engine and in the same model written in torch, each in its own process, and print the ratio.

    python benchmarks/train_step_baby.py                    # default BLAS/torch threads
    python benchmarks/train_step_baby.py --threads 1        # one thread for both (fairer on a busy machine)
    python benchmarks/train_step_baby.py --profile          # cProfile of our step, top entries by own time

A step is: forward + loss, zero_grad, backward, clip the gradient norm to 1, AdamW step (nanoGPT's two
parameter groups). Batches are random tokens (the data do not change the cost). Not a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

V, T, C, L, H, B = 65, 64, 128, 4, 4, 12


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
    t = time.perf_counter()
    for _ in range(steps):
        step()
    ms = 1000 * (time.perf_counter() - t) / steps
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
        pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(15)
        report = "cProfile of 10 steps of ours, by own time:\n" + buf.getvalue()
    return ms, report


def torch_step(steps: int) -> float:
    import numpy as np
    import torch
    import torch.nn as tnn
    from torch.nn import functional as TF

    torch.manual_seed(0)

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = tnn.LayerNorm(C, bias=False), tnn.LayerNorm(C, bias=False)
            self.c_attn, self.c_proj = tnn.Linear(C, 3 * C, bias=False), tnn.Linear(C, C, bias=False)
            self.c_fc, self.mlp_proj = tnn.Linear(C, 4 * C, bias=False), tnn.Linear(4 * C, C, bias=False)

        def forward(self, x):
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            y = TF.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
            x = x + self.c_proj(y)
            return x + self.mlp_proj(TF.gelu(self.c_fc(self.ln_2(x))))

    class GPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = tnn.Embedding(V, C), tnn.Embedding(T, C)
            self.h = tnn.ModuleList([Block() for _ in range(L)])
            self.ln_f, self.lm_head = tnn.LayerNorm(C, bias=False), tnn.Linear(C, V, bias=False)
            self.wte.weight = self.lm_head.weight

        def forward(self, idx, y):
            x = self.wte(idx) + self.wpe(torch.arange(T))
            for b in self.h:
                x = b(x)
            return TF.cross_entropy(self.lm_head(self.ln_f(x)).view(-1, V), y.view(-1))

    model = GPT()
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
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - t) / steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, help="OMP/OpenBLAS/MKL threads (and torch.set_num_threads) for both")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--engine", choices=("ours", "torch"), help=argparse.SUPPRESS)  # the child processes
    a = p.parse_args()
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
        env.update({k: str(a.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    results = {}
    for engine in ("ours", "torch"):
        cmd = [sys.executable, __file__, "--engine", engine, "--steps", str(a.steps)]
        cmd += ["--threads", str(a.threads)] if a.threads else []
        cmd += ["--profile"] if a.profile and engine == "ours" else []
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout.strip().splitlines()
        results[engine] = float(out[0])
        if len(out) > 1:
            print("\n".join(out[1:]))
    print(f"baby GPT training step (B={B}, T={T}), threads={a.threads or 'default'}: ours {results['ours']:.1f} ms, "
          f"torch {results['torch']:.1f} ms, ratio {results['ours'] / results['torch']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
