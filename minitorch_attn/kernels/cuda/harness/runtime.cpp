// The runtime behind cuda_builtins.h: the launch log (device printf, tracing), the scheduler of one mode
// (runtime_fibers.inc, or runtime_threads.inc when compiled with -DCUDA_CPU_THREADS=1), argument description
// and the launch trampoline. launcher.py compiles one translation unit: cuda_builtins.h, this file, the
// rewritten .cu source and one `cpu_launch_<kernel>` / `cpu_params_<kernel>` pair per kernel.
//
// Rules the runtime keeps so that ThreadSanitizer judges the kernel, not the harness: in thread mode the
// only synchronisation between CUDA threads is what CUDA promises (a block barrier orders the whole block, a
// warp barrier the warp's lanes, the end of a block everything); logs are per CUDA thread and ordered by a
// relaxed atomic counter, so printf and tracing add no happens-before edges between threads.
// (System headers: at the top of cuda_builtins.h, before the CUDA macros.)

thread_local dim3 threadIdx;
thread_local dim3 blockIdx;
thread_local dim3 blockDim;  // thread_local: launches from different OS threads stay apart
thread_local dim3 gridDim;

namespace cuda_cpu {

// One event of a trace; mirrored by the NumPy dtype in trace.py (keep the two in step).
struct TraceEvent {
    int64_t seq;                // global order of the launch
    int32_t kind;               // EventKind
    int32_t thread;             // linear thread index in the block
    int32_t barrier;            // kSyncthreads / kRelease: which __syncthreads (0, 1, ...); warp events: which
                                // barrier of the warp; -1 otherwise
    int32_t src_lane;           // shuffles: the lane read from
    int32_t type;               // shuffles: type_code of the value
    int32_t index;              // kPrintf: index into the launch's texts; kRelease: snapshot index
    uint64_t sent, received;    // shuffles: the bits sent and received
};

struct Line {
    int64_t seq;
    bool traced;                // from the traced block: kept in the trace, not printed
    std::string text;
};

struct ThreadLog {              // written only by the OS thread that runs this CUDA thread
    std::vector<TraceEvent> events;
    std::vector<Line> lines;
};

struct LaunchLog {
    bool trace = false;
    dim3 traced_block;
    std::atomic<int64_t> seq{0};
    std::vector<ThreadLog> threads;                       // one per CUDA thread of a block
    std::vector<std::vector<unsigned char>> snapshots;    // dynamic shared memory at each __syncthreads
    // Filled by merge() after the launch:
    std::vector<TraceEvent> events;
    std::vector<std::string> texts;                       // printf output of the traced block
    std::vector<std::string> printed;                     // printf output of the other blocks, prefixed

    void merge() {
        events.clear(); texts.clear(); printed.clear();
        std::vector<const Line*> lines;
        for (ThreadLog& t : threads) {
            for (const TraceEvent& e : t.events) events.push_back(e);
            for (const Line& line : t.lines) lines.push_back(&line);
        }
        std::sort(events.begin(), events.end(), [](const TraceEvent& a, const TraceEvent& b) { return a.seq < b.seq; });
        for (TraceEvent& e : events)
            if (e.kind == kPrintf) {
                const int local = e.index;
                e.index = (int)texts.size();
                texts.push_back(threads[e.thread].lines[local].text);
            }
        std::sort(lines.begin(), lines.end(), [](const Line* a, const Line* b) { return a->seq < b->seq; });
        for (const Line* line : lines)
            if (!line->traced) printed.push_back(line->text);
    }
};

static thread_local LaunchLog* log_ = nullptr;  // the launch this OS thread works for
static thread_local bool tracing_ = false;      // this OS thread runs (a thread of) the traced block
static int current_thread();                    // the scheduler's linear index of the running CUDA thread
static void set_tracing(LaunchLog* log, const dim3& block) {
    tracing_ = log->trace && block.x == log->traced_block.x && block.y == log->traced_block.y &&
               block.z == log->traced_block.z;
}

static void record(int kind, int thread, int barrier = -1, int src_lane = -1, int type = 0,
                   unsigned long long sent = 0, unsigned long long received = 0, int index = -1) {
    if (!tracing_) return;
    const int64_t seq = log_->seq.fetch_add(1, std::memory_order_relaxed);
    log_->threads[thread].events.push_back(
        TraceEvent{seq, kind, thread, barrier, src_lane, type, index, sent, received});
}

// The last thread to reach a __syncthreads records the release and a copy of dynamic shared memory.
static void record_release(int thread, int barrier, const unsigned char* shared, size_t bytes) {
    if (!tracing_) return;
    log_->snapshots.emplace_back(shared, shared + bytes);
    record(kRelease, thread, barrier, -1, 0, 0, 0, (int)log_->snapshots.size() - 1);
}

void trace_exchange(int kind, int src_lane, int type, unsigned long long sent, unsigned long long received) {
    if (tracing_) record(kind, current_thread(), -1, src_lane, type, sent, received);
}

// Device printf: formatted at once, kept per CUDA thread and handed to Python after the launch (a notebook
// shows what Python prints, not what C writes to file descriptor 1). Outside the traced block each line is
// prefixed with the block and thread indices.
int device_printf(const char* format, ...) {
    char buffer[1024];
    va_list args;
    va_start(args, format);
    const int n = std::vsnprintf(buffer, sizeof buffer, format, args);
    va_end(args);
    std::string text(buffer);
    if (!text.empty() && text.back() == '\n') text.pop_back();
    const int thread = current_thread();
    ThreadLog& t = log_->threads[thread];
    const int64_t seq = log_->seq.fetch_add(1, std::memory_order_relaxed);
    if (tracing_) {
        t.events.push_back(TraceEvent{seq, kPrintf, thread, -1, -1, 0, (int)t.lines.size(), 0, 0});
        t.lines.push_back(Line{seq, true, text});
    } else {
        char prefix[96];
        std::snprintf(prefix, sizeof prefix, "[block (%u, %u, %u) thread (%u, %u, %u)] ", blockIdx.x, blockIdx.y,
                      blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
        t.lines.push_back(Line{seq, false, prefix + text});
    }
    return n;
}

struct LaunchOptions {
    uint64_t seed;       // fibers: 0 = lock-step order, else the random schedule's seed; threads: unused
    double timeout;      // threads: seconds a barrier may wait while the block makes no progress
    LaunchLog* log;
};

static const unsigned char kPoison = 0xff;  // 0xffffffff is a NaN as float32, -1 as an int
#ifdef CUDA_CPU_SANITIZE
static const size_t kSharedRedZone = 0;     // exact size: AddressSanitizer's own red zones see an overrun
#else
static const size_t kSharedRedZone = 256;   // poisoned bytes past dynamic shared memory, checked per block
#endif

static void write_error(const std::string& message, char* error, size_t error_size) {
    std::snprintf(error, error_size, "%s", message.c_str());
}

}  // namespace cuda_cpu

#ifdef CUDA_CPU_THREADS
#include "runtime_threads.inc"
#else
#include "runtime_fibers.inc"
#endif

namespace cuda_cpu {

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
                  size_t shared_bytes, uint64_t seed, double timeout, void* log, char* error, size_t error_size) {
    const dim3 block3{block[0], block[1], block[2]};
    LaunchLog* launch_log = static_cast<LaunchLog*>(log);
    launch_log->threads.assign(block3.x * block3.y * block3.z, ThreadLog{});
    const int status = launch(dim3{grid[0], grid[1], grid[2]}, block3, shared_bytes,
                              LaunchOptions{seed, timeout, launch_log},
                              [=] { call(kernel, args, std::index_sequence_for<A...>{}); }, error, error_size);
    launch_log->merge();
    return status;
}

}  // namespace cuda_cpu

// The launch log and exact allocations, for launcher.py (ctypes).
extern "C" {
void* cpu_log_new(int trace, unsigned x, unsigned y, unsigned z) {
    auto* log = new cuda_cpu::LaunchLog;
    log->trace = trace != 0;
    log->traced_block = dim3{x, y, z};
    return log;
}
void cpu_log_free(void* log) { delete static_cast<cuda_cpu::LaunchLog*>(log); }
long cpu_log_event_count(void* log) { return (long)static_cast<cuda_cpu::LaunchLog*>(log)->events.size(); }
const void* cpu_log_events(void* log) { return static_cast<cuda_cpu::LaunchLog*>(log)->events.data(); }
int cpu_log_event_bytes() { return (int)sizeof(cuda_cpu::TraceEvent); }
int cpu_log_text_count(void* log) { return (int)static_cast<cuda_cpu::LaunchLog*>(log)->texts.size(); }
const char* cpu_log_text(void* log, int i) { return static_cast<cuda_cpu::LaunchLog*>(log)->texts[i].c_str(); }
int cpu_log_printed_count(void* log) { return (int)static_cast<cuda_cpu::LaunchLog*>(log)->printed.size(); }
const char* cpu_log_printed(void* log, int i) {
    return static_cast<cuda_cpu::LaunchLog*>(log)->printed[i].c_str();
}
int cpu_log_snapshot_count(void* log) { return (int)static_cast<cuda_cpu::LaunchLog*>(log)->snapshots.size(); }
const void* cpu_log_snapshot(void* log, int i, size_t* size) {
    const auto& s = static_cast<cuda_cpu::LaunchLog*>(log)->snapshots[i];
    *size = s.size();
    return s.data();
}
// Sanitizer builds: array arguments get exactly their size from malloc (AddressSanitizer's malloc when it is
// preloaded), so a read one element past the end is a heap-buffer-overflow.
void* cpu_alloc(size_t bytes) { return std::malloc(bytes ? bytes : 1); }
void cpu_free(void* p) { std::free(p); }
int cpu_threads_mode() {
#ifdef CUDA_CPU_THREADS
    return 1;
#else
    return 0;
#endif
}
}

// Device printf: after every system header, so that only the kernel's calls are redirected.
#define printf(...) ::cuda_cpu::device_printf(__VA_ARGS__)
