// GEMM through OpenBLAS (cblas), float and double, row-major. OpenBLAS's own threads follow
// exprgrad's thread count outside our parallel regions; inside them callers use gemm_serial-free
// code paths, so the two pools never oversubscribe the cores.
#pragma once

#include <cstddef>

#include <cblas.h>

#include "exprgrad/tensor/parallel.hpp"

namespace exprgrad::tex::blas {

namespace detail {
// Keeps OpenBLAS at exprgrad's thread count (set lazily, once per change).
inline void sync_threads() {
    static std::size_t applied = 0;
    const std::size_t n = num_threads();
    if (n != applied) {
        openblas_set_num_threads(static_cast<int>(n));
        applied = n;
    }
}
}  // namespace detail

/// C = alpha * op(A) * op(B) + beta * C, row-major; op(X) is X or its transpose. M×K times K×N.
inline void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
                 std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
    detail::sync_threads();
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
                static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
                beta, c, static_cast<int>(ldc));
}
inline void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
                 std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc) {
    detail::sync_threads();
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
                static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
                beta, c, static_cast<int>(ldc));
}

}  // namespace exprgrad::tex::blas
