// CUDA built-ins for g++, so that an unchanged .cu kernel runs on the CPU (see launcher.py).
//
// Blocks run one after another. Inside a block every CUDA thread is a fiber (ucontext) with its own stack;
// a fiber runs until it reaches a sync point (__syncthreads, a warp intrinsic), then the scheduler picks the
// next runnable fiber at random (seeded). Barriers that can never complete are reported as a deadlock.
// Lanes of a warp are independent fibers: warp-synchronous code that is missing a __syncwarp fails here.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace cuda_cpu {
// Implemented in runtime.cpp (compiled into the same shared object).
void sync_block();                                   // __syncthreads
void sync_warp(unsigned mask);                       // __syncwarp and the exchange inside each shuffle
unsigned long long* warp_slot(int parity);           // this warp's exchange buffer (32 values, double-buffered)
int lane_id();
int shuffle_parity();                                // which half of the exchange buffer the next shuffle uses
void* dynamic_shared();                              // this block's `extern __shared__` array
[[noreturn]] void fail(const char* message);         // stop the launch with an error

template <class T>
T shuffle(unsigned mask, T value, int src_lane) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    const int parity = shuffle_parity();
    unsigned long long bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    warp_slot(parity)[lane_id()] = bits;
    sync_warp(mask);                                 // every lane has written its value
    if (src_lane < 0 || src_lane >= 32) src_lane = lane_id();
    T out;
    bits = warp_slot(parity)[src_lane];
    std::memcpy(&out, &bits, sizeof(T));
    return out;                                      // the other half of the buffer serves the next shuffle
}
}  // namespace cuda_cpu

// Per-thread built-ins: the scheduler sets them each time it switches to a fiber.
extern thread_local dim3 threadIdx;
extern thread_local dim3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __shared__ static  // blocks run one at a time, so a static is shared by the block's threads

inline void __syncthreads() { cuda_cpu::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { cuda_cpu::sync_warp(mask); }
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T> T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    const int lane = cuda_cpu::lane_id();
    return cuda_cpu::shuffle(mask, v, (lane & ~(width - 1)) + (src % width));
}
template <class T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    const int lane = cuda_cpu::lane_id();
    int src = lane ^ lane_mask;
    if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
    return cuda_cpu::shuffle(mask, v, src);
}
template <class T> T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = cuda_cpu::lane_id();
    const int src = lane + (int)delta;
    return cuda_cpu::shuffle(mask, v, (src & ~(width - 1)) == (lane & ~(width - 1)) ? src : lane);
}
template <class T> T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = cuda_cpu::lane_id();
    const int src = lane - (int)delta;
    return cuda_cpu::shuffle(mask, v, src >= (lane & ~(width - 1)) ? src : lane);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
    unsigned ballot = 0;
    for (int src = 0; src < 32; ++src)  // 32 shuffles: slow but simple, and every lane takes part
        ballot |= (cuda_cpu::shuffle(mask, predicate ? 1u : 0u, src) << src);
    return ballot;
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) == mask; }

// Fast math: exact on the CPU (no flush-to-zero either), so compare with tolerances.
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
// fmaxf, expf, sqrtf, ... come from <cmath> (glibc declares them globally too).
using std::max; using std::min;

// Fibers of one block never run at the same time, so atomics are plain read-modify-writes here.
template <class T> T atomicAdd(T* address, T value) { T old = *address; *address = old + value; return old; }
template <class T> T atomicMax(T* address, T value) { T old = *address; *address = std::max(old, value); return old; }
