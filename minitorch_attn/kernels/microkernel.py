"""A register-tile micro-kernel for the flash tiles' matmuls, written as LLVM vectors through a Numba intrinsic.

    microkernel_tile(C, A, B, i, cj, bj, k):       C[i:i+MR, cj:cj+NV·L] += A[i:i+MR, :k] @ B[:k, bj:bj+NV·L]
    microkernel_tile_at(C, A, B, i, cj, bj, k):    C[i:i+MR, cj:cj+NV·L] += A[:k, i:i+MR]ᵀ @ B[:k, bj:bj+NV·L]

L is the number of lanes of one vector register, VECTOR_BYTES wide. The shape follows the vector registers
Numba compiles for (`ops.threads.wide_vectors()`):
- 512-bit (AVX-512: 32 zmm registers): MR = 8 rows × NV = 2 vectors of 64 bytes, an 8 × 32 float32 block of C
  (8 × 16 float64) in 16 accumulators;
- otherwise (AVX2: 16 ymm registers): MR = 4 rows × NV = 2 vectors of 32 bytes, a 4 × 16 float32 block in 8
  accumulators, which leaves registers for the two loads of B and the broadcast of A. The 512-bit shape on a
  256-bit CPU needs 32 accumulator registers and spills: it ran 0.73× as fast as the loops there (AMD Zen 3,
  `benchmarks/flash_inner.py`); a (64 × 256) ← (64 × 64)(64 × 256) tile alone, one core: loops 54.5 GFLOP/s,
  4 × 2 71.6, 6 × 2 64.5, 8 × 1 57.0, 4 × 3 56.3, the 8 × 2 zmm shape 30.4 (benchmarks/NOTES_attention_cpu.md,
  "Zen 3").

Why it exists. `tile_matmul`'s loops are plain Python that LLVM vectorises: each pass of their innermost loop
loads a vector of C, adds four FMAs' worth into it and stores it back, because LLVM cannot prove that C does not
alias A or B and so cannot keep C in registers across the k-steps. On a CPU with two 512-bit FMA units per core
that load/store traffic, not the FMAs, sets the speed (benchmarks/NOTES_attention_cpu.md, "Intel"). Here the
MR × NV accumulators are LLVM values of type <L x float> that live in registers for all k steps, and C is read
and written once per call:

    for kk in range(k):                       # the k-loop; acc[r][h] never touches memory
        b[h] = B[kk, bj + h·L : bj + (h+1)·L]  for h < NV       # NV vector loads
        for r in range(MR):
            a = broadcast(A[i+r, kk])                        # one scalar load, broadcast to L lanes
            acc[r][h] = fma(a, b[h], acc[r][h])  for h < NV
    C[i+r, cj:cj+NV·L] += acc[r][:]   for r in range(MR)

The rules a caller obeys (nothing is checked inside: it is the innermost loop):
- C and B have unit stride along their last axis (the caller checks; `tile_matmul` falls back otherwise);
- rows i..i+MR-1 and columns cj..cj+NV·L-1 of C, columns bj..bj+NV·L-1 and rows 0..k-1 of B, and the MR × k
  entries of A lie inside the arrays (no bounds checks);
- A may have any strides (its entries are read one at a time and broadcast).

Where both can run, `kernels/tuning.py` times this tile and the loops once per machine and keeps the faster.

Why the kernels take the choice as a compile-time constant (`numba.literally(mk)` in `numba_backend`): passed as
a runtime flag, both inner kernels end up in one function, and LLVM then compiled the loops of the forward 6×
slower than on their own (103 ms instead of 17 ms, N = 1024, 4 heads, one thread, CPU time; Intel Xeon,
emeraldrapids). One specialisation per value keeps each path as fast as it is alone.

MR, NV and VECTOR_BYTES are frozen into the compiled code; Numba's disk cache is keyed by the CPU name and
features, which decide them, so a cached kernel never holds another machine's shape.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .ops.threads import wide_vectors

if wide_vectors():
    MR, NV, VECTOR_BYTES = 8, 2, 64   # rows of C per call, vectors of C per row, bytes per vector
else:
    MR, NV, VECTOR_BYTES = 4, 2, 32


def _pointer(builder, base, offset_bytes, elem_type):
    """`base` (i8*) + `offset_bytes`, as a pointer to `elem_type`."""
    return builder.bitcast(builder.gep(base, [offset_bytes], inbounds=True), elem_type.as_pointer())


def _make(transposed: bool):
    """The intrinsic for A read as A[i + r, kk] (transposed=False) or A[kk, i + r] (True)."""

    def typer(typingctx, C, A, B, i, cj, bj, k):
        if not all(isinstance(t, types.Array) and t.ndim == 2 for t in (C, A, B)):
            return None
        if not (C.dtype == A.dtype == B.dtype) or C.dtype not in (types.float32, types.float64):
            return None
        return types.void(C, A, B, i, cj, bj, k), codegen

    def codegen(context, builder, signature, args):
        arrays = [context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:3], args[:3])]
        intp = context.get_value_type(types.intp)
        i_, cj_, bj_, k_ = (context.cast(builder, v, t, types.intp) for v, t in zip(args[3:], signature.args[3:]))
        scalar = context.get_value_type(signature.args[0].dtype)
        itemsize = context.get_abi_sizeof(scalar)
        L = VECTOR_BYTES // itemsize
        vec = ir.VectorType(scalar, L)
        i8p = ir.IntType(8).as_pointer()
        c_base, a_base, b_base = (builder.bitcast(a.data, i8p) for a in arrays)
        c_s0 = cgutils.unpack_tuple(builder, arrays[0].strides, 2)[0]
        a_s0, a_s1 = cgutils.unpack_tuple(builder, arrays[1].strides, 2)
        b_s0 = cgutils.unpack_tuple(builder, arrays[2].strides, 2)[0]
        a_row, a_k = (a_s1, a_s0) if transposed else (a_s0, a_s1)  # byte steps of A per row of C / per kk
        const = lambda n: ir.Constant(intp, n)  # noqa: E731
        zero = ir.Constant(vec, [ir.Constant(scalar, 0.0)] * L)
        undef = ir.Constant(vec, ir.Undefined)
        splat = ir.Constant(ir.VectorType(ir.IntType(32), L), [0] * L)
        suffix = f"v{L}f{8 * itemsize}"  # llvm.fma.v16f32 (zmm) / v8f32 (ymm): one vfmadd231ps per call
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), "llvm.fma." + suffix)
        acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(NV)] for _ in range(MR)]  # -> registers
        a_first = builder.mul(i_, a_row)
        b_first = builder.mul(bj_, const(itemsize))
        with cgutils.for_range(builder, k_) as loop:
            kk = loop.index
            b_row = builder.add(builder.mul(kk, b_s0), b_first)
            b = [builder.load(_pointer(builder, b_base, builder.add(b_row, const(h * L * itemsize)), vec),
                              align=itemsize) for h in range(NV)]
            a_off = builder.add(a_first, builder.mul(kk, a_k))
            for r in range(MR):
                a_val = builder.load(_pointer(builder, a_base, a_off, scalar))
                a_vec = builder.shuffle_vector(builder.insert_element(undef, a_val, ir.Constant(ir.IntType(32), 0)),
                                               undef, splat)
                for h in range(NV):
                    builder.store(builder.call(fma, [a_vec, b[h], builder.load(acc[r][h])]), acc[r][h])
                a_off = builder.add(a_off, a_row)
        c_first = builder.add(builder.mul(i_, c_s0), builder.mul(cj_, const(itemsize)))
        for r in range(MR):
            row = builder.add(c_first, builder.mul(const(r), c_s0))
            for h in range(NV):
                ptr = _pointer(builder, c_base, builder.add(row, const(h * L * itemsize)), vec)
                total = builder.fadd(builder.load(ptr, align=itemsize), builder.load(acc[r][h]))
                builder.store(total, ptr, align=itemsize)
        return context.get_dummy_value()

    typer.__name__ = "microkernel_tile_at" if transposed else "microkernel_tile"
    return intrinsic(typer)


microkernel_tile = _make(False)     # C[i:i+MR, cj:cj+NV·L] += A[i:i+MR, :k] @ B[:k, bj:bj+NV·L]
microkernel_tile_at = _make(True)   # C[i:i+MR, cj:cj+NV·L] += A[:k, i:i+MR]ᵀ @ B[:k, bj:bj+NV·L]
