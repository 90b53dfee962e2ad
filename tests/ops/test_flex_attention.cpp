// Flex attention (ops/flex_attention.hpp) in double against a plain float64 loop of the same definition with
// hand-derived partials (flex_attention_reference.hpp: value, lse, dq, dk, dv, every dparam), against central
// differences (check::vjp_check), how the kernels evaluate a quotient of the score, and the docs examples
// (docs/flex_attention.md). Float and the ISA paths: test_flex_attention_float.cpp; masked rows, NaN and empty
// dimensions: test_flex_attention_masked.cpp; the dispatch to ops::attention, GQA and the errors:
// test_flex_attention_api.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>

#include <exprgrad/check/vjp_check.hpp>
#include <exprgrad/exprgrad.hpp>

#include "flex_attention_reference.hpp"

using namespace exprgrad;
using namespace flex_attention_test;

TEST_CASE("flex attention matches the float64 loop to 1e-9: ALiBi + causal, softcap + sliding window, two params") {
    compare<double>(alibi, causal, ref_alibi_causal(), 1, 1e-10, 10);
    compare<double>(softcap, window, ref_softcap_window(), 0, 1e-10, 100);
    compare<double>(two, causal, ref_two_causal(), 2, 1e-10, 200);
}

TEST_CASE("central differences (vjp_check) for q, k, v and the ALiBi slopes, through normalize_qk too") {
    using arrays = std::vector<xt::xarray<double>>;
    auto as4 = [](const xt::xarray<double>& a) { return xt::xtensor<double, 4>(a); };
    auto as1 = [](const xt::xarray<double>& a) {
        return std::vector<xt::xtensor<double, 1>>{xt::xtensor<double, 1>(a)};
    };
    for (const bool cosine : {false, true}) {
        CAPTURE(cosine);
        attention_options o;
        o.normalize_qk = cosine;
        o.scale = scale::fixed(cosine ? 3.0 : 0.8);
        o.key_lengths = {7, 5};
        const auto slopes = xt::xarray<double>{0.3, -0.2, 0.7, 0.1};
        arrays in = {random4<double>(2, 4, 6, 3, 11), random4<double>(2, 2, 7, 3, 12), random4<double>(2, 2, 7, 2, 13),
                     slopes};
        auto f = [&](const arrays& x) {
            return xt::xarray<double>(
                flex_attention_forward(as4(x[0]), as4(x[1]), as4(x[2]), alibi, causal, as1(x[3]), o).out);
        };
        auto vjp = [&](const arrays& x, const xt::xarray<double>& dout) {
            auto g = flex_attention_vjp(as4(x[0]), as4(x[1]), as4(x[2]), as4(dout), alibi, causal, as1(x[3]), o);
            return arrays{g.dq, g.dk, g.dv, g.dparams[0]};
        };
        check::vjp_check_options c;
        c.rtol = 1e-6;
        c.max_elements = std::size_t(-1);
        c.nan_entries = 0;  // NaN has its own case below
        const auto r = check::vjp_check(f, vjp, in, c);
        INFO(r.message());
        CHECK(r);
    }
}

TEST_CASE("the kernels evaluate a constant quotient of the score as a product; of positions, as written") {
    using ops::detail::flex::by_reciprocal_t;
    using score_t = std::remove_cvref_t<decltype(attn::score)>;
    using capped = decltype(attn::score / sym::fc<30.0>);  // attn::softcap's argument of tanh
    CHECK(std::is_same_v<by_reciprocal_t<capped>, sym::Node<sym::op::Mul, score_t, sym::FConst<1.0 / 30.0>>>);
    using bucket = decltype(attn::q_idx / sym::fc<3.0>);  // a bucket boundary must not move: kept a division
    CHECK(std::is_same_v<by_reciprocal_t<bucket>, bucket>);
    using mod = decltype(attn::score + attn::param<0> / sym::fc<3.0>);
    CHECK(std::is_same_v<by_reciprocal_t<mod>, mod>);
    // Under less, step or sign an ulp can flip the output (4.5f / 0.3f is below 15, 4.5f · (1/0.3) is 15):
    // kept a division.
    using gate = decltype(sym::less(attn::score / sym::fc<0.3>, sym::c<15>));
    CHECK(std::is_same_v<by_reciprocal_t<gate>, gate>);
    using stepped = decltype(sym::step(attn::score / sym::fc<0.3>));
    CHECK(std::is_same_v<by_reciprocal_t<stepped>, stepped>);
    // A divisor whose reciprocal is not finite in float (0 · inf would make a zero score NaN): kept, and compiles.
    using tiny = decltype(attn::score / sym::fc<1e-39>);
    CHECK(std::is_same_v<by_reciprocal_t<tiny>, tiny>);
    using zero = decltype(attn::score / sym::fc<0.0>);
    CHECK(std::is_same_v<by_reciprocal_t<zero>, zero>);
}

TEST_CASE("docs/flex_attention.md: ALiBi with a causal mask on grouped-query heads; softcap in a window") {
    const auto q = random4<double>(1, 4, 6, 8, 61), k = random4<double>(1, 2, 6, 8, 62);
    const auto v = random4<double>(1, 2, 6, 8, 63), dout = random4<double>(1, 4, 6, 8, 64);
    // docs-begin docs/flex_attention.md
    auto alibi = attn::score - attn::param<0> * (attn::q_idx - attn::k_idx);
    auto causal = attn::q_idx - attn::k_idx + 1_c;               // visible where k_idx <= q_idx
    xt::xtensor<double, 1> slopes = {0.5, 0.25, 0.125, 0.0625};  // one per query head
    std::vector<xt::xtensor<double, 1>> params = {slopes};
    attention_options opts;
    auto r = flex_attention_forward(q, k, v, alibi, causal, params, opts);    // r.out [1, 4, 6, 8], r.lse [1, 4, 6]
    auto g = flex_attention_vjp(q, k, v, dout, alibi, causal, params, opts);  // g.dq, g.dk, g.dv, g.dparams
    // g.dparams[0](h) = ∂L/∂slopes(h) for L = Σ dout · out
    // docs-end
    CHECK(r.out.shape()[1] == 4);
    CHECK(g.dk.shape()[1] == 2);
    // dparams against a central difference of L = Σ dout·out in each slope
    for (std::size_t h = 0; h < 4; ++h) {
        auto loss = [&](double delta) {
            auto p = params;
            p[0](h) += delta;
            return xt::sum(flex_attention_forward(q, k, v, alibi, causal, p, opts).out * dout)();
        };
        const double fd = (loss(1e-6) - loss(-1e-6)) / 2e-6;
        CHECK(g.dparams[0](h) == doctest::Approx(fd).epsilon(1e-6));
    }
    // docs-begin docs/flex_attention.md
    auto softcap = fc<30.0> * tanh(attn::score / fc<30.0>);  // Gemma 2's logit soft-capping
    auto window = less(attn::q_idx - attn::k_idx, 3_c) * less(attn::k_idx - attn::q_idx, 3_c);  // |i − j| ≤ 3
    auto r2 = flex_attention_forward(q, k, v, softcap, window, {}, opts);                       // no parameters
    // docs-end
    // Row 0 sees keys 0..3 only: a NaN in key 5 leaves it alone; row 5 sees key 5.
    auto k5 = k;
    k5(0, 0, 5, 0) = std::numeric_limits<double>::quiet_NaN();
    const auto r3 = flex_attention_forward(q, k5, v, softcap, window, {}, opts);
    CHECK(r3.out(0, 0, 0, 0) == r2.out(0, 0, 0, 0));
    CHECK(std::isnan(r3.out(0, 0, 5, 0)));
}
