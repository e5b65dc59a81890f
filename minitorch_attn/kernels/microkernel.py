"""A register-tile micro-kernel for the flash tiles' matmuls, written as LLVM vectors through a Numba intrinsic.

    microkernel_8x2v(C, A, B, i, cj, bj, k):       C[i:i+8, cj:cj+2L] += A[i:i+8, :k] @ B[:k, bj:bj+2L]
    microkernel_8x2v_at(C, A, B, i, cj, bj, k):    C[i:i+8, cj:cj+2L] += A[:k, i:i+8]ᵀ @ B[:k, bj:bj+2L]

L is the number of lanes of one 64-byte vector: 16 float32 or 8 float64, so a call updates an 8 × 32 float32
block of C (8 × 16 float64).

Why it exists. `tile_matmul`'s loops are plain Python that LLVM vectorises: each pass of their innermost loop
loads a vector of C, adds four FMAs' worth into it and stores it back, because LLVM cannot prove that C does not
alias A or B and so cannot keep C in registers across the k-steps. On a CPU with two 512-bit FMA units per core
that load/store traffic, not the FMAs, sets the speed (benchmarks/NOTES_attention_cpu.md, "Intel"). Here the
8 × 2 accumulators are LLVM values of type <L x float> that live in registers for all k steps (16 of the 32
zmm registers of AVX-512), and C is read and written once per call:

    for kk in range(k):                       # the k-loop; acc[r][h] never touches memory
        b0, b1 = B[kk, bj:bj+L], B[kk, bj+L:bj+2L]           # two vector loads
        for r in range(8):
            a = broadcast(A[i+r, kk])                        # one scalar load, broadcast to L lanes
            acc[r][0] = fma(a, b0, acc[r][0]);  acc[r][1] = fma(a, b1, acc[r][1])
    C[i+r, cj:cj+2L] += acc[r][:]   for r in range(8)

The rules a caller obeys (nothing is checked inside: it is the innermost loop):
- C and B have unit stride along their last axis (the caller checks; `tile_matmul` falls back otherwise);
- rows i..i+7 and columns cj..cj+2L-1 of C, columns bj..bj+2L-1 and rows 0..k-1 of B, and the 8 × k entries of A
  lie inside the arrays (no bounds checks);
- A may have any strides (its entries are read one at a time and broadcast).

On a CPU without 512-bit vectors LLVM splits each <L x float> in two (32 registers' worth of accumulators:
they spill), so there the loops are the default; where both can run, `kernels/tuning.py` times them once per
machine and keeps the faster.

Why the kernels take the choice as a compile-time constant (`numba.literally(mk)` in `numba_backend`): passed as
a runtime flag, both inner kernels end up in one function, and LLVM then compiled the loops of the forward 6×
slower than on their own (103 ms instead of 17 ms, N = 1024, 4 heads, one thread, CPU time; Intel Xeon,
emeraldrapids). One specialisation per value keeps each path as fast as it is alone.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

MR = 8          # rows of C per call
NV = 2          # vectors of C per row
VECTOR_BYTES = 64


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
        suffix = f"v{L}f{8 * itemsize}"  # llvm.fma.v16f32: one vfmadd231ps per call
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

    typer.__name__ = "microkernel_8x2v_at" if transposed else "microkernel_8x2v"
    return intrinsic(typer)


microkernel_8x2v = _make(False)     # C[i:i+8, cj:cj+2L] += A[i:i+8, :k] @ B[:k, bj:bj+2L]
microkernel_8x2v_at = _make(True)   # C[i:i+8, cj:cj+2L] += A[:k, i:i+8]ᵀ @ B[:k, bj:bj+2L]
