// Helpers of the flex attention tests (test_flex_attention*.cpp): a plain float64 loop of flex attention's
// definition with hand-derived partials (value, lse, dq, dk, dv, every dparam), the modifications under test as
// DSL expressions and as reference functions, the comparison of the kernels against the loop over shapes and
// options, the largest absolute difference of two arrays, and a scope forcing the float kernels' ISA path.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include <xtensor/xtensor.hpp>

#include <exprgrad/exprgrad.hpp>

#include "attention_inputs.hpp"

namespace flex_attention_test {

using namespace exprgrad;

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

inline ref_result reference(const xt::xtensor<double, 4>& q, const xt::xtensor<double, 4>& k, const xt::xtensor<double, 4>& v,
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

inline double one(double, double, double, double, double, const double*) { return 1; }

// The modifications under test, as DSL expressions (for the kernels) and as hand-written reference functions.
constexpr auto alibi = attn::score - attn::param<0> * (attn::q_idx - attn::k_idx);
constexpr auto causal = attn::q_idx - attn::k_idx + 1_c;
constexpr auto softcap = fc<30.0> * tanh(attn::score / fc<30.0>);
constexpr auto window = less(attn::q_idx - attn::k_idx, 5_c) * less(attn::k_idx - attn::q_idx, 5_c);  // |i − j| ≤ 5
// two parameters, one of them reading the batch and head indices too
constexpr auto two = attn::score * attn::param<1> + attn::param<0> * sin(attn::k_idx + attn::head - attn::batch);

inline ref_mod ref_alibi_causal() {
    return {[](double s, double, double, double i, double j, const double* p) { return s - p[0] * (i - j); },
            one,
            {[](double, double, double, double i, double j, const double*) { return -(i - j); }},
            [](double, double, double i, double j) { return i - j + 1; }};
}
inline ref_mod ref_softcap_window() {
    return {[](double s, double, double, double, double, const double*) { return 30 * std::tanh(s / 30); },
            [](double s, double, double, double, double, const double*) {
                const double t = std::tanh(s / 30);
                return 1 - t * t;
            },
            {},
            // less()'s ½ at |i − j| = 5 counts as visible
            [](double, double, double i, double j) { return std::fabs(i - j) <= 5 ? 1.0 : 0.0; }};
}
inline ref_mod ref_two_causal() {
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
inline const std::vector<shape_case> shapes = {
    {1, 2, 1, 5, 7, 3, 5}, {2, 4, 2, 70, 67, 9, 17}, {1, 3, 1, 66, 130, 16, 8}, {2, 2, 2, 9, 4, 5, 3}};

inline std::vector<std::vector<double>> head_values(std::size_t n, std::size_t H, std::uint64_t seed) {
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

inline std::vector<attention_options> option_cases(std::size_t B, std::size_t Tk) {
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

}  // namespace flex_attention_test
