"""Training the sequence-to-sequence models of lessons 03-04 (nn.Seq2Seq) on a toy task (data.sequences)."""

from __future__ import annotations

from .. import optim
from ..data.sequences import PAD
from ..nn.seq2seq import Seq2Seq
from .loop import train_loop


def train_seq2seq(model: Seq2Seq, task, steps: int = 400, batch_size: int = 32, lr: float = 1e-2,
                  clip: float = 1.0, seed: int = 0, progress: bool = True, desc: str = "train",
                  schedule: bool = True, **task_kwargs) -> dict:
    """Train with Adam on fresh batches `task(batch_size, seed=rng, **task_kwargs)` (e.g. `reversal_task`
    with length=10), one batch per step, clipping the gradient norm to `clip`; with `schedule`, the learning
    rate warms up over the first 5% of the steps and then decays to lr / 20 along a cosine (the last steps
    settle the weights, so the result depends less on the last few batches). A tqdm bar shows the loss
    and the teacher-forced token accuracy (both smoothed); the loop is `minitorch_attn.training.loop.train_loop`.
    Returns {"loss": [...], "accuracy": [...], "seconds": wall time}."""
    if steps < 1:
        raise ValueError(f"train_seq2seq: steps must be positive; got {steps}")

    def step_loss(model, batch):
        loss, logits = model.loss(batch)
        keep = batch.tgt_out != PAD
        return loss, {"accuracy": float((logits.data.argmax(-1) == batch.tgt_out)[keep].mean())}

    opt = optim.Adam(list(model.parameters()), lr=lr)
    history = train_loop(model, lambda rng: task(batch_size, seed=rng, **task_kwargs), step_loss, opt, steps,
                         warmup_steps=max(1, steps // 20), min_lr=lr / 20 if schedule else None,
                         clip=clip, seed=seed, progress=progress, desc=desc)
    return {"loss": history["loss"], "accuracy": history["accuracy"], "seconds": history["seconds"]}
