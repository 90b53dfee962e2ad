// Matrix products through BLAS: A [..., M, K] · B [..., K, N] -> [..., M, N], the leading (batch)
// axes broadcast as in NumPy's matmul: [M,K]·[K,N], [B,M,K]·[B,K,N], [B,H,T,D]·[B,H,D,T],
// [B,M,K]·[K,N] (a shared right factor, as in a linear layer over a batch of sequences: one GEMM
// over the stacked rows), [H,1,M,K]·[B,K,N], ... One GEMM per batch slice otherwise. The VJPs are
// dA = G·Bᵀ and dB = Aᵀ·G per slice, summed over the batch axes along which an operand is
// broadcast; with a uniform adjoint g (the gradient of a sum) they reduce to row and column sums,
// O(MK + KN) per slice instead of a GEMM.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "exprgrad/kernels/blas.hpp"
#include "exprgrad/kernels/contiguous.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/shape.hpp"
#include "exprgrad/tensors/strided_walk.hpp"

namespace exprgrad::tensors {

namespace detail {
struct mm_shape {
    std::size_t m = 0, k = 0, n = 0;
    bool shared_b = false;                          // B is [K, N] for every batch of A: one GEMM over A's stacked rows
    bool a_broadcast = false, b_broadcast = false;  // the operand has fewer batch slices than the output
    dims batch;                                     // the broadcast batch axes
    std::array<strides, 2> st{};                    // A's and B's slice strides (in matrices) along them
    dims out;
};
inline mm_shape matmul_shape(const dims& a, const dims& b) {
    mm_shape s;
    auto bad = [&] { return shape_error("matmul", "shapes " + a.str() + " and " + b.str() + " do not multiply"); };
    if (a.rank < 2 || b.rank < 2 || b.at(-2) != a.at(-1)) throw bad();
    s.m = a.at(-2), s.k = a.at(-1), s.n = b.at(-1);
    dims ab, bb;
    for (int i = 0; i + 2 < a.rank; ++i) ab.push(a[i]);
    for (int i = 0; i + 2 < b.rank; ++i) bb.push(b[i]);
    try {
        s.batch = broadcast("matmul", ab, bb);
    } catch (const std::invalid_argument&) {
        throw bad();
    }
    s.st = {broadcast_strides(ab, s.batch), broadcast_strides(bb, s.batch)};
    s.a_broadcast = ab.size() != s.batch.size();
    s.b_broadcast = bb.size() != s.batch.size();
    s.shared_b = b.rank == 2 && a.rank > 2;
    s.out = s.batch;
    s.out.push(s.m);
    s.out.push(s.n);
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
            kernels::blas::gemm(false, false, s.batch.size() * s.m, s.n, s.k, T(1), a.data, s.k, b.data, s.n, T(0), c,
                                s.n);
            return;
        }
        detail::strided_walk(s.batch, s.st, [&](std::size_t i, const std::array<std::size_t, 2>& o) {
            kernels::blas::gemm(false, false, s.m, s.n, s.k, T(1), a.data + o[0] * s.m * s.k, s.k,
                                b.data + o[1] * s.k * s.n, s.n, T(0), c + i * s.m * s.n, s.n);
        });
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const cview<T>& a = ctx.template in<A>();
        const cview<T>& b = ctx.template in<B>();
        const auto s = detail::matmul_shape(a.shape, b.shape);
        const adjoint_view<T> g = ctx.template adj<Matmul>();
        const std::size_t slices = s.batch.size();
        if constexpr (Ctx::template needs<A>) {
            bool add = false;
            T* da = ctx.template grad<A>(add);
            // a broadcast A sums several slices' contributions: start from zeros, then accumulate
            if (s.a_broadcast && !add) std::fill(da, da + a.size(), T(0));
            const bool acc = add || s.a_broadcast;
            if (g.uniform) {
                // dA[m, k] = g * sum_n B[k, n]
                auto& r = scratch<T>(s.k);
                detail::strided_walk(s.batch, s.st, [&](std::size_t, const std::array<std::size_t, 2>& o) {
                    const T* bb = b.data + o[1] * s.k * s.n;
                    T* d = da + o[0] * s.m * s.k;
                    for (std::size_t kk = 0; kk < s.k; ++kk) r[kk] = g.value * detail::row_sum(bb + kk * s.n, s.n);
                    for (std::size_t mm = 0; mm < s.m; ++mm) detail::put_row(d + mm * s.k, r.data(), s.k, acc);
                });
            } else if (s.shared_b) {
                kernels::blas::gemm(false, true, slices * s.m, s.k, s.n, T(1), g.data, s.n, b.data, s.n,
                                    acc ? T(1) : T(0), da, s.k);
            } else {
                detail::strided_walk(s.batch, s.st, [&](std::size_t i, const std::array<std::size_t, 2>& o) {
                    kernels::blas::gemm(false, true, s.m, s.k, s.n, T(1), g.data + i * s.m * s.n, s.n,
                                        b.data + o[1] * s.k * s.n, s.n, acc ? T(1) : T(0), da + o[0] * s.m * s.k, s.k);
                });
            }
        }
        if constexpr (Ctx::template needs<B>) {
            bool add = false;
            T* db = ctx.template grad<B>(add);
            if (s.b_broadcast && !add) std::fill(db, db + b.size(), T(0));
            const bool acc = add || s.b_broadcast;
            if (g.uniform) {
                // dB[k, n] = g * sum_m A[m, k]; a shared B sums every slice's rows before one write
                auto& r = scratch<T>(s.k);
                auto put = [&](const T* aa, std::size_t rows, T* d) {
                    std::fill(r.begin(), r.begin() + static_cast<std::ptrdiff_t>(s.k), T(0));
                    for (std::size_t mm = 0; mm < rows; ++mm) kernels::add_row(r.data(), aa + mm * s.k, s.k);
                    for (std::size_t kk = 0; kk < s.k; ++kk) {
                        T* row = d + kk * s.n;
                        const T v = g.value * r[kk];
                        if (acc) {
                            kernels::add_value(row, s.n, v);
                        } else {
                            kernels::fill_value(row, s.n, v);
                        }
                    }
                };
                if (s.shared_b) {
                    put(a.data, slices * s.m, db);
                } else {
                    detail::strided_walk(s.batch, s.st, [&](std::size_t, const std::array<std::size_t, 2>& o) {
                        put(a.data + o[0] * s.m * s.k, s.m, db + o[1] * s.k * s.n);
                    });
                }
            } else if (s.shared_b) {
                kernels::blas::gemm(true, false, s.k, s.n, slices * s.m, T(1), a.data, s.k, g.data, s.n,
                                    add ? T(1) : T(0), db, s.n);
            } else {
                detail::strided_walk(s.batch, s.st, [&](std::size_t i, const std::array<std::size_t, 2>& o) {
                    kernels::blas::gemm(true, false, s.k, s.n, s.m, T(1), a.data + o[0] * s.m * s.k, s.k,
                                        g.data + i * s.m * s.n, s.n, acc ? T(1) : T(0), db + o[1] * s.k * s.n, s.n);
                });
            }
        }
    }
};

/// The matrix product of two tensor expressions: out[..., i, j] = Σ_k A[..., i, k] · B[..., k, j].
/// Both operands have rank ≥ 2; A's last axis must equal B's second to last, and the leading (batch)
/// axes broadcast (NumPy rules, right-aligned), so out has shape broadcast(A[:-2], B[:-2]) + [M, N];
/// otherwise std::invalid_argument "exprgrad::matmul: shapes (..) and (..) do not multiply".
/// NaN propagates as BLAS propagates it (a NaN entry reaches its row and column of the product).
/// Examples: `matmul(X, W)` for X [B, T, D], W [D, E]; attention scores
/// `matmul(Q, transpose(K))` for Q, K [B, H, T, D] give [B, H, T, T].
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
