// A small persistent thread pool. Decode launches a few hundred parallel regions per
// token, so workers spin briefly on an atomic generation counter before sleeping:
// waking through a condition variable alone would cost more than the work.
//
// parallel_for never waits for a worker that has not started: when the caller has
// finished every chunk itself, the job is closed and late workers skip it. On a
// loaded machine (more runnable threads than cores) a descheduled worker would
// otherwise stall every region by a scheduler time slice.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tactic {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool &operator=(const ThreadPool &) = delete;

    int size() const { return n_threads_; }

    // fn(thread_index, n_threads) on every thread; the caller is thread 0. Returns when
    // all are done. The first exception thrown by any thread is rethrown here. Prefer
    // parallel_for: this waits for every worker to be scheduled.
    void run(const std::function<void(int, int)> &fn);

    // f(begin, end) over [0, n) in chunks of `grain`, handed out dynamically to the
    // caller and whichever workers join in time.
    template <class F>
    void parallel_for(int64_t n, int64_t grain, F &&f) {
        if (n <= 0) return;
        grain = std::max<int64_t>(1, grain);
        if (n_threads_ == 1 || n <= grain) {
            f(int64_t(0), n);
            return;
        }
        std::atomic<int64_t> next{0};
        const std::function<void()> body = [&] {
            for (;;) {
                const int64_t b = next.fetch_add(grain, std::memory_order_relaxed);
                if (b >= n) break;
                f(b, std::min(n, b + grain));
            }
        };
        run_shared(body);
    }

    // Number of hardware threads (at least 1).
    static int hardware_threads();

private:
    static constexpr uint32_t kClosed = 1u << 31;
    void run_shared(const std::function<void()> &body);
    void publish();
    void wait_pending();
    void worker(int index);

    int n_threads_;
    std::vector<std::thread> threads_;
    const std::function<void(int, int)> *job_ = nullptr;   // run(): every thread
    const std::function<void()> *shared_ = nullptr;         // parallel_for: who joins
    std::atomic<uint32_t> shared_state_{kClosed};           // kClosed bit | workers inside
    std::atomic<uint64_t> generation_{0};
    std::atomic<uint64_t> run_gen_{0};                      // count of run() jobs published
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::condition_variable wake_;
    std::exception_ptr error_;
    std::mutex error_mutex_;
};

}  // namespace tactic
