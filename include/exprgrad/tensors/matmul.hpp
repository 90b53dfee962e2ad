// Matrix products through BLAS: [M,K]·[K,N], batched [B,M,K]·[B,K,N], and [B,M,K]·[K,N] (a shared
// right factor, as in a linear layer over a batch of sequences). The VJPs are dA = G·Bᵀ and
// dB = Aᵀ·G; with a uniform adjoint g (the gradient of a sum) they reduce to row and column sums,
// O(MK + KN) instead of a GEMM.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "exprgrad/kernels/blas.hpp"
#include "exprgrad/kernels/contiguous.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::tensors {

namespace detail {
struct mm_shape {
    std::size_t batch = 1, m = 0, k = 0, n = 0;
    bool shared_b = false;  // B is [K, N] for every batch of A
    dims out;
};
inline mm_shape matmul_shape(const dims& a, const dims& b) {
    mm_shape s;
    auto bad = [&] { return shape_error("matmul", "shapes " + a.str() + " and " + b.str() + " do not multiply"); };
    if (a.rank == 2 && b.rank == 2) {
        s.m = a[0], s.k = a[1], s.n = b[1];
        if (b[0] != s.k) throw bad();
        s.out = dims{s.m, s.n};
    } else if (a.rank == 3 && b.rank == 3) {
        s.batch = a[0], s.m = a[1], s.k = a[2], s.n = b[2];
        if (b[0] != s.batch || b[1] != s.k) throw bad();
        s.out = dims{s.batch, s.m, s.n};
    } else if (a.rank == 3 && b.rank == 2) {
        s.batch = a[0], s.m = a[1], s.k = a[2], s.n = b[1];
        if (b[0] != s.k) throw bad();
        s.shared_b = true;
        s.out = dims{s.batch, s.m, s.n};
    } else {
        throw bad();
    }
    return s;
}

template <class T>
T row_sum(const T* p, std::size_t n) {
    return kernels::sum_contiguous(p, n);
}
template <class T>
void put_row(T* d, const T* r, std::size_t n, bool add) {
    if (add) {
        kernels::add_row(d, r, n);
    } else {
        std::copy(r, r + n, d);
    }
}
}  // namespace detail

/// The matrix product A·B (see the top of this header for the shapes accepted).
template <class A, class B>
struct Matmul {
    using children = meta::type_list<A, B>;
    static constexpr const char* name = "matmul";

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        const cview<T>& b = ctx.template in<B>();
        const auto s = detail::matmul_shape(a.shape, b.shape);
        T* c = ctx.template out<Matmul>(s.out);
        if (s.shared_b) {
            // one GEMM over the stacked rows of A
            kernels::blas::gemm(false, false, s.batch * s.m, s.n, s.k, T(1), a.data, s.k, b.data, s.n, T(0), c, s.n);
        } else {
            for (std::size_t i = 0; i < s.batch; ++i) {
                kernels::blas::gemm(false, false, s.m, s.n, s.k, T(1), a.data + i * s.m * s.k, s.k,
                                    b.data + i * s.k * s.n, s.n, T(0), c + i * s.m * s.n, s.n);
            }
        }
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        const cview<T>& b = ctx.template in<B>();
        const auto s = detail::matmul_shape(a.shape, b.shape);
        const adjoint_view<T> g = ctx.template adj<Matmul>();
        if constexpr (Ctx::template needs<A>) {
            bool add = false;
            T* da = ctx.template grad<A>(add);
            if (g.uniform) {
                // dA[m, k] = g * sum_n B[k, n]
                auto& r = scratch<T>(s.k);
                for (std::size_t i = 0; i < s.batch; ++i) {
                    const T* bb = b.data + (s.shared_b ? 0 : i * s.k * s.n);
                    T* d = da + i * s.m * s.k;
                    for (std::size_t kk = 0; kk < s.k; ++kk) r[kk] = g.value * detail::row_sum(bb + kk * s.n, s.n);
                    for (std::size_t mm = 0; mm < s.m; ++mm) detail::put_row(d + mm * s.k, r.data(), s.k, add);
                }
            } else if (s.shared_b) {
                kernels::blas::gemm(false, true, s.batch * s.m, s.k, s.n, T(1), g.data, s.n, b.data, s.n,
                                    add ? T(1) : T(0), da, s.k);
            } else {
                for (std::size_t i = 0; i < s.batch; ++i) {
                    kernels::blas::gemm(false, true, s.m, s.k, s.n, T(1), g.data + i * s.m * s.n, s.n,
                                        b.data + i * s.k * s.n, s.n, add ? T(1) : T(0), da + i * s.m * s.k, s.k);
                }
            }
        }
        if constexpr (Ctx::template needs<B>) {
            bool add = false;
            T* db = ctx.template grad<B>(add);
            if (g.uniform) {
                // dB[k, n] = g * sum_m A[m, k] (summed over the batch when B is shared)
                const std::size_t groups = s.shared_b ? 1 : s.batch;
                const std::size_t rows = s.shared_b ? s.batch * s.m : s.m;
                auto& r = scratch<T>(s.k);
                for (std::size_t i = 0; i < groups; ++i) {
                    const T* aa = a.data + i * rows * s.k;
                    T* d = db + i * s.k * s.n;
                    std::fill(r.begin(), r.end(), T(0));
                    for (std::size_t mm = 0; mm < rows; ++mm) kernels::add_row(r.data(), aa + mm * s.k, s.k);
                    for (std::size_t kk = 0; kk < s.k; ++kk) {
                        T* row = d + kk * s.n;
                        const T v = g.value * r[kk];
                        if (add) {
                            kernels::add_value(row, s.n, v);
                        } else {
                            kernels::fill_value(row, s.n, v);
                        }
                    }
                }
            } else if (s.shared_b) {
                kernels::blas::gemm(true, false, s.k, s.n, s.batch * s.m, T(1), a.data, s.k, g.data, s.n,
                                    add ? T(1) : T(0), db, s.n);
            } else {
                for (std::size_t i = 0; i < s.batch; ++i) {
                    kernels::blas::gemm(true, false, s.k, s.n, s.m, T(1), a.data + i * s.m * s.k, s.k,
                                        g.data + i * s.m * s.n, s.n, add ? T(1) : T(0), db + i * s.k * s.n, s.n);
                }
            }
        }
    }
};

/// The matrix product of two tensor expressions: `matmul(X, W)`.
template <TensorExpr A, TensorExpr B>
constexpr Matmul<A, B> matmul(A, B) {
    return {};
}
/// Rejected: a raw number as a factor; write it as a constant (2_c * X) or pass it as an argument.
template <class A, class B>
requires detail::raw_among_tensors<A, B>
constexpr auto matmul(A, B) {
    static_assert(detail::reject_raw<A, B>, EXPRGRAD_TENSOR_RAW_NUMBER_MESSAGE);
    return Input<0>{};
}

}  // namespace exprgrad::tensors
