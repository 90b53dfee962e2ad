// flex attention's block mask (issue 20; FlexAttention's BlockMask is the model): every (query block, key block)
// tile of a call is classified once per shape as empty (the mask hides every pair: skipped, no product), full
// (the mask shows every pair: the kernels skip its evaluation) or partial (evaluated per element), and the
// classification is kept in the call's workspace for the next call of the same shape, mask and document ids. The
// forward and the backward read the same classification.
//
// The classification comes from interval arithmetic on the mask expression where it can: over a tile, q_idx and
// k_idx range over intervals, the batch, head and lengths are points and the document ids range over the ids the
// tile's rows and keys hold; add, subtract, multiply, negate, min, max, abs, less and integer constants map
// intervals to intervals that contain every value the mask takes on the tile, so a lower bound > 0 means full
// and an upper bound <= 0 means empty (O(1) per tile: the library's masks — causal, sliding window, prefix-LM,
// documents — are all of this kind). Those intervals are exact integers (or halves, from less), and the kernels'
// evaluation is exact there too as long as every bound stays below 2^22, which is checked. A mask with another op
// (a division, a non-integer constant, a log, ...) falls back to evaluating the mask on every pair of each tile,
// once per shape.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "exprgrad/ops/attn_sequence.hpp"
#include "exprgrad/ops/detail/attention_problem.hpp"
#include "exprgrad/sym/ops.hpp"

namespace exprgrad::ops::detail::flex {

/// The class of one tile.
enum class tile_class : std::uint8_t { empty = 0, full = 1, partial = 2 };

/// A closed interval of values; ok = false when the expression holds an op the arithmetic does not cover.
struct bounds {
    double lo = 0, hi = 0;
    bool ok = true;
};

/// The intervals of the mask's leaves over one tile, by variable index (score and parameters are never read).
struct tile_leaves {
    bounds batch, head, q_idx, k_idx, q_len, k_len, q_doc, k_doc;
    bounds at(int I) const {
        switch (I) {
            case 1: return batch;
            case 2: return head;
            case 3: return q_idx;
            case 4: return k_idx;
            case attn::first_sequence: return q_len;
            case attn::first_sequence + 1: return k_len;
            case attn::first_sequence + 2: return q_doc;
            case attn::first_sequence + 3: return k_doc;
            default: return {0, 0, false};
        }
    }
};

namespace interval {

inline bounds none() { return {0, 0, false}; }
inline bounds hull(double a, double b, double c, double d) {
    return {std::min(std::min(a, b), std::min(c, d)), std::max(std::max(a, b), std::max(c, d)), true};
}

template <class E>
struct eval {
    static bounds run(const tile_leaves&) { return none(); }
};
template <int I>
struct eval<sym::Var<I>> {
    static bounds run(const tile_leaves& t) { return t.at(I); }
};
template <std::intmax_t N>
struct eval<sym::Const<N, 1>> {
    static bounds run(const tile_leaves&) { return {double(N), double(N), true}; }
};
template <class A, class B>
struct eval<sym::Node<sym::op::Add, A, B>> {
    static bounds run(const tile_leaves& t) {
        const bounds a = eval<A>::run(t), b = eval<B>::run(t);
        return a.ok && b.ok ? bounds{a.lo + b.lo, a.hi + b.hi, true} : none();
    }
};
template <class A, class B>
struct eval<sym::Node<sym::op::Sub, A, B>> {
    static bounds run(const tile_leaves& t) {
        const bounds a = eval<A>::run(t), b = eval<B>::run(t);
        return a.ok && b.ok ? bounds{a.lo - b.hi, a.hi - b.lo, true} : none();
    }
};
template <class A, class B>
struct eval<sym::Node<sym::op::Mul, A, B>> {
    static bounds run(const tile_leaves& t) {
        const bounds a = eval<A>::run(t), b = eval<B>::run(t);
        return a.ok && b.ok ? hull(a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi) : none();
    }
};
template <class A>
struct eval<sym::Node<sym::op::Neg, A>> {
    static bounds run(const tile_leaves& t) {
        const bounds a = eval<A>::run(t);
        return {-a.hi, -a.lo, a.ok};
    }
};
template <class A>
struct eval<sym::Node<sym::op::Abs, A>> {
    static bounds run(const tile_leaves& t) {
        const bounds a = eval<A>::run(t);
        if (a.lo >= 0) return a;
        if (a.hi <= 0) return {-a.hi, -a.lo, a.ok};
        return {0, std::max(-a.lo, a.hi), a.ok};
    }
};
template <class A, class B>
struct eval<sym::Node<sym::op::Min, A, B>> {
    static bounds run(const tile_leaves& t) {
        const bounds a = eval<A>::run(t), b = eval<B>::run(t);
        return {std::min(a.lo, b.lo), std::min(a.hi, b.hi), a.ok && b.ok};
    }
};
template <class A, class B>
struct eval<sym::Node<sym::op::Max, A, B>> {
    static bounds run(const tile_leaves& t) {
        const bounds a = eval<A>::run(t), b = eval<B>::run(t);
        return {std::max(a.lo, b.lo), std::max(a.hi, b.hi), a.ok && b.ok};
    }
};
template <class A, class B>
struct eval<sym::Node<sym::op::Less, A, B>> {  // 1 where a < b, ½ at a tie, 0 where a > b
    static bounds run(const tile_leaves& t) {
        const bounds a = eval<A>::run(t), b = eval<B>::run(t);
        if (!(a.ok && b.ok)) return none();
        if (a.hi < b.lo) return {1, 1, true};
        if (a.lo > b.hi) return {0, 0, true};
        return {0, 1, true};
    }
};

/// The interval of every node of E (so that the kernels' evaluation in T is exact where the bounds are small).
template <class E>
struct max_magnitude {
    static double run(const tile_leaves& t) {
        const bounds b = eval<E>::run(t);
        return std::max(std::fabs(b.lo), std::fabs(b.hi));
    }
};
template <class Op, class... Cs>
struct max_magnitude<sym::Node<Op, Cs...>> {
    static double run(const tile_leaves& t) {
        const bounds b = eval<sym::Node<Op, Cs...>>::run(t);
        return std::max({std::fabs(b.lo), std::fabs(b.hi), max_magnitude<Cs>::run(t)...});
    }
};

}  // namespace interval

/// The classification of every tile of a call, and what it was computed for (the cache key).
template <class T>
struct block_mask {
    std::vector<tile_class> cls;  // [B or 1][H_q or 1][nqb][nkb]
    std::size_t sb = 0, sh = 0, nkb = 0, nqb = 0;
    // the key: the mask (an address unique to its modification type), the shape, the document ids
    const void* tag = nullptr;
    std::size_t B = 0, Hq = 0, Tq = 0, Tk = 0;
    std::vector<T> q_doc, k_doc;

    tile_class at(std::size_t b, std::size_t h, std::size_t qb, std::size_t kb) const {
        return cls[b * sb + h * sh + qb * nkb + kb];
    }
};

/// An address unique to the modification type M: the cache key's mask part.
template <class M>
const void* mask_tag() {
    static const char tag = 0;
    return &tag;
}

/// Classifies every tile of problem P for the modification M (its mask_type) into bm, unless bm already holds the
/// classification of the same mask, shape and document ids. q_doc [B][T_q] and k_doc [B][nkb·block_k] are the ids
/// as T (empty when the mask reads none); par the parameters (unused by masks, passed through).
template <class M, class T>
void classify(block_mask<T>& bm, std::size_t B, std::size_t Hq, std::size_t Tq, std::size_t Tk, const T* par,
              std::size_t np, const std::vector<T>& q_doc, const std::vector<T>& k_doc) {
    using Mask = typename M::mask_type;
    constexpr std::size_t bq = attention::block_q, bk = attention::block_k;
    const std::size_t nqb = (Tq + bq - 1) / bq, nkb = (Tk + bk - 1) / bk;
    if (bm.tag == mask_tag<M>() && bm.B == B && bm.Hq == Hq && bm.Tq == Tq && bm.Tk == Tk && bm.q_doc == q_doc &&
        bm.k_doc == k_doc)
        return;
    constexpr bool by_batch = reads_v<Mask, 1> || reads_documents_v<Mask>;
    constexpr bool by_head = reads_v<Mask, 2>;
    const std::size_t nb = by_batch ? B : 1, nh = by_head ? Hq : 1;
    bm.nqb = nqb;
    bm.nkb = nkb;
    bm.sh = by_head ? nqb * nkb : 0;
    bm.sb = by_batch ? nh * nqb * nkb : 0;
    bm.cls.assign(nb * nh * nqb * nkb, tile_class::full);
    if constexpr (M::masked) {
        // Values up to 2^22 are exact in float (and in double), with room for less()'s halves.
        constexpr double exact = 4194304.0;
        constexpr bool docs = reads_documents_v<Mask>;
        auto range = [](const T* x, std::size_t n) {
            bounds r{double(x[0]), double(x[0]), true};
            for (std::size_t c = 1; c < n; ++c) r.lo = std::min(r.lo, double(x[c])), r.hi = std::max(r.hi, double(x[c]));
            return r;
        };
        for (std::size_t b = 0; b < nb; ++b) {
            sequence_view<T> sv{static_cast<T>(Tq), static_cast<T>(Tk), nullptr, nullptr};
            if constexpr (docs) sv = {sv.q_len, sv.k_len, q_doc.data() + b * Tq, k_doc.data() + b * nkb * bk};
            for (std::size_t h = 0; h < nh; ++h) {
                tile_class* out = bm.cls.data() + b * bm.sb + h * bm.sh;
                for (std::size_t qb = 0; qb < nqb; ++qb) {
                    const std::size_t i0 = qb * bq, nr = std::min(bq, Tq - i0);
                    tile_leaves t;
                    t.batch = {double(b), double(b), true};
                    t.head = {double(h), double(h), true};
                    t.q_idx = {double(i0), double(i0 + nr - 1), true};
                    t.q_len = {double(Tq), double(Tq), true};
                    t.k_len = {double(Tk), double(Tk), true};
                    if constexpr (docs) t.q_doc = range(sv.q_doc + i0, nr);
                    for (std::size_t kb = 0; kb < nkb; ++kb) {
                        const std::size_t j0 = kb * bk, nc = std::min(bk, Tk - j0);
                        t.k_idx = {double(j0), double(j0 + nc - 1), true};
                        if constexpr (docs) t.k_doc = range(sv.k_doc + j0, nc);
                        const bounds v = interval::eval<Mask>::run(t);
                        tile_class c = tile_class::partial;
                        if (v.ok && interval::max_magnitude<Mask>::run(t) < exact) {
                            c = v.lo > 0 ? tile_class::full : v.hi <= 0 ? tile_class::empty : tile_class::partial;
                        } else {  // the fallback: the mask on every pair of the tile
                            std::size_t seen = 0;
                            for (std::size_t r = 0; r < nr; ++r)
                                seen += M::count_visible(b, h, i0 + r, j0, nc, par + h * np, sv);
                            c = seen == 0 ? tile_class::empty : seen == nr * nc ? tile_class::full : tile_class::partial;
                        }
                        out[qb * nkb + kb] = c;
                    }
                }
            }
        }
    }
    bm.tag = mask_tag<M>();
    bm.B = B;
    bm.Hq = Hq;
    bm.Tq = Tq;
    bm.Tk = Tk;
    bm.q_doc = q_doc;
    bm.k_doc = k_doc;
}

}  // namespace exprgrad::ops::detail::flex
