"""all-MiniLM-L6-v2 on our engine vs the reference (sentence-transformers on torch), on the same batch.

    python benchmarks/sentence_encoder.py                 # 32 sentences, padded to the longest, 7 rounds
    python benchmarks/sentence_encoder.py --rounds 3 --backend numba

One batch of `--batch` sentences of the bundled corpus (minitorch_attn/data/sentences.py), padded to the
longest. Both engines run in this one process, interleaved: each round times ours, then the reference, and
each keeps its best round (the load of a shared machine comes and goes; the load average is printed).

    encode    SentenceEncoder.encode(sentences, batch_size) vs SentenceTransformer.encode(...): tokenizer,
              encoder, mean pooling, normalisation
    model     the encoder alone on the same token ids: our BertModel (no_grad) vs transformers' BertModel
              (torch.inference_mode)

The ratio is ours / reference (goal: <= 2). Then where our time goes: the encoder's stages timed by wrapping
its modules (embeddings, q/k/v + output projections, scaled dot-product attention, FFN linears, GELU,
LayerNorm, the rest = residual adds and bookkeeping), and the pooling, over one more call. Float32 throughout;
torch and NumPy's BLAS use the threads they choose (both print their count).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the reference reads the installed model directory only
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minitorch_attn import functional as F  # noqa: E402
from minitorch_attn import pretrained  # noqa: E402
from minitorch_attn.autograd.tensor import no_grad  # noqa: E402
from minitorch_attn.data.sentences import sentences  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def llvm_target() -> str:
    try:
        import llvmlite.binding as llvm

        return llvm.get_host_cpu_name()
    except Exception:  # noqa: BLE001 -- only for the printout
        return "?"


def best(fn, rounds: list) -> None:
    t = time.perf_counter()
    fn()
    rounds.append(time.perf_counter() - t)


class StageTimer:
    """Wrap the encoder's modules so that each call adds its time to a stage; `restore()` undoes it."""

    def __init__(self, enc):
        self.times, self.undo = defaultdict(float), []
        m = enc.model
        self._wrap(m.embeddings, "forward", "embeddings (lookup + LayerNorm)")
        for layer in m.layers:
            a = layer.self_attn
            self._wrap(a, "forward", "attention: q/k/v/out projections")
            self._wrap(layer.linear1, "forward", "FFN: linear1 + linear2")
            self._wrap(layer.linear2, "forward", "FFN: linear1 + linear2")
            self._wrap(layer, "activation", "FFN: GELU")
            self._wrap(layer.norm1, "forward", "LayerNorm (2 per layer)")
            self._wrap(layer.norm2, "forward", "LayerNorm (2 per layer)")
        self._wrap(F, "scaled_dot_product_attention", "attention: softmax(qkᵀ/√d)v")

    def _wrap(self, obj, name, stage):
        fn = getattr(obj, name)
        had = name in vars(obj)

        def timed(*args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            self.times[stage] += time.perf_counter() - t
            return out

        setattr(obj, name, timed)
        self.undo.append((obj, name, fn, had))

    def restore(self):
        for obj, name, fn, had in reversed(self.undo):
            if had:
                setattr(obj, name, fn)
            else:
                delattr(obj, name)
        self.undo = []


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--backend", default="auto", help="our attention backend: auto, naive, tiled, numba")
    args = p.parse_args(argv)

    import torch
    from sentence_transformers import SentenceTransformer

    text = sentences()
    batch_sentences = (text * (args.batch // len(text) + 1))[: args.batch]
    enc = pretrained.SentenceEncoder.from_pretrained(backend=args.backend)
    ref = SentenceTransformer(str(pretrained.default_path()), device="cpu")
    hf = ref[0].auto_model.eval()
    batch = enc.tokenize(batch_sentences)
    ids = {"input_ids": torch.tensor(batch.input_ids), "attention_mask": torch.tensor(batch.attention_mask),
           "token_type_ids": torch.tensor(batch.token_type_ids)}

    def ours_encode():
        return enc.encode(batch_sentences, batch_size=args.batch)

    def ref_encode():
        return ref.encode(batch_sentences, batch_size=args.batch, convert_to_numpy=True)

    def ours_model():
        with no_grad():
            return enc.model(batch.input_ids, batch.attention_mask, batch.token_type_ids)

    def ref_model():
        with torch.inference_mode():
            return hf(**ids).last_hidden_state

    diff = float(np.abs(ours_encode() - ref_encode()).max())  # also the warm-up (Numba compiles, caches fill)
    ours_model(), ref_model()
    t = defaultdict(list)
    for _ in range(args.rounds):
        best(ours_encode, t["ours encode"])
        best(ref_encode, t["ref encode"])
        best(ours_model, t["ours model"])
        best(ref_model, t["ref model"])

    print(f"CPU: {cpu_name()}; LLVM target {llvm_target()}; {os.cpu_count()} logical CPUs; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads); numpy {np.__version__}; "
          f"our attention backend {args.backend!r}")
    print(f"batch: {args.batch} sentences, padded to {batch.input_ids.shape[1]} tokens "
          f"({int(batch.attention_mask.sum())} real tokens); best of {args.rounds} interleaved rounds")
    print(f"max |ours - reference| over the embeddings: {diff:.2e}\n")
    print(f"{'':8} {'ours (ms)':>10} {'reference (ms)':>15} {'ratio':>7}")
    for what in ("encode", "model"):
        o, r = min(t[f"ours {what}"]), min(t[f"ref {what}"])
        print(f"{what:8} {1e3 * o:10.1f} {1e3 * r:15.1f} {o / r:7.2f}")

    timer = StageTimer(enc)
    try:
        tb = enc.tokenize(batch_sentences)
        t0 = time.perf_counter()
        hidden = enc.hidden_states(tb)
        t1 = time.perf_counter()
        pretrained.l2_normalize(pretrained.mean_pool(hidden, tb.attention_mask))
        t2 = time.perf_counter()
    finally:
        timer.restore()
    stages = dict(timer.times)
    stages["attention: q/k/v/out projections"] -= stages["attention: softmax(qkᵀ/√d)v"]
    stages["residual adds, reshapes, the rest"] = (t1 - t0) - sum(stages.values())
    stages["mean pooling + normalisation"] = t2 - t1
    total = t2 - t0
    print(f"\nwhere our time goes (one more call, {1e3 * total:.1f} ms, backend {args.backend!r}):")
    for name, s in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"  {name:38} {1e3 * s:7.1f} ms  {100 * s / total:5.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
