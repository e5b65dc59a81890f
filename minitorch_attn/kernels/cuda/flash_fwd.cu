// FlashAttention-2 forward in CUDA C, float32: writes O and lse. Lesson 11 walks through it.
//
// The same algorithm as minitorch_attn/kernels/tiled.py, with the same names (Br, Bc, m, l, acc, lse):
//
//   for each tile of Br query rows:                     <- one thread block
//       m = -inf, l = 0, acc = 0                        <- one warp per query row, in registers
//       for each tile of Bc = 32 keys (staged in shared memory by the whole block):
//           s      = q · k_j * scale      (masked: -inf) <- lane j of the warp computes key j of the tile
//           m_new  = max(m, max_j s)                     <- warp reduction (__shfl_xor_sync)
//           p      = exp(s - m_new)
//           l      = l * exp(m - m_new) + sum_j p        <- warp reduction (__shfl_xor_sync)
//           acc    = acc * exp(m - m_new) + sum_j p_j v_j  <- lane c owns output columns c, c+32, c+64, c+96
//       o = acc / l,  lse = m + log(l)                   (a row that saw no key: o = 0, lse = -inf)
//
// Launch (the launchers in minitorch_attn/kernels/cuda/ do this):
//   grid  = (ceil(Nq / Br), B * H)          blockIdx.x: query tile, blockIdx.y: (batch, head)
//   block = (32 * Br)                       Br = number of warps = query rows per block
//   dynamic shared memory = (Br * d + Bc * d + Bc * dv) * sizeof(float) bytes
//
// Layouts: q (B*H, Nq, d), k (B*H, Nk, d), v (B*H, Nk, dv), o (B*H, Nq, dv), lse (B*H, Nq), all C-contiguous
// float32. key_padding (B, Nk) uint8/bool, nonzero = padding (ignored); read only when has_padding != 0
// (pass any 1-byte array otherwise). Conventions as in minitorch_attn/kernels/common.py: causal is aligned
// top-left (query i sees keys j <= i), a fully masked row gets o = 0 and lse = -inf.
//
// Scalar parameters are 4-byte `int` and `float`. CuPy passes a Python int as 8 bytes and a Python float as a
// double, which these parameters would silently misread: the launchers cast with numpy.int32 / numpy.float32.
//
// Limits: d, dv <= MAX_HEAD_DIM = 128 (each lane keeps 128 / 32 = 4 accumulators in registers).
// Written for clarity, not speed: no tensor cores, one query row per warp, K tile reads not bank-conflict free.
// NVRTC has no <math.h>: no INFINITY / NAN macros here, -inf is built from its bit pattern.

#include "common.cuh"  // WARP_SIZE, FULL_MASK, neg_inf(), warp_max(), warp_sum()

#define BLOCK_N 32                                   // Bc: keys per tile = one key per lane
#define MAX_HEAD_DIM 128
#define DIMS_PER_LANE (MAX_HEAD_DIM / WARP_SIZE)     // output columns each lane accumulates

extern "C" __global__ void flash_fwd(
    const float* __restrict__ q,                  // (B*H, Nq, d)
    const float* __restrict__ k,                  // (B*H, Nk, d)
    const float* __restrict__ v,                  // (B*H, Nk, dv)
    const unsigned char* __restrict__ key_padding,  // (B, Nk), nonzero = padding; only read if has_padding
    float* __restrict__ o,                        // (B*H, Nq, dv)
    float* __restrict__ lse,                      // (B*H, Nq)
    int H, int Nq, int Nk, int d, int dv,
    float scale, int causal, int has_padding)
{
    extern __shared__ float smem[];
    const int Br = blockDim.x / WARP_SIZE;        // query rows per block, one per warp
    float* q_s = smem;                            // (Br, d)  this block's query rows
    float* k_s = q_s + Br * d;                    // (Bc, d)  the current key tile
    float* v_s = k_s + BLOCK_N * d;               // (Bc, dv) the current value tile

    const int bh = blockIdx.y;                    // which (batch, head)
    const int b = bh / H;
    const int i0 = blockIdx.x * Br;               // first query row of this block
    const int warp = threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE;
    const int i = i0 + warp;                      // this warp's query row
    const bool row_in_range = i < Nq;

    const float* q_bh = q + (size_t)bh * Nq * d;
    const float* k_bh = k + (size_t)bh * Nk * d;
    const float* v_bh = v + (size_t)bh * Nk * dv;

    // Stage the query tile (rows past Nq are zero-filled, never read from global memory).
    for (int t = threadIdx.x; t < Br * d; t += blockDim.x) {
        const int r = t / d, c = t % d;
        q_s[t] = (i0 + r < Nq) ? q_bh[(size_t)(i0 + r) * d + c] : 0.0f;
    }

    float m = neg_inf();                          // running max of this row's scores
    float l = 0.0f;                               // running normaliser sum exp(s - m)
    float acc[DIMS_PER_LANE];                     // unnormalised output, columns lane + 32 * u
    #pragma unroll
    for (int u = 0; u < DIMS_PER_LANE; ++u) acc[u] = 0.0f;

    // Causal: the block's last row i0 + Br - 1 sees keys up to itself; later key tiles are skipped.
    // Every thread of the block runs the same number of tiles, so the barriers below always match.
    const int k_end = causal ? min(Nk, i0 + Br) : Nk;
    for (int j0 = 0; j0 < k_end; j0 += BLOCK_N) {
        __syncthreads();                          // everyone is done with the previous K/V tile
        for (int t = threadIdx.x; t < BLOCK_N * d; t += blockDim.x) {
            const int r = t / d, c = t % d;
            k_s[t] = (j0 + r < Nk) ? k_bh[(size_t)(j0 + r) * d + c] : 0.0f;
        }
        for (int t = threadIdx.x; t < BLOCK_N * dv; t += blockDim.x) {
            const int r = t / dv, c = t % dv;
            v_s[t] = (j0 + r < Nk) ? v_bh[(size_t)(j0 + r) * dv + c] : 0.0f;
        }
        __syncthreads();                          // the tile (and, the first time, q_s) is complete

        // Lane `lane` scores key j = j0 + lane against this warp's query row.
        const int j = j0 + lane;
        const bool allowed = row_in_range && j < Nk && (!causal || j <= i)
                             && !(has_padding && key_padding[(size_t)b * Nk + j]);
        float s = neg_inf();
        if (allowed) {
            float dot = 0.0f;
            for (int c = 0; c < d; ++c) dot += q_s[warp * d + c] * k_s[lane * d + c];
            s = dot * scale;
        }

        // Online softmax step. While the row has seen no key, m_new = -inf: use 0 in the exponentials
        // so that exp(-inf - -inf) never makes a NaN (p and alpha are then 0).
        const float m_new = fmaxf(m, warp_max(s));
        const float m_safe = (m_new == neg_inf()) ? 0.0f : m_new;
        const float p = __expf(s - m_safe);       // 0 for masked keys
        const float alpha = __expf(m - m_safe);   // rescales what was accumulated under the old max
        l = l * alpha + warp_sum(p);
        #pragma unroll
        for (int u = 0; u < DIMS_PER_LANE; ++u) acc[u] *= alpha;

        // acc += sum_j p_j v_j: lane jj broadcasts its p, every lane updates its own output columns.
        for (int jj = 0; jj < BLOCK_N; ++jj) {
            const float p_jj = __shfl_sync(FULL_MASK, p, jj);
            #pragma unroll
            for (int u = 0; u < DIMS_PER_LANE; ++u) {
                const int c = lane + u * WARP_SIZE;
                if (c < dv) acc[u] += p_jj * v_s[jj * dv + c];
            }
        }
        m = m_new;
    }

    if (!row_in_range) return;                    // after the last barrier: safe to leave
    const bool seen = l > 0.0f;                   // false for a fully masked row
    const float inv_l = seen ? 1.0f / l : 0.0f;
    #pragma unroll
    for (int u = 0; u < DIMS_PER_LANE; ++u) {
        const int c = lane + u * WARP_SIZE;
        if (c < dv) o[((size_t)bh * Nq + i) * dv + c] = acc[u] * inv_l;
    }
    if (lane == 0) lse[(size_t)bh * Nq + i] = seen ? m + __logf(l) : neg_inf();
}
