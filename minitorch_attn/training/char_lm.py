"""The character-level language model of lesson 09: nanoGPT's shakespeare_char recipe on our GPT.

    train_char(data, preset="baby")  ->  history;  <out>/ckpt.npz
    model, chars, config = load_char_model("out/char/ckpt.npz");  sample("out/char/ckpt.npz", "ROMEO:")

Command line (`python -m minitorch_attn train-char ...`, `python -m minitorch_attn sample ...`): see `main`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..data.text import CorpusNotFound, load_char_corpus
from ..nn.gpt import GPT, GPTConfig
from .checkpoint import load_checkpoint
from .loop import estimate_loss, train_loop

__all__ = ["PRESETS", "build_char_model", "load_char_model", "main", "sample", "train_char", "with_iters"]


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
    cfg = GPTConfig(vocab_size=len(corpus_chars), **preset["model"])
    return GPT(cfg, rng=np.random.default_rng(seed)), cfg


def train_char(data=None, preset: str | dict = "baby", iters: int | None = None, out="out/char",
               seed: int = 1337, max_chars: int | None = None, progress: bool = True, resume: bool = False,
               eval_interval: int | None = None, eval_iters: int | None = None) -> dict:
    """Train a character-level GPT on a text file (nanoGPT's shakespeare_char recipe) and write
    `<out>/ckpt.npz`. Returns the history (with "eval": train and val losses)."""
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
