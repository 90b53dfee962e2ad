// Flex attention (ops/flex_attention.hpp) against a plain float64 loop of the same definition, written here
// with hand-derived partials (value, lse, dq, dk, dv, every dparam), central differences (check::vjp_check),
// GQA, fully masked rows, NaN propagation, the dispatch to ops::attention, and the errors.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xview.hpp>

#include <exprgrad/check/vjp_check.hpp>
#include <exprgrad/exprgrad.hpp>

#include "attention_inputs.hpp"

using namespace exprgrad;

namespace {

using attention_test::lcg;
using attention_test::random4;
using attention_test::to_type;

template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
    REQUIRE(a.size() == b.size());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double x = static_cast<double>(a.data()[i]), y = static_cast<double>(b.data()[i]);
        if (std::isinf(x) && x == y) continue;  // −inf lse of a fully masked row on both sides
        const double e = std::fabs(x - y);
        m = std::isnan(e) ? std::numeric_limits<double>::infinity() : std::max(m, e);
    }
    return m;
}

// ---- the reference: one (b, h, i) row at a time, scores materialised, partials written by hand ----

/// A modification for the reference: value, ∂/∂score and ∂/∂param_I at (s, b, h, i, j, params of head h).
struct ref_mod {
    std::function<double(double, double, double, double, double, const double*)> f, dfds;
    std::vector<std::function<double(double, double, double, double, double, const double*)>> dfdp;
    std::function<double(double, double, double, double)> mask;  // (b, h, i, j)
};

struct ref_result {
    xt::xtensor<double, 4> out, dq, dk, dv;
    xt::xtensor<double, 3> lse;
    std::vector<std::vector<double>> dparams;
};

ref_result reference(const xt::xtensor<double, 4>& q, const xt::xtensor<double, 4>& k, const xt::xtensor<double, 4>& v,
                     const xt::xtensor<double, 4>& dout, const ref_mod& m,
                     const std::vector<std::vector<double>>& params, const attention_options& o) {
    const std::size_t B = q.shape()[0], Hq = q.shape()[1], Tq = q.shape()[2], d = q.shape()[3];
    const std::size_t Hkv = k.shape()[1], Tk = k.shape()[2], dv = v.shape()[3], G = Hq / Hkv;
    ref_result r;
    r.out = xt::zeros<double>({B, Hq, Tq, dv});
    r.lse = xt::zeros<double>({B, Hq, Tq});
    r.dq = xt::zeros<double>(q.shape());
    r.dk = xt::zeros<double>(k.shape());
    r.dv = xt::zeros<double>(v.shape());
    r.dparams.assign(params.size(), std::vector<double>(Hq, 0.0));
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t h = 0; h < Hq; ++h) {
            const std::size_t g = h / G;
            std::vector<double> ph(params.size());
            for (std::size_t I = 0; I < params.size(); ++I) ph[I] = params[I][h];
            for (std::size_t i = 0; i < Tq; ++i) {
                std::vector<char> vis(Tk);
                std::size_t n = 0;
                for (std::size_t j = 0; j < Tk; ++j) {
                    bool ok = o.key_lengths.empty() || j < o.key_lengths[b];
                    if (o.causal && double(j) > double(i) + double(Tk) - double(Tq)) ok = false;
                    ok = ok && m.mask(double(b), double(h), double(i), double(j)) > 0;
                    vis[j] = ok;
                    n += ok;
                }
                const double s = o.scale.multiplier(double(n), d, false);
                std::vector<double> raw(Tk), z(Tk), p(Tk, 0.0);
                double mx = -INFINITY;
                for (std::size_t j = 0; j < Tk; ++j) {
                    if (!vis[j]) continue;
                    double dot = 0;
                    for (std::size_t c = 0; c < d; ++c) dot += q(b, h, i, c) * k(b, g, j, c);
                    raw[j] = s * dot;
                    z[j] = m.f(raw[j], double(b), double(h), double(i), double(j), ph.data());
                    mx = std::max(mx, z[j]);
                }
                if (mx == -INFINITY) {
                    r.lse(b, h, i) = -INFINITY;
                    continue;
                }
                double l = 0;
                for (std::size_t j = 0; j < Tk; ++j)
                    if (vis[j]) l += std::exp(z[j] - mx);
                r.lse(b, h, i) = mx + std::log(l);
                for (std::size_t j = 0; j < Tk; ++j)
                    if (vis[j]) p[j] = std::exp(z[j] - r.lse(b, h, i));
                for (std::size_t j = 0; j < Tk; ++j)
                    for (std::size_t c = 0; c < dv; ++c) r.out(b, h, i, c) += p[j] * v(b, g, j, c);
                // backward of this row
                double D = 0;
                std::vector<double> dP(Tk, 0.0);
                for (std::size_t j = 0; j < Tk; ++j) {
                    if (!vis[j]) continue;
                    for (std::size_t c = 0; c < dv; ++c) dP[j] += dout(b, h, i, c) * v(b, g, j, c);
                    D += p[j] * dP[j];
                }
                for (std::size_t j = 0; j < Tk; ++j) {
                    if (!vis[j]) continue;
                    const double dz = p[j] * (dP[j] - D);
                    const double dsc = dz * m.dfds(raw[j], double(b), double(h), double(i), double(j), ph.data());
                    for (std::size_t I = 0; I < params.size(); ++I)
                        r.dparams[I][h] +=
                            dz * m.dfdp[I](raw[j], double(b), double(h), double(i), double(j), ph.data());
                    for (std::size_t c = 0; c < d; ++c) {
                        r.dq(b, h, i, c) += s * dsc * k(b, g, j, c);
                        r.dk(b, g, j, c) += s * dsc * q(b, h, i, c);
                    }
                    for (std::size_t c = 0; c < dv; ++c) r.dv(b, g, j, c) += p[j] * dout(b, h, i, c);
                }
            }
        }
    return r;
}

double one(double, double, double, double, double, const double*) { return 1; }

// The modifications under test, as DSL expressions (for the kernels) and as hand-written reference functions.
constexpr auto alibi = attn::score - attn::param<0> * (attn::q_idx - attn::k_idx);
constexpr auto causal = attn::q_idx - attn::k_idx + 1_c;
constexpr auto softcap = fc<30.0> * tanh(attn::score / fc<30.0>);
constexpr auto window = less(attn::q_idx - attn::k_idx, 5_c) * less(attn::k_idx - attn::q_idx, 5_c);  // |i − j| ≤ 5
// two parameters, one of them reading the batch and head indices too
constexpr auto two = attn::score * attn::param<1> + attn::param<0> * sin(attn::k_idx + attn::head - attn::batch);

ref_mod ref_alibi_causal() {
    return {[](double s, double, double, double i, double j, const double* p) { return s - p[0] * (i - j); },
            one,
            {[](double, double, double, double i, double j, const double*) { return -(i - j); }},
            [](double, double, double i, double j) { return i - j + 1; }};
}
ref_mod ref_softcap_window() {
    return {[](double s, double, double, double, double, const double*) { return 30 * std::tanh(s / 30); },
            [](double s, double, double, double, double, const double*) {
                const double t = std::tanh(s / 30);
                return 1 - t * t;
            },
            {},
            // less()'s ½ at |i − j| = 5 counts as visible
            [](double, double, double i, double j) { return std::fabs(i - j) <= 5 ? 1.0 : 0.0; }};
}
ref_mod ref_two_causal() {
    return {[](double s, double b, double h, double, double j, const double* p) {
                return s * p[1] + p[0] * std::sin(j + h - b);
            },
            [](double, double, double, double, double, const double* p) { return p[1]; },
            {[](double, double b, double h, double, double j, const double*) { return std::sin(j + h - b); },
             [](double s, double, double, double, double, const double*) { return s; }},
            [](double, double, double i, double j) { return i - j + 1; }};
}

struct shape_case {
    std::size_t B, Hq, Hkv, Tq, Tk, d, dv;
};

// Sizes: one tile and below, T past the 64-row/64-key tiles (not multiples), d and d_v not SIMD multiples,
// T_q ≠ T_k both ways, GQA groups of 1, 2 and 3.
const std::vector<shape_case> shapes = {
    {1, 2, 1, 5, 7, 3, 5}, {2, 4, 2, 70, 67, 9, 17}, {1, 3, 1, 66, 130, 16, 8}, {2, 2, 2, 9, 4, 5, 3}};

std::vector<std::vector<double>> head_values(std::size_t n, std::size_t H, std::uint64_t seed) {
    std::vector<std::vector<double>> p(n, std::vector<double>(H));
    lcg g(seed);
    for (auto& a : p)
        for (auto& x : a) x = 0.25 + 0.5 * std::fabs(g.next());
    return p;
}

template <class T>
std::vector<xt::xtensor<T, 1>> as_params(const std::vector<std::vector<double>>& p) {
    std::vector<xt::xtensor<T, 1>> r;
    for (const auto& a : p) {
        xt::xtensor<T, 1> x = xt::zeros<T>({a.size()});
        for (std::size_t h = 0; h < a.size(); ++h) x(h) = static_cast<T>(a[h]);
        r.push_back(x);
    }
    return r;
}

std::vector<attention_options> option_cases(std::size_t B, std::size_t Tk) {
    std::vector<attention_options> r(3);
    r[1].key_lengths.assign(B, 0);
    for (std::size_t b = 0; b < B; ++b) r[1].key_lengths[b] = b == 0 ? Tk - Tk / 3 : Tk;
    r[2].causal = true;
    r[2].scale = scale::gradient_max();  // a multiplier per row from the keys it sees
    return r;
}

template <class T, class Mod, class Mask>
void compare(Mod mod, Mask mask, const ref_mod& ref, std::size_t nparams, double tol, std::uint64_t seed) {
    for (const auto& sc : shapes) {
        for (const auto& o : option_cases(sc.B, sc.Tk)) {
            CAPTURE(sc.Tq);
            CAPTURE(sc.Tk);
            CAPTURE(sc.Hq);
            CAPTURE(sc.Hkv);
            CAPTURE(o.causal);
            CAPTURE(o.key_lengths.size());
            const auto q = random4<T>(sc.B, sc.Hq, sc.Tq, sc.d, seed++, 1.5);
            const auto k = random4<T>(sc.B, sc.Hkv, sc.Tk, sc.d, seed++, 1.5);
            const auto v = random4<T>(sc.B, sc.Hkv, sc.Tk, sc.dv, seed++);
            const auto dout = random4<T>(sc.B, sc.Hq, sc.Tq, sc.dv, seed++);
            const auto pv = head_values(nparams, sc.Hq, seed++);
            const auto params = as_params<T>(pv);
            const auto want = reference(to_type<double>(q), to_type<double>(k), to_type<double>(v),
                                        to_type<double>(dout), ref, pv, o);
            const auto r = flex_attention_forward(q, k, v, mod, mask, params, o);
            CHECK(max_abs_diff(r.out, want.out) <= tol);
            CHECK(max_abs_diff(r.lse, want.lse) <= tol * 10);
            const auto g = flex_attention_vjp(q, k, v, dout, mod, mask, params, o);
            CHECK(max_abs_diff(g.dq, want.dq) <= tol * 10);
            CHECK(max_abs_diff(g.dk, want.dk) <= tol * 10);
            CHECK(max_abs_diff(g.dv, want.dv) <= tol * 10);
            REQUIRE(g.dparams.size() == nparams);
            for (std::size_t I = 0; I < nparams; ++I) {
                CAPTURE(I);
                REQUIRE(g.dparams[I].size() == sc.Hq);
                for (std::size_t h = 0; h < sc.Hq; ++h)
                    CHECK(std::fabs(g.dparams[I](h) - want.dparams[I][h]) <=
                          tol * 10 * (1 + std::fabs(want.dparams[I][h])));
            }
        }
    }
}

/// Forces the float kernels' 512-bit path on or off for a scope (off where the CPU lacks AVX-512F).
struct avx512_scope {
    explicit avx512_scope(bool on) { kernels::force_avx512(on); }
    ~avx512_scope() { kernels::reset_avx512(); }
    avx512_scope(const avx512_scope&) = delete;
    avx512_scope& operator=(const avx512_scope&) = delete;
};

}  // namespace

TEST_CASE("flex attention matches the float64 loop to 1e-9: ALiBi + causal, softcap + sliding window, two params") {
    compare<double>(alibi, causal, ref_alibi_causal(), 1, 1e-10, 10);
    compare<double>(softcap, window, ref_softcap_window(), 0, 1e-10, 100);
    compare<double>(two, causal, ref_two_causal(), 2, 1e-10, 200);
}

TEST_CASE("flex attention in float, on both ISA paths (256-bit, and 512-bit where the CPU has AVX-512F)") {
    for (const bool wide : {false, true}) {
        CAPTURE(wide);
        avx512_scope scope(wide);
        compare<float>(alibi, causal, ref_alibi_causal(), 1, 2e-5, 300);
        compare<float>(softcap, window, ref_softcap_window(), 0, 2e-5, 400);
    }
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
