// Flex attention (ops/flex_attention.hpp) in float against the float64 loop (flex_attention_reference.hpp) on
// both ISA paths, and bit-identical results for every thread count, with double slopes for float inputs.
#include <doctest/doctest.h>

#include <type_traits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <exprgrad/exprgrad.hpp>

#include "flex_attention_reference.hpp"

using namespace exprgrad;
using namespace flex_attention_test;

TEST_CASE("flex attention in float, on both ISA paths (256-bit, and 512-bit where the CPU has AVX-512F)") {
    for (const bool wide : {false, true}) {
        CAPTURE(wide);
        avx512_scope scope(wide);
        compare<float>(alibi, causal, ref_alibi_causal(), 1, 2e-5, 300);
        compare<float>(softcap, window, ref_softcap_window(), 0, 2e-5, 400);
    }
}

TEST_CASE("results are bit-identical for every thread count; double slopes for float inputs") {
    const auto q = random4<float>(2, 4, 70, 8, 41), k = random4<float>(2, 2, 75, 8, 42);
    const auto v = random4<float>(2, 2, 75, 8, 43), dout = random4<float>(2, 4, 70, 8, 44);
    const std::vector<xt::xtensor<double, 1>> slopes = {xt::xtensor<double, 1>{0.5, 0.25, 0.125, 0.0625}};
    attention_options o1, o2;
    o1.threads = 1;
    o2.threads = 8;  // more threads than (batch, key/value head) units: the split backward
    const auto r1 = flex_attention_forward(q, k, v, alibi, causal, slopes, o1);
    const auto r2 = flex_attention_forward(q, k, v, alibi, causal, slopes, o2);
    CHECK(max_abs_diff(r1.out, r2.out) == 0.0);
    const auto g1 = flex_attention_vjp(q, k, v, dout, alibi, causal, slopes, o1);
    const auto g2 = flex_attention_vjp(q, k, v, dout, alibi, causal, slopes, o2);
    CHECK(max_abs_diff(g1.dq, g2.dq) == 0.0);
    CHECK(max_abs_diff(g1.dk, g2.dk) == 0.0);
    CHECK(max_abs_diff(g1.dv, g2.dv) == 0.0);
    CHECK(max_abs_diff(g1.dparams[0], g2.dparams[0]) == 0.0);
    // flex_attention_vjp's forward kept its raw score tiles for its backward (problem::scores); the backward on
    // its own (the tensor node's path, from out and lse) computes them again: the same bits.
    CHECK(ops::detail::flex::thread_workspace<float>().P.kept.size() >= 2 * 4 * 2 * 2 * 64 * 64);
    using M = ops::detail::flex::modification<float, std::remove_cvref_t<decltype(alibi)>,
                                              std::remove_cvref_t<decltype(causal)>>;
    ops::detail::flex::workspace<float> ws;
    const auto g3 = ops::detail::flex::vjp<M>(q, k, v, r1.out, r1.lse, dout, slopes, o1, ws);
    CHECK(ws.P.kept.empty());
    CHECK(max_abs_diff(g1.dq, g3.dq) == 0.0);
    CHECK(max_abs_diff(g1.dk, g3.dk) == 0.0);
    CHECK(max_abs_diff(g1.dv, g3.dv) == 0.0);
    CHECK(max_abs_diff(g1.dparams[0], g3.dparams[0]) == 0.0);
}
