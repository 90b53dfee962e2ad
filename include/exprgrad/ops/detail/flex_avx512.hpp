// flex attention's kernels, the 512-bit rows: what flex_modification.hpp's row passes do on the rows of a tile
// that needs no mask evaluation, for float where ::exprgrad::kernels::avx512_enabled(). The default build targets
// x86-64-v3, where xsimd::batch<float> has 8 lanes and xsimd's 16-lane batches do not exist, while the products
// around these rows are 512-bit: the row passes were the 256-bit part of every tile. The forward goes further and
// keeps each 4 rows' scores in registers from the product S = Q·Kᵀ through the modification to the exponentials
// (forward_tile, as kernels::tiles::forward_tile16 does for ops::attention). Two kinds of modification run here:
// a relative bias (ALiBi: the scores plus a table entry per key) and a score modification that reads nothing but
// the score, built from + − · ÷, negation, tanh and small integer powers (attn::softcap, and the plain score under
// a mask). Every other modification, and every tile whose mask is evaluated, keeps the xsimd row passes.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "exprgrad/kernels/avx512_dispatch.hpp"
#include "exprgrad/kernels/rows_avx512.hpp"
#include "exprgrad/kernels/softmax_block_avx512.hpp"  // tiles::panel64
#include "exprgrad/ops/attn_sequence.hpp"             // attn::first_sequence
#include "exprgrad/sym/evaluate.hpp"

namespace exprgrad::ops::detail::flex::avx512 {

/// Whether E has a 16-lane evaluation here: it reads only the score (var 0) through the ops below.
template <class E>
struct pointwise : std::false_type {};
template <>
struct pointwise<sym::Var<0>> : std::true_type {};
template <std::intmax_t N, std::intmax_t D>
struct pointwise<sym::Const<N, D>> : std::true_type {};
template <double V>
struct pointwise<sym::FConst<V>> : std::true_type {};
template <class A, class B>
struct pointwise<sym::Node<sym::op::Add, A, B>> : std::bool_constant<pointwise<A>::value && pointwise<B>::value> {};
template <class A, class B>
struct pointwise<sym::Node<sym::op::Sub, A, B>> : std::bool_constant<pointwise<A>::value && pointwise<B>::value> {};
template <class A, class B>
struct pointwise<sym::Node<sym::op::Mul, A, B>> : std::bool_constant<pointwise<A>::value && pointwise<B>::value> {};
template <class A, class B>
struct pointwise<sym::Node<sym::op::Div, A, B>> : std::bool_constant<pointwise<A>::value && pointwise<B>::value> {};
template <class A>
struct pointwise<sym::Node<sym::op::Neg, A>> : pointwise<A> {};
template <class A>
struct pointwise<sym::Node<sym::op::Tanh, A>> : pointwise<A> {};
// Positive integer powers up to 8 (sym's PowC multiplies those; others go through libm's pow).
template <std::intmax_t N, class A>
struct pointwise<sym::Node<sym::op::PowC<N, 1>, A>> : std::bool_constant<(N >= 1 && N <= 8) && pointwise<A>::value> {};

template <class... Es>
inline constexpr bool pointwise_v = (pointwise<Es>::value && ...);

/// Whether the mask E has a 16-lane evaluation here: sums, differences, products and negations of constants,
/// attn::batch, head, q_idx, k_idx, q_len, k_len and q_doc (attn::causal, causal_top_left). Other masks (with
/// less(), min(), the key documents, ...) keep the xsimd row passes on the tiles where they are evaluated.
template <class E>
struct mask16 : std::false_type {};
template <int I>
struct mask16<sym::Var<I>>
    : std::bool_constant<(I >= 1 && I <= 4) || (I >= attn::first_sequence && I <= attn::first_sequence + 2)> {};
template <std::intmax_t N, std::intmax_t D>
struct mask16<sym::Const<N, D>> : std::true_type {};
template <double V>
struct mask16<sym::FConst<V>> : std::true_type {};
template <class A, class B>
struct mask16<sym::Node<sym::op::Add, A, B>> : std::bool_constant<mask16<A>::value && mask16<B>::value> {};
template <class A, class B>
struct mask16<sym::Node<sym::op::Sub, A, B>> : std::bool_constant<mask16<A>::value && mask16<B>::value> {};
template <class A, class B>
struct mask16<sym::Node<sym::op::Mul, A, B>> : std::bool_constant<mask16<A>::value && mask16<B>::value> {};
template <class A>
struct mask16<sym::Node<sym::op::Neg, A>> : mask16<A> {};
template <class E>
inline constexpr bool mask16_v = mask16<E>::value;

/// What a row's mask reads, per row (b, h, i and the sequence values; in float as the xsimd passes have them)
/// and per group of 16 keys (k_idx).
struct mask_row {
    float b = 0, h = 0, i = 0, q_len = 0, k_len = 0, q_doc = 0;
};

#if EXPRGRAD_HAS_AVX512_KERNELS

/// The arguments of a 16-lane evaluation: the score and what a mask may read.
struct args16 {
    __m512 score, b, h, i, k, q_len, k_len, q_doc;
};

template <class E, class L>
struct node16;

/// The node list L (sym::node_list_t, children first) evaluated on 16 scores, each distinct node once, as
/// sym::compiled_nodes does for xsimd batches: the same operations in the same order, except tanh (rows::tanh16,
/// within 2 ulp, instead of xsimd's) and the lanes (16 instead of 8).
template <class L>
struct nodes16;
template <class... Ns>
struct nodes16<sym::meta::type_list<Ns...>> {
    using list = sym::meta::type_list<Ns...>;
    // A plain array: std::array<__m512, n> drops __m512's alignment attribute (GCC warns).
    struct values {
        __m512 v[sizeof...(Ns)];
    };
    EXPRGRAD_AVX512_TARGET static void run(const args16& a, values& v) { run(a, v, std::index_sequence_for<Ns...>{}); }
    // A function, not a lambda: lambdas do not inherit the target attribute.
    template <std::size_t... Is>
    EXPRGRAD_AVX512_TARGET static void run(const args16& a, values& v, std::index_sequence<Is...>) {
        ((v.v[Is] = node16<Ns, list>::run(v, a)), ...);
    }
    template <class E>
    EXPRGRAD_AVX512_TARGET static __m512 get(const values& v) {
        return v.v[sym::meta::index_of_v<E, list>];
    }
};

template <int I, class L>
struct node16<sym::Var<I>, L> {
    template <class V>
    EXPRGRAD_AVX512_TARGET static __m512 run(const V&, const args16& a) {
        constexpr int s = attn::first_sequence;
        if constexpr (I == 0) return a.score;
        else if constexpr (I == 1) return a.b;
        else if constexpr (I == 2) return a.h;
        else if constexpr (I == 3) return a.i;
        else if constexpr (I == 4) return a.k;
        else if constexpr (I == s) return a.q_len;
        else if constexpr (I == s + 1) return a.k_len;
        else return a.q_doc;
    }
};
template <std::intmax_t N, std::intmax_t D, class L>
struct node16<sym::Const<N, D>, L> {
    template <class V>
    EXPRGRAD_AVX512_TARGET static __m512 run(const V&, const args16&) {
        return _mm512_set1_ps(sym::num::rational<float>(N, D));
    }
};
template <double C, class L>
struct node16<sym::FConst<C>, L> {
    template <class V>
    EXPRGRAD_AVX512_TARGET static __m512 run(const V&, const args16&) {
        return _mm512_set1_ps(sym::num::constant<float>(C));
    }
};
template <class Op, class... Cs, class L>
struct node16<sym::Node<Op, Cs...>, L> {
    template <class V>
    EXPRGRAD_AVX512_TARGET static __m512 run(const V& v, const args16&) {
        return apply(v.v[sym::meta::index_of_v<Cs, L>]...);
    }
    EXPRGRAD_AVX512_TARGET static __m512 apply(__m512 a, __m512 b) {
        if constexpr (std::is_same_v<Op, sym::op::Add>)
            return _mm512_add_ps(a, b);
        else if constexpr (std::is_same_v<Op, sym::op::Sub>)
            return _mm512_sub_ps(a, b);
        else if constexpr (std::is_same_v<Op, sym::op::Mul>)
            return _mm512_mul_ps(a, b);
        else
            return _mm512_div_ps(a, b);
    }
    EXPRGRAD_AVX512_TARGET static __m512 apply(__m512 a) {
        if constexpr (std::is_same_v<Op, sym::op::Neg>) {
            const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
            return _mm512_castsi512_ps(_mm512_maskz_xor_epi32(kernels::rows::all16, _mm512_castps_si512(a), sign));
        } else if constexpr (std::is_same_v<Op, sym::op::Tanh>) {
            return kernels::rows::tanh16(a);
        } else {
            return pow(a, std::integral_constant<std::intmax_t, Op::num>{});
        }
    }
    // a^N by squaring in sym::op::detail::ipow's order.
    template <std::intmax_t N>
    EXPRGRAD_AVX512_TARGET static __m512 pow(__m512 a, std::integral_constant<std::intmax_t, N>) {
        if constexpr (N == 1) {
            return a;
        } else if constexpr (N % 2 == 0) {
            const __m512 h = pow(a, std::integral_constant<std::intmax_t, N / 2>{});
            return _mm512_mul_ps(h, h);
        } else {
            return _mm512_mul_ps(pow(a, std::integral_constant<std::intmax_t, N - 1>{}), a);
        }
    }
};

/// Lanes 16g … 16g + 15 of a row whose first `valid` entries are visible.
EXPRGRAD_AVX512_TARGET inline __mmask16 lanes16(std::size_t c, std::size_t valid) {
    return c < valid ? kernels::rows::tail_mask16(c, valid) : __mmask16(0);
}

/// The maximum of the 16 lanes of m, NaN when `nan` (maxps drops a NaN operand, so NaN is tracked apart).
EXPRGRAD_AVX512_TARGET inline float hmax16(__m512 m, __mmask16 nan) {
    if (nan) return std::numeric_limits<float>::quiet_NaN();
    const __m256 h = _mm256_max_ps(kernels::rows::low8(m), kernels::rows::high8(m));
    __m128 q = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    q = _mm_max_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/// One row's step of the online softmax in a 64-key block, for flex_forward.hpp: the new running maximum, the
/// sum of the row's terms and the span [lo, hi) of keys whose modified score is not −inf (lo = hi: none).
struct softmax_step {
    float m_new, sum;
    std::size_t lo, hi;
};

/// The forward row pass (modification::forward_row on a row that needs no mask evaluation) and the exponentials
/// after it in one pass over the row's 64 raw scores x (in registers): z_c = Mod(x_c) or, with a bias table
/// (relative), x_c + bias[c] for the `valid` first keys, −inf for the others; m_new = max(m_old, max_c z_c) (NaN
/// when a z_c is NaN); and when some z_c is not −inf and m_new is not −inf, p[c] = e^(z_c − m_new) for every
/// c < 64 (0 where z_c = −inf) and sum = Σ_c p[c]. Otherwise p is left as it was and sum = 0.
template <class Mod, bool Relative, class Mask>
[[gnu::always_inline]] EXPRGRAD_AVX512_TARGET inline softmax_step row_softmax(const __m512 (&x)[4], const float* bias,
                                                                              float* p, std::size_t valid, float m_old,
                                                                              const mask_row& mr, std::size_t j0) {
    using N = nodes16<sym::node_list_t<Mod>>;
    using NM = nodes16<sym::node_list_t<Mask>>;
    constexpr bool masked = !std::is_same_v<Mask, sym::Const<1, 1>>;
    const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity()), zero = _mm512_setzero_ps();
    __m512 z[4];
    __m512 mx = ninf, mn = _mm512_set1_ps(std::numeric_limits<float>::infinity());
    __mmask16 nan = 0;
    std::uint64_t vis = 0;  // bit c: key j0 + c visible
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
        const std::size_t c = 16 * static_cast<std::size_t>(g);
        __mmask16 k = lanes16(c, valid);
        if constexpr (masked) {
            // The mask's arguments as the xsimd pass has them (positions as floats; k_idx = lane + j0 + c).
            const __m512 iota = _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
            const args16 a{zero,
                           _mm512_set1_ps(mr.b),
                           _mm512_set1_ps(mr.h),
                           _mm512_set1_ps(mr.i),
                           _mm512_add_ps(iota, _mm512_set1_ps(static_cast<float>(j0 + c))),
                           _mm512_set1_ps(mr.q_len),
                           _mm512_set1_ps(mr.k_len),
                           _mm512_set1_ps(mr.q_doc)};
            typename NM::values mv;
            NM::run(a, mv);
            // Visible where mask > 0 (NaN: hidden, the ordered compare).
            k &= _mm512_cmp_ps_mask(NM::template get<Mask>(mv), zero, _CMP_GT_OQ);
        }
        vis |= static_cast<std::uint64_t>(k) << c;
        __m512 v;
        if constexpr (Relative) {
            // A masked load: the lanes past `valid` read nothing (the bias table ends with the visible keys).
            v = _mm512_add_ps(x[g], _mm512_maskz_loadu_ps(k, bias + c));
        } else {
            const args16 a{x[g], zero, zero, zero, zero, zero, zero, zero};
            typename N::values vals;
            N::run(a, vals);
            v = N::template get<Mod>(vals);
        }
        z[g] = _mm512_mask_mov_ps(ninf, k, v);
        nan |= _mm512_cmp_ps_mask(z[g], z[g], _CMP_UNORD_Q);
        mx = _mm512_maskz_max_ps(kernels::rows::all16, mx, z[g]);
        mn = _mm512_mask_min_ps(mn, k, v, mn);  // the smallest visible z (minps passes on mn if v is NaN)
    }
    const float bm = hmax16(mx, nan);
    const float m_new = bm != bm ? bm : (m_old < bm ? bm : m_old);  // std::max(m_old, bm), keeping a NaN bm
    if (vis == 0) return {m_new, 0.0f, 0, 0};
    // The keys whose z is not −inf: the visible ones unless some visible z is −inf (then bit by bit).
    std::size_t lo = static_cast<std::size_t>(__builtin_ctzll(vis));
    std::size_t hi = 64 - static_cast<std::size_t>(__builtin_clzll(vis));
    if (_mm512_cmp_ps_mask(mn, ninf, _CMP_EQ_OQ)) {
        std::uint64_t seen = 0;  // bit c: z_c is not −inf
#pragma GCC unroll 4
        for (int g = 0; g < 4; ++g)
            seen |= static_cast<std::uint64_t>(_mm512_cmp_ps_mask(z[g], ninf, _CMP_NEQ_UQ)) << (16 * g);
        if (seen == 0) return {m_new, 0.0f, 0, 0};
        lo = static_cast<std::size_t>(__builtin_ctzll(seen));
        hi = 64 - static_cast<std::size_t>(__builtin_clzll(seen));
    }
    if (m_new == -std::numeric_limits<float>::infinity()) return {m_new, 0.0f, lo, hi};
    const __m512 sh = _mm512_set1_ps(m_new);
    __m512 sum = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
        const __m512 e = kernels::rows::exp16(_mm512_sub_ps(z[g], sh));
        _mm512_storeu_ps(p + 16 * g, e);
        sum = _mm512_add_ps(sum, e);
    }
    return {m_new, kernels::rows::sum16(sum), lo, hi};
}

/// Rows [0, R) of a query block against one 64-key block, the scores kept in registers between the product and
/// the row steps (as kernels::tiles::forward_tile16 for the identity): S = Q·Kt (Q rows with leading dimension
/// ldq, d features; Kt the block's d × 64 panel), stored raw at X (leading dimension 64) unless X is null, then
/// step[r] = row_softmax(S_r, bias[r], P + 64r, valid[r], m[r]) for each row with valid[r] > 0 (step[r] = {m[r],
/// 0, 0, 0} for the others), keys hidden where Mask ≤ 0 (Mask = sym::Const<1, 1>: no mask; mr[r]: what it reads
/// of row r; j0: the block's first key). bias: R pointers to the rows' tables at the block's first key (relative).
template <int R, class Mod, bool Relative, class Mask>
EXPRGRAD_AVX512_TARGET inline void forward_tile(std::size_t d, const float* Q, std::size_t ldq, const float* Kt,
                                                const std::size_t* valid, const float* const* bias, const float* m,
                                                const mask_row* mr, std::size_t j0, float* X, float* P,
                                                softmax_step* step) {
    __m512 s[R][4];
    kernels::tiles::panel64<R>(d, Q, ldq, Kt, s);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
        if (X)
#pragma GCC unroll 4
            for (int g = 0; g < 4; ++g) _mm512_storeu_ps(X + r * 64 + 16 * g, s[r][g]);
        step[r] = valid[r] ? row_softmax<Mod, Relative, Mask>(s[r], Relative ? bias[r] : nullptr, P + r * 64, valid[r],
                                                              m[r], mr[r], j0)
                           : softmax_step{m[r], 0.0f, 0, 0};
    }
}

/// The fused backward row pass (modification::backward_row on a row that needs no mask evaluation, no parameter
/// sums per score): for the `valid` first keys p = e^(z − lse), dS' = p·(dp − D), ds = dS'·∂z/∂score and
/// vis = 1;
/// p = ds = vis = 0 for the others up to `width` (a multiple of 16). z and ∂z/∂score are Mod and DScore of the raw
/// score s, or, with a bias table (relative), s + bias and 1; then dS' is also added into diag[c] (the tile's
/// per-distance sums, when diag is not null).
template <class Mod, class DScore, bool Relative>
EXPRGRAD_AVX512_TARGET inline void backward_row(const float* s, const float* bias, const float* dp, float lse, float D,
                                                std::size_t width, std::size_t valid, float* p, float* ds, float* vis,
                                                float* diag) {
    using N = nodes16<sym::node_list_t<Mod, DScore>>;
    const __m512 vlse = _mm512_set1_ps(lse), vD = _mm512_set1_ps(D), one = _mm512_set1_ps(1.0f);
    for (std::size_t c = 0; c < width; c += 16) {
        const __mmask16 k = lanes16(c, valid);
        const __m512 sv = _mm512_maskz_loadu_ps(k, s + c);
        __m512 z, dz = one;
        if constexpr (Relative) {
            z = _mm512_add_ps(sv, _mm512_maskz_loadu_ps(k, bias + c));
        } else {
            const __m512 zero = _mm512_setzero_ps();
            const args16 a{sv, zero, zero, zero, zero, zero, zero, zero};
            typename N::values v;
            N::run(a, v);
            z = N::template get<Mod>(v);
            dz = N::template get<DScore>(v);
        }
        // Hidden entries exactly 0 (their dp may be NaN).
        const __m512 pe = _mm512_maskz_mov_ps(k, kernels::rows::exp16(_mm512_sub_ps(z, vlse)));
        const __m512 dsm = _mm512_maskz_mul_ps(k, pe, _mm512_sub_ps(_mm512_maskz_loadu_ps(k, dp + c), vD));
        _mm512_storeu_ps(p + c, pe);
        _mm512_storeu_ps(ds + c, Relative ? dsm : _mm512_maskz_mul_ps(k, dsm, dz));
        _mm512_storeu_ps(vis + c, _mm512_maskz_mov_ps(k, one));
        if (Relative && diag)
            _mm512_mask_storeu_ps(diag + c, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, diag + c), dsm));
    }
}

#endif  // EXPRGRAD_HAS_AVX512_KERNELS

}  // namespace exprgrad::ops::detail::flex::avx512
