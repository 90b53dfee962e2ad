// SIMD loops over contiguous arrays that the layers above share: the one elementwise loop (elementwise_row,
// which simd::map_into and the tensor maps' broadcast loop both run), fill, add a value, add a row, sum, and
// the copies between strided lines and contiguous rows (gather_lines, scatter_lines). They exist because GCC 12 at -O2
// (our default, and many users') vectorizes only loops whose trip count it knows: the plain loops ran one
// element per cycle or, for sums, one per add latency.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>

#include <xsimd/xsimd.hpp>

namespace exprgrad::kernels {

/// p[i] = v for i < n (a nonzero fill left to GCC -O2 was most of sum's gradient).
template <class T>
void fill_value(T* p, std::size_t n, T v) {
    using B = xsimd::batch<T>;
    const B b(v);
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) b.store_unaligned(p + i);
    for (; i < n; ++i) p[i] = v;
}
/// p[i] += v for i < n, in SIMD.
template <class T>
void add_value(T* p, std::size_t n, T v) {
    using B = xsimd::batch<T>;
    const B b(v);
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) (B::load_unaligned(p + i) + b).store_unaligned(p + i);
    for (; i < n; ++i) p[i] += v;
}

/// d[i] += r[i] for i < n. d and r must not overlap unless equal.
template <class T>
void add_row(T* d, const T* r, std::size_t n) {
    using B = xsimd::batch<T>;
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) (B::load_unaligned(d + i) + B::load_unaligned(r + i)).store_unaligned(d + i);
    for (; i < n; ++i) d[i] += r[i];
}

/// d[i] = r[i] for i < n (d and r must not overlap). Short runs (the heads' d-wide rows that permute and slice
/// move) in SIMD registers: a call to memcpy per 32-float run cost more than the copy; long ones by std::copy.
template <class T>
void copy_row(T* d, const T* r, std::size_t n) {
    using B = xsimd::batch<T>;
    if (n >= 512) {
        std::copy(r, r + n, d);
        return;
    }
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) B::load_unaligned(r + i).store_unaligned(d + i);
    for (; i < n; ++i) d[i] = r[i];
}

// Σ p[i] in four SIMD accumulators (a single one waits on the add latency every element), then the
// lanes, then the tail: a fixed order for a given n.
template <class T>
T sum_contiguous(const T* p, std::size_t n) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    B acc0(T(0)), acc1(T(0)), acc2(T(0)), acc3(T(0));
    std::size_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        acc0 += B::load_unaligned(p + i);
        acc1 += B::load_unaligned(p + i + W);
        acc2 += B::load_unaligned(p + i + 2 * W);
        acc3 += B::load_unaligned(p + i + 3 * W);
    }
    for (; i + W <= n; i += W) acc0 += B::load_unaligned(p + i);
    T s = xsimd::hadd((acc0 + acc1) + (acc2 + acc3));
    for (; i < n; ++i) s += p[i];
    return s;
}
/// How elementwise_row writes one output: store (out[i] = v), add (out[i] += v), or sum (out[0] += Σ_i v: the
/// adjoint of an argument broadcast along the row).
enum class put_mode : unsigned char { store, add, sum };

namespace detail {

template <class V, class T>
[[gnu::always_inline]] inline V read_operand(const T* p, bool step, std::size_t i) {
    if constexpr (std::is_same_v<V, T>)
        return step ? p[i] : p[0];
    else
        return step ? V::load_unaligned(p + i) : V(p[0]);
}

template <class V, class T>
[[gnu::always_inline]] inline void write_operand(T* p, put_mode how, std::size_t i, const V& v, V& sum) {
    if (how == put_mode::sum) {
        sum += v;
    } else if constexpr (std::is_same_v<V, T>) {
        p[i] = how == put_mode::add ? p[i] + v : v;
    } else if (how == put_mode::add) {
        (V::load_unaligned(p + i) + v).store_unaligned(p + i);
    } else {
        v.store_unaligned(p + i);
    }
}

template <class T, std::size_t NI, std::size_t NO, class Steps, class Modes, class Eval, std::size_t... Ks>
[[gnu::always_inline]] inline void elementwise_row(std::size_t n, const std::array<const T*, NI>& in,
                                                   const Steps& step, const std::array<T*, NO>& out,
                                                   const Modes& how, Eval& eval, std::index_sequence<Ks...>) {
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    std::array<B, NO> lane_sum;
    lane_sum.fill(B(T(0)));
    std::array<T, NO> tail_sum{};
    const std::size_t full = n - n % W;
    for (std::size_t i = 0; i < full; i += W) {
        eval(std::array<B, NI>{read_operand<B>(in[Ks], step[Ks], i)...},
             [&](std::size_t m, const B& v) { write_operand(out[m], how[m], i, v, lane_sum[m]); });
    }
    for (std::size_t i = full; i < n; ++i) {
        eval(std::array<T, NI>{read_operand<T>(in[Ks], step[Ks], i)...},
             [&](std::size_t m, const T& v) { write_operand(out[m], how[m], i, v, tail_sum[m]); });
    }
    for (std::size_t m = 0; m < NO; ++m)
        if (how[m] == put_mode::sum) *out[m] += xsimd::hadd(lane_sum[m]) + tail_sum[m];
}

}  // namespace detail

/// The one elementwise loop over a row of n elements: `eval` on full xsimd batches at i = 0, W, 2W, … and then on
/// single values for the n % W tail elements, in that order. Input k is read at in[k][i] when step[k] is true
/// (an array), else in[k][0] for every i (one value broadcast along the row). eval(const std::array<V, NI>& args,
/// emit) is called for V = xsimd::batch<T> and for V = T and hands output m's value to emit(m, value) (passing
/// values through a callback, not a returned array, keeps them in registers: a returned std::array<batch, NO>
/// was spilled to the stack and made simd::map_into's normal log-density 10-20% slower). Output m is written as
/// how[m] says (put_mode); a sum output gets out[m][0] += (Σ of the lanes in order) + (the tail in order).
/// `step` and `how` are anything indexable by k and m: a static constexpr array lets the compiler drop the
/// per-operand choice from the loop (simd::map_into knows it from the argument types), a run-time array costs one
/// predictable branch per operand and batch (the tensor maps' broadcast loop). Outputs must not overlap inputs
/// except at the same index. Example: in = {x, &c}, step = {true, false}, out = {y}, how = {store} and
/// eval = [](const auto& a, auto&& emit) { emit(0, a[0] * a[1]); } give y[i] = x[i]·c.
template <class T, std::size_t NI, std::size_t NO, class Steps, class Modes, class Eval>
[[gnu::always_inline]] inline void elementwise_row(std::size_t n, const std::array<const T*, NI>& in,
                                                   const Steps& step, const std::array<T*, NO>& out,
                                                   const Modes& how, Eval&& eval) {
    detail::elementwise_row(n, in, step, out, how, eval, std::make_index_sequence<NI>{});
}

/// Strided lines copied in blocks of this many adjacent lines: a line at a time touched a cache line (and, for
/// long strides, a page) per element and ran slower than the scalar loops it replaced; 16 adjacent lines share
/// each cache line they read.
inline constexpr std::size_t line_block = 16;

/// out[c·n + i] = x[i·stride + c] for i < n, c < lines: `lines` adjacent strided lines (columns c of an n-row
/// matrix with row stride `stride`) copied into `lines` contiguous rows of n, for the row kernels
/// (kernels/softmax_rows.hpp). out must not overlap x. Example: x = {1, 2, 3, 4, 5, 6} (3 rows of 2),
/// gather_lines(x, 2, 3, 2, out) gives out = {1, 3, 5, 2, 4, 6}.
template <class T>
void gather_lines(const T* x, std::size_t stride, std::size_t n, std::size_t lines, T* out) {
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t c = 0; c < lines; ++c) out[c * n + i] = x[i * stride + c];
}

/// x[i·stride + c] = in[c·n + i] for i < n, c < lines, or += when add: gather_lines' way back.
template <class T>
void scatter_lines(const T* in, std::size_t n, std::size_t lines, T* x, std::size_t stride, bool add = false) {
    for (std::size_t i = 0; i < n; ++i) {
        T* r = x + i * stride;
        if (add) {
            for (std::size_t c = 0; c < lines; ++c) r[c] += in[c * n + i];
        } else {
            for (std::size_t c = 0; c < lines; ++c) r[c] = in[c * n + i];
        }
    }
}

}  // namespace exprgrad::kernels
