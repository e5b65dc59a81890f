// FlashAttention-2 forward on tensor cores: half-precision Q, K, V, float32 accumulation; writes O and lse
// (float32), the same contract as flash_fwd.cu. The stretch kernel of lesson 11 (backend "cupy", variant "wmma").
//
// NOT VERIFIED ON A GPU. No machine that runs our CI has one, and nobody has run this file on one yet.
// What is checked without a GPU, on every CI run (tests/test_cupy_backend.py):
// - it compiles under NVRTC exactly as CuPy compiles it, for sm_80 and sm_90, with no spills and no stack
//   frame (python -m minitorch_attn.kernels.cuda.compile_check), and its PTX holds the mma.sync instructions;
// - on the CPU harness, with the two PTX instructions replaced by software stand-ins (the `#else` branch
//   below: each lane gathers its A row and B columns by shuffles, as the fragment layouts say, and multiplies
//   in float), it matches the float64 reference on half-rounded inputs to 2e-3 on awkward shapes, and planted
//   indexing bugs are caught. That checks this kernel's own indexing, masking and online softmax. It cannot
//   check the hardware: that mma.sync really lays out its fragments as written below (taken from the PTX ISA
//   and CUTLASS's SM80_16x8x16 traits), rounding inside the tensor core, races between warps, or speed.
// Its results on a GPU are checked only where CuPy finds one (the tests marked gpu, skipped elsewhere).
//
// Why inline PTX and not nvcuda::wmma: NVRTC as CuPy runs it has no include path: `#include <mma.h>` and
// `#include <cuda_fp16.h>` fail with "could not open source file ... (no directories in search list)"
// (nvidia-cuda-nvrtc 13.5, no CUDA toolkit; CuPy's own include directory has no <mma.h>). So this file
// includes nothing: the matrix multiply is the PTX instruction `mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32`
// (sm_80 and later), half values travel as raw 16-bit patterns (`unsigned short`), and the float -> half
// conversion is the PTX `cvt.rn.f16x2.f32`. The name "wmma" is the variant's name in the backend.
//
// The algorithm is flash_fwd.cu's (and kernels/tiled.py's), with the same names; what changes is who holds what:
//
//   one block = Br = 64 query rows = 4 warps x 16 rows; the block's Q tile stays in shared memory
//   m = -inf, l = 0, acc = 0                       <- each thread: 2 rows (g and g + 8 of its warp's 16)
//   for each tile of Bc = 32 keys (K, and V transposed, staged in shared memory by the whole block):
//       S   = Q_w K^T * scale (16 x 32 per warp)   <- tensor cores, fp16 inputs, fp32 sums; masked: -inf
//       m_new = max(m, rowmax S)                    <- each thread's 8 columns, then the 4 threads of its row
//       P   = exp(S - m_new)                        (fp32; rounded to fp16 only as the next MMA's input)
//       l   = l * exp(m - m_new) + rowsum P          (rowsum of the fp32 P)
//       acc = acc * exp(m - m_new) + P V            <- tensor cores; P goes from the S accumulator registers
//                                                      straight into the A operand (same layout), no smem
//   o = acc / l,  lse = m + log(l)                  (a row that saw no key: o = 0, lse = -inf)
//
// Fragment layouts of m16n8k16 (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with g = lane / 4 and
// t = lane % 4. A (16 x 16, row-major), four 32-bit registers of two halves each (low half = lower column):
//   a[0] = A[g][2t, 2t+1]   a[1] = A[g+8][2t, 2t+1]   a[2] = A[g][2t+8, 2t+9]   a[3] = A[g+8][2t+8, 2t+9]
// B (16 x 8, "col": stored as B^T rows): b[0] = B[2t, 2t+1][g]   b[1] = B[2t+8, 2t+9][g]
// C, D (16 x 8, float): c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g+8][2t, 2t+1]
// Two neighbouring C tiles (keys 0-7 and 8-15 of a 16-key chunk) are exactly an A fragment: that is why P
// needs no trip through shared memory.
//
// Launch (kernels/cuda/cupy_backend.py does this):
//   grid  = (ceil(Nq / 64), B * H)          blockIdx.x: query tile, blockIdx.y: (batch, head)
//   block = (128)                           4 warps; any other block size is a launch error on the caller's side
//   dynamic shared memory = (64 * (d + 8) + 32 * (d + 8) + dv * (32 + 8)) * 2 bytes   (36,352 B at d = dv = 128)
//
// Layouts: q (B*H, Nq, d), k (B*H, Nk, d), v (B*H, Nk, dv): C-contiguous IEEE half (numpy.float16), passed as
// 16-bit patterns; o (B*H, Nq, dv) and lse (B*H, Nq) float32; key_padding (B, Nk) uint8, nonzero = padding,
// read only when has_padding != 0. Conventions of kernels/common.py: causal aligned top-left (query i sees
// keys j <= i), a fully masked row gets o = 0 and lse = -inf.
// Limits: d and dv multiples of 16, at most 128 (the launcher checks); inputs must fit in half (|x| < 65504).
// Scalars are 4-byte `int` / `float`: the launcher casts with numpy.int32 / numpy.float32.
//
// Register rules (the compile check enforces them: no spills, no stack frame): every per-thread array
// (s, acc, a) is indexed only by compile-time constants: each loop over it is `#pragma unroll`ed over the
// largest size (MAX_HEAD_DIM), and a smaller d or dv is handled by warp-uniform `if`s inside the unrolled loop.

#include "common.cuh"  // WARP_SIZE, FULL_MASK, neg_inf(), warp_max(), warp_sum()

#define NUM_WARPS 4
#define BLOCK_M (16 * NUM_WARPS)                  // Br: query rows per block
#define BLOCK_N 32                                // Bc: keys per tile
#define MAX_HEAD_DIM 128
#define PAD 8                                     // halves added to each shared row: no bank conflicts
#define S_TILES (BLOCK_N / 8)                     // 16 x 8 score tiles per warp and key tile
#define O_TILES (MAX_HEAD_DIM / 8)                // 16 x 8 output tiles per warp
#define MIN_BLOCKS_PER_SM 4                       // caps registers at 65536 / (4 * 128) = 128 per thread

#ifdef __CUDA_ARCH__  // NVRTC / nvcc: the tensor-core instructions

// D = A B + D on tensor cores: A 16 x 16 half (4 registers), B 16 x 8 half (2 registers), D 16 x 8 float.
__device__ __forceinline__ void mma_16x8x16(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats rounded to half (round to nearest even) and packed: `lo` in the low 16 bits.
__device__ __forceinline__ unsigned pack_half2(float lo, float hi) {
    unsigned packed;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(packed) : "f"(hi), "f"(lo));  // first source -> high half
    return packed;
}

#else  // the CPU harness (g++): software stand-ins that compute the same values, lane by lane

// Each lane fetches the A row and B columns it needs from the lanes that hold them (the fragment layouts at
// the top of the file), two halves per shuffle, and accumulates in float. This checks the kernel's own
// indexing, masking and online softmax on the CPU; it cannot check the hardware (that the instruction's
// fragment layout is the one written above, or its summation order and speed).
__device__ __forceinline__ float half_lo(unsigned two) { return (float)__builtin_bit_cast(_Float16, (unsigned short)two); }
__device__ __forceinline__ float half_hi(unsigned two) { return half_lo(two >> 16); }

__device__ __forceinline__ void mma_16x8x16(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    const int g = (threadIdx.x % WARP_SIZE) / 4, t = threadIdx.x % 4;
    for (int kp = 0; kp < 8; ++kp) {              // k = 2 kp, 2 kp + 1: held by lane 4 row + kp % 4
        const int hi = kp / 4;                    // k >= 8: registers a[2], a[3] and b1
        const unsigned a_g = __shfl_sync(FULL_MASK, a[2 * hi], 4 * g + kp % 4);       // A[g][k, k+1]
        const unsigned a_g8 = __shfl_sync(FULL_MASK, a[2 * hi + 1], 4 * g + kp % 4);  // A[g+8][k, k+1]
        const unsigned b_n0 = __shfl_sync(FULL_MASK, hi ? b1 : b0, 4 * (2 * t) + kp % 4);      // B[k, k+1][2t]
        const unsigned b_n1 = __shfl_sync(FULL_MASK, hi ? b1 : b0, 4 * (2 * t + 1) + kp % 4);  // B[k, k+1][2t+1]
        c[0] += half_lo(a_g) * half_lo(b_n0) + half_hi(a_g) * half_hi(b_n0);
        c[1] += half_lo(a_g) * half_lo(b_n1) + half_hi(a_g) * half_hi(b_n1);
        c[2] += half_lo(a_g8) * half_lo(b_n0) + half_hi(a_g8) * half_hi(b_n0);
        c[3] += half_lo(a_g8) * half_lo(b_n1) + half_hi(a_g8) * half_hi(b_n1);
    }
}

__device__ __forceinline__ unsigned pack_half2(float lo, float hi) {
    const unsigned short l = __builtin_bit_cast(unsigned short, (_Float16)lo);  // round to nearest even
    const unsigned short h = __builtin_bit_cast(unsigned short, (_Float16)hi);
    return (unsigned)l | ((unsigned)h << 16);
}

#endif

// Max / sum over the 4 threads (t = 0..3) that hold the same row of a fragment.
__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(FULL_MASK, x, 1));
    return fmaxf(x, __shfl_xor_sync(FULL_MASK, x, 2));
}

__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(FULL_MASK, x, 1);
    return x + __shfl_xor_sync(FULL_MASK, x, 2);
}

// Two neighbouring halves of a shared row, as one 32-bit register (the column must be even).
__device__ __forceinline__ unsigned load_half2(const unsigned short* row, int col) {
    return *reinterpret_cast<const unsigned*>(row + col);
}

extern "C" __global__ __launch_bounds__(WARP_SIZE * NUM_WARPS, MIN_BLOCKS_PER_SM) void flash_fwd_wmma(
    const unsigned short* __restrict__ q,         // (B*H, Nq, d) half
    const unsigned short* __restrict__ k,         // (B*H, Nk, d) half
    const unsigned short* __restrict__ v,         // (B*H, Nk, dv) half
    const unsigned char* __restrict__ key_padding,  // (B, Nk), nonzero = padding; only read if has_padding
    float* __restrict__ o,                        // (B*H, Nq, dv)
    float* __restrict__ lse,                      // (B*H, Nq)
    int H, int Nq, int Nk, int d, int dv,
    float scale, int causal, int has_padding)
{
    extern __shared__ __align__(16) unsigned short smem_h[];
    const int ld_qk = d + PAD;                    // row stride of q_s and k_s (halves)
    const int ld_v = BLOCK_N + PAD;               // row stride of v_t (halves)
    unsigned short* q_s = smem_h;                 // (Br, d)  this block's query rows
    unsigned short* k_s = q_s + BLOCK_M * ld_qk;  // (Bc, d)  the current key tile
    unsigned short* v_t = k_s + BLOCK_N * ld_qk;  // (dv, Bc) the current value tile, transposed

    const int bh = blockIdx.y;
    const int b = bh / H;
    const int i0 = blockIdx.x * BLOCK_M;          // first query row of this block
    const int warp = threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE;
    const int g = lane / 4, t = lane % 4;         // fragment coordinates (see the top of the file)
    const int row0 = warp * 16 + g;               // this thread's two rows within the block: row0, row0 + 8
    const int i_row[2] = {i0 + row0, i0 + row0 + 8};

    const unsigned short* q_bh = q + (size_t)bh * Nq * d;
    const unsigned short* k_bh = k + (size_t)bh * Nk * d;
    const unsigned short* v_bh = v + (size_t)bh * Nk * dv;

    // Stage the query tile, two halves at a time (d is even, so every row starts 4-byte aligned); rows past
    // Nq are zero-filled (their scores are computed but never written).
    const int words = d / 2;
    for (int w = threadIdx.x; w < BLOCK_M * words; w += blockDim.x) {
        const int r = w / words, c = 2 * (w % words);
        *reinterpret_cast<unsigned*>(q_s + r * ld_qk + c) =
            (i0 + r < Nq) ? *reinterpret_cast<const unsigned*>(q_bh + (size_t)(i0 + r) * d + c) : 0u;
    }

    float m[2] = {neg_inf(), neg_inf()};          // running max of rows row0, row0 + 8
    float l[2] = {0.0f, 0.0f};                    // running normaliser sum exp(s - m)
    float acc[O_TILES][4];                        // unnormalised output, C-fragment layout per 8 columns
    #pragma unroll
    for (int n = 0; n < O_TILES; ++n) {
        #pragma unroll
        for (int e = 0; e < 4; ++e) acc[n][e] = 0.0f;
    }

    // Causal: the block's last row i0 + Br - 1 sees keys up to itself; later tiles are skipped. Every thread
    // of the block runs the same number of tiles, so the barriers below always match.
    const int k_end = causal ? min(Nk, i0 + BLOCK_M) : Nk;
    for (int j0 = 0; j0 < k_end; j0 += BLOCK_N) {
        __syncthreads();                          // everyone is done with the previous K/V tile
        for (int w = threadIdx.x; w < BLOCK_N * words; w += blockDim.x) {
            const int r = w / words, c = 2 * (w % words);
            *reinterpret_cast<unsigned*>(k_s + r * ld_qk + c) =
                (j0 + r < Nk) ? *reinterpret_cast<const unsigned*>(k_bh + (size_t)(j0 + r) * d + c) : 0u;
        }
        for (int e = threadIdx.x; e < BLOCK_N * dv; e += blockDim.x) {
            const int r = e / dv, c = e % dv;     // coalesced global reads along c, transposed shared writes
            v_t[c * ld_v + r] = (j0 + r < Nk) ? v_bh[(size_t)(j0 + r) * dv + c] : (unsigned short)0;
        }
        __syncthreads();                          // the tile (and, the first time, q_s) is complete

        // S = Q_w K^T for this warp's 16 rows and the tile's 32 keys: S_TILES tiles of 16 x 8.
        float s[S_TILES][4];
        #pragma unroll
        for (int n = 0; n < S_TILES; ++n) {
            #pragma unroll
            for (int e = 0; e < 4; ++e) s[n][e] = 0.0f;
        }
        #pragma unroll
        for (int kk = 0; kk < MAX_HEAD_DIM / 16; ++kk) {
            if (kk * 16 < d) {                    // warp-uniform: every lane takes the same branch
                const unsigned short* qa = q_s + (warp * 16 + g) * ld_qk + kk * 16 + 2 * t;
                const unsigned a[4] = {load_half2(qa, 0), load_half2(qa + 8 * ld_qk, 0),
                                       load_half2(qa, 8), load_half2(qa + 8 * ld_qk, 8)};
                #pragma unroll
                for (int n = 0; n < S_TILES; ++n) {
                    const unsigned short* kb = k_s + (n * 8 + g) * ld_qk + kk * 16 + 2 * t;
                    mma_16x8x16(s[n], a, load_half2(kb, 0), load_half2(kb, 8));
                }
            }
        }

        // Scale and mask. Element e of tile n: row i_row[e / 2], key j0 + n * 8 + 2t + e % 2.
        float tile_max[2] = {neg_inf(), neg_inf()};
        #pragma unroll
        for (int n = 0; n < S_TILES; ++n) {
            #pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int j = j0 + n * 8 + 2 * t + (e & 1);
                const int i = i_row[e >> 1];
                const bool allowed = j < Nk && (!causal || j <= i) && !(has_padding && key_padding[(size_t)b * Nk + j]);
                s[n][e] = allowed ? s[n][e] * scale : neg_inf();
                tile_max[e >> 1] = fmaxf(tile_max[e >> 1], s[n][e]);
            }
        }

        // Online softmax step for both rows. While a row has seen no key, m_new = -inf: use 0 in the
        // exponentials so that exp(-inf - -inf) never makes a NaN (p and alpha are then 0).
        float alpha[2], m_safe[2], row_sum[2] = {0.0f, 0.0f};
        #pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float m_new = fmaxf(m[r], quad_max(tile_max[r]));
            m_safe[r] = (m_new == neg_inf()) ? 0.0f : m_new;
            alpha[r] = __expf(m[r] - m_safe[r]);  // rescales what was accumulated under the old max
            m[r] = m_new;
        }
        #pragma unroll
        for (int n = 0; n < S_TILES; ++n) {
            #pragma unroll
            for (int e = 0; e < 4; ++e) {
                s[n][e] = __expf(s[n][e] - m_safe[e >> 1]);   // s now holds P (0 for masked keys)
                row_sum[e >> 1] += s[n][e];
            }
        }
        #pragma unroll
        for (int r = 0; r < 2; ++r) l[r] = l[r] * alpha[r] + quad_sum(row_sum[r]);
        #pragma unroll
        for (int n = 0; n < O_TILES; ++n) {
            #pragma unroll
            for (int e = 0; e < 4; ++e) acc[n][e] *= alpha[e >> 1];
        }

        // acc += P V, 16 keys at a time: P's two 16 x 8 tiles of a chunk form the A fragment.
        #pragma unroll
        for (int kc = 0; kc < BLOCK_N / 16; ++kc) {
            const unsigned a[4] = {pack_half2(s[2 * kc][0], s[2 * kc][1]), pack_half2(s[2 * kc][2], s[2 * kc][3]),
                                   pack_half2(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                                   pack_half2(s[2 * kc + 1][2], s[2 * kc + 1][3])};
            #pragma unroll
            for (int n = 0; n < O_TILES; ++n) {
                if (n * 8 < dv) {                 // warp-uniform
                    const unsigned short* vb = v_t + (n * 8 + g) * ld_v + kc * 16 + 2 * t;
                    mma_16x8x16(acc[n], a, load_half2(vb, 0), load_half2(vb, 8));
                }
            }
        }
    }

    // Write O and lse (no barrier follows, so threads of rows past Nq may simply skip their writes).
    #pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int i = i_row[r];
        if (i >= Nq) continue;
        const bool seen = l[r] > 0.0f;            // false for a fully masked row
        const float inv_l = seen ? 1.0f / l[r] : 0.0f;
        float* o_row = o + ((size_t)bh * Nq + i) * dv;
        #pragma unroll
        for (int n = 0; n < O_TILES; ++n) {
            if (n * 8 < dv) {
                o_row[n * 8 + 2 * t] = acc[n][2 * r] * inv_l;
                o_row[n * 8 + 2 * t + 1] = acc[n][2 * r + 1] * inv_l;
            }
        }
        if (t == 0) lse[(size_t)bh * Nq + i] = seen ? m[r] + __logf(l[r]) : neg_inf();
    }
}
