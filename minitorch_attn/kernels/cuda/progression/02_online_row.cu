// Step 02 of lesson 11's progression: one thread per query row and the online softmax of lesson 10,
// with m, l and acc in registers. No score matrix any more, no shared memory yet.
//
//   for each query row i:                               <- one thread
//       m = -inf, l = 0, acc = 0                        <- registers
//       for each key j it may see:                      (causal: j <= i)
//           s     = q_i . k_j * scale                    (q_i and k_j read from global memory)
//           m_new = max(m, s)
//           l     = l * exp(m - m_new) + exp(s - m_new)
//           acc   = acc * exp(m - m_new) + exp(s - m_new) * v_j
//           m     = m_new
//       o_i = acc / l,  lse_i = m + log(l)              (a row that saw no key: o = 0, lse = -inf)
//
// Registers are the scarcest thing a thread has: a thread that kept a 128-wide acc would need 128 of them
// for acc alone (the compile check allows 64), so each thread accumulates only DV_CHUNK = 32 output columns
// and the grid's z axis walks the chunks: with dv = 64 two threads own row i, and each recomputes all of
// row i's scores. flash_fwd.cu solves the same problem by spreading a row over a warp (4 columns per lane).
// What this step buys over 01_naive.cu: no N x N array, one kernel, every score computed once per chunk.
// What it still lacks: each thread reads all of K and V from global memory on its own (03_shared_tiles.cu
// shares them through shared memory).
//
// Launch (progression/__init__.py does this):
//   grid  = (ceil(Nq / ROWS_PER_BLOCK), B * H, ceil(dv / DV_CHUNK))
//   block = (ROWS_PER_BLOCK)                        threadIdx.x + blockIdx.x * ROWS_PER_BLOCK: the query row
//
// Layouts: q (B*H, Nq, d), k (B*H, Nk, d), v (B*H, Nk, dv), o (B*H, Nq, dv), lse (B*H, Nq), all C-contiguous
// float32. Causal is aligned top-left (query i sees keys j <= i). Rules: a thread with i >= Nq returns at once
// (there is no barrier in this kernel to skip); a thread writes only its own row's columns c0 .. c0 + 31 that
// are < dv, and lse only from the chunk z = 0. Scalars are 4-byte int / float (numpy.int32 / numpy.float32).

#include "../common.cuh"  // WARP_SIZE, FULL_MASK, neg_inf(), warp_max(), warp_sum()

#define DV_CHUNK 32                                  // output columns accumulated by one thread
#define ROWS_PER_BLOCK 128
// __launch_bounds__(ROWS_PER_BLOCK, 8): blocks of 128 threads, and the compiler must fit 8 of them on one SM,
// so at most 65536 / (8 * 128) = 64 registers per thread. Without it the compiler takes 111 registers on
// sm_80 (it loads all 32 values of v_j at once to hide the latency); with it, 64 and no spills.

extern "C" __global__ __launch_bounds__(ROWS_PER_BLOCK, 8) void online_row(
    const float* __restrict__ q,                     // (B*H, Nq, d)
    const float* __restrict__ k,                     // (B*H, Nk, d)
    const float* __restrict__ v,                     // (B*H, Nk, dv)
    float* __restrict__ o,                           // (B*H, Nq, dv)
    float* __restrict__ lse,                         // (B*H, Nq)
    int Nq, int Nk, int d, int dv, float scale, int causal)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;     // this thread's query row
    const int bh = blockIdx.y;                               // (batch, head)
    const int c0 = blockIdx.z * DV_CHUNK;                    // first output column of this thread's chunk
    if (i >= Nq) return;
    const float* q_i = q + ((size_t)bh * Nq + i) * d;
    const float* k_bh = k + (size_t)bh * Nk * d;
    const float* v_bh = v + (size_t)bh * Nk * dv;

    float m = neg_inf();                             // running max of the scores seen so far
    float l = 0.0f;                                  // running sum of exp(s - m)
    float acc[DV_CHUNK];                             // running sum of exp(s - m) * v_j, columns c0 + u
    #pragma unroll
    for (int u = 0; u < DV_CHUNK; ++u) acc[u] = 0.0f;

    const int k_end = causal ? min(Nk, i + 1) : Nk;  // the keys row i may see: 0 .. k_end - 1
    for (int j = 0; j < k_end; ++j) {
        const float* k_j = k_bh + (size_t)j * d;
        const float* v_j = v_bh + (size_t)j * dv;
        float dot = 0.0f;
        for (int c = 0; c < d; ++c) dot += q_i[c] * k_j[c];
        const float s = dot * scale;
        // Fold key j into (m, l, acc). s is finite, so after the first key m is finite too, and on the
        // first key exp(m - m_new) = exp(-inf) = 0 wipes the empty state: no -inf - (-inf) can occur.
        // Columns c0 + u >= dv do not exist in v: leave their acc at 0, never read v_j there.
        // BEGIN SOLUTION
        const float m_new = fmaxf(m, s);
        const float alpha = __expf(m - m_new);       // rescales what was summed under the old max
        const float p = __expf(s - m_new);
        l = l * alpha + p;
        #pragma unroll
        for (int u = 0; u < DV_CHUNK; ++u)
            acc[u] = acc[u] * alpha + ((c0 + u < dv) ? p * v_j[c0 + u] : 0.0f);
        m = m_new;
        // END SOLUTION
    }

    // Normalise once: o = acc / l and lse = m + log(l); with no key seen (l = 0), o = 0 and lse = -inf.
    const float inv_l = (l > 0.0f) ? 1.0f / l : 0.0f;
    float* o_i = o + ((size_t)bh * Nq + i) * dv;
    #pragma unroll
    for (int u = 0; u < DV_CHUNK; ++u)
        if (c0 + u < dv) o_i[c0 + u] = acc[u] * inv_l;
    if (blockIdx.z == 0) lse[(size_t)bh * Nq + i] = (l > 0.0f) ? m + __logf(l) : neg_inf();
}
