#include "threadpool.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TACTIC_PAUSE() _mm_pause()
#else
#define TACTIC_PAUSE() ((void)0)
#endif

namespace tactic {

namespace {
constexpr int kSpinIterations = 1 << 14;  // a worker spins this long before yielding/sleeping
constexpr int kYieldIterations = 64;      // then yields this often before sleeping

// Spin briefly, then yield the core: on an oversubscribed machine the thread we wait
// for may need it.
template <class Ready>
void wait_until(Ready ready) {
    for (int i = 0; !ready(); i++) {
        if (i < 256)
            TACTIC_PAUSE();
        else
            std::this_thread::yield();
    }
}
}  // namespace

int ThreadPool::hardware_threads() {
    const unsigned n = std::thread::hardware_concurrency();
    return n ? int(n) : 1;
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    threads_.reserve(size_t(n_threads_ - 1));
    for (int i = 1; i < n_threads_; i++) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_.store(true);
        generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (auto &t : threads_) t.join();
}

void ThreadPool::publish() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
}

void ThreadPool::run(const std::function<void(int, int)> &fn) {
    if (n_threads_ == 1) {
        fn(0, 1);
        return;
    }
    error_ = nullptr;
    job_ = &fn;
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    run_gen_.store(run_gen_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    publish();
    try {
        fn(0, n_threads_);
    } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
    }
    wait_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
}

void ThreadPool::run_shared(const std::function<void()> &body) {
    error_ = nullptr;
    shared_ = &body;  // published before the job opens (the state is still closed)
    // Open it once no stale worker is passing through the closed state.
    for (uint32_t expected = kClosed;
         !shared_state_.compare_exchange_weak(expected, 0, std::memory_order_acq_rel); expected = kClosed)
        TACTIC_PAUSE();
    publish();
    try {
        body();
    } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
    }
    // Close the job; wait only for the workers already inside it.
    shared_state_.fetch_or(kClosed, std::memory_order_acq_rel);
    wait_until([&] { return (shared_state_.load(std::memory_order_acquire) & ~kClosed) == 0; });
    if (error_) std::rethrow_exception(error_);
}

void ThreadPool::worker(int index) {
    uint64_t seen = 0, run_done = 0;
    for (;;) {
        uint64_t g = generation_.load(std::memory_order_acquire);
        for (int spin = 0; g == seen && spin < kSpinIterations + kYieldIterations; spin++) {
            if (spin < kSpinIterations)
                TACTIC_PAUSE();
            else
                std::this_thread::yield();
            g = generation_.load(std::memory_order_acquire);
        }
        if (g == seen) {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
            g = generation_.load(std::memory_order_acquire);
        }
        seen = g;
        if (stop_.load()) return;
        // Join an open parallel_for, if any.
        if (!(shared_state_.fetch_add(1, std::memory_order_acq_rel) & kClosed)) {
            try {
                (*shared_)();
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex_);
                if (!error_) error_ = std::current_exception();
            }
        }
        shared_state_.fetch_sub(1, std::memory_order_acq_rel);
        // A run() job needs every worker, once each.
        const uint64_t rg = run_gen_.load(std::memory_order_acquire);
        if (rg != run_done) {
            run_done = rg;
            const auto *job = job_;
            try {
                (*job)(index, n_threads_);
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex_);
                if (!error_) error_ = std::current_exception();
            }
            pending_.fetch_sub(1, std::memory_order_acq_rel);
        }
    }
}

}  // namespace tactic
