// CUDA built-ins for g++, so that an unchanged .cu kernel runs on the CPU (see launcher.py).
//
// Blocks run one after another. Inside a block each CUDA thread is, depending on how the module was compiled:
// - a fiber (ucontext, the default): one fiber runs until it reaches a sync point (__syncthreads, a warp
//   intrinsic), then a seeded random scheduler picks the next runnable fiber (runtime_fibers.inc);
// - an OS thread (CUDA_CPU_THREADS, mode="threads"): real concurrency, real barriers, real atomics, so that
//   ThreadSanitizer and AddressSanitizer can watch it (runtime_threads.inc).
// Barriers that can never complete are reported as a deadlock in both. Lanes of a warp are independent:
// warp-synchronous code that is missing a __syncwarp fails here.
#pragma once
// Every system header the runtime uses comes first: the macros below (__noinline__, ...) would break them.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>
#include <ucontext.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace cuda_cpu {
// What a trace records (launcher.py's trace.py reads the same numbers).
enum EventKind : int {
    kResume = 0, kSyncthreads = 1, kRelease = 2, kSyncwarp = 3, kShflIdx = 4, kShflXor = 5, kShflDown = 6,
    kShflUp = 7, kBallot = 8, kPrintf = 9, kExit = 10,
};

// Implemented by the scheduler (runtime_fibers.inc or runtime_threads.inc), compiled into the same object.
void sync_block();                                   // __syncthreads
void sync_warp(unsigned mask, bool record);          // __syncwarp (record = true), inside exchanges
// One shuffle: write `value` into this lane's slot of the warp's exchange buffer, wait for the warp, return
// the slot of source_lane(kind, lane, arg, width), and record the shuffle if tracing.
unsigned long long exchange(unsigned mask, unsigned long long value, int kind, int arg, int width, int type);
unsigned long long* warp_slot(int parity);           // this warp's exchange buffer (32 values, double-buffered)
int lane_id();
unsigned warp_lanes();                               // mask of the lanes this warp has (the last may be partial)
int shuffle_parity();                                // which half of the exchange buffer the next shuffle uses
void* dynamic_shared();                              // this block's `extern __shared__` array
void nanosleep(unsigned ns);
[[noreturn]] void fail(const char* message);         // stop the launch with an error
// Implemented in runtime.cpp: tracing (does nothing unless this thread runs the traced block) and printf.
void trace_exchange(int kind, int src_lane, int type, unsigned long long sent, unsigned long long received);
int device_printf(const char* format, ...) __attribute__((format(printf, 1, 2)));

// A value's type for the trace: (kind << 8) | size, kind 1 = signed, 2 = unsigned, 3 = floating point.
template <class T> constexpr int type_code() {
    constexpr int kind = std::is_floating_point_v<T> ? 3 : std::is_signed_v<T> ? 1 : 2;
    return (kind << 8) | (int)sizeof(T);
}

// The lane a shuffle reads, as CUDA defines it for each kind (`width` splits the warp into segments); a
// source outside the lane's segment (or outside a partial warp: checked by the scheduler) is the lane itself.
inline int source_lane(int kind, int lane, int arg, int width) {
    const int segment = lane & ~(width - 1);
    int src = lane;
    if (kind == kShflIdx) src = segment + (arg % width);
    else if (kind == kShflXor) src = lane ^ arg;
    else if (kind == kShflDown) src = lane + arg;
    else if (kind == kShflUp) src = lane - arg;
    return (src & ~(width - 1)) == segment && src >= 0 ? src : lane;
}

template <class T>
T shuffle(unsigned mask, T value, int kind, int arg, int width) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    unsigned long long bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    bits = exchange(mask, bits, kind, arg, width, type_code<T>());
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}

inline unsigned ballot(unsigned mask, int predicate) {
    const int parity = shuffle_parity();
    unsigned long long* slots = warp_slot(parity);
    slots[lane_id()] = predicate ? 1u : 0u;
    sync_warp(mask, false);
    const unsigned lanes = warp_lanes();
    unsigned result = 0;
    for (int src = 0; src < 32; ++src)
        if ((lanes >> src) & 1u) result |= (unsigned)slots[src] << src;
    trace_exchange(kBallot, -1, type_code<unsigned>(), predicate ? 1u : 0u, result);
    return result;  // the other half of the buffer serves the next exchange
}
}  // namespace cuda_cpu

// Per-thread built-ins, set by the scheduler (for each fiber it switches to, or once per OS thread).
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
inline void __syncwarp(unsigned mask = 0xffffffffu) { cuda_cpu::sync_warp(mask, true); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __nanosleep(unsigned ns) { cuda_cpu::nanosleep(ns); }

template <class T> T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    return cuda_cpu::shuffle(mask, v, cuda_cpu::kShflIdx, src, width);
}
template <class T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    return cuda_cpu::shuffle(mask, v, cuda_cpu::kShflXor, lane_mask, width);
}
template <class T> T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return cuda_cpu::shuffle(mask, v, cuda_cpu::kShflDown, (int)delta, width);
}
template <class T> T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return cuda_cpu::shuffle(mask, v, cuda_cpu::kShflUp, (int)delta, width);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) { return cuda_cpu::ballot(mask, predicate); }
inline int __any_sync(unsigned mask, int predicate) { return cuda_cpu::ballot(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) {
    const unsigned lanes = mask & cuda_cpu::warp_lanes();
    return (cuda_cpu::ballot(mask, predicate) & lanes) == lanes;
}

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

// Atomics are real atomics in both modes (std::atomic_ref: ThreadSanitizer sees them as such). Like CUDA's
// overloads, the value converts to the pointee's type (atomicAdd(float_ptr, 1) is fine). They return the old
// value. atomicMax / atomicMin also work for float and double (a compare-and-swap loop).
template <class T> using atomic_value_t = std::type_identity_t<T>;
template <class T> T atomicAdd(T* address, atomic_value_t<T> value) {
    return std::atomic_ref<T>(*address).fetch_add(value);
}
template <class T> T atomicSub(T* address, atomic_value_t<T> value) {
    return std::atomic_ref<T>(*address).fetch_sub(value);
}
template <class T> T atomicExch(T* address, atomic_value_t<T> value) {
    return std::atomic_ref<T>(*address).exchange(value);
}
template <class T> T atomicCAS(T* address, atomic_value_t<T> compare, atomic_value_t<T> value) {
    std::atomic_ref<T>(*address).compare_exchange_strong(compare, value);
    return compare;  // the old value, whether or not the swap happened
}
template <class T> T atomicMax(T* address, atomic_value_t<T> value) {
    std::atomic_ref<T> ref(*address);
    T old = ref.load();
    while (old < value && !ref.compare_exchange_weak(old, value)) {}
    return old;
}
template <class T> T atomicMin(T* address, atomic_value_t<T> value) {
    std::atomic_ref<T> ref(*address);
    T old = ref.load();
    while (value < old && !ref.compare_exchange_weak(old, value)) {}
    return old;
}
