// Step 01 of lesson 11's progression: the direct port of naive attention. Three kernels, three passes
// over global memory, and the whole N x N score matrix written out in between:
//
//   naive_scores:  S[i, j] = q_i . k_j * scale          (masked: -inf)   one thread per score
//   softmax_rows:  P[i, :] = softmax(S[i, :]) in place, lse[i]          one warp per row
//   naive_pv:      O[i, c] = sum_j P[i, j] V[j, c]                      one thread per output entry
//
// It is kernels/reference.py's attention_forward written in CUDA C, and as slow and as hungry: S needs
// B*H*Nq*Nk floats (4 GiB at B*H = 16, N = 8192), and every score is written once and read three times.
// The later steps (02_online_row.cu, 03_shared_tiles.cu, then flash_fwd.cu) never build S.
//
// Launch (progression/__init__.py does this):
//   naive_scores  grid = (ceil(Nk / 16), ceil(Nq / 16), B * H), block = (16, 16): threadIdx.x walks the keys
//   softmax_rows  grid = (ceil(B * H * Nq / ROWS_PER_BLOCK)),   block = (32 * ROWS_PER_BLOCK)
//   naive_pv      grid = (ceil(dv / 16), ceil(Nq / 16), B * H), block = (16, 16): threadIdx.x walks columns
//
// Layouts: q (B*H, Nq, d), k (B*H, Nk, d), v (B*H, Nk, dv), s (B*H, Nq, Nk) scratch, o (B*H, Nq, dv),
// lse (B*H, Nq), all C-contiguous float32. Causal is aligned top-left: query i sees keys j <= i. A row that
// sees no key (only possible with Nk = 0 here) gets P = 0, o = 0 and lse = -inf.
//
// Rules the kernels obey: a thread past the end of the problem (i >= Nq, j >= Nk, c >= dv) writes nothing;
// softmax_rows keeps a whole warp on one row, so its shuffles always have all 32 lanes (a warp whose row is
// past the end returns as a whole, and there is no __syncthreads to skip). Scalars are 4-byte int / float:
// the launcher casts with numpy.int32 / numpy.float32. NVRTC has no <math.h>: -inf is built from its bits.

#include "../common.cuh"  // WARP_SIZE, FULL_MASK, neg_inf(), warp_max(), warp_sum()

#define ROWS_PER_BLOCK 4                             // softmax_rows: warps per block, one row each

// One thread per score S[i, j]: a dot product of length d, read straight from global memory.
extern "C" __global__ void naive_scores(
    const float* __restrict__ q,                     // (B*H, Nq, d)
    const float* __restrict__ k,                     // (B*H, Nk, d)
    float* __restrict__ s,                           // (B*H, Nq, Nk)
    int Nq, int Nk, int d, float scale, int causal)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;     // key
    const int i = blockIdx.y * blockDim.y + threadIdx.y;     // query
    const int bh = blockIdx.z;                               // (batch, head)
    if (i >= Nq || j >= Nk) return;
    float score = neg_inf();
    if (!causal || j <= i) {
        const float* q_i = q + ((size_t)bh * Nq + i) * d;
        const float* k_j = k + ((size_t)bh * Nk + j) * d;
        float dot = 0.0f;
        for (int c = 0; c < d; ++c) dot += q_i[c] * k_j[c];
        score = dot * scale;
    }
    s[((size_t)bh * Nq + i) * Nk + j] = score;
}

// One warp per row of S (rows = B*H*Nq rows of length N = Nk), in place: S becomes P = softmax(S), and
// lse[row] = log(sum_j exp(S[row, j])). Lane t handles the columns t, t + 32, t + 64, ... of its row.
// Three passes over the row: the max (warp_max), the sum of exp(s - max) (warp_sum), then the write.
// Subtract the max before exp (scores in the hundreds overflow float32's exp otherwise); a row whose max
// is -inf (no key) must give P = 0 and lse = -inf, never NaN from -inf - (-inf).
extern "C" __global__ void softmax_rows(
    float* __restrict__ s,                           // (rows, N): scores in, probabilities out
    float* __restrict__ lse,                         // (rows,)
    int rows, int N)
{
    const int row = blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE;
    if (row >= rows) return;                         // the whole warp leaves together
    float* s_row = s + (size_t)row * N;
    // BEGIN SOLUTION
    float m = neg_inf();
    for (int j = lane; j < N; j += WARP_SIZE) m = fmaxf(m, s_row[j]);
    m = warp_max(m);                                 // every lane now holds the row max
    const float m_safe = (m == neg_inf()) ? 0.0f : m;
    float l = 0.0f;
    for (int j = lane; j < N; j += WARP_SIZE) l += __expf(s_row[j] - m_safe);
    l = warp_sum(l);                                 // every lane now holds the row sum
    const float inv_l = (l > 0.0f) ? 1.0f / l : 0.0f;
    for (int j = lane; j < N; j += WARP_SIZE) s_row[j] = __expf(s_row[j] - m_safe) * inv_l;
    if (lane == 0) lse[row] = (l > 0.0f) ? m + __logf(l) : neg_inf();
    // END SOLUTION
}

// One thread per output entry O[i, c]: a dot product of row i of P with column c of V, both in global memory.
extern "C" __global__ void naive_pv(
    const float* __restrict__ p,                     // (B*H, Nq, Nk)
    const float* __restrict__ v,                     // (B*H, Nk, dv)
    float* __restrict__ o,                           // (B*H, Nq, dv)
    int Nq, int Nk, int dv)
{
    const int c = blockIdx.x * blockDim.x + threadIdx.x;     // output column
    const int i = blockIdx.y * blockDim.y + threadIdx.y;     // query
    const int bh = blockIdx.z;
    if (i >= Nq || c >= dv) return;
    const float* p_i = p + ((size_t)bh * Nq + i) * Nk;
    const float* v_bh = v + (size_t)bh * Nk * dv;
    float acc = 0.0f;
    for (int j = 0; j < Nk; ++j) acc += p_i[j] * v_bh[(size_t)j * dv + c];
    o[((size_t)bh * Nq + i) * dv + c] = acc;
}
