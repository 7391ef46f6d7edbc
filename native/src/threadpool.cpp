#include "threadpool.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TACTIC_PAUSE() _mm_pause()
#else
#define TACTIC_PAUSE() std::this_thread::yield()
#endif

namespace tactic {

namespace {
constexpr int kSpinIterations = 1 << 16;  // about 0.5-2 ms before a worker sleeps
}

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

void ThreadPool::run(const std::function<void(int, int)> &fn) {
    if (n_threads_ == 1) {
        fn(0, 1);
        return;
    }
    error_ = nullptr;
    job_ = &fn;
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    try {
        fn(0, n_threads_);
    } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
    }
    while (pending_.load(std::memory_order_acquire) != 0) TACTIC_PAUSE();
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
}

void ThreadPool::worker(int index) {
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = generation_.load(std::memory_order_acquire);
        for (int spin = 0; g == seen && spin < kSpinIterations; spin++) {
            TACTIC_PAUSE();
            g = generation_.load(std::memory_order_acquire);
        }
        if (g == seen) {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
            g = generation_.load(std::memory_order_acquire);
        }
        seen = g;
        if (stop_.load()) return;
        try {
            (*job_)(index, n_threads_);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex_);
            if (!error_) error_ = std::current_exception();
        }
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

}  // namespace tactic
