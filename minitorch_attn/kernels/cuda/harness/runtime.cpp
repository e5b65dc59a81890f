// The fiber scheduler behind cuda_builtins.h: runs a grid block by block, each block's threads as fibers.
// launcher.py pastes this file, the rewritten .cu source and one trampoline per kernel into one translation
// unit and compiles it with g++.
#include <ucontext.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

thread_local dim3 threadIdx;
thread_local dim3 blockIdx;
thread_local dim3 blockDim;  // thread_local: launches from different OS threads stay apart
thread_local dim3 gridDim;

namespace cuda_cpu {

enum class State { Runnable, AtBlockBarrier, AtWarpBarrier, Done };

struct Fiber {
    ucontext_t context;
    std::vector<char> stack;
    dim3 idx;
    int linear = 0;
    State state = State::Runnable;
    int shuffles = 0;  // how many shuffles this lane has done: picks the half of the exchange buffer
};

struct Warp {
    int size = 0;           // lanes in this warp (the last warp of a block may be partial)
    int arrived = 0;        // lanes waiting at the warp barrier
    unsigned long long slots[2][32] = {};
};

struct Block {
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    std::vector<int> runnable;  // fiber ids that may run now
    int at_barrier = 0;
    int done = 0;
    int current = -1;
    ucontext_t scheduler;
    std::function<void()> body;
    std::string error;
    std::vector<unsigned char> shared;  // dynamic shared memory + red zone
    size_t shared_bytes = 0;
};

static thread_local Block* block_ = nullptr;  // the block running on this OS thread
static const size_t kStackBytes = 256 * 1024;
static const size_t kSharedRedZone = 256;
static const unsigned char kPoison = 0xff;  // 0xffffffff is a NaN as float32, -1 as an int

[[noreturn]] void fail(const char* message) {
    if (block_->error.empty()) block_->error = message;
    swapcontext(&block_->fibers[block_->current].context, &block_->scheduler);
    std::abort();  // never resumed
}

static Fiber& me() { return block_->fibers[block_->current]; }
int lane_id() { return me().linear % 32; }
void* dynamic_shared() { return block_->shared.data(); }
unsigned long long* warp_slot(int parity) { return block_->warps[me().linear / 32].slots[parity]; }
int shuffle_parity() { return me().shuffles++ % 2; }

static void yield_to_scheduler() { swapcontext(&me().context, &block_->scheduler); }

static void make_runnable(int id) {
    block_->fibers[id].state = State::Runnable;
    block_->runnable.push_back(id);
}

void sync_block() {
    Block& b = *block_;
    me().state = State::AtBlockBarrier;
    if (++b.at_barrier == (int)b.fibers.size()) {  // the last thread to arrive releases everyone
        b.at_barrier = 0;
        for (size_t id = 0; id < b.fibers.size(); ++id) make_runnable((int)id);
    }
    yield_to_scheduler();
}

void sync_warp(unsigned mask) {
    Block& b = *block_;
    Warp& w = b.warps[me().linear / 32];
    const unsigned full = w.size == 32 ? 0xffffffffu : ((1u << w.size) - 1u);
    if ((mask & full) != full)
        fail("the CPU harness supports warp intrinsics only with every lane of the warp in the mask");
    me().state = State::AtWarpBarrier;
    if (++w.arrived == w.size) {
        w.arrived = 0;
        const int first = (me().linear / 32) * 32;
        for (int id = first; id < first + w.size; ++id) make_runnable(id);
    }
    yield_to_scheduler();
}

static void fiber_main() {
    block_->body();
    Fiber& f = me();
    f.state = State::Done;
    block_->done++;
    swapcontext(&f.context, &block_->scheduler);
}

static uint64_t next_random(uint64_t& s) {  // xorshift64*
    s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
    return s * 2685821657736338717ull;
}

static std::string describe_deadlock(const Block& b) {
    int at_block = 0, at_warp = 0;
    for (const Fiber& f : b.fibers) {
        at_block += f.state == State::AtBlockBarrier;
        at_warp += f.state == State::AtWarpBarrier;
    }
    char text[256];
    std::snprintf(text, sizeof text,
                  "deadlock in block (%u, %u, %u): %d threads wait at __syncthreads, %d at a warp barrier "
                  "(__syncwarp / shuffle), %d have returned; a barrier is skipped by some threads",
                  blockIdx.x, blockIdx.y, blockIdx.z, at_block, at_warp, b.done);
    return text;
}

// Run one block to completion. Returns an empty string or the error.
static std::string run_block(Block& b, const dim3& block_idx, uint64_t& rng, bool lock_step) {
    const int n = (int)b.fibers.size();
    std::memset(b.shared.data(), kPoison, b.shared.size());  // poisoned: uninitialised reads give NaN
    b.runnable.clear();
    b.at_barrier = b.done = 0;
    for (Warp& w : b.warps) w.arrived = 0;
    for (int id = 0; id < n; ++id) {
        Fiber& f = b.fibers[id];
        f.state = State::Runnable;
        f.shuffles = 0;
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = f.stack.data();
        f.context.uc_stack.ss_size = f.stack.size();
        f.context.uc_link = nullptr;
        makecontext(&f.context, fiber_main, 0);
        b.runnable.push_back(id);
    }
    blockIdx = block_idx;
    while (b.done < n) {
        if (b.runnable.empty()) return describe_deadlock(b);
        int id;
        if (lock_step) {  // first come, first served
            id = b.runnable.front();
            b.runnable.erase(b.runnable.begin());
        } else {
            const size_t pick = next_random(rng) % b.runnable.size();
            id = b.runnable[pick];
            b.runnable[pick] = b.runnable.back();
            b.runnable.pop_back();
        }
        b.current = id;
        threadIdx = b.fibers[id].idx;
        swapcontext(&b.scheduler, &b.fibers[id].context);
        if (!b.error.empty()) return b.error;
        if (b.at_barrier > 0 && b.at_barrier + b.done == n && b.done > 0)
            return describe_deadlock(b);  // some threads returned while others wait at __syncthreads
    }
    for (size_t i = b.shared_bytes; i < b.shared.size(); ++i)
        if (b.shared[i] != kPoison) return "a thread wrote past the end of dynamic shared memory";
    return "";
}

// Launch `body` (one CUDA thread's work) over the grid. seed 0 = lock-step order (thread 0, 1, ... at each
// sync point), any other seed = a random order at every sync point. Returns 0 or writes the error.
int launch(dim3 grid, dim3 block, size_t shared_bytes, uint64_t seed, std::function<void()> body,
           char* error, size_t error_size) {
    Block b;
    const int n = (int)(block.x * block.y * block.z);
    b.fibers.resize(n);
    for (int id = 0; id < n; ++id) {
        Fiber& f = b.fibers[id];
        f.stack.resize(kStackBytes);
        f.linear = id;
        f.idx = dim3{(unsigned)(id % block.x), (unsigned)((id / block.x) % block.y),
                     (unsigned)(id / (block.x * block.y))};
    }
    b.warps.resize((n + 31) / 32);
    for (int w = 0; w < (int)b.warps.size(); ++w) b.warps[w].size = std::min(32, n - 32 * w);
    b.shared_bytes = shared_bytes;
    b.shared.resize(shared_bytes + kSharedRedZone);
    b.body = std::move(body);
    gridDim = grid;
    blockDim = block;
    block_ = &b;
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;
    std::string message;
    for (unsigned z = 0; z < grid.z && message.empty(); ++z)
        for (unsigned y = 0; y < grid.y && message.empty(); ++y)
            for (unsigned x = 0; x < grid.x && message.empty(); ++x)
                message = run_block(b, dim3{x, y, z}, rng, seed == 0);
    block_ = nullptr;
    if (message.empty()) return 0;
    std::snprintf(error, error_size, "%s", message.c_str());
    return 1;
}

// What a parameter of the kernel is: 0 = pointer, 1 = signed integer, 2 = unsigned integer, 3 = floating
// point, 4 = something else; and its size in bytes. The launcher checks every argument against these.
template <class T> constexpr int kind_of() {
    if constexpr (std::is_pointer_v<T>) return 0;
    else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) return 1;
    else if constexpr (std::is_integral_v<T>) return 2;
    else if constexpr (std::is_floating_point_v<T>) return 3;
    else return 4;
}

template <class... A> int describe(void (*)(A...), int* kinds, int* sizes, int capacity) {
    int i = 0;
    ((i < capacity ? (kinds[i] = kind_of<A>(), sizes[i] = (int)sizeof(A), 0) : 0, ++i), ...);
    return i;
}

template <class... A, size_t... I>
void call(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<A>*>(args[I])...);
}

template <class... A>
int launch_kernel(void (*kernel)(A...), void** args, const unsigned* grid, const unsigned* block,
                  size_t shared_bytes, uint64_t seed, char* error, size_t error_size) {
    return launch(dim3{grid[0], grid[1], grid[2]}, dim3{block[0], block[1], block[2]}, shared_bytes, seed,
                  [=] { call(kernel, args, std::index_sequence_for<A...>{}); }, error, error_size);
}

}  // namespace cuda_cpu
