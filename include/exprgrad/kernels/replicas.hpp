// Data parallelism on the pool: independent replicas of a computation, one per thread, each with serial
// kernels and one-thread BLAS. For work made of many small operations (a small model's training step) this
// scales better than splitting every operation over the threads: one region per step instead of one per
// operation, and each GEMM stays whole on one core.
#pragma once

#include <cstddef>
#include <functional>

#include "exprgrad/kernels/blas.hpp"
#include "exprgrad/kernels/parallel.hpp"

namespace exprgrad::kernels {

/// Runs fn(r) for every r in [0, n) concurrently on the pool (up to num_threads() at once; more replicas than
/// threads take turns, each r still exactly once). Inside fn, parallel_for runs serially and blas::gemm uses one
/// OpenBLAS thread, so each call keeps to one core; the calls must share no mutable state (each its own buffers,
/// or disjoint parts of one). n = 1 runs fn(0) on the calling thread as ordinary code, with every thread of the
/// pool for its regions. The first exception of a call is rethrown after every call has ended. Called
/// from inside a parallel region, the calls run one after another on the calling thread. OpenBLAS returns to
/// num_threads() threads at exprgrad's next GEMM outside a region; code that calls cblas itself in between
/// finds it at one thread (OpenBLAS's count is process-wide, so a GEMM through exprgrad on another thread of
/// the caller's while run_replicas runs also changes it for the replicas: their results stay right, only
/// their speed changes).
///
/// Example (two half batches, gradients summed afterwards):
///
///     kernels::run_replicas(2, [&](std::size_t r) { loss[r] = model[r].train(half[r]); });
template <class Fn>
void run_replicas(std::size_t n, Fn&& fn) {
    if (n == 0) return;
    if (!in_parallel_region()) {
        openblas_set_num_threads(1);  // unconditionally: another thread may have changed it since
        detail::blas_threads_applied().store(1, std::memory_order_relaxed);
    }
    const std::function<void(std::size_t)> task = [&](std::size_t r) { fn(r); };
    detail::thread_pool::instance().run(n, task);
}

}  // namespace exprgrad::kernels
