// Flex attention (ops/flex_attention.hpp) where rows see nothing or inputs are not finite: fully masked rows
// (out = 0, lse = -inf, dq = 0) and unseen keys (dk = dv = 0), NaN propagation in q, slopes and keys, and empty
// dimensions (no keys, no queries, no batch).
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <exprgrad/exprgrad.hpp>

#include "flex_attention_reference.hpp"

using namespace exprgrad;
using namespace flex_attention_test;

TEST_CASE("fully masked rows: out = 0, lse = -inf, dq = 0 even for a NaN dout; unseen keys get dk = dv = 0") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    // Row i sees the keys j < i − 1.5 and j < 5.5: rows 0 and 1 see none, key 6 is seen by no row.
    constexpr auto mask = less(attn::k_idx + 1.5_c, attn::q_idx) * less(attn::k_idx, 5.5_c);
    auto q = random4<double>(1, 2, 8, 3, 1), k = random4<double>(1, 1, 7, 3, 2), v = random4<double>(1, 1, 7, 2, 3);
    auto dout = random4<double>(1, 2, 8, 2, 4);
    k(0, 0, 6, 1) = nan;  // never seen: may not leak anywhere
    v(0, 0, 6, 0) = nan;
    dout(0, 1, 0, 0) = nan;  // a row that sees nothing: its dout is not read
    const std::vector<xt::xtensor<double, 1>> none;
    const auto r = flex_attention_forward(q, k, v, attn::score, mask, none);
    const auto g = flex_attention_vjp(q, k, v, dout, attn::score, mask, none);
    for (std::size_t h = 0; h < 2; ++h) {
        for (std::size_t i = 0; i < 8; ++i) {
            CAPTURE(i);
            const bool empty = i < 2;
            CHECK((empty ? r.lse(0, h, i) == -INFINITY : std::isfinite(r.lse(0, h, i))));
            for (std::size_t c = 0; c < 2; ++c)
                CHECK((empty ? r.out(0, h, i, c) == 0.0 : std::isfinite(r.out(0, h, i, c))));
            for (std::size_t c = 0; c < 3; ++c)
                CHECK((empty ? g.dq(0, h, i, c) == 0.0 : std::isfinite(g.dq(0, h, i, c))));
        }
    }
    for (std::size_t c = 0; c < 3; ++c) CHECK(g.dk(0, 0, 6, c) == 0.0);
    for (std::size_t c = 0; c < 2; ++c) CHECK(g.dv(0, 0, 6, c) == 0.0);
    CHECK(std::isfinite(xt::sum(g.dk)()));
    CHECK(std::isfinite(xt::sum(g.dv)()));
    // A mask that hides everything: every row fully masked.
    const auto z = flex_attention_forward(q, k, v, attn::score, 0_c, none);
    CHECK(xt::all(xt::equal(z.lse, -INFINITY)));
    CHECK(xt::all(xt::equal(z.out, 0.0)));
}

TEST_CASE("NaN propagates: in q to its row, in a slope to its head, in a seen key to the rows that see it") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const auto q0 = random4<double>(1, 2, 5, 3, 21), k = random4<double>(1, 2, 6, 3, 22);
    const auto v = random4<double>(1, 2, 6, 2, 23), dout = random4<double>(1, 2, 5, 2, 24);
    std::vector<xt::xtensor<double, 1>> slopes = {xt::xtensor<double, 1>{0.5, 0.25}};
    auto q = q0;
    q(0, 0, 3, 1) = nan;
    auto r = flex_attention_forward(q, k, v, alibi, causal, slopes);
    CHECK(std::isnan(r.out(0, 0, 3, 0)));
    CHECK(std::isnan(r.lse(0, 0, 3)));
    CHECK(std::isfinite(r.out(0, 0, 2, 0)));
    CHECK(std::isfinite(r.out(0, 1, 3, 0)));
    auto g = flex_attention_vjp(q, k, v, dout, alibi, causal, slopes);
    CHECK(std::isnan(g.dq(0, 0, 3, 0)));
    CHECK(std::isnan(g.dparams[0](0)));
    CHECK(std::isfinite(g.dparams[0](1)));
    slopes[0](1) = nan;
    r = flex_attention_forward(q0, k, v, alibi, causal, slopes);
    CHECK(std::isfinite(r.out(0, 0, 4, 0)));
    CHECK(std::isnan(r.out(0, 1, 4, 0)));
    // key 4 (causal, T_q = 5 ≤ T_k: rows see keys j ≤ i): rows 4 sees it, rows 0..3 do not
    auto k2 = k;
    k2(0, 0, 4, 0) = nan;
    r = flex_attention_forward(q0, k2, v, alibi, causal, {xt::xtensor<double, 1>{0.5, 0.25}});
    CHECK(std::isnan(r.out(0, 0, 4, 0)));
    CHECK(std::isfinite(r.out(0, 0, 3, 0)));
}

TEST_CASE("empty dimensions: no keys (every row fully masked), no queries, no batch") {
    const std::vector<xt::xtensor<double, 1>> slopes = {xt::xtensor<double, 1>{0.5, 0.25}};
    for (const auto& [B, Tq, Tk] : std::vector<std::array<std::size_t, 3>>{{1, 3, 0}, {1, 0, 4}, {0, 3, 4}}) {
        CAPTURE(B);
        CAPTURE(Tq);
        CAPTURE(Tk);
        const auto q = random4<double>(B, 2, Tq, 3, 71), k = random4<double>(B, 1, Tk, 3, 72);
        const auto v = random4<double>(B, 1, Tk, 2, 73), dout = random4<double>(B, 2, Tq, 2, 74);
        const auto r = flex_attention_forward(q, k, v, alibi, causal, slopes);
        CHECK(r.out.size() == B * 2 * Tq * 2);
        CHECK(xt::all(xt::equal(r.out, 0.0)));
        CHECK(xt::all(xt::equal(r.lse, -INFINITY)));
        const auto g = flex_attention_vjp(q, k, v, dout, alibi, causal, slopes);
        CHECK(g.dq.shape() == q.shape());
        CHECK(g.dk.shape() == k.shape());
        CHECK(xt::all(xt::equal(g.dq, 0.0)));
        CHECK(xt::all(xt::equal(g.dparams[0], 0.0)));
    }
}
