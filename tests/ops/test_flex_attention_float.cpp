// Flex attention (ops/flex_attention.hpp) in float against the float64 loop (flex_attention_reference.hpp) on
// both ISA paths, and bit-identical results for every thread count, with double slopes for float inputs.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <exprgrad/exprgrad.hpp>
#include <exprgrad/kernels/rows_avx512.hpp>

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

namespace {

// Soft-capping at C = 1/2: scores of a few units reach tanh's exponential form (|s/C| ≥ 0.625) and its
// saturation, which softcap<30> never does at these sizes.
constexpr auto softcap_half = fc<0.5> * tanh(attn::score / fc<0.5>);

ref_mod ref_softcap(double C) {
    return {[C](double s, double, double, double, double, const double*) { return C * std::tanh(s / C); },
            [C](double s, double, double, double, double, const double*) {
                const double t = std::tanh(s / C);
                return 1 - t * t;
            },
            {},
            [](double, double, double, double) { return 1.0; }};
}

ref_mod ref_alibi_all() {
    auto r = ref_alibi_causal();
    r.mask = [](double, double, double, double) { return 1.0; };
    return r;
}

}  // namespace

TEST_CASE("no mask to evaluate: every tile takes the 512-bit row passes where the CPU has AVX-512F") {
    // The row passes of these (modification::wide16) are flex_avx512.hpp's on the 512-bit path.
    using softcap_t = std::remove_cvref_t<decltype(softcap)>;
    using alibi_t = std::remove_cvref_t<decltype(alibi)>;
    static_assert(ops::detail::flex::modification<float, softcap_t, sym::Const<1, 1>>::wide16);
    static_assert(ops::detail::flex::modification<float, alibi_t, sym::Const<1, 1>>::wide16);
    static_assert(!ops::detail::flex::modification<double, softcap_t, sym::Const<1, 1>>::wide16);
    for (const bool wide : {false, true}) {
        CAPTURE(wide);
        avx512_scope scope(wide);
        compare<float>(softcap, 1_c, ref_softcap(30.0), 0, 2e-5, 500);
        compare<float>(softcap_half, 1_c, ref_softcap(0.5), 0, 2e-5, 600);
        compare<float>(alibi, 1_c, ref_alibi_all(), 1, 2e-5, 700);
    }
}

TEST_CASE("attn::causal (bottom-right, T_q ≠ T_k) evaluated on the 512-bit path agrees with the 256-bit path") {
    // The partial tiles of a mask of positions and sequence lengths take flex_avx512.hpp's fused forward.
    static_assert(ops::detail::flex::avx512::mask16_v<std::remove_cvref_t<decltype(attn::causal)>>);
    static_assert(!ops::detail::flex::avx512::mask16_v<std::remove_cvref_t<decltype(window)>>);
    std::uint64_t seed = 800;
    for (const auto& sc : shapes) {
        CAPTURE(sc.Tq);
        CAPTURE(sc.Tk);
        const auto q = random4<float>(sc.B, sc.Hq, sc.Tq, sc.d, seed++, 1.5);
        const auto k = random4<float>(sc.B, sc.Hkv, sc.Tk, sc.d, seed++, 1.5);
        const auto v = random4<float>(sc.B, sc.Hkv, sc.Tk, sc.dv, seed++);
        const auto dout = random4<float>(sc.B, sc.Hq, sc.Tq, sc.dv, seed++);
        const auto params = as_params<float>(head_values(1, sc.Hq, seed++));
        const std::vector<xt::xtensor<float, 1>> none;
        auto both = [&](auto mod, const auto& p) {
            std::vector<ops::flex_attention_grads<float>> g;
            std::vector<xt::xtensor<float, 4>> out;
            for (const bool wide : {false, true}) {
                avx512_scope scope(wide);
                out.push_back(flex_attention_forward(q, k, v, mod, attn::causal, p, attention_options{}).out);
                g.push_back(flex_attention_vjp(q, k, v, dout, mod, attn::causal, p, attention_options{}));
            }
            CHECK(max_abs_diff(out[0], out[1]) <= 1e-5);
            CHECK(max_abs_diff(g[0].dq, g[1].dq) <= 1e-5);
            CHECK(max_abs_diff(g[0].dk, g[1].dk) <= 1e-5);
            CHECK(max_abs_diff(g[0].dv, g[1].dv) <= 1e-5);
        };
        both(attn::alibi, params);
        both(attn::softcap<2.0>, none);
        both(attn::score, none);
    }
}

#if EXPRGRAD_HAS_AVX512_KERNELS
namespace {
EXPRGRAD_AVX512_TARGET void tanh16_of(const float* x, float* t) {
    _mm512_storeu_ps(t, kernels::rows::tanh16(_mm512_loadu_ps(x)));
}
// The spacing of floats at |r| (r rounded to float would land on that grid; 2^-149 below the normal range).
double ulp_at(double r) {
    int e = 0;
    std::frexp(r, &e);
    return std::ldexp(1.0, std::max(e - 24, -149));
}
}  // namespace

TEST_CASE("rows::tanh16 against std::tanh in double: within 2 ulp, odd, exact saturation, NaN") {
    if (!__builtin_cpu_supports("avx512f")) {
        MESSAGE("no AVX-512F on this CPU: rows::tanh16 is not run");
        return;
    }
    // Every 61st positive float from 0 to +inf, and every float around the switch of forms (0.625) and where
    // float's tanh reaches 1 (9.01); each also negated. Streamed 16 at a time (storing the 70 M values and their
    // results took about 1 GB).
    double worst = 0;
    std::size_t odd_fail = 0, sat_fail = 0;
    alignas(64) float x16[16], nx16[16], t16[16], nt16[16];
    std::size_t fill = 0;
    auto flush = [&] {
        for (std::size_t l = fill; l < 16; ++l) x16[l] = 0.0f;
        for (std::size_t l = 0; l < 16; ++l) nx16[l] = -x16[l];
        tanh16_of(x16, t16);
        tanh16_of(nx16, nt16);
        for (std::size_t l = 0; l < fill; ++l) {
            const double r = std::tanh(static_cast<double>(x16[l]));
            worst = std::max(worst, std::fabs(t16[l] - r) / ulp_at(r));
            const std::uint32_t flipped = std::bit_cast<std::uint32_t>(t16[l]) ^ 0x80000000u;
            if (std::bit_cast<std::uint32_t>(nt16[l]) != flipped) ++odd_fail;
            if (static_cast<float>(r) == 1.0f && t16[l] != 1.0f) ++sat_fail;
        }
        fill = 0;
    };
    auto feed = [&](float x) {
        x16[fill++] = x;
        if (fill == 16) flush();
    };
    for (std::uint32_t u = 0; u < 0x7F800000u; u += 61) feed(std::bit_cast<float>(u));
    for (float x = 0.6f; x < 0.65f; x = std::nextafter(x, 1.0f)) feed(x);
    for (float x = 8.9f; x < 9.2f; x = std::nextafter(x, 10.0f)) feed(x);
    for (float x : {1e-45f, 1e-38f, 1e-20f, 0.625f, 44.0f, 45.0f, 1e30f, 3.4e38f, INFINITY}) feed(x);
    if (fill) flush();
    CHECK(worst <= 2.0);
    CHECK(odd_fail == 0);
    CHECK(sat_fail == 0);
    alignas(64) float sp[16] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 100.0f, -100.0f, 0.5f};
    alignas(64) float st[16];
    tanh16_of(sp, st);
    CHECK(std::isnan(st[0]));
    CHECK(std::isnan(st[1]));
    CHECK(st[2] == 1.0f);
    CHECK(st[3] == -1.0f);
    CHECK((st[4] == 0.0f && !std::signbit(st[4])));
    CHECK((st[5] == 0.0f && std::signbit(st[5])));
    CHECK(st[6] == 1.0f);
    CHECK(st[7] == -1.0f);
    CHECK(st[8] == doctest::Approx(0.46211716f).epsilon(1e-7));
}
#endif

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
