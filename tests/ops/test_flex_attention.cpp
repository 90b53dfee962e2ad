// Flex attention (ops/flex_attention.hpp) in double against a plain float64 loop of the same definition with
// hand-derived partials (flex_attention_reference.hpp: value, lse, dq, dk, dv, every dparam), against central
// differences (check::vjp_check), and how the kernels evaluate a quotient of the score. Float and the ISA paths:
// test_flex_attention_float.cpp; masked rows, NaN and empty dimensions: test_flex_attention_masked.cpp; the
// dispatch to ops::attention, GQA, the errors and the docs example: test_flex_attention_api.cpp.
#include <doctest/doctest.h>

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
