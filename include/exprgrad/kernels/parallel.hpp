// The library's one threading mechanism: a fixed pool of worker threads and a static partition of
// index ranges, so that a result never depends on scheduling (each index range always goes to the
// same chunk, and chunks combine in a fixed order).
//
// Thread count: EXPRGRAD_NUM_THREADS in the environment (a whole number in [1, max_threads]; anything else
// is reported once on stderr and ignored), else std::thread::hardware_concurrency(); set_num_threads(n)
// changes it at run time. Calls from inside a parallel region run serially (no
// nested oversubscription). BLAS is called outside the regions (kernels/blas.hpp keeps OpenBLAS at the
// same thread count), so the two pools take turns rather than share the cores; the one exception is
// run_replicas (kernels/replicas.hpp), whose calls each run BLAS on one thread.
//
// Idle workers (and the caller waiting for the last chunk) poll for up to 200 µs before blocking on a
// condition variable: regions that follow each other closely then start without a wake-up, which took
// about 80 µs in the VMs we measure on. The cost is up to 200 µs of busy CPU per worker after a region.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace exprgrad::kernels {

/// The most threads a parallel region may use: far above any core count this library is tuned for, and
/// low enough that a mistyped count fails with a message instead of exhausting the process's threads.
inline constexpr std::size_t max_threads = 1024;

namespace detail {

class thread_pool {
  public:
    static thread_pool& instance() {
        static thread_pool pool;
        return pool;
    }

    std::size_t threads() const { return threads_; }

    /// True on a thread that is running a chunk of a parallel region (its nested regions run serially).
    static bool inside() { return in_region(); }

    void set_threads(std::size_t n) {
        if (n > max_threads)
            throw std::invalid_argument("set_num_threads: " + std::to_string(n) + " threads is more than the " +
                                        std::to_string(max_threads) + " a parallel region may use");
        std::lock_guard<std::mutex> run_lock(run_mutex_);
        stop_workers();
        threads_ = std::max<std::size_t>(1, n);
        start_workers();
    }

    // Runs task(i) for i in [0, chunks) on the pool and the calling thread; rethrows the first
    // exception of a task after all tasks have finished.
    void run(std::size_t chunks, const std::function<void(std::size_t)>& task) {
        if (chunks == 0) return;
        if (chunks == 1 || threads_ == 1 || in_region()) {
            // Serially, with the same contract as the pool: every chunk runs, then the first error.
            std::exception_ptr first;
            for (std::size_t i = 0; i < chunks; ++i) {
                try {
                    task(i);
                } catch (...) {
                    if (!first) first = std::current_exception();
                }
            }
            if (first) std::rethrow_exception(first);
            return;
        }
        std::lock_guard<std::mutex> run_lock(run_mutex_);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            task_ = &task;
            chunks_ = chunks;
            next_ = 0;
            pending_.store(chunks, std::memory_order_relaxed);
            error_ = nullptr;
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        work();
        spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
        std::unique_lock<std::mutex> lock(mutex_);
        done_.wait(lock, [&] { return pending_.load(std::memory_order_relaxed) == 0; });
        task_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

    ~thread_pool() { stop_workers(); }

  private:
    thread_pool() {
        std::size_t n = std::max(1u, std::thread::hardware_concurrency());
        if (const char* env = std::getenv("EXPRGRAD_NUM_THREADS")) {
            // The whole value must be a count in [1, max_threads]: "4x", "-1" or "1e9" are not taken as 4,
            // a wrapped or a huge count. A constructor cannot report to the caller, so say it on stderr.
            std::size_t v = 0;
            const char* p = env;
            while (*p >= '0' && *p <= '9' && v <= max_threads) v = v * 10 + static_cast<std::size_t>(*p++ - '0');
            if (*p == '\0' && p != env && v >= 1 && v <= max_threads) {
                n = v;
            } else {
                std::fprintf(stderr,
                             "exprgrad: EXPRGRAD_NUM_THREADS='%.40s' is not a whole number in [1, %zu]; using "
                             "%zu threads\n",
                             env, max_threads, n);
            }
        }
        threads_ = n;
        start_workers();
    }

    /// Polls done() for up to spin_time before the caller blocks on a condition variable: waking a
    /// sleeping thread took about 80 µs in the 2-core VMs we measure on, more than a small region's work
    /// (OpenMP runtimes spin for the same reason).
    template <class Done>
    static void spin_until(Done&& done) {
        constexpr auto spin_time = std::chrono::microseconds(200);
        const auto until = std::chrono::steady_clock::now() + spin_time;
        for (unsigned i = 1; !done(); ++i) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
            if (i % 64 == 0 && std::chrono::steady_clock::now() > until) return;
        }
    }

    static bool& in_region() {
        thread_local bool flag = false;
        return flag;
    }

    void start_workers() {
        stopping_ = false;
        for (std::size_t i = 1; i < threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
    }

    void stop_workers() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (auto& w : workers_) w.join();
        workers_.clear();
    }

    void worker_loop() {
        std::size_t seen = 0;
        for (;;) {
            spin_until([&] {
                return generation_.load(std::memory_order_acquire) != seen || stopping_.load(std::memory_order_relaxed);
            });
            {
                std::unique_lock<std::mutex> lock(mutex_);
                if (generation_.load(std::memory_order_relaxed) != seen && task_ == nullptr) {
                    // That region ended before this thread joined it: note it and spin again for the next.
                    seen = generation_.load(std::memory_order_relaxed);
                    continue;
                }
                wake_.wait(lock, [&] {
                    return stopping_.load(std::memory_order_relaxed) ||
                           (generation_.load(std::memory_order_relaxed) != seen && task_ != nullptr);
                });
                if (stopping_.load(std::memory_order_relaxed)) return;
                seen = generation_.load(std::memory_order_relaxed);
            }
            work();
        }
    }

    // Claims chunks until none is left; chunk i always runs task(i), whoever claims it.
    void work() {
        in_region() = true;
        for (;;) {
            std::size_t i;
            const std::function<void(std::size_t)>* task;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                if (task_ == nullptr || next_ >= chunks_) break;
                i = next_++;
                task = task_;
            }
            try {
                (*task)(i);
            } catch (...) {
                std::lock_guard<std::mutex> lock(mutex_);
                if (!error_) error_ = std::current_exception();
            }
            std::lock_guard<std::mutex> lock(mutex_);
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.notify_all();
        }
        in_region() = false;
    }

    std::size_t threads_ = 1;
    std::vector<std::thread> workers_;
    std::mutex run_mutex_;  // one parallel region at a time
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    const std::function<void(std::size_t)>* task_ = nullptr;
    std::size_t chunks_ = 0, next_ = 0;
    // Written under mutex_; atomic so that spin_until can poll them without it.
    std::atomic<std::size_t> pending_{0}, generation_{0};
    std::atomic<bool> stopping_{false};
    std::exception_ptr error_;
};

}  // namespace detail

/// Number of threads parallel regions use (at least 1).
inline std::size_t num_threads() { return detail::thread_pool::instance().threads(); }

/// True while the calling thread runs a chunk of a parallel region: its own parallel_for calls run serially
/// there, and kernels/blas.hpp leaves OpenBLAS's thread count alone (see run_replicas, kernels/replicas.hpp).
inline bool in_parallel_region() { return detail::thread_pool::inside(); }

/// Sets the number of threads of parallel regions (n < 1 counts as 1; n > max_threads throws
/// std::invalid_argument and keeps the current count). Not to be called from inside a parallel region.
inline void set_num_threads(std::size_t n) { detail::thread_pool::instance().set_threads(n); }

/// Runs fn(lo, hi) over a static partition of [begin, end) into at most `max_chunks` contiguous
/// ranges of at least `grain` indices each (max_chunks = 0: the thread count). The partition depends
/// only on the arguments, never on timing, so results that combine per-chunk values in chunk order
/// are identical for every thread count that gives the same partition. Exceptions propagate.
/// Example: parallel_for(0, rows, 16, [&](std::size_t lo, std::size_t hi) { ... });
template <class Fn>
void parallel_for(std::size_t begin, std::size_t end, std::size_t grain, Fn&& fn, std::size_t max_chunks = 0) {
    if (end <= begin) return;
    const std::size_t n = end - begin;
    const std::size_t limit = max_chunks ? max_chunks : num_threads();
    const std::size_t chunks = std::max<std::size_t>(1, std::min(limit, n / std::max<std::size_t>(grain, 1)));
    if (chunks == 1) {
        fn(begin, end);
        return;
    }
    const std::function<void(std::size_t)> task = [&](std::size_t i) {
        const std::size_t lo = begin + n * i / chunks;
        const std::size_t hi = begin + n * (i + 1) / chunks;
        fn(lo, hi);
    };
    detail::thread_pool::instance().run(chunks, task);
}

}  // namespace exprgrad::kernels
