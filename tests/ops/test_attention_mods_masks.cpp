// The library's masks (ops/attention_mods.hpp) through flex attention, each against a plain double loop of its own
// definition (attention_mods_reference.hpp): causal, sliding window, prefix-LM, causal alignment when T_q != T_k,
// document masks and the block mask, and the block mask's tile classes against a count of visible pairs. Double
// only (the ISA paths and float run in test_flex_attention_float.cpp); the score modifications and the
// shorthands: test_attention_mods.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <exprgrad/exprgrad.hpp>

#include "attention_mods_reference.hpp"

using namespace exprgrad;
using namespace attention_mods_test;

TEST_CASE("attention mods: the masks against their definitions") {
    const problem P;
    SUBCASE("causal: j <= i") {
        check_against(P, attn::score, attn::causal, {score_only, one, zero, at_positions([](double i, double j) { return j <= i; })});
    }
    SUBCASE("sliding window of width 5: i - 5 < j <= i") {
        check_against(P, attn::score, attn::sliding_window<5>,
                      {score_only, one, zero, at_positions([](double i, double j) { return i - 5 < j && j <= i; })});
    }
    SUBCASE("prefix-LM with a prefix of 7: j < 7 or j <= i") {
        check_against(P, attn::score, attn::prefix_lm<7>,
                      {score_only, one, zero, at_positions([](double i, double j) { return j < 7 || j <= i; })});
    }
}

TEST_CASE("attention mods: causal alignment when T_q != T_k") {
    for (const auto& [Tq, Tk] : {std::pair<std::size_t, std::size_t>{40, 70}, {70, 40}}) {
        CAPTURE(Tq);
        const problem P(Tq, 1.0, Tk);
        const double off = double(Tk) - double(Tq);
        // bottom-right: j <= i + T_k - T_q (rows i < T_q - T_k see nothing when T_q > T_k)
        check_against(P, attn::score, attn::causal,
                      {score_only, one, zero, at_positions([off](double i, double j) { return j <= i + off; })});
        check_against(P, attn::score, attn::causal_top_left,
                      {score_only, one, zero, at_positions([](double i, double j) { return j <= i; })});
        attention_options opts;
        opts.causal = true;
        const auto a = flex_attention_forward(P.q, P.k, P.v, attn::score, attn::causal, {}, {});
        const auto b = flex_attention_forward(P.q, P.k, P.v, attn::score, 1_c, {}, opts);
        CHECK(max_abs_diff(a.out, b.out) < 1e-12);
        CHECK(max_abs_diff(a.lse, b.lse) < 1e-12);
    }
}

TEST_CASE("attention mods: document masks and the block mask") {
    const problem P;  // T = 70: documents that straddle the 64-row tiles, ids not sorted in batch entry 1
    auto ids = xt::xtensor<std::int64_t, 2>::from_shape({2, 70});
    for (std::size_t i = 0; i < 70; ++i) {
        ids(0, i) = i < 30 ? 0 : i < 66 ? 1 : 2;
        ids(1, i) = i % 16 < 5 ? 7 : 3;
    }
    const auto docs = flex_documents::self(ids);
    auto same = [&](std::size_t b, double i, double j) { return ids(b, std::size_t(i)) == ids(b, std::size_t(j)); };
    SUBCASE("attn::document: the same document, both directions") {
        check_against(P, attn::score, attn::document, {score_only, one, zero, same}, {}, &docs);
    }
    SUBCASE("attn::document_causal, and the cached block mask follows new ids of the same shape") {
        auto causal_same = [&](std::size_t b, double i, double j) { return j <= i && same(b, i, j); };
        check_against(P, attn::score, attn::document_causal, {score_only, one, zero, causal_same}, {}, &docs);
        const auto old_ids = ids;
        for (std::size_t i = 0; i < 70; ++i) ids(0, i) = i < 5 ? 4 : 9, ids(1, i) = std::int64_t(i / 20);
        const auto docs2 = flex_documents::self(ids);
        check_against(P, attn::score, attn::document_causal, {score_only, one, zero, causal_same}, {}, &docs2);
        CHECK(max_abs_diff(old_ids, ids) > 0.5);
    }
    SUBCASE("a mask of batch and head outside the interval arithmetic (a non-integer constant): the per-element "
            "fallback, per (b, h), and again for another shape") {
        // visible ⇔ (i − j + 1)(h + 1) − 30 b + 1/4 > 0: causal in batch entry 0, narrower in entry 1 and head 0
        auto mask = (attn::q_idx - attn::k_idx + 1_c) * (attn::head + 1_c) - attn::batch * 30_c + fc<0.25>;
        for (std::size_t T : {70u, 150u}) {
            const problem Q(T);
            const auto r = flex_attention_forward(Q.q, Q.k, Q.v, attn::score, mask, {}, {});
            const auto g = flex_attention_vjp(Q.q, Q.k, Q.v, Q.dout, attn::score, mask, {}, {});
            for (std::size_t h = 0; h < 2; ++h) {
                definition f{score_only, one, zero, [h](std::size_t b, double i, double j) {
                                 return (i - j + 1) * double(h + 1) - 30.0 * double(b) + 0.25 > 0;
                             }};
                const auto ref = reference(Q.q, Q.k, Q.v, Q.dout, f, {});
                auto head = [h](const xt::xtensor<double, 4>& x) {  // the values of head h, every batch entry
                    const std::size_t n = x.shape()[2] * x.shape()[3];
                    xt::xtensor<double, 1> o = xt::zeros<double>({x.shape()[0] * n});
                    for (std::size_t b = 0; b < x.shape()[0]; ++b)
                        std::copy_n(x.data() + (b * x.shape()[1] + h) * n, n, o.data() + b * n);
                    return o;
                };
                CHECK(max_abs_diff(head(r.out), head(ref.out)) < 1e-10);
                CHECK(max_abs_diff(head(g.dq), head(ref.dq)) < 1e-9);
                // dk, dv of head h come from query head h only (H_q = H_kv)
                CHECK(max_abs_diff(head(g.dk), head(ref.dk)) < 1e-9);
                CHECK(max_abs_diff(head(g.dv), head(ref.dv)) < 1e-9);
            }
        }
    }
    SUBCASE("errors: no ids, ids of the wrong shape or too large") {
        CHECK_THROWS_WITH_AS(flex_attention_forward(P.q, P.k, P.v, attn::score, attn::document, {}, {}),
                             doctest::Contains("no document ids were given"), std::invalid_argument);
        const auto short_ids = flex_documents::self(xt::xtensor<std::int64_t, 2>::from_shape({2, 69}));
        CHECK_THROWS_WITH_AS(flex_attention_forward(P.q, P.k, P.v, attn::score, attn::document, {}, {}, short_ids),
                             doctest::Contains("flex_documents::q has shape (2, 69) but q needs (B, T_q) = (2, 70)"), std::invalid_argument);
        auto big = ids;
        big(1, 3) = std::int64_t{1} << 24;
        CHECK_THROWS_WITH_AS(flex_attention_vjp(P.q, P.k, P.v, P.dout, attn::score, attn::document, {}, {},
                                                flex_documents::self(big)),
                             doctest::Contains("flex_documents::q[1, 3] = 16777216"), std::invalid_argument);
    }
}

TEST_CASE("attention mods: the block mask's classes equal a count of the visible pairs of each tile") {
    // Interval arithmetic must find every empty and every full tile of the library's masks, not just be safe: the
    // classes are compared with the count of visible pairs per tile (0: empty, all: full).
    namespace fx = ops::detail::flex;
    auto check = [](auto mask, std::size_t Tq, std::size_t Tk, auto visible) {
        using M = fx::modification<double, std::remove_cvref_t<decltype(attn::score)>, decltype(mask)>;
        fx::block_mask<double> bm;
        fx::classify<M>(bm, 1, 1, Tq, Tk, static_cast<const double*>(nullptr), 0, {}, {});
        std::size_t n[3] = {0, 0, 0};
        for (std::size_t qb = 0; qb * 64 < Tq; ++qb)
            for (std::size_t kb = 0; kb * 64 < Tk; ++kb) {
                std::size_t seen = 0, all = 0;
                for (std::size_t i = qb * 64; i < std::min(Tq, qb * 64 + 64); ++i)
                    for (std::size_t j = kb * 64; j < std::min(Tk, kb * 64 + 64); ++j, ++all) seen += visible(i, j);
                const auto want = seen == 0 ? fx::tile_class::empty
                                  : seen == all ? fx::tile_class::full
                                                : fx::tile_class::partial;
                CHECK((bm.at(0, 0, qb, kb) == want));
                ++n[static_cast<int>(want)];
            }
        CHECK(n[0] > 0);  // the shapes below have tiles of every class
        CHECK(n[1] > 0);
        CHECK(n[2] > 0);
    };
    check(attn::sliding_window<200>, 300, 300, [](double i, double j) { return i - 200 < j && j <= i; });
    check(attn::causal, 200, 330, [](double i, double j) { return j <= i + 130; });
    check(attn::prefix_lm<70>, 260, 260, [](double i, double j) { return j < 70 || j <= i; });
}
