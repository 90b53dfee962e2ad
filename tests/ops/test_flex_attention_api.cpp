// Flex attention (ops/flex_attention.hpp) as users call it: the identity modification without a mask runs
// ops::attention bit for bit, grouped-query heads equal attention on repeated heads, and misuse throws naming the
// values (through the dispatch to ops::attention too).
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <exprgrad/exprgrad.hpp>

#include "flex_attention_reference.hpp"

using namespace exprgrad;
using namespace flex_attention_test;

TEST_CASE("identity and no mask run ops::attention bit for bit; GQA equals attention on repeated heads") {
    attention_options o;
    o.causal = true;
    const auto q = random4<double>(2, 4, 9, 5, 31), k = random4<double>(2, 4, 11, 5, 32);
    const auto v = random4<double>(2, 4, 11, 3, 33), dout = random4<double>(2, 4, 9, 3, 34);
    const auto a = attention_forward(q, k, v, o);
    const auto f = flex_attention_forward(q, k, v, attn::score, 1_c, {}, o);
    CHECK(max_abs_diff(a.out, f.out) == 0.0);
    CHECK(max_abs_diff(a.lse, f.lse) == 0.0);
    const auto ag = attention_vjp(q, k, v, dout, o);
    const auto fg = flex_attention_vjp(q, k, v, dout, attn::score, 1_c, {}, o);
    CHECK(max_abs_diff(ag.dq, fg.dq) == 0.0);
    CHECK(max_abs_diff(ag.dk, fg.dk) == 0.0);
    CHECK(fg.dparams.empty());
    // The fused kernels with an identity modification and an always-true mask that is not a constant agree
    // with ops::attention to rounding; with normalize_qk and a per-row scale too.
    o.normalize_qk = true;
    o.scale = scale::gradient_max();
    o.key_lengths = {11, 6};
    constexpr auto all = attn::q_idx + 1_c;
    const auto a2 = attention_forward(q, k, v, o);
    const auto f2 = flex_attention_forward(q, k, v, attn::score, all, {}, o);
    CHECK(max_abs_diff(a2.out, f2.out) <= 1e-12);
    CHECK(max_abs_diff(a2.lse, f2.lse) <= 1e-12);
    const auto ag2 = attention_vjp(q, k, v, dout, o);
    const auto fg2 = flex_attention_vjp(q, k, v, dout, attn::score, all, {}, o);
    CHECK(max_abs_diff(ag2.dq, fg2.dq) <= 1e-12);
    CHECK(max_abs_diff(ag2.dk, fg2.dk) <= 1e-12);
    CHECK(max_abs_diff(ag2.dv, fg2.dv) <= 1e-12);
    // GQA: 4 query heads on 2 key/value heads = attention with each key/value head repeated twice, dk and dv
    // summed over the copies.
    o = {};
    const auto k2 = random4<double>(2, 2, 11, 5, 35), v2 = random4<double>(2, 2, 11, 3, 36);
    auto kr = xt::xtensor<double, 4>::from_shape({2, 4, 11, 5});
    auto vr = xt::xtensor<double, 4>::from_shape({2, 4, 11, 3});
    for (std::size_t h = 0; h < 4; ++h) {
        xt::view(kr, xt::all(), h) = xt::view(k2, xt::all(), h / 2);
        xt::view(vr, xt::all(), h) = xt::view(v2, xt::all(), h / 2);
    }
    const auto ar = attention_forward(q, kr, vr, o);
    const auto fr = flex_attention_forward(q, k2, v2, attn::score, 1_c, {}, o);
    CHECK(max_abs_diff(ar.out, fr.out) <= 1e-12);
    const auto agr = attention_vjp(q, kr, vr, dout, o);
    const auto fgr = flex_attention_vjp(q, k2, v2, dout, attn::score, 1_c, {}, o);
    CHECK(max_abs_diff(agr.dq, fgr.dq) <= 1e-12);
    xt::xtensor<double, 4> dk_sum = xt::zeros<double>(k2.shape()), dv_sum = xt::zeros<double>(v2.shape());
    for (std::size_t h = 0; h < 4; ++h) {
        xt::view(dk_sum, xt::all(), h / 2) += xt::view(agr.dk, xt::all(), h);
        xt::view(dv_sum, xt::all(), h / 2) += xt::view(agr.dv, xt::all(), h);
    }
    CHECK(max_abs_diff(dk_sum, fgr.dk) <= 1e-12);
    CHECK(max_abs_diff(dv_sum, fgr.dv) <= 1e-12);
}

TEST_CASE("misuse throws std::invalid_argument naming flex_attention and the values") {
    const auto q = random4<double>(1, 4, 3, 2, 51), k = random4<double>(1, 2, 5, 2, 52);
    const auto v = random4<double>(1, 2, 5, 2, 53);
    const std::vector<xt::xtensor<double, 1>> one_slope = {xt::xtensor<double, 1>{1, 2, 3, 4}};
    auto message = [&](auto&& call) -> std::string {
        try {
            call();
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "no exception";
    };
    const auto none = message([&] { flex_attention_forward(q, k, v, alibi, causal, {}); });
    CHECK(none.find("flex_attention_forward") != std::string::npos);
    CHECK(none.find("reads 1 parameter") != std::string::npos);
    const auto wrong_h = message([&] {
        flex_attention_forward(q, k, v, alibi, causal, {xt::xtensor<double, 1>{1, 2, 3}});
    });
    CHECK(wrong_h.find("params[0] has 3 values but q has 4 heads") != std::string::npos);
    const auto groups =
        message([&] { flex_attention_forward(random4<double>(1, 3, 3, 2, 54), k, v, attn::score, causal, {}); });
    CHECK(groups.find("q has 3 heads but k and v have 2") != std::string::npos);
    const auto d =
        message([&] { flex_attention_vjp(q, random4<double>(1, 2, 5, 3, 55), v, q, alibi, causal, one_slope); });
    CHECK(d.find("flex_attention_vjp") != std::string::npos);
    const auto dout = message([&] { flex_attention_vjp(q, k, v, k, alibi, causal, one_slope); });
    CHECK(dout.find("dout") != std::string::npos);
    // also through the dispatch to ops::attention: the error names flex attention
    const auto plain =
        message([&] { flex_attention_forward(q, q, random4<double>(1, 4, 2, 2, 56), attn::score, 1_c, {}); });
    CHECK(plain.find("flex_attention_forward") != std::string::npos);
}
