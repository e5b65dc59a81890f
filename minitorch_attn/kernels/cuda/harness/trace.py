"""What `CpuKernel.trace` returns: the timeline of one block of a launch, for a notebook to print.

    trace = module.get_function("flash_fwd").trace(grid, block, args, shared_mem=nbytes, block_index=(0, 0))
    print(trace.summary())                                 # counts per kind of event, barriers, printf lines
    print(trace.timeline(limit=20, threads=range(2)))      # one line per event
    q_tile = trace.shared_at_barrier(0, np.float32)[:Br * d]  # dynamic shared memory at the first __syncthreads

Events, in the order they happened (fiber mode: the scheduler's order, one thread at a time; thread mode: the
order of a relaxed atomic counter, so events of threads running at the same time interleave arbitrarily):
- "resume": the scheduler switched to this thread (fiber mode only: which thread ran);
- "syncthreads": the thread arrived at __syncthreads number `barrier` (0, 1, ... in this block);
- "release": the last thread arrived, __syncthreads `barrier` opens; `snapshot(barrier)` is the block's dynamic
  shared memory at that moment (every thread has done all its writes before the barrier);
- "syncwarp": the thread arrived at __syncwarp (`barrier`: which barrier of its warp, shuffles included);
- "shfl_idx", "shfl_xor", "shfl_down", "shfl_up": a shuffle, with the value `sent`, the lane read from
  (`src_lane`) and the value `received`; "ballot": `sent` is the vote, `received` the warp's ballot;
- "printf": a device printf (`text`); "exit": the thread returned from the kernel.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

KINDS = ("resume", "syncthreads", "release", "syncwarp", "shfl_idx", "shfl_xor", "shfl_down", "shfl_up",
         "ballot", "printf", "exit")
EVENT_DTYPE = np.dtype([("seq", "<i8"), ("kind", "<i4"), ("thread", "<i4"), ("barrier", "<i4"),
                        ("src_lane", "<i4"), ("type", "<i4"), ("index", "<i4"), ("sent", "<u8"),
                        ("received", "<u8")])  # runtime.cpp's TraceEvent
_VALUE_KINDS = {1: "i", 2: "u", 3: "f"}


def _value(bits: int, type_code: int):
    """The value a shuffle moved, from its bits and runtime.cpp's type_code: (kind << 8) | size."""
    kind, size = type_code >> 8, type_code & 0xFF
    if kind not in _VALUE_KINDS:
        return None
    raw = int(bits).to_bytes(8, "little")[:size]
    return np.frombuffer(raw, f"<{_VALUE_KINDS[kind]}{size}")[0].item()


@dataclass(frozen=True, repr=False)
class Event:
    """One step of one thread of the traced block. Fields that do not apply to the kind are None."""

    kind: str
    thread: int                      # linear index: threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * z)
    thread_idx: tuple[int, int, int]
    warp: int
    lane: int
    barrier: int | None = None
    src_lane: int | None = None
    sent: float | int | None = None
    received: float | int | None = None
    text: str | None = None

    def __str__(self) -> str:
        who = f"t{self.thread}"
        if self.kind == "resume":
            return f"{who} runs"
        if self.kind == "syncthreads":
            return f"{who} arrives at __syncthreads #{self.barrier}"
        if self.kind == "release":
            return f"__syncthreads #{self.barrier} opens (last to arrive: {who})"
        if self.kind == "syncwarp":
            return f"{who} arrives at __syncwarp (warp {self.warp})"
        if self.kind == "ballot":
            return f"{who} ballot: votes {self.sent}, warp's ballot {self.received:#010x}"
        if self.kind.startswith("shfl"):
            return (f"{who} {self.kind}: sends {_short(self.sent)}, gets {_short(self.received)} "
                    f"from lane {self.src_lane}")
        if self.kind == "printf":
            return f"{who} printf: {self.text}"
        return f"{who} returns"

    def __repr__(self) -> str:
        return f"<Event {self}>"


def _short(x) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


class Trace:
    """The events of one block of a launch, and its dynamic shared memory at each __syncthreads."""

    def __init__(self, records: np.ndarray, texts: list[str], snapshots: list[bytes], block_index, block_dim,
                 grid_dim):
        self.block_index, self.block_dim, self.grid_dim = tuple(block_index), tuple(block_dim), tuple(grid_dim)
        self.snapshots = snapshots  # bytes of dynamic shared memory at each __syncthreads, in order
        bx, by, _ = self.block_dim
        events = []
        for r in records.tolist():
            _, kind, thread, barrier, src_lane, type_code, index, sent, received = r
            name = KINDS[kind]
            shuffle = name.startswith("shfl") or name == "ballot"
            events.append(Event(
                kind=name, thread=thread, thread_idx=(thread % bx, (thread // bx) % by, thread // (bx * by)),
                warp=thread // 32, lane=thread % 32, barrier=barrier if barrier >= 0 else None,
                src_lane=src_lane if name.startswith("shfl") else None,
                sent=_value(sent, type_code) if shuffle else None,
                received=_value(received, type_code) if shuffle else None,
                text=texts[index] if name == "printf" else None))
        self.events = events
        self.printed = [e.text for e in events if e.kind == "printf"]  # this block's printf output, in order

    @property
    def barrier_count(self) -> int:
        """How many __syncthreads the block passed."""
        return len(self.snapshots)

    def shared_at_barrier(self, n: int, dtype=np.uint8) -> np.ndarray:
        """A copy of dynamic shared memory when __syncthreads number `n` opened, viewed as `dtype`."""
        if not -len(self.snapshots) <= n < len(self.snapshots):
            raise IndexError(f"barrier {n} out of range: the block passed {len(self.snapshots)} __syncthreads")
        return np.frombuffer(self.snapshots[n], dtype).copy()

    def of_thread(self, thread: int) -> list[Event]:
        return [e for e in self.events if e.thread == thread]

    def of_kind(self, *kinds: str) -> list[Event]:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown event kinds {sorted(unknown)}; the kinds are {', '.join(KINDS)}")
        return [e for e in self.events if e.kind in kinds]

    def timeline(self, limit: int | None = 40, threads=None, kinds=None) -> str:
        """One line per event (optionally only some threads / kinds; releases of __syncthreads are always
        shown with a thread filter), at most `limit` lines."""
        threads = None if threads is None else set(threads)
        chosen = [e for e in self.events if (threads is None or e.thread in threads or e.kind == "release")
                  and (kinds is None or e.kind in kinds)]
        lines = [f"{i:>6}  {e}" for i, e in enumerate(chosen[:limit])]
        if limit is not None and len(chosen) > limit:
            lines.append(f"        ... {len(chosen) - limit} more")
        return "\n".join(lines)

    def summary(self) -> str:
        counts = Counter(e.kind for e in self.events)
        n_threads = int(np.prod(self.block_dim))
        size = len(self.snapshots[0]) if self.snapshots else 0
        lines = [f"block {self.block_index} of grid {self.grid_dim}, block {self.block_dim}: {n_threads} threads "
                 f"({(n_threads + 31) // 32} warps), {len(self.events)} events",
                 f"  __syncthreads passed: {self.barrier_count} (shared memory snapshots of {size} bytes)",
                 "  " + ", ".join(f"{kind}: {counts[kind]}" for kind in KINDS if counts[kind])]
        lines += [f"  printf: {text}" for text in self.printed[:10]]
        if len(self.printed) > 10:
            lines.append(f"  ... {len(self.printed) - 10} more printf lines")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Trace of block {self.block_index}: {len(self.events)} events, {self.barrier_count} barriers>"
