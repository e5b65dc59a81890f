// FlashAttention-2 backward in CUDA C, float32, by recomputation: from q, k, v, o, lse and dO it writes
// dQ, dK, dV. The forward is flash_fwd.cu; the readable NumPy version with the same names (Br, Bc, lse, D, P,
// dP, dS) is flash_backward_tiled in minitorch_attn/kernels/tiled.py.
//
// The maths, for one (batch, head), with the forward's lse = logsumexp of each scaled score row:
//
//   D_i  = rowsum(dO_i * O_i)                         (= sum_j P_ij dP_ij, the softmax Jacobian's correction)
//   S_ij = q_i · k_j * scale,   P_ij = exp(S_ij - lse_i)   (masked pairs: P_ij = 0)
//   dP_ij = dO_i · v_j,          dS_ij = P_ij * (dP_ij - D_i)
//   dV_j = sum_i P_ij dO_i,      dK_j = scale * sum_i dS_ij q_i,      dQ_i = scale * sum_j dS_ij k_j
//
// Nothing of size Nq x Nk is stored: P and dS are recomputed tile by tile from the saved lse.
//
// Why three kernels. dK_j and dV_j receive a contribution from EVERY query tile, and dQ_i from EVERY key
// tile. One parallel loop cannot own both sums: parallelise over key tiles (each block then owns its dK, dV
// rows and can keep them in registers) and several blocks add into the same dQ rows at the same time.
// FlashAttention-2 does exactly that and adds dQ with atomicAdd (float atomics: nondeterministic summation
// order, and dQ must be zeroed first). Here we pay one extra recomputation of S and P instead: one kernel
// parallelises over key tiles and writes dK, dV; a second parallelises over query tiles and writes dQ. Every
// output element has exactly one owner, so there are no atomics, the result does not depend on the block
// order, and each kernel is the forward's loop shape again.
//
//   flash_bwd_preprocess   D = rowsum(dO * O)             grid (ceil(Nq / Br), B*H), block 32 * Br
//                          one warp per query row; each lane sums columns lane, lane + 32, ...; warp sum.
//   flash_bwd_dkdv         dK, dV                         grid (ceil(Nk / Bc), B*H), block 32 * Bc
//                          one block per tile of Bc keys, ONE WARP PER KEY (Bc = number of warps); loops over
//                          query tiles of Br = 32 rows, ONE LANE PER QUERY. Lane i computes P_ij and dS_ij
//                          for its query and the warp's key j; then every lane takes the 32 values in turn
//                          (__shfl_sync) and adds P_ij dO_i to its dV columns and dS_ij q_i to its dK columns.
//                          (The forward's mapping transposed: there a warp owns a query, lanes take keys.)
//   flash_bwd_dq           dQ                             grid (ceil(Nq / Br), B*H), block 32 * Br
//                          the forward's mapping: one block per tile of Br queries, one warp per query,
//                          key tiles of Bc = 32 keys, one lane per key; dQ_i += dS_ij k_j the way the
//                          forward does acc += p_j v_j.
//
// Shared memory vs registers:
//   dkdv  shared:    k_s (Bc, d), v_s (Bc, dv) the block's keys, loaded once;
//                    q_s (Br, d), dO_s (Br, dv) the current query tile, reloaded for each tile.
//         registers: per lane dK_acc[4], dV_acc[4] (columns lane + 32 * u of the warp's key), and the
//                    lane's P, dS, lse_i, D_i (read from global memory, one query row per lane).
//   dq    shared:    q_s (Br, d), dO_s (Br, dv) the block's queries, loaded once;
//                    k_s (Bc, d), v_s (Bc, dv) the current key tile, reloaded for each tile.
//         registers: per lane dQ_acc[4] (columns lane + 32 * u of the warp's query), and P, dS, lse_i, D_i.
//   Dynamic shared memory for both = (Br * d + Br * dv + Bc * d + Bc * dv) * sizeof(float) bytes
//   (36 KiB at d = dv = 128 and 4 warps: under the 48 KiB a launch gets without opting in).
//
// Layouts: q (B*H, Nq, d), k (B*H, Nk, d), v (B*H, Nk, dv), o and dO (B*H, Nq, dv), lse and D (B*H, Nq);
// dQ like q, dK like k, dV like v. All C-contiguous float32. key_padding (B, Nk) uint8/bool, nonzero =
// padding (ignored); read only when has_padding != 0 (pass any 1-byte array otherwise).
// Conventions as in minitorch_attn/kernels/common.py: causal is aligned top-left (query i sees keys j <= i),
// a fully masked row (lse = -inf) passes no gradient. Masked pairs never evaluate exp(S - lse): their P and
// dS are 0 by the `allowed` test, so lse = -inf is never used and no -inf constant is needed here.
// Scalar parameters are 4-byte `int` and `float`: the launchers cast with numpy.int32 / numpy.float32.
//
// Rules every kernel obeys: every thread of a block runs the same number of tiles, so each __syncthreads is
// reached by all of them; threads past the end (rows >= Nq, keys >= Nk) still take part and return only
// after the last barrier; tile rows past the end are zero-filled in shared memory, never read from global.
// Limits: d, dv <= MAX_HEAD_DIM = 128 (each lane keeps 128 / 32 = 4 accumulators per output row).
// Written to be read first and fast second: no tensor cores, dot products from shared memory with bank
// conflicts, P and dS broadcast one lane at a time.

#include "common.cuh"  // WARP_SIZE, FULL_MASK, neg_inf(), warp_max(), warp_sum()

#define TILE 32                                      // Br of dkdv and Bc of dq: one row per lane
#define MAX_HEAD_DIM 128
#define DIMS_PER_LANE (MAX_HEAD_DIM / WARP_SIZE)     // output columns each lane accumulates

// Is the pair (query i, key j) part of the attention? (In range, causal, key not padding.)
__device__ __forceinline__ bool pair_allowed(int i, int j, int Nq, int Nk, int causal, int has_padding,
                                             const unsigned char* __restrict__ key_padding, int b) {
    return i < Nq && j < Nk && (!causal || j <= i) && !(has_padding && key_padding[(size_t)b * Nk + j]);
}

// Copy rows [row0, row0 + rows) of a (n, width) matrix into shared memory; rows past n become zeros.
__device__ __forceinline__ void load_tile(float* __restrict__ dst, const float* __restrict__ src, int row0,
                                          int rows, int n, int width) {
    for (int t = threadIdx.x; t < rows * width; t += blockDim.x) {
        const int r = t / width, c = t % width;
        dst[t] = (row0 + r < n) ? src[(size_t)(row0 + r) * width + c] : 0.0f;
    }
}

// Dot product of two rows of length n in shared memory.
__device__ __forceinline__ float dot(const float* __restrict__ a, const float* __restrict__ b, int n) {
    float sum = 0.0f;
    for (int c = 0; c < n; ++c) sum += a[c] * b[c];
    return sum;
}

// D_i = rowsum(dO_i * O_i): one warp per query row.
extern "C" __global__ void flash_bwd_preprocess(
    const float* __restrict__ o,                  // (B*H, Nq, dv)
    const float* __restrict__ dO,                 // (B*H, Nq, dv)
    float* __restrict__ D,                        // (B*H, Nq)
    int Nq, int dv)
{
    const int Br = blockDim.x / WARP_SIZE;
    const int bh = blockIdx.y;
    const int lane = threadIdx.x % WARP_SIZE;
    const int i = blockIdx.x * Br + threadIdx.x / WARP_SIZE;
    if (i >= Nq) return;                          // the whole warp leaves together: no shuffle is left half-done
    const size_t row = ((size_t)bh * Nq + i) * dv;
    float partial = 0.0f;
    for (int c = lane; c < dv; c += WARP_SIZE) partial += dO[row + c] * o[row + c];
    const float sum = warp_sum(partial);
    if (lane == 0) D[(size_t)bh * Nq + i] = sum;
}

// dK, dV for one tile of Bc keys (one warp per key), looping over query tiles of Br = 32 (one lane per query).
extern "C" __global__ void flash_bwd_dkdv(
    const float* __restrict__ q,                  // (B*H, Nq, d)
    const float* __restrict__ k,                  // (B*H, Nk, d)
    const float* __restrict__ v,                  // (B*H, Nk, dv)
    const float* __restrict__ dO,                 // (B*H, Nq, dv)
    const float* __restrict__ lse,                // (B*H, Nq)
    const float* __restrict__ D,                  // (B*H, Nq), from flash_bwd_preprocess
    const unsigned char* __restrict__ key_padding,  // (B, Nk), nonzero = padding; only read if has_padding
    float* __restrict__ dK,                       // (B*H, Nk, d)
    float* __restrict__ dV,                       // (B*H, Nk, dv)
    int H, int Nq, int Nk, int d, int dv,
    float scale, int causal, int has_padding)
{
    extern __shared__ float smem[];
    const int Bc = blockDim.x / WARP_SIZE;        // keys per block, one per warp
    const int Br = TILE;                          // queries per tile, one per lane
    float* k_s = smem;                            // (Bc, d)  this block's keys
    float* v_s = k_s + Bc * d;                    // (Bc, dv) this block's values
    float* q_s = v_s + Bc * dv;                   // (Br, d)  the current query tile
    float* dO_s = q_s + Br * d;                   // (Br, dv) the current query tile's dO

    const int bh = blockIdx.y;
    const int b = bh / H;
    const int j0 = blockIdx.x * Bc;               // first key of this block
    const int warp = threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE;
    const int j = j0 + warp;                      // this warp's key

    const size_t q_row0 = (size_t)bh * Nq;        // row offsets of this (batch, head)
    const size_t k_row0 = (size_t)bh * Nk;
    load_tile(k_s, k + k_row0 * d, j0, Bc, Nk, d);
    load_tile(v_s, v + k_row0 * dv, j0, Bc, Nk, dv);

    float dK_acc[DIMS_PER_LANE], dV_acc[DIMS_PER_LANE];  // columns lane + 32 * u of key j
    #pragma unroll
    for (int u = 0; u < DIMS_PER_LANE; ++u) dK_acc[u] = dV_acc[u] = 0.0f;

    // Causal: query i sees key j only if i >= j, so query tiles that end before j0 are skipped.
    // The bound is the same for every warp of the block, so all threads reach the same barriers.
    const int first = causal ? (j0 / Br) * Br : 0;
    for (int i0 = first; i0 < Nq; i0 += Br) {
        __syncthreads();                          // everyone is done with the previous query tile
        load_tile(q_s, q + q_row0 * d, i0, Br, Nq, d);
        load_tile(dO_s, dO + q_row0 * dv, i0, Br, Nq, dv);
        __syncthreads();                          // the tile (and, the first time, k_s and v_s) is complete

        // Lane `lane` recomputes P and dS for query i = i0 + lane and the warp's key j.
        const int i = i0 + lane;
        float P = 0.0f, dS = 0.0f;
        if (pair_allowed(i, j, Nq, Nk, causal, has_padding, key_padding, b)) {
            const float S = dot(q_s + lane * d, k_s + warp * d, d) * scale;
            P = __expf(S - lse[q_row0 + i]);
            const float dP = dot(dO_s + lane * dv, v_s + warp * dv, dv);
            dS = P * (dP - D[q_row0 + i]);
        }

        // dV_j += sum_i P_ij dO_i and dK_j += sum_i dS_ij q_i: lane ii broadcasts its P and dS, every lane
        // updates its own columns. Rows past Nq have P = dS = 0 and zero-filled q_s, dO_s.
        for (int ii = 0; ii < Br; ++ii) {
            const float P_ii = __shfl_sync(FULL_MASK, P, ii);
            const float dS_ii = __shfl_sync(FULL_MASK, dS, ii);
            #pragma unroll
            for (int u = 0; u < DIMS_PER_LANE; ++u) {
                const int c = lane + u * WARP_SIZE;
                if (c < dv) dV_acc[u] += P_ii * dO_s[ii * dv + c];
                if (c < d) dK_acc[u] += dS_ii * q_s[ii * d + c];
            }
        }
    }

    if (j >= Nk) return;                          // after the last barrier: safe to leave
    #pragma unroll
    for (int u = 0; u < DIMS_PER_LANE; ++u) {
        const int c = lane + u * WARP_SIZE;
        if (c < d) dK[(k_row0 + j) * d + c] = dK_acc[u] * scale;
        if (c < dv) dV[(k_row0 + j) * dv + c] = dV_acc[u];
    }
}

// dQ for one tile of Br queries (one warp per query), looping over key tiles of Bc = 32 (one lane per key).
extern "C" __global__ void flash_bwd_dq(
    const float* __restrict__ q,                  // (B*H, Nq, d)
    const float* __restrict__ k,                  // (B*H, Nk, d)
    const float* __restrict__ v,                  // (B*H, Nk, dv)
    const float* __restrict__ dO,                 // (B*H, Nq, dv)
    const float* __restrict__ lse,                // (B*H, Nq)
    const float* __restrict__ D,                  // (B*H, Nq), from flash_bwd_preprocess
    const unsigned char* __restrict__ key_padding,  // (B, Nk), nonzero = padding; only read if has_padding
    float* __restrict__ dQ,                       // (B*H, Nq, d)
    int H, int Nq, int Nk, int d, int dv,
    float scale, int causal, int has_padding)
{
    extern __shared__ float smem[];
    const int Br = blockDim.x / WARP_SIZE;        // queries per block, one per warp
    const int Bc = TILE;                          // keys per tile, one per lane
    float* q_s = smem;                            // (Br, d)  this block's queries
    float* dO_s = q_s + Br * d;                   // (Br, dv) their dO
    float* k_s = dO_s + Br * dv;                  // (Bc, d)  the current key tile
    float* v_s = k_s + Bc * d;                    // (Bc, dv) the current value tile

    const int bh = blockIdx.y;
    const int b = bh / H;
    const int i0 = blockIdx.x * Br;               // first query of this block
    const int warp = threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE;
    const int i = i0 + warp;                      // this warp's query
    const bool row_in_range = i < Nq;

    const size_t q_row0 = (size_t)bh * Nq;
    const size_t k_row0 = (size_t)bh * Nk;
    load_tile(q_s, q + q_row0 * d, i0, Br, Nq, d);
    load_tile(dO_s, dO + q_row0 * dv, i0, Br, Nq, dv);
    const float lse_i = row_in_range ? lse[q_row0 + i] : 0.0f;  // -inf for a fully masked row: never used
    const float D_i = row_in_range ? D[q_row0 + i] : 0.0f;

    float dQ_acc[DIMS_PER_LANE];                  // columns lane + 32 * u of query i
    #pragma unroll
    for (int u = 0; u < DIMS_PER_LANE; ++u) dQ_acc[u] = 0.0f;

    // Causal: the block's last query i0 + Br - 1 sees keys up to itself; later key tiles are skipped.
    const int k_end = causal ? min(Nk, i0 + Br) : Nk;
    for (int j0 = 0; j0 < k_end; j0 += Bc) {
        __syncthreads();                          // everyone is done with the previous key tile
        load_tile(k_s, k + k_row0 * d, j0, Bc, Nk, d);
        load_tile(v_s, v + k_row0 * dv, j0, Bc, Nk, dv);
        __syncthreads();                          // the tile (and, the first time, q_s and dO_s) is complete

        // Lane `lane` recomputes P and dS for the warp's query i and key j = j0 + lane.
        const int j = j0 + lane;
        float dS = 0.0f;
        if (pair_allowed(i, j, Nq, Nk, causal, has_padding, key_padding, b)) {
            const float S = dot(q_s + warp * d, k_s + lane * d, d) * scale;
            const float P = __expf(S - lse_i);
            const float dP = dot(dO_s + warp * dv, v_s + lane * dv, dv);
            dS = P * (dP - D_i);
        }

        // dQ_i += sum_j dS_ij k_j: lane jj broadcasts its dS, every lane updates its own columns.
        for (int jj = 0; jj < Bc; ++jj) {
            const float dS_jj = __shfl_sync(FULL_MASK, dS, jj);
            #pragma unroll
            for (int u = 0; u < DIMS_PER_LANE; ++u) {
                const int c = lane + u * WARP_SIZE;
                if (c < d) dQ_acc[u] += dS_jj * k_s[jj * d + c];
            }
        }
    }

    if (!row_in_range) return;                    // after the last barrier: safe to leave
    #pragma unroll
    for (int u = 0; u < DIMS_PER_LANE; ++u) {
        const int c = lane + u * WARP_SIZE;
        if (c < d) dQ[(q_row0 + i) * d + c] = dQ_acc[u] * scale;
    }
}
