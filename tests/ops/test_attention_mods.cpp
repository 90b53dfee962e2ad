// The library's score modifications (ops/attention_mods.hpp) through flex attention, each against a plain double
// loop of its own definition (attention_mods_reference.hpp): value, lse, dq, dk, dv and ALiBi's dslopes; T5's
// relative-position bias table; the shorthands (attn::causal equals the options' causal mask, a sliding window at
// least as wide as T equals causal, the entropy-invariant modification equals the option form under causal
// masking); and the docs examples. Double only; the masks: test_attention_mods_masks.cpp.
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

TEST_CASE("attention mods: the score modifications against their definitions") {
    auto causal = at_positions([](double i, double j) { return j <= i; });
    SUBCASE("ALiBi: z = s - m_h (i - j), dslopes included") {
        const problem P;
        check_against(P, attn::alibi, attn::causal,
                      {[](double s, double, double i, double j, double m) { return s - m * (i - j); }, one,
                       [](double, double, double i, double j, double) { return -(i - j); }, causal},
                      {0.3, -0.05});
    }
    // Two that look like a relative bias (∂z/∂s = 1, positions read as i − j) and must not lose the score's
    // other use nor let a masked distance's infinite ∂z/∂m through.
    SUBCASE("z = s + m_h step(s) is not a bias added to the score") {
        const problem P;
        check_against(P, attn::score + attn::param<0> * sym::step(attn::score), attn::causal,
                      {[](double s, double, double, double, double m) { return s + m * (s > 0 ? 1.0 : 0.0); }, one,
                       [](double s, double, double, double, double) { return s > 0 ? 1.0 : 0.0; }, causal},
                      {0.7, -0.4});
    }
    SUBCASE("a log bias under causal masking, infinite at the masked distance -1: z = s + m_h log(i - j + 1)") {
        const problem P;
        check_against(P, attn::score + attn::param<0> * sym::log(attn::q_idx - attn::k_idx + sym::c<1>), attn::causal,
                      {[](double s, double, double i, double j, double m) { return s + m * std::log(i - j + 1); }, one,
                       [](double, double, double i, double j, double) { return std::log(i - j + 1); }, causal},
                      {0.3, -0.2});
    }
    SUBCASE("soft-capping at 2 under a window: z = 2 tanh(s / 2)") {
        const problem P(70, 2.0);  // scores of order 2, where the cap bends them
        check_against(P, attn::softcap<2.0>, attn::sliding_window<5>,
                      {[](double s, double, double, double, double) { return 2.0 * std::tanh(s / 2.0); },
                       [](double s, double, double, double, double) {
                           const double t = std::tanh(s / 2.0);
                           return 1.0 - t * t;
                       },
                       zero, at_positions([](double i, double j) { return i - 5 < j && j <= i; })});
    }
    SUBCASE("entropy-invariant under causal masking: z = s log(i + 1) / log(64)") {
        const problem P;
        check_against(P, attn::entropy_invariant_causal<64.0>, attn::causal,
                      {[](double s, double, double i, double, double) { return s * std::log(i + 1) / std::log(64.0); },
                       [](double, double, double i, double, double) { return std::log(i + 1) / std::log(64.0); }, zero,
                       causal});
    }
}

TEST_CASE("attention mods: the shorthands") {
    attention_options opts;
    opts.causal = true;
    SUBCASE("attn::causal equals the options' causal mask (T_q = T_k)") {
        const problem P;
        const auto a = flex_attention_forward(P.q, P.k, P.v, attn::score, attn::causal, {}, {});
        const auto b = flex_attention_forward(P.q, P.k, P.v, attn::score, 1_c, {}, opts);
        CHECK(max_abs_diff(a.out, b.out) < 1e-12);
        CHECK(max_abs_diff(a.lse, b.lse) < 1e-12);
        const auto ga = flex_attention_vjp(P.q, P.k, P.v, P.dout, attn::score, attn::causal, {}, {});
        const auto gb = flex_attention_vjp(P.q, P.k, P.v, P.dout, attn::score, 1_c, {}, opts);
        CHECK(max_abs_diff(ga.dq, gb.dq) < 1e-12);
        CHECK(max_abs_diff(ga.dk, gb.dk) < 1e-12);
        CHECK(max_abs_diff(ga.dv, gb.dv) < 1e-12);
    }
    SUBCASE("a sliding window of width W >= T equals causal") {
        for (std::size_t T : {4u, 5u}) {  // W = 5 > T, W = T
            const problem P(T);
            const auto a = flex_attention_forward(P.q, P.k, P.v, attn::score, attn::sliding_window<5>, {}, {});
            const auto b = flex_attention_forward(P.q, P.k, P.v, attn::score, attn::causal, {}, {});
            CHECK(max_abs_diff(a.out, b.out) < 1e-12);
            CHECK(max_abs_diff(a.lse, b.lse) < 1e-12);
        }
        // and narrower than T it is not: the check above can fail
        const problem P(6);
        const auto a = flex_attention_forward(P.q, P.k, P.v, attn::score, attn::sliding_window<5>, {}, {});
        const auto b = flex_attention_forward(P.q, P.k, P.v, attn::score, attn::causal, {}, {});
        CHECK(max_abs_diff(a.out, b.out) > 1e-6);
    }
    SUBCASE("the entropy-invariant modification equals scale::entropy_invariant under causal masking") {
        const problem P;
        auto eo = opts;
        eo.scale = scale::entropy_invariant(64.0);
        const auto a = flex_attention_forward(P.q, P.k, P.v, attn::entropy_invariant_causal<64.0>, attn::causal, {}, {});
        const auto b = flex_attention_forward(P.q, P.k, P.v, attn::score, 1_c, {}, eo);
        CHECK(max_abs_diff(a.out, b.out) < 1e-12);
        const auto ga = flex_attention_vjp(P.q, P.k, P.v, P.dout, attn::entropy_invariant_causal<64.0>, attn::causal, {},
                                           {});
        const auto gb = flex_attention_vjp(P.q, P.k, P.v, P.dout, attn::score, 1_c, {}, eo);
        CHECK(max_abs_diff(ga.dq, gb.dq) < 1e-12);
        CHECK(max_abs_diff(ga.dk, gb.dk) < 1e-12);
    }
    SUBCASE("ALiBi's slopes") {
        const auto m = attn::alibi_slopes(8);
        REQUIRE(m.size() == 8);
        CHECK(m(0) == 0.5);  // 2^(-8/8)
        CHECK(m(7) == std::ldexp(1.0, -8));
    }
}

TEST_CASE("attention mods: the docs example") {
    const problem P;
    const auto& [q, k, v, dout] = P;
    attention_options opts;
    // docs-begin docs/flex_attention.md
    auto slopes = attn::alibi_slopes(2);  // ALiBi's fixed slopes, one per query head, learnable from here
    auto r = flex_attention_forward(q, k, v, attn::alibi, attn::causal, {slopes}, opts);
    auto g = flex_attention_vjp(q, k, v, dout, attn::alibi, attn::causal, {slopes}, opts);  // g.dparams[0]: dL/dslopes
    auto local = flex_attention_forward(q, k, v, attn::softcap<2.0>, attn::sliding_window<5>, {}, opts);
    // docs-end
    CHECK(r.out.shape()[2] == 70);
    CHECK(g.dparams.size() == 1);
    CHECK(g.dparams[0].size() == 2);
    CHECK(std::isfinite(local.lse(0, 0, 0)));
    const auto ref = reference(q, k, v, dout,
                               {[](double s, double, double i, double j, double m) { return s - m * (i - j); }, one,
                                [](double, double, double i, double j, double) { return -(i - j); },
                                at_positions([](double i, double j) { return j <= i; })},
                               {slopes(0), slopes(1)});
    CHECK(max_abs_diff(g.dparams[0], ref.dslope) < 1e-9);
    // docs-begin docs/flex_attention.md
    auto ids = xt::xtensor<std::int64_t, 2>::from_shape({2, 70});  // [B, T]: the document of every position
    for (std::size_t i = 0; i < 70; ++i) ids(0, i) = ids(1, i) = static_cast<std::int64_t>(i / 20);
    auto docs = flex_documents::self(ids);  // the same ids for queries and keys
    auto gd = flex_attention_vjp(q, k, v, dout, attn::score, attn::document_causal, {}, opts, docs);
    // docs-end
    // Row 0 of every document sees only itself: dq there is 0 (p = 1, dz = p (dP − D) = 0).
    for (std::size_t i : {0u, 20u, 40u, 60u}) CHECK(std::fabs(gd.dq(1, 1, i, 2)) < 1e-12);
    CHECK(std::fabs(gd.dq(1, 1, 21, 2)) > 1e-6);
}

TEST_CASE("attention mods: T5's relative-position bias table against its definition") {
    // T5's decoder bucketing written here: 5 buckets, distances 0 and 1 exact, then logarithmic up to 12 (a small
    // table keeps this test's compile time low; the construction is the same for T5's 32 buckets).
    auto bucket = [](double i, double j) {
        const double n = std::max(i - j, 0.0);
        if (n < 2) return std::size_t(n);
        return std::min<std::size_t>(4, 2 + std::size_t(std::log(n / 2) / std::log(12.0 / 2) * 3));
    };
    CHECK(attn::relative_bucket(1, 5, 12) == 1);
    CHECK(attn::relative_bucket(5, 5, 12) == bucket(5, 0));
    CHECK(attn::relative_bucket(100, 5, 12) == 4);
    CHECK(attn::relative_bucket(-5, 5, 12) == 0);
    CHECK(attn::relative_bucket(100, 32, 128) == 30);  // 16 + ⌊ln(100/16)/ln(8)·16⌋ = 16 + ⌊14.1⌋
    CHECK(attn::relative_bucket(200, 32, 128) == 31);
    std::vector<xt::xtensor<double, 1>> table;
    for (std::size_t b = 0; b < 5; ++b) table.push_back({0.3 * std::sin(double(b)), -0.2 + 0.05 * double(b)});
    // The kernels tabulate the bias per distance i − j and sum dS per distance: without a mask and with T_q ≠ T_k
    // the tiles are full and every distance from −(T_k − 1) (keys after the query: bucket 0) to T_q − 1 is met.
    const problem Pu(70, 1.0, 140);
    const auto ru = flex_attention_forward(Pu.q, Pu.k, Pu.v, attn::relative_bias<5, 12>, 1_c, table, {});
    const auto gu = flex_attention_vjp(Pu.q, Pu.k, Pu.v, Pu.dout, attn::relative_bias<5, 12>, 1_c, table, {});
    const problem P;  // T = 70: every bucket is met, the last one far past the maximal distance
    const auto r = flex_attention_forward(P.q, P.k, P.v, attn::relative_bias<5, 12>, attn::causal, table, {});
    const auto g = flex_attention_vjp(P.q, P.k, P.v, P.dout, attn::relative_bias<5, 12>, attn::causal, table, {});
    REQUIRE(g.dparams.size() == 5);
    for (std::size_t bk = 0; bk < 5; ++bk) {
        CAPTURE(bk);
        // z = s + table[bucket(i - j)][h]; ∂z/∂table[bk][h] = [bucket = bk], read back through the slope slot.
        auto z = [&](double s, double h, double i, double j, double) { return s + table[bucket(i, j)](std::size_t(h)); };
        auto dz = [&](double, double, double i, double j, double) { return bucket(i, j) == bk ? 1.0 : 0.0; };
        const auto refu = reference(Pu.q, Pu.k, Pu.v, Pu.dout, {z, one, dz, at_positions([](double, double) {
                                                                     return true;
                                                                 })},
                                    {0.0, 0.0});
        CHECK(max_abs_diff(gu.dparams[bk], refu.dslope) < 1e-9);
        if (bk == 0) {
            CHECK(max_abs_diff(ru.out, refu.out) < 1e-10);
            CHECK(max_abs_diff(gu.dq, refu.dq) < 1e-9);
            CHECK(max_abs_diff(gu.dk, refu.dk) < 1e-9);
        }
        const definition f{z, one, dz, at_positions([](double i, double j) { return j <= i; })};
        const auto ref = reference(P.q, P.k, P.v, P.dout, f, {0.0, 0.0});
        CHECK(max_abs_diff(g.dparams[bk], ref.dslope) < 1e-9);
        if (bk == 0) {
            CHECK(max_abs_diff(r.out, ref.out) < 1e-10);
            CHECK(max_abs_diff(r.lse, ref.lse) < 1e-9);
            CHECK(max_abs_diff(g.dq, ref.dq) < 1e-9);
            CHECK(max_abs_diff(g.dk, ref.dk) < 1e-9);
            CHECK(max_abs_diff(g.dv, ref.dv) < 1e-9);
        }
    }
}
