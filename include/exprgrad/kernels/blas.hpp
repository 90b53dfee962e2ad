// GEMM through OpenBLAS (cblas), float and double, row-major. OpenBLAS's thread count follows exprgrad's
// (set at the next call after it changes). The kernels that run inside exprgrad's parallel regions (the
// attention tiles) compute their products themselves and never call BLAS, so OpenBLAS's threads and the
// pool's take turns; the pool's workers spin up to 200 µs after a region (kernels/parallel.hpp), which can
// overlap the GEMM that follows. The exception is data parallelism (kernels/replicas.hpp): each thread of
// the region runs its own model replica, BLAS included, with OpenBLAS at one thread. Where OpenBLAS runs
// kernels narrower than the CPU's vectors, and for float on an AVX-512 CPU, GEMMs go to exprgrad's packed kernel
// (kernels/blas_core.hpp).
#pragma once

#include <atomic>
#include <cstddef>

#include <cblas.h>

#include "exprgrad/kernels/blas_core.hpp"
#include "exprgrad/kernels/gemm_packed.hpp"
#include "exprgrad/kernels/parallel.hpp"

namespace exprgrad::kernels {

namespace detail {
// OpenBLAS's thread count as last set by exprgrad (0: not yet). Atomic: threads of the caller's own may call
// blas::gemm while another runs run_replicas (OpenBLAS's count is process-wide; the last setter wins).
inline std::atomic<std::size_t>& blas_threads_applied() {
    static std::atomic<std::size_t> applied{0};
    return applied;
}

// Sets OpenBLAS's thread count unless exprgrad last set it to n.
inline void set_blas_threads(std::size_t n) {
    if (blas_threads_applied().exchange(n, std::memory_order_relaxed) != n) openblas_set_num_threads(static_cast<int>(n));
}

// Keeps OpenBLAS at exprgrad's thread count (set lazily, once per change). Inside a parallel region the
// count is left as it is: only run_replicas calls BLAS there, and it set one thread before the region.
inline void sync_threads() {
    if (!in_parallel_region()) set_blas_threads(num_threads());
}
}  // namespace detail

namespace detail {
inline void gemv(bool trans, std::size_t rows, std::size_t cols, float alpha, const float* a, std::size_t lda,
                 const float* x, std::size_t incx, float beta, float* y, std::size_t incy) {
    cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, static_cast<int>(rows), static_cast<int>(cols), alpha,
                a, static_cast<int>(lda), x, static_cast<int>(incx), beta, y, static_cast<int>(incy));
}
inline void gemv(bool trans, std::size_t rows, std::size_t cols, double alpha, const double* a, std::size_t lda,
                 const double* x, std::size_t incx, double beta, double* y, std::size_t incy) {
    cblas_dgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, static_cast<int>(rows), static_cast<int>(cols), alpha,
                a, static_cast<int>(lda), x, static_cast<int>(incx), beta, y, static_cast<int>(incy));
}
inline void gemm_call(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
                      std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
                static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
                beta, c, static_cast<int>(ldc));
}
inline void gemm_call(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
                      std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc) {
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
                static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
                beta, c, static_cast<int>(ldc));
}
}  // namespace detail

namespace blas {

/// C = alpha * op(A) * op(B) + beta * C, row-major; op(X) is X or its transpose; M×K times K×N.
/// Matrix-vector shapes (N = 1 or M = 1) go to GEMV, which does not pack its operands: GEMM's
/// packing dominates a [1000, 150]·[150, 1] product. Other shapes with alpha = 1 and beta = 0 or 1 run
/// exprgrad's packed kernel (kernels/gemm_packed.hpp) when kernels::gemm_uses_own_kernel<T>(), OpenBLAS otherwise.
template <class T>
void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a, std::size_t lda,
          const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
    detail::sync_threads();
    if (m == 0 || n == 0) return;
    if (n == 1) {
        // c[m] = op(A) · b, with b the column op(B)[:, 0]
        detail::gemv(ta, ta ? k : m, ta ? m : k, alpha, a, lda, b, tb ? 1 : ldb, beta, c, ldc);
    } else if (m == 1) {
        // c[n] = op(B)ᵀ · a, with a the row op(A)[0, :]
        detail::gemv(!tb, tb ? n : k, tb ? k : n, alpha, b, ldb, a, ta ? lda : 1, beta, c, 1);
    } else if (alpha == T(1) && (beta == T(0) || beta == T(1)) && gemm_uses_own_kernel<T>()) {
        packed::gemm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, beta == T(1));
    } else {
        detail::gemm_call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}

}  // namespace blas
}  // namespace exprgrad::kernels
