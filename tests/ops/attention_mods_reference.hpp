// Helpers of the attention mods tests (test_attention_mods*.cpp): deterministic inputs, a plain double loop of
// flex attention for a modification given as plain C++ (visibility as a C++ condition, the modified score and its
// partials by hand), and the fused kernels checked against it in value, lse, dq, dk, dv and ALiBi's dslopes.
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

namespace attention_mods_test {

using namespace exprgrad;

inline xt::xtensor<double, 4> random4(std::size_t B, std::size_t H, std::size_t T, std::size_t d,
                                      std::uint64_t seed, double amp) {
    auto x = xt::xtensor<double, 4>::from_shape({B, H, T, d});
    std::uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (auto& e : x) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        e = amp * (static_cast<double>(s >> 11) * 0x1.0p-52 - 1.0);
    }
    return x;
}

template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
    REQUIRE(a.size() == b.size());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double x = a.data()[i], y = b.data()[i];
        if (std::isinf(x) && x == y) continue;
        const double e = std::fabs(x - y);
        m = std::isnan(e) ? std::numeric_limits<double>::infinity() : std::max(m, e);
    }
    return m;
}

/// A modification as plain C++: the modified score z(s, h, i, j, m), ∂z/∂s, ∂z/∂m (m = param<0> of head h, or 0)
/// and the visibility of key j to query i.
struct definition {
    std::function<double(double, double, double, double, double)> z, dz_ds, dz_dm;
    std::function<bool(std::size_t, double, double)> visible;  // (b, i, j)
};

/// A visibility that depends on the positions only.
template <class F>
std::function<bool(std::size_t, double, double)> at_positions(F f) {
    return [f](std::size_t, double i, double j) { return f(i, j); };
}

struct ref_result {
    xt::xtensor<double, 4> out, dq, dk, dv;
    xt::xtensor<double, 3> lse;
    std::vector<double> dslope;
};

/// Flex attention with Hq = Hkv, the default scale 1/√d, scores materialised per row, gradients by hand (T_q and
/// T_k may differ).
inline ref_result reference(const xt::xtensor<double, 4>& q, const xt::xtensor<double, 4>& k,
                            const xt::xtensor<double, 4>& v, const xt::xtensor<double, 4>& dout, const definition& f,
                            const std::vector<double>& slope) {
    const std::size_t B = q.shape()[0], H = q.shape()[1], Tq = q.shape()[2], T = k.shape()[2], d = q.shape()[3];
    const std::size_t dv = v.shape()[3];
    const double s = 1.0 / std::sqrt(double(d));
    ref_result r{xt::zeros<double>({B, H, Tq, dv}), xt::zeros<double>(q.shape()), xt::zeros<double>(k.shape()),
                 xt::zeros<double>(v.shape()), xt::zeros<double>({B, H, Tq}), std::vector<double>(H, 0.0)};
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t h = 0; h < H; ++h)
            for (std::size_t i = 0; i < Tq; ++i) {
                const double m = slope.empty() ? 0.0 : slope[h];
                std::vector<double> raw(T), z(T, -INFINITY), p(T, 0.0), dP(T, 0.0);
                double mx = -INFINITY;
                for (std::size_t j = 0; j < T; ++j) {
                    if (!f.visible(b, double(i), double(j))) continue;
                    double dot = 0;
                    for (std::size_t c = 0; c < d; ++c) dot += q(b, h, i, c) * k(b, h, j, c);
                    raw[j] = s * dot;
                    z[j] = f.z(raw[j], double(h), double(i), double(j), m);
                    mx = std::max(mx, z[j]);
                }
                if (mx == -INFINITY) {
                    r.lse(b, h, i) = -INFINITY;
                    continue;
                }
                double l = 0;
                for (std::size_t j = 0; j < T; ++j) l += std::exp(z[j] - mx);
                r.lse(b, h, i) = mx + std::log(l);
                double D = 0;
                for (std::size_t j = 0; j < T; ++j) {
                    p[j] = std::exp(z[j] - r.lse(b, h, i));
                    for (std::size_t c = 0; c < dv; ++c) {
                        r.out(b, h, i, c) += p[j] * v(b, h, j, c);
                        dP[j] += dout(b, h, i, c) * v(b, h, j, c);
                    }
                    D += p[j] * dP[j];
                }
                for (std::size_t j = 0; j < T; ++j) {
                    if (p[j] == 0.0) continue;
                    const double dz = p[j] * (dP[j] - D);
                    const double dsc = dz * f.dz_ds(raw[j], double(h), double(i), double(j), m);
                    r.dslope[h] += dz * f.dz_dm(raw[j], double(h), double(i), double(j), m);
                    for (std::size_t c = 0; c < d; ++c) {
                        r.dq(b, h, i, c) += s * dsc * k(b, h, j, c);
                        r.dk(b, h, j, c) += s * dsc * q(b, h, i, c);
                    }
                    for (std::size_t c = 0; c < dv; ++c) r.dv(b, h, j, c) += p[j] * dout(b, h, i, c);
                }
            }
    return r;
}

struct problem {
    xt::xtensor<double, 4> q, k, v, dout;
    // T = 70: past one 64-row tile and not a multiple of it; d = 5, dv = 3: not SIMD multiples.
    explicit problem(std::size_t T = 70, double amp = 1.0, std::size_t Tk = 0)
        : q(random4(2, 2, T, 5, 11, amp)), k(random4(2, 2, Tk ? Tk : T, 5, 12, amp)),
          v(random4(2, 2, Tk ? Tk : T, 3, 13, 1.0)), dout(random4(2, 2, T, 3, 14, 1.0)) {}
};

/// The fused kernels against the reference, in value and every gradient, to 1e-9.
template <class Mod, class Mask>
void check_against(const problem& P, Mod mod, Mask mask, const definition& f, const std::vector<double>& slope = {},
                   const flex_documents* docs = nullptr) {
    std::vector<xt::xtensor<double, 1>> params;
    if (!slope.empty()) {
        xt::xtensor<double, 1> m = xt::zeros<double>({slope.size()});
        for (std::size_t h = 0; h < slope.size(); ++h) m(h) = slope[h];
        params.push_back(m);
    }
    const auto r = docs ? flex_attention_forward(P.q, P.k, P.v, mod, mask, params, {}, *docs)
                        : flex_attention_forward(P.q, P.k, P.v, mod, mask, params, {});
    const auto g = docs ? flex_attention_vjp(P.q, P.k, P.v, P.dout, mod, mask, params, {}, *docs)
                        : flex_attention_vjp(P.q, P.k, P.v, P.dout, mod, mask, params, {});
    const auto ref = reference(P.q, P.k, P.v, P.dout, f, slope);
    CHECK(max_abs_diff(r.out, ref.out) < 1e-10);
    CHECK(max_abs_diff(r.lse, ref.lse) < 1e-9);
    CHECK(max_abs_diff(g.dq, ref.dq) < 1e-9);
    CHECK(max_abs_diff(g.dk, ref.dk) < 1e-9);
    CHECK(max_abs_diff(g.dv, ref.dv) < 1e-9);
    REQUIRE(g.dparams.size() == params.size());
    if (!slope.empty()) CHECK(max_abs_diff(g.dparams[0], ref.dslope) < 1e-9);
}

inline double score_only(double s, double, double, double, double) { return s; }
inline double one(double, double, double, double, double) { return 1.0; }
inline double zero(double, double, double, double, double) { return 0.0; }

}  // namespace attention_mods_test
