// Step 03 of lesson 11's progression: a block of threads shares each tile of keys and values through
// shared memory. Still one thread per query row (and per chunk of DV_CHUNK output columns, as in step 02).
//
//   for each tile of Br query rows:                     <- one thread block, Br = blockDim.x threads
//       m = -inf, l = 0, acc = 0                        <- one thread per row, in registers
//       for each tile of Bc = 32 keys:
//           the block copies K[j0 : j0 + Bc] and V[j0 : j0 + Bc, c0 : c0 + 32] into shared memory
//           (every thread copies a few entries), then waits at a barrier
//           each thread folds the Bc keys into its row's (m, l, acc), reading k_j and v_j from shared memory
//           a barrier again before the next tile overwrites the one the others may still be reading
//       o = acc / l,  lse = m + log(l)
//
// What this step buys over 02_online_row.cu: step 02 made every thread read all of K and V from global
// memory, Br times more traffic than needed; here each block reads every key and value once per tile and
// its Br threads read them from shared memory, on chip. The price is synchronisation: two __syncthreads per
// tile, reached by EVERY thread of the block, including threads whose row lies past Nq (they help load, then
// skip the arithmetic). A thread that returned early would leave the others waiting at the barrier forever.
//
// Masking: every thread walks all Bc keys of a tile; a key it may not see (j >= Nk, or j > i when causal) gets
// s = -inf, so p = 0 and it adds 0 * v_j. That is why the tile's rows past Nk must hold zeros in shared
// memory, not whatever was there: 0 * NaN (or 0 * inf) is NaN. (The CPU harness fills shared memory with NaN
// before every block, so a missing zero-fill shows up at once.) Causal: the block's last row i0 + Br - 1 sees
// keys up to itself, so key tiles starting after it are skipped, for the whole block at once.
//
// Launch (progression/__init__.py does this):
//   grid  = (ceil(Nq / Br), B * H, ceil(dv / DV_CHUNK)),  block = (Br)   Br <= MAX_BR = 64 (64 in the registry)
//   dynamic shared memory = (Bc * d + Bc * DV_CHUNK) * sizeof(float) bytes     (20 KiB at d = 128)
//
// Layouts: q (B*H, Nq, d), k (B*H, Nk, d), v (B*H, Nk, dv), o (B*H, Nq, dv), lse (B*H, Nq), all C-contiguous
// float32. Causal is aligned top-left (query i sees keys j <= i); a row that sees no key gets o = 0 and
// lse = -inf. Scalars are 4-byte int / float (numpy.int32 / numpy.float32).

#include "../common.cuh"  // WARP_SIZE, FULL_MASK, neg_inf(), warp_max(), warp_sum()

#define BLOCK_N 32                                   // Bc: keys per tile
#define DV_CHUNK 32                                  // output columns accumulated by one thread
#define MAX_BR 64                                    // the largest block (Br) the kernel may be launched with
// __launch_bounds__(MAX_BR, 16): at most 64 threads per block, 16 blocks per SM, so at most
// 65536 / (16 * 64) = 64 registers per thread (66 on sm_80 without it). A launch with Br > MAX_BR fails.

extern "C" __global__ __launch_bounds__(MAX_BR, 16) void shared_tiles(
    const float* __restrict__ q,                     // (B*H, Nq, d)
    const float* __restrict__ k,                     // (B*H, Nk, d)
    const float* __restrict__ v,                     // (B*H, Nk, dv)
    float* __restrict__ o,                           // (B*H, Nq, dv)
    float* __restrict__ lse,                         // (B*H, Nq)
    int Nq, int Nk, int d, int dv, float scale, int causal)
{
    extern __shared__ float smem[];
    float* k_s = smem;                               // (Bc, d)         keys j0 .. j0 + Bc - 1
    float* v_s = k_s + BLOCK_N * d;                  // (Bc, DV_CHUNK)  their values, columns c0 .. c0 + 31

    const int Br = blockDim.x;                       // query rows per block, one per thread
    const int i0 = blockIdx.x * Br;                  // first query row of this block
    const int i = i0 + threadIdx.x;                  // this thread's query row
    const int bh = blockIdx.y;                       // (batch, head)
    const int c0 = blockIdx.z * DV_CHUNK;            // first output column of this block's chunk
    const bool row_in_range = i < Nq;
    const float* q_i = q + ((size_t)bh * Nq + (row_in_range ? i : 0)) * d;
    const float* k_bh = k + (size_t)bh * Nk * d;
    const float* v_bh = v + (size_t)bh * Nk * dv;

    float m = neg_inf();                             // running max of this row's scores
    float l = 0.0f;                                  // running sum of exp(s - m)
    float acc[DV_CHUNK];                             // running sum of exp(s - m) * v_j, columns c0 + u
    #pragma unroll
    for (int u = 0; u < DV_CHUNK; ++u) acc[u] = 0.0f;

    // Every thread of the block runs the same tiles, so every thread reaches the same barriers.
    const int k_end = causal ? min(Nk, i0 + Br) : Nk;
    for (int j0 = 0; j0 < k_end; j0 += BLOCK_N) {
        // Stage the tile: k_s[r * d + c] = K[j0 + r, c] and v_s[r * DV_CHUNK + u] = V[j0 + r, c0 + u], with
        // 0 where the key (j0 + r >= Nk) or the column (c0 + u >= dv) does not exist. The block's threads
        // share the copying (thread t takes entries t, t + Br, t + 2 Br, ...), and the tile may be read only
        // once every thread has written its part -- and overwritten only once every thread has read it.
        // BEGIN SOLUTION
        __syncthreads();                             // nobody still reads the previous tile
        for (int t = threadIdx.x; t < BLOCK_N * d; t += blockDim.x) {
            const int r = t / d;
            k_s[t] = (j0 + r < Nk) ? k_bh[(size_t)(j0 + r) * d + t % d] : 0.0f;
        }
        for (int t = threadIdx.x; t < BLOCK_N * DV_CHUNK; t += blockDim.x) {
            const int r = t / DV_CHUNK, col = c0 + t % DV_CHUNK;
            v_s[t] = (j0 + r < Nk && col < dv) ? v_bh[(size_t)(j0 + r) * dv + col] : 0.0f;
        }
        __syncthreads();                             // the whole tile is in shared memory
        // END SOLUTION
        if (!row_in_range) continue;                 // after the barriers: this thread only helped load

        for (int jj = 0; jj < BLOCK_N; ++jj) {
            const int j = j0 + jj;
            const bool allowed = j < Nk && (!causal || j <= i);
            float s = neg_inf();
            if (allowed) {
                float dot = 0.0f;
                for (int c = 0; c < d; ++c) dot += q_i[c] * k_s[jj * d + c];
                s = dot * scale;
            }
            // Fold key j (score s, value row v_s[jj * DV_CHUNK ...]) into (m, l, acc). A masked key has
            // s = -inf and must add exactly 0; while the row has seen no key, m and m_new are both -inf:
            // exponentiate against 0 instead, never -inf - (-inf).
            // BEGIN SOLUTION
            const float m_new = fmaxf(m, s);
            const float m_safe = (m_new == neg_inf()) ? 0.0f : m_new;
            const float alpha = __expf(m - m_safe);  // rescales what was summed under the old max
            const float p = __expf(s - m_safe);      // 0 for a masked key
            l = l * alpha + p;
            const float* v_j = v_s + jj * DV_CHUNK;
            #pragma unroll
            for (int u = 0; u < DV_CHUNK; ++u) acc[u] = acc[u] * alpha + p * v_j[u];
            m = m_new;
            // END SOLUTION
        }
    }

    if (!row_in_range) return;                       // after the last barrier: safe to leave
    const bool seen = l > 0.0f;                      // false for a row that saw no key
    const float inv_l = seen ? 1.0f / l : 0.0f;
    float* o_i = o + ((size_t)bh * Nq + i) * dv;
    #pragma unroll
    for (int u = 0; u < DV_CHUNK; ++u)
        if (c0 + u < dv) o_i[c0 + u] = acc[u] * inv_l;
    if (blockIdx.z == 0) lse[(size_t)bh * Nq + i] = seen ? m + __logf(l) : neg_inf();
}
