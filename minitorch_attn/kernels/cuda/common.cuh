// common.cuh: what every kernel of this folder shares, defined once (llm.c's dev/cuda/common.h is the model).
//
// Included by flash_fwd.cu, flash_bwd.cu, flash_fwd_wmma.cu and progression/0*.cu with `#include "common.cuh"`
// (`"../common.cuh"` from progression/). nvcc finds it next to the file. NVRTC as CuPy runs it has no include
// path, so the Python loaders paste this file in place of the #include line before compiling
// (`kernels/cuda/__init__.py: expand_includes`, used by CuPy's RawModule, the NVRTC compile check and the CPU
// harness), with #line directives so that error messages still name the right file and line.
//
// NVRTC has no <math.h>: no INFINITY / NAN macros here, -inf is built from its bit pattern.

#ifndef MINITORCH_ATTN_COMMON_CUH
#define MINITORCH_ATTN_COMMON_CUH

#define WARP_SIZE 32
#define FULL_MASK 0xffffffffu                        // every lane of the warp takes part in a shuffle

__device__ __forceinline__ float neg_inf() { return -__int_as_float(0x7f800000); }

// Butterfly reductions: after 5 exchanges (offsets 16, 8, 4, 2, 1) every lane holds the max / the sum of
// the values all 32 lanes started with. Lesson 11 prints the five steps on concrete values.
__device__ __forceinline__ float warp_max(float x) {
    #pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2)
        x = fmaxf(x, __shfl_xor_sync(FULL_MASK, x, offset));
    return x;
}

__device__ __forceinline__ float warp_sum(float x) {
    #pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2)
        x += __shfl_xor_sync(FULL_MASK, x, offset);
    return x;
}

#endif  // MINITORCH_ATTN_COMMON_CUH
