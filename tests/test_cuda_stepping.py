"""Block stepping: `kernel.trace(...)` records what each thread of one block does, for the CUDA lesson.

1. flash_fwd.cu: the traced block passes 2 __syncthreads per key tile; every thread arrives at each one once,
   all arrivals come before the barrier opens and nothing a thread does after it comes before; the shared
   memory snapshots hold the Q tile (then K and V tiles, zero-filled past Nk) exactly, in both modes.
2. A tiny warp kernel written here: each shuffle records its source lane and the values sent and received,
   ballots and __syncwarp are recorded, device printf goes into the trace (and is printed, with block and
   thread indices, by an ordinary launch).
3. In fiber mode the timeline is a sequence of turns: after "t runs", only t acts until the next switch.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from minitorch_attn.kernels.cuda import SOURCE_DIR

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the CPU harness needs g++")

from minitorch_attn.kernels.cuda.forward import BLOCK_N, forward_launch_config, run_flash_forward  # noqa: E402
from minitorch_attn.kernels.cuda.harness import CpuModule, KernelError  # noqa: E402


def _flash(mode="fibers"):
    return CpuModule(path=SOURCE_DIR / "flash_fwd.cu", mode=mode).get_function("flash_fwd")


def _inputs(Nq, Nk, d, dv, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((1, 1, Nq, d)).astype(np.float32),
            rng.standard_normal((1, 1, Nk, d)).astype(np.float32),
            rng.standard_normal((1, 1, Nk, dv)).astype(np.float32))


# --- 1. flash_fwd: barriers and shared memory -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["fibers", "threads"])
def test_flash_fwd_barriers_and_shared_memory_snapshots(mode):
    Nq, Nk, d, dv = 8, 70, 16, 8  # Br = 4 rows per block: block 1 holds rows 4..7; 3 key tiles, the last partial
    q, k, v = _inputs(Nq, Nk, d, dv)
    traced = _flash(mode).traced(block_index=(1, 0), seed=3)
    o, lse = run_flash_forward(traced, q, k, v)
    o_plain, _ = run_flash_forward(_flash(mode), q, k, v, seed=3)
    assert np.array_equal(o, o_plain), "tracing changes nothing in the results"
    trace = traced.trace
    (_, block, _), Br = forward_launch_config(1, 1, Nq, d, dv), 4
    n_threads, tiles = block[0], -(-Nk // BLOCK_N)
    assert trace.block_index == (1, 0, 0) and trace.barrier_count == 2 * tiles == 6

    arrivals = trace.of_kind("syncthreads")
    assert len(arrivals) == n_threads * 2 * tiles
    for t in (0, 37, n_threads - 1):
        assert [e.barrier for e in trace.of_thread(t) if e.kind == "syncthreads"] == list(range(2 * tiles))
    position = {id(e): i for i, e in enumerate(trace.events)}
    for release in trace.of_kind("release"):
        n = release.barrier
        before = [position[id(e)] for e in arrivals if e.barrier == n]
        assert len(before) == n_threads and max(before) < position[id(release)]
        # each thread's next own step after its arrival comes after the release. The release itself carries
        # the thread that arrived last (any thread, in thread mode), so it is not one of those steps.
        for t in (0, n_threads - 1):
            mine = [e for e in trace.of_thread(t) if e.kind not in ("resume", "release")]
            at = next(i for i, e in enumerate(mine) if e.kind == "syncthreads" and e.barrier == n)
            if at + 1 < len(mine):
                assert position[id(mine[at + 1])] > position[id(release)]

    q_tile = q[0, 0, 4:8].ravel()
    k_s, v_s = slice(Br * d, Br * d + BLOCK_N * d), slice(Br * d + BLOCK_N * d, None)
    first = trace.shared_at_barrier(0, np.float32)
    assert first.size == Br * d + BLOCK_N * (d + dv)
    assert np.array_equal(first[:Br * d], q_tile)  # the Q tile is staged before the first barrier
    assert np.all(np.isnan(first[k_s])) and np.all(np.isnan(first[v_s])), "K/V not loaded yet: still poison"
    for tile in range(tiles):
        snap = trace.shared_at_barrier(2 * tile + 1, np.float32)
        rows = slice(tile * BLOCK_N, min(Nk, (tile + 1) * BLOCK_N))
        n_rows = rows.stop - rows.start
        assert np.array_equal(snap[:Br * d], q_tile)
        assert np.array_equal(snap[k_s][:n_rows * d], k[0, 0, rows].ravel())
        assert np.array_equal(snap[v_s][:n_rows * dv], v[0, 0, rows].ravel())
        assert np.all(snap[k_s][n_rows * d:] == 0) and np.all(snap[v_s][n_rows * dv:] == 0)  # zero-filled
    assert np.array_equal(trace.shared_at_barrier(-1, np.uint8), trace.shared_at_barrier(5, np.uint8))
    with pytest.raises(IndexError, match="passed 6 __syncthreads"):
        trace.shared_at_barrier(6)
    assert "__syncthreads passed: 6" in trace.summary() and f"{n_threads} threads (4 warps)" in trace.summary()


def test_causal_block_skips_key_tiles():
    Nq, Nk, d = 8, 70, 16  # causal: block 1 (rows 4..7) needs only keys 0..7: one tile, two barriers
    q, k, v = _inputs(Nq, Nk, d, d)
    traced = _flash().traced(block_index=(1,))
    run_flash_forward(traced, q, k, v, causal=True)
    assert traced.trace.barrier_count == 2
    with pytest.raises(ValueError, match=r"block_index \(2,\) is outside the grid \(2, 1, 1\)"):
        _flash().traced(block_index=(2,))((2, 1), (128,), ())


# --- 2. a warp kernel: shuffles, ballot, __syncwarp, printf ----------------------------------------------

WARP = r"""
extern "C" __global__ void warp_demo(int* out) {
    int x = threadIdx.x;
    for (int offset = 16; offset > 0; offset /= 2)
        x += __shfl_xor_sync(0xffffffffu, x, offset);          // butterfly: every lane gets the warp's sum
    const int below = __shfl_down_sync(0xffffffffu, (int)threadIdx.x, 1);
    const float third = __shfl_sync(0xffffffffu, 0.5f * threadIdx.x, 3);
    const unsigned votes = __ballot_sync(0xffffffffu, threadIdx.x % 3 == 0);
    __syncwarp();
    out[blockIdx.x * blockDim.x + threadIdx.x] = x + below;
    if (threadIdx.x % 32 == 0)
        printf("warp %d: sum %d, ballot %08x, lane 3 says %.1f", threadIdx.x / 32, x, votes, third);
}
"""


def _ballot(base):
    """The warp's vote for `threadIdx.x % 3 == 0` when its lane 0 is thread `base`."""
    return sum(1 << i for i in range(32) if (base + i) % 3 == 0)


@pytest.mark.parametrize("mode", ["fibers", "threads"])
def test_shuffles_ballots_and_printf_are_recorded(mode, capsys):
    kernel = CpuModule(code=WARP, mode=mode).get_function("warp_demo")
    out = np.zeros(2 * 64, np.int32)
    trace = kernel.trace((2,), (64,), (out,), block_index=(1,), seed=5)
    expected = [f"warp {w}: sum {sum(range(32 * w, 32 * w + 32))}, ballot {_ballot(32 * w):08x}, lane 3 says "
                f"{0.5 * (32 * w + 3):.1f}" for w in (0, 1)]
    printed = capsys.readouterr().out.splitlines()
    # (in the order the threads ran: warp 1 may print first)
    assert sorted(printed) == [f"[block (0, 0, 0) thread ({32 * w}, 0, 0)] {expected[w]}" for w in (0, 1)]
    assert sorted(trace.printed) == expected, "block 1's printf is in the trace, not printed"
    assert [e.text for e in trace.of_kind("printf")] == trace.printed

    for t in range(64):
        lane, base = t % 32, t - t % 32
        xor = [e for e in trace.of_thread(t) if e.kind == "shfl_xor"]
        assert [e.src_lane for e in xor] == [lane ^ o for o in (16, 8, 4, 2, 1)]
        assert xor[0].sent == t and xor[0].received == base + (lane ^ 16)
        assert xor[-1].received + xor[-1].sent == sum(range(base, base + 32))
        [down] = [e for e in trace.of_thread(t) if e.kind == "shfl_down"]
        assert down.src_lane == min(lane + 1, 31) and down.received == base + down.src_lane  # lane 31 keeps its own
        [idx] = [e for e in trace.of_thread(t) if e.kind == "shfl_idx"]
        assert (idx.sent, idx.received, idx.src_lane) == (0.5 * t, 0.5 * (base + 3), 3)
        [vote] = [e for e in trace.of_thread(t) if e.kind == "ballot"]
        assert vote.sent == (t % 3 == 0) and vote.received == _ballot(base)
        kinds = [e.kind for e in trace.of_thread(t) if e.kind != "resume"]
        assert kinds[-3:] == (["syncwarp", "printf", "exit"] if lane == 0 else ["ballot", "syncwarp", "exit"])
    # what lane L received at its k-th xor step is what its partner sent at the same step
    for t in range(64):
        for step, e in enumerate(e for e in trace.of_thread(t) if e.kind == "shfl_xor"):
            partner = [p for p in trace.of_thread(t - t % 32 + e.src_lane) if p.kind == "shfl_xor"][step]
            assert e.received == partner.sent
    assert len(trace.of_kind("syncwarp")) == 64 and trace.barrier_count == 0
    assert trace.events[-1].kind == "exit" and len(trace.of_kind("exit")) == 64
    assert np.array_equal(out.reshape(2, 64)[1] - np.minimum(np.arange(64) % 32 + 1, 31) - np.arange(64) // 32 * 32,
                          [sum(range(32 * (t // 32), 32 * (t // 32) + 32)) for t in range(64)])
    text = trace.timeline(limit=None, threads=[3])
    assert "t3 shfl_xor: sends 3, gets 19 from lane 19" in text
    with pytest.raises(ValueError, match="unknown event kinds"):
        trace.of_kind("shuffle")


def test_printf_of_an_ordinary_launch_names_block_and_thread(capsys):
    kernel = CpuModule(code=WARP).get_function("warp_demo")
    kernel((3,), (64,), (np.zeros(3 * 64, np.int32),))
    lines = capsys.readouterr().out.splitlines()
    heads = [line.split("]")[0] for line in lines]
    for b in range(3):  # blocks run in order; inside a block, in the order the threads ran
        assert sorted(heads[2 * b:2 * b + 2]) == [f"[block ({b}, 0, 0) thread ({t}, 0, 0)" for t in (0, 32)]
    assert f"[block (2, 0, 0) thread (32, 0, 0)] warp 1: sum {sum(range(32, 64))}, ballot {_ballot(32):08x}, " \
           f"lane 3 says 17.5" in lines


def test_fiber_timeline_is_a_sequence_of_turns():
    q, k, v = _inputs(4, 40, 8, 8)
    traced = _flash().traced(block_index=(0,), seed=7)
    run_flash_forward(traced, q, k, v)
    running, switches, runs = None, 0, set()
    for e in traced.trace.events:
        if e.kind == "resume":
            running, switches = e.thread, switches + 1
            runs.add(e.thread)
        else:
            assert e.thread == running, f"{e} while t{running} had the turn"
    assert runs == set(range(128)) and switches > 128 * 2 * 2  # every thread, at least at every barrier
    assert traced.trace.timeline(limit=2).count("\n") == 2  # two events and the "... more" line


def test_a_failing_traced_launch_raises():
    source = (SOURCE_DIR / "flash_fwd.cu").read_text()
    broken = source.replace("const bool row_in_range = i < Nq;",
                            "const bool row_in_range = i < Nq;\n    if (!row_in_range) return;")
    kernel = CpuModule(code=broken).get_function("flash_fwd")
    q, k, v = _inputs(5, 9, 8, 8)
    with pytest.raises(KernelError, match="deadlock"):
        run_flash_forward(kernel.traced(block_index=(1,)), q, k, v)
