// Attention kernels (ops/attention.hpp) against a naive float64 implementation that materialises the scores,
// central finite differences, masks, non-finite inputs, and thread-count independence.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <exprgrad/check/vjp_check.hpp>
#include <exprgrad/ops/attention.hpp>

#include "attention_inputs.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;

namespace {

using attention_test::lcg;
using attention_test::random4;
using attention_test::to_type;

// ---- the naive reference: scores materialised, every mask decided key by key, float64 ----

struct naive_result {
    xt::xtensor<double, 4> out;
    xt::xtensor<double, 3> lse;
};

bool attends(const attention_options& o, std::size_t b, std::size_t i, std::size_t j, std::size_t Tq, std::size_t Tk) {
    if (!o.key_lengths.empty() && j >= o.key_lengths[b]) return false;
    if (o.causal &&
        static_cast<long long>(j) > static_cast<long long>(i) + static_cast<long long>(Tk) - static_cast<long long>(Tq))
        return false;
    return true;
}

double row_multiplier(const attention_options& o, std::size_t b, std::size_t n, std::size_t Tk, std::size_t d) {
    (void)b;  // the post's n = L_max/2 is one n for the whole call: L_max = T_k, not key_lengths[b]
    const double nn = (o.causal && o.scale.n_choice == scale_n::half_length && o.scale.depends_on_n())
                          ? static_cast<double>(Tk) / 2.0
                          : static_cast<double>(n);
    return o.scale.multiplier(nn, d, o.normalize_qk);
}

// q̂ = q/√(‖q‖² + ε²) per row, or q.
xt::xtensor<double, 4> normalized(const xt::xtensor<double, 4>& x, const attention_options& o) {
    if (!o.normalize_qk) return x;
    auto y = x;
    const std::size_t d = x.shape()[3], rowsn = x.size() / d;
    for (std::size_t r = 0; r < rowsn; ++r) {
        double ss = 0;
        for (std::size_t c = 0; c < d; ++c) ss += x.data()[r * d + c] * x.data()[r * d + c];
        const double den = std::sqrt(ss + o.qk_eps * o.qk_eps);
        for (std::size_t c = 0; c < d; ++c) y.data()[r * d + c] = x.data()[r * d + c] / den;
    }
    return y;
}

// Scaled scores and probabilities of one head; masked entries have p = 0 and the flag false.
struct head_probs {
    std::vector<double> p, raw, s;  // p, q̂·k̂ [Tq][Tk]; s [Tq]
    std::vector<char> on;
    std::vector<double> lse;
};

head_probs probs(const xt::xtensor<double, 4>& qh, const xt::xtensor<double, 4>& kh, std::size_t b, std::size_t h,
                 const attention_options& o) {
    const std::size_t Tq = qh.shape()[2], Tk = kh.shape()[2], d = qh.shape()[3];
    head_probs r;
    r.p.assign(Tq * Tk, 0);
    r.raw.assign(Tq * Tk, 0);
    r.on.assign(Tq * Tk, 0);
    r.s.assign(Tq, 0);
    r.lse.assign(Tq, -std::numeric_limits<double>::infinity());
    for (std::size_t i = 0; i < Tq; ++i) {
        std::size_t n = 0;
        for (std::size_t j = 0; j < Tk; ++j) n += attends(o, b, i, j, Tq, Tk);
        const double s = row_multiplier(o, b, n, Tk, d);
        r.s[i] = s;
        double m = -std::numeric_limits<double>::infinity();
        for (std::size_t j = 0; j < Tk; ++j) {
            if (!attends(o, b, i, j, Tq, Tk)) continue;
            double dot = 0;
            for (std::size_t c = 0; c < d; ++c) dot += qh(b, h, i, c) * kh(b, h, j, c);
            r.raw[i * Tk + j] = dot;
            r.on[i * Tk + j] = 1;
            m = std::max(m, s * dot);
        }
        if (n == 0) continue;
        double z = 0;
        for (std::size_t j = 0; j < Tk; ++j)
            if (r.on[i * Tk + j]) z += std::exp(s * r.raw[i * Tk + j] - m);
        for (std::size_t j = 0; j < Tk; ++j)
            if (r.on[i * Tk + j]) r.p[i * Tk + j] = std::exp(s * r.raw[i * Tk + j] - m) / z;
        r.lse[i] = m + std::log(z);
    }
    return r;
}

naive_result naive_forward(const xt::xtensor<double, 4>& q, const xt::xtensor<double, 4>& k,
                           const xt::xtensor<double, 4>& v, const attention_options& o) {
    const std::size_t B = q.shape()[0], H = q.shape()[1], Tq = q.shape()[2], Tk = k.shape()[2], dv = v.shape()[3];
    const auto qh = normalized(q, o), kh = normalized(k, o);
    naive_result r{xt::xtensor<double, 4>::from_shape({B, H, Tq, dv}), xt::xtensor<double, 3>::from_shape({B, H, Tq})};
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t h = 0; h < H; ++h) {
            const auto P = probs(qh, kh, b, h, o);
            for (std::size_t i = 0; i < Tq; ++i) {
                r.lse(b, h, i) = P.lse[i];
                for (std::size_t c = 0; c < dv; ++c) {
                    double acc = 0;
                    for (std::size_t j = 0; j < Tk; ++j)
                        if (P.on[i * Tk + j]) acc += P.p[i * Tk + j] * v(b, h, j, c);
                    r.out(b, h, i, c) = acc;
                }
            }
        }
    return r;
}

// dq̂ → dq through q̂ = q/√(‖q‖² + ε²): the Jacobian written out, (I/r − q qᵀ/r³) dq̂.
xt::xtensor<double, 4> through_normalization(const xt::xtensor<double, 4>& x, const xt::xtensor<double, 4>& g,
                                             const attention_options& o) {
    if (!o.normalize_qk) return g;
    auto y = g;
    const std::size_t d = x.shape()[3], rowsn = x.size() / d;
    for (std::size_t r = 0; r < rowsn; ++r) {
        const double* xr = x.data() + r * d;
        const double* gr = g.data() + r * d;
        double ss = 0, xg = 0;
        for (std::size_t c = 0; c < d; ++c) {
            ss += xr[c] * xr[c];
            xg += xr[c] * gr[c];
        }
        const double rr = std::sqrt(ss + o.qk_eps * o.qk_eps);
        for (std::size_t c = 0; c < d; ++c) y.data()[r * d + c] = gr[c] / rr - xr[c] * xg / (rr * rr * rr);
    }
    return y;
}

attention_grads<double> naive_vjp(const xt::xtensor<double, 4>& q, const xt::xtensor<double, 4>& k,
                                  const xt::xtensor<double, 4>& v, const xt::xtensor<double, 4>& dout,
                                  const attention_options& o) {
    const std::size_t B = q.shape()[0], H = q.shape()[1], Tq = q.shape()[2], Tk = k.shape()[2], d = q.shape()[3],
                      dv = v.shape()[3];
    const auto qh = normalized(q, o), kh = normalized(k, o);
    attention_grads<double> g;
    g.dq = xt::zeros<double>(q.shape());
    g.dk = xt::zeros<double>(k.shape());
    g.dv = xt::zeros<double>(v.shape());
    auto dqh = g.dq, dkh = g.dk;
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t h = 0; h < H; ++h) {
            const auto P = probs(qh, kh, b, h, o);
            for (std::size_t i = 0; i < Tq; ++i) {
                std::vector<double> dP(Tk, 0.0);
                double D = 0;
                for (std::size_t j = 0; j < Tk; ++j) {
                    if (!P.on[i * Tk + j]) continue;
                    for (std::size_t c = 0; c < dv; ++c) dP[j] += dout(b, h, i, c) * v(b, h, j, c);
                    D += P.p[i * Tk + j] * dP[j];
                }
                for (std::size_t j = 0; j < Tk; ++j) {
                    if (!P.on[i * Tk + j]) continue;
                    const double p = P.p[i * Tk + j], dS = p * (dP[j] - D);
                    for (std::size_t c = 0; c < dv; ++c) g.dv(b, h, j, c) += p * dout(b, h, i, c);
                    for (std::size_t c = 0; c < d; ++c) {
                        dqh(b, h, i, c) += P.s[i] * dS * kh(b, h, j, c);
                        dkh(b, h, j, c) += P.s[i] * dS * qh(b, h, i, c);
                    }
                    g.dscale += dS * P.raw[i * Tk + j];
                    g.dlog_scale += P.s[i] * dS * P.raw[i * Tk + j];
                }
            }
        }
    g.dq = through_normalization(q, dqh, o);
    g.dk = through_normalization(k, dkh, o);
    return g;
}

// ---- comparison helpers ----

template <class A, class Bv>
double max_abs_diff(const A& a, const Bv& b) {
    REQUIRE(a.size() == b.size());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double x = static_cast<double>(a.data()[i]), y = static_cast<double>(b.data()[i]);
        if (std::isinf(x) || std::isinf(y)) {
            if (x != y) return std::numeric_limits<double>::infinity();
            continue;
        }
        if (std::isnan(x) || std::isnan(y)) {  // std::max would skip a NaN difference
            if (!(std::isnan(x) && std::isnan(y))) return std::numeric_limits<double>::infinity();
            continue;
        }
        m = std::max(m, std::fabs(x - y));
    }
    return m;
}

template <class A>
double max_abs(const A& a) {
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::isfinite(static_cast<double>(a.data()[i])))
            m = std::max(m, std::fabs(static_cast<double>(a.data()[i])));
    return m;
}

template <class A, class Bv>
bool bit_equal(const A& a, const Bv& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(*a.data())) == 0;
}

struct shape_case {
    std::size_t B, H, Tq, Tk, d, dv;
};

// Shapes around the block size (64) and the tile width (16 floats, 8 doubles), Tq ≠ Tk both ways.
const std::vector<shape_case> shapes = {
    {1, 1, 1, 1, 1, 1},    {2, 3, 5, 7, 3, 2},     {1, 2, 17, 9, 13, 5},    {1, 1, 64, 64, 64, 64},
    {2, 1, 65, 63, 8, 17}, {1, 2, 70, 130, 33, 7}, {1, 1, 130, 70, 16, 16}, {1, 1, 129, 129, 65, 1},
};

std::vector<attention_options> option_cases(std::size_t B, std::size_t Tk) {
    std::vector<attention_options> v;
    v.push_back({});
    attention_options c;
    c.causal = true;
    v.push_back(c);
    attention_options kl;
    for (std::size_t b = 0; b < B; ++b)
        kl.key_lengths.push_back(b % 2 ? Tk : (Tk * 2) / 3 + 1 > Tk ? Tk : (Tk * 2) / 3 + 1);
    kl.scale = scale::entropy_invariant(16);
    v.push_back(kl);
    attention_options ck = kl;
    ck.causal = true;
    ck.scale = scale::gradient_max();
    v.push_back(ck);
    attention_options n;
    n.normalize_qk = true;
    n.causal = true;
    n.scale = scale::gradient_max();
    v.push_back(n);
    attention_options f;
    f.scale = scale::fixed(0.7);
    f.normalize_qk = true;
    v.push_back(f);
    attention_options h;
    h.causal = true;
    h.scale = scale::gradient_max(scale_n::half_length);
    v.push_back(h);
    attention_options hk = kl;  // padded sequences share the single n = T_k/2
    hk.causal = true;
    hk.scale = scale::entropy_invariant(16, scale_n::half_length);
    v.push_back(hk);
    return v;
}

template <class T>
void compare_with_naive(double tol_out, double tol_grad) {
    std::uint64_t seed = 1;
    for (const auto& sc : shapes) {
        for (const auto& o : option_cases(sc.B, sc.Tk)) {
            CAPTURE(sc.B);
            CAPTURE(sc.H);
            CAPTURE(sc.Tq);
            CAPTURE(sc.Tk);
            CAPTURE(sc.d);
            CAPTURE(sc.dv);
            CAPTURE(o.causal);
            CAPTURE(o.normalize_qk);
            CAPTURE(o.scale.to_string());
            CAPTURE(o.key_lengths.size());
            const auto q = random4<T>(sc.B, sc.H, sc.Tq, sc.d, seed++, 1.5);
            const auto k = random4<T>(sc.B, sc.H, sc.Tk, sc.d, seed++, 1.5);
            const auto v = random4<T>(sc.B, sc.H, sc.Tk, sc.dv, seed++);
            const auto dout = random4<T>(sc.B, sc.H, sc.Tq, sc.dv, seed++);
            const auto ref = naive_forward(to_type<double>(q), to_type<double>(k), to_type<double>(v), o);
            const auto [out, lse] = attention_forward(q, k, v, o);
            CHECK(max_abs_diff(out, ref.out) <= tol_out);
            CHECK(max_abs_diff(lse, ref.lse) <= tol_out * (1 + max_abs(ref.lse)));
            const auto g = attention_vjp(q, k, v, out, lse, dout, o);
            const auto rg =
                naive_vjp(to_type<double>(q), to_type<double>(k), to_type<double>(v), to_type<double>(dout), o);
            CHECK(max_abs_diff(g.dq, rg.dq) <= tol_grad * (1 + max_abs(rg.dq)));
            CHECK(max_abs_diff(g.dk, rg.dk) <= tol_grad * (1 + max_abs(rg.dk)));
            CHECK(max_abs_diff(g.dv, rg.dv) <= tol_grad * (1 + max_abs(rg.dv)));
            CHECK(std::fabs(g.dscale - rg.dscale) <=
                  tol_grad * (1 + std::fabs(rg.dscale)) * std::sqrt(double(sc.Tq * sc.Tk)));
            CHECK(std::fabs(g.dlog_scale - rg.dlog_scale) <=
                  tol_grad * (1 + std::fabs(rg.dlog_scale)) * std::sqrt(double(sc.Tq * sc.Tk)));
        }
    }
}

}  // namespace

TEST_CASE("attention forward and VJP match the naive float64 implementation (double)") {
    compare_with_naive<double>(1e-12, 1e-11);
}

namespace {
/// Forces the float kernels' 512-bit path on or off for a scope (off where the CPU lacks AVX-512F).
struct avx512_scope {
    explicit avx512_scope(bool on) { exprgrad::kernels::force_avx512(on); }
    ~avx512_scope() { exprgrad::kernels::reset_avx512(); }
    avx512_scope(const avx512_scope&) = delete;
    avx512_scope& operator=(const avx512_scope&) = delete;
};
}  // namespace

TEST_CASE("attention forward and VJP match the naive float64 implementation (float)") {
    // float32 accumulation over up to 130 keys and d = 65: a few ulp per term. Both float paths: 256-bit
    // kernels and, where the CPU has AVX-512F, the 512-bit tiles and exponential.
    for (const bool wide : {false, true}) {
        CAPTURE(wide);
        avx512_scope scope(wide);
        CHECK(exprgrad::kernels::avx512_enabled() ==
              (wide && EXPRGRAD_HAS_AVX512_KERNELS && __builtin_cpu_supports("avx512f")));
        compare_with_naive<float>(2e-5, 1e-4);
    }
}

TEST_CASE("the 512-bit and 256-bit float paths agree, and their matrix products are bit-identical") {
    if (!exprgrad::kernels::avx512_enabled() && !(EXPRGRAD_HAS_AVX512_KERNELS && __builtin_cpu_supports("avx512f"))) {
        MESSAGE("no 512-bit path on this CPU or build: nothing to compare");
        return;
    }
    // With 512-bit batches as xsimd's default (-march=x86-64-v4) both calls would run the same code.
    if (exprgrad::kernels::tiles::tile_width<float> != 16) {
        MESSAGE("built with 512-bit xsimd batches (-march=x86-64-v4): the generic path is 512-bit too");
        return;
    }
    // Shapes that exercise 8-row tiles and their 4/2/1-row remainders, 32- and 16-column strips (d = 48, 80)
    // and the per-row limits of causal and padded blocks.
    const std::vector<shape_case> big = {{1, 2, 300, 300, 64, 64}, {2, 1, 77, 190, 48, 80}, {1, 1, 129, 65, 16, 33}};
    std::uint64_t seed = 900;
    for (const auto& sc : big) {
        for (const auto& o : option_cases(sc.B, sc.Tk)) {
            CAPTURE(sc.Tq);
            CAPTURE(sc.Tk);
            CAPTURE(sc.d);
            CAPTURE(o.causal);
            CAPTURE(o.normalize_qk);
            CAPTURE(o.scale.to_string());
            const auto q = random4<float>(sc.B, sc.H, sc.Tq, sc.d, seed++, 1.5);
            const auto k = random4<float>(sc.B, sc.H, sc.Tk, sc.d, seed++, 1.5);
            const auto v = random4<float>(sc.B, sc.H, sc.Tk, sc.dv, seed++);
            const auto dout = random4<float>(sc.B, sc.H, sc.Tq, sc.dv, seed++);
            attention_result<float> f[2];
            attention_grads<float> g[2];
            for (int wide = 0; wide < 2; ++wide) {
                avx512_scope scope(wide != 0);
                f[wide] = attention_forward(q, k, v, o);
                g[wide] = attention_vjp(q, k, v, f[wide].out, f[wide].lse, dout, o);
            }
            // The exponentials differ (≤ 2 ulp each), so the results agree to float rounding, not bitwise.
            CHECK(max_abs_diff(f[0].out, f[1].out) <= 1e-5);
            CHECK(max_abs_diff(f[0].lse, f[1].lse) <= 1e-5 * (1 + max_abs(f[0].lse)));
            CHECK(max_abs_diff(g[0].dq, g[1].dq) <= 1e-4 * (1 + max_abs(g[0].dq)));
            CHECK(max_abs_diff(g[0].dk, g[1].dk) <= 1e-4 * (1 + max_abs(g[0].dk)));
            CHECK(max_abs_diff(g[0].dv, g[1].dv) <= 1e-4 * (1 + max_abs(g[0].dv)));
            CHECK(g[0].dscale == doctest::Approx(g[1].dscale).epsilon(1e-3).scale(1e-2));
        }
    }
    // The register tiles alone: C += A·B through both paths, every element one FMA chain in k order.
    for (const std::size_t rows_ : {1u, 5u, 8u, 13u, 64u})
        for (const std::size_t cols : {16u, 32u, 48u, 64u}) {
            CAPTURE(rows_);
            CAPTURE(cols);
            const std::size_t K = 37;
            std::vector<float> a(rows_ * K), b(K * cols), c0(rows_ * cols), c1;
            std::uint64_t st = 7 + rows_ * 100 + cols;
            for (auto* x : {&a, &b, &c0})
                for (auto& e : *x) {
                    st = st * 6364136223846793005ULL + 1442695040888963407ULL;
                    e = static_cast<float>(static_cast<double>(st >> 11) * 0x1.0p-53 * 2 - 1);
                }
            c1 = c0;
            const std::vector<float> c_init = c0;
            std::vector<std::size_t> beg(rows_), end(rows_);
            for (std::size_t r = 0; r < rows_; ++r) {  // ordinary, empty (r % 5 == 3) and inverted (r % 5 == 4)
                beg[r] = r % 5 == 4 ? 20 : r % 3;
                end[r] = r % 5 == 3 ? beg[r] : r % 5 == 4 ? 10 : K - (r * 7) % 11;
            }
            {
                avx512_scope scope(false);
                exprgrad::kernels::tiles::gemm<true, true, 0, 0>(rows_, cols, K, a.data(), K, 1, b.data(), cols,
                                                                 c0.data(), cols, beg.data(), end.data());
            }
            {
                avx512_scope scope(true);
                exprgrad::kernels::tiles::gemm<true, true, 0, 0>(rows_, cols, K, a.data(), K, 1, b.data(), cols,
                                                                 c1.data(), cols, beg.data(), end.data());
            }
            CHECK(bit_equal(c0, c1));
            // without accumulation and without limits too
            std::vector<float> d0(rows_ * cols, 7.0f), d1(rows_ * cols, -7.0f);
            {
                avx512_scope scope(false);
                exprgrad::kernels::tiles::gemm<false, false, 0, 0>(rows_, cols, K, a.data(), K, 1, b.data(), cols,
                                                                   d0.data(), cols, nullptr, nullptr);
            }
            {
                avx512_scope scope(true);
                exprgrad::kernels::tiles::gemm<false, false, 0, 0>(rows_, cols, K, a.data(), K, 1, b.data(), cols,
                                                                   d1.data(), cols, nullptr, nullptr);
            }
            CHECK(bit_equal(d0, d1));
            // and against a plain loop in double over each row's own k range, within float rounding
            double worst = 0;
            for (std::size_t r = 0; r < rows_; ++r)
                for (std::size_t j = 0; j < cols; ++j) {
                    double ref = c_init[r * cols + j];
                    for (std::size_t kk = beg[r]; kk < end[r]; ++kk) ref += double(a[r * K + kk]) * b[kk * cols + j];
                    worst = std::max(worst, std::fabs(ref - c1[r * cols + j]));
                }
            CHECK(worst <= 1e-5);
        }
}

TEST_CASE("the 512-bit float exponential: within 2 ulp of exp over the whole range, special values exact") {
    if (!(EXPRGRAD_HAS_AVX512_KERNELS && __builtin_cpu_supports("avx512f"))) {
        MESSAGE("no 512-bit path on this CPU or build: the 512-bit exponential is not used");
        return;
    }
    avx512_scope scope(true);
    std::vector<float> x;
    for (float t = -104.0f; t <= 88.7f; t += 0.0137f) x.push_back(t);
    for (float t = -0.5f; t <= 0.5f; t += 1.0e-4f) x.push_back(t);
    const float inf = std::numeric_limits<float>::infinity();
    x.insert(x.end(), {0.0f, -0.0f, -inf, 88.72f, 89.0f, 100.0f, 1e30f, -1e30f, -87.33f, -103.9f, -150.0f});
    std::vector<float> y(x.size());
    // exp_shifted computes y = exp(x − shift); shift 0 gives exp itself. The tail (x.size() mod 16) is masked.
    exprgrad::kernels::rows::exp_shifted(x.data(), 0.0f, y.data(), x.size());
    double worst_ulp = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        CAPTURE(x[i]);
        const long double ref = std::exp(static_cast<long double>(x[i]));
        if (ref > static_cast<long double>(std::numeric_limits<float>::max())) {
            // above the largest float: inf, or the largest float when the exact value rounds down to it
            CHECK(y[i] >= std::numeric_limits<float>::max());
            continue;
        }
        // one ulp of the correctly rounded float (the subnormal spacing below the normal range)
        const float r = static_cast<float>(ref);
        const double ulp = r >= std::numeric_limits<float>::min() ? double(std::nextafter(r, inf)) - double(r)
                                                                  : double(std::numeric_limits<float>::denorm_min());
        worst_ulp = std::max(worst_ulp, std::fabs(double(y[i]) - double(ref)) / ulp);
    }
    CHECK(worst_ulp <= 2.0);
    MESSAGE("worst error of the 512-bit exp: " << worst_ulp << " ulp");
    float special[17] = {-inf, std::numeric_limits<float>::quiet_NaN(), inf, 0.0f};
    float out[17];
    exprgrad::kernels::rows::exp_shifted(special, 0.0f, out, 4);
    CHECK(out[0] == 0.0f);
    CHECK(std::isnan(out[1]));
    CHECK(out[2] == inf);
    CHECK(out[3] == 1.0f);
}

TEST_CASE("convenience forms equal the two-step forms") {
    const auto q = random4<float>(2, 2, 20, 9, 11), k = random4<float>(2, 2, 30, 9, 12),
               v = random4<float>(2, 2, 30, 4, 13);
    const auto dout = random4<float>(2, 2, 20, 4, 14);
    attention_options o;
    o.causal = true;
    const auto f = attention_forward(q, k, v, o);
    CHECK(bit_equal(attention(q, k, v, o), f.out));
    const auto g1 = attention_vjp(q, k, v, f.out, f.lse, dout, o);
    const auto g2 = attention_vjp(q, k, v, dout, o);
    CHECK(bit_equal(g1.dq, g2.dq));
    CHECK(bit_equal(g1.dk, g2.dk));
    CHECK(bit_equal(g1.dv, g2.dv));
    CHECK(g1.dscale == g2.dscale);
}

TEST_CASE("attention_reuse::forward: the forward's packing reused only when it is the same problem") {
    // d, dv = 24, 40 (padded copies) and 64, 64 (k, v and dout read in place, dk and dv accumulated in place)
    for (const std::size_t d : {24u, 64u}) {
        const std::size_t dv = d == 24 ? 40 : 64;
        CAPTURE(d);
        const auto q = random4<float>(2, 2, 70, d, 21), k = random4<float>(2, 2, 90, d, 22),
                   v = random4<float>(2, 2, 90, dv, 23), dout = random4<float>(2, 2, 70, dv, 24);
        const auto q2 = random4<float>(2, 2, 70, d, 25);
        for (const bool cosine : {false, true}) {
            CAPTURE(cosine);
            attention_options o;
            o.causal = true;
            o.normalize_qk = cosine;
            o.scale = scale::gradient_max();
            const auto ref = attention_vjp(q, k, v, dout, o);  // packs everything itself
            attention_workspace<float> ws;
            xt::xtensor<float, 4> out;
            xt::xtensor<float, 3> lse;
            attention_grads<float> g;
            auto same = [&](const attention_grads<float>& a, const attention_grads<float>& b) {
                return bit_equal(a.dq, b.dq) && bit_equal(a.dk, b.dk) && bit_equal(a.dv, b.dv) && a.dscale == b.dscale;
            };
            // Fresh workspace: nothing to reuse, packs.
            const auto f = attention_forward(q, k, v, o);
            attention_vjp_into(q, k, v, f.out, f.lse, dout, o, g, ws, attention_reuse::forward);
            CHECK_FALSE(ws.problem.reused);
            CHECK(same(g, ref));
            // After the forward on the same arrays: reused, same bits.
            attention_forward_into(q, k, v, o, out, lse, ws);
            attention_vjp_into(q, k, v, out, lse, dout, o, g, ws, attention_reuse::forward);
            CHECK(ws.problem.reused);
            CHECK(same(g, ref));
            attention_vjp_into(q, k, v, out, lse, dout, o, g, ws);  // attention_reuse::none: packs
            CHECK_FALSE(ws.problem.reused);
            CHECK(same(g, ref));
            // After a forward on q with o, a VJP on other arrays or options packs again and gives their own
            // gradients: another q array, another mask, other key lengths.
            auto packs_again = [&](const xt::xtensor<float, 4>& qx, const attention_options& ox) {
                const auto want = attention_vjp(qx, k, v, dout, ox);
                const auto fx = attention_forward(qx, k, v, ox);
                attention_forward_into(q, k, v, o, out, lse, ws);
                attention_vjp_into(qx, k, v, fx.out, fx.lse, dout, ox, g, ws, attention_reuse::forward);
                CHECK_FALSE(ws.problem.reused);
                CHECK(same(g, want));
            };
            packs_again(q2, o);
            attention_options o2 = o;
            o2.causal = false;
            packs_again(q, o2);
            attention_options o4 = o;
            o4.key_lengths = {50, 90};
            packs_again(q, o4);
        }
    }
}

namespace {

// attention_vjp against central differences (float64) through check::vjp_check: every element of q, k, v
// (and, for a fixed scale, s and log s), plus random directions and NaN propagation from q, k and v.
using arrays = std::vector<xt::xarray<double>>;

xt::xtensor<double, 4> as4(const xt::xarray<double>& a) { return a; }

void gradcheck(const attention_options& o, std::size_t Tq, std::size_t Tk, std::size_t d, std::size_t dv,
               std::uint64_t seed, bool nan_propagates = true) {
    const bool fixed = o.scale.which == scale_policy::kind::fixed;
    arrays in = {random4<double>(2, 1, Tq, d, seed), random4<double>(2, 1, Tk, d, seed + 1),
                 random4<double>(2, 1, Tk, dv, seed + 2)};
    check::vjp_check_options c;
    c.rtol = 1e-6;
    c.max_elements = std::size_t(-1);  // every element, as the hand-written loop did
    c.seed = seed + 3;
    c.nan_entries = nan_propagates ? 1 : 0;  // entry 0 is read by every row that attends a key
    c.nan_args = {0, 1, 2};                  // a NaN scale is refused (it throws), not propagated
    // inputs: q, k, v and, for a fixed scale, the scale parameter p (s = p, or s = exp(p) for log s)
    auto with_scale = [&](const arrays& x, bool log_s) {
        attention_options ox = o;
        if (fixed) ox.scale = scale::fixed(log_s ? std::exp(x[3]()) : x[3]());
        return ox;
    };
    for (const bool log_s : {false, true}) {
        if (log_s && !fixed) break;
        auto f = [&](const arrays& x) {
            return xt::xarray<double>(attention(as4(x[0]), as4(x[1]), as4(x[2]), with_scale(x, log_s)));
        };
        auto vjp = [&](const arrays& x, const xt::xarray<double>& dout) {
            const auto g = attention_vjp(as4(x[0]), as4(x[1]), as4(x[2]), as4(dout), with_scale(x, log_s));
            arrays r = {g.dq, g.dk, g.dv};
            if (fixed) r.push_back(xt::xarray<double>(log_s ? g.dlog_scale : g.dscale));
            return r;
        };
        arrays args = in;
        if (fixed) args.push_back(xt::xarray<double>(log_s ? std::log(o.scale.value) : o.scale.value));
        const auto r = check::vjp_check(f, vjp, args, c);
        const std::string which = log_s ? "parameter log s" : "parameter s";
        INFO(which, ": ", r.message());
        CHECK(r);
    }
}

}  // namespace

TEST_CASE("gradcheck: central differences in float64 for dq, dk, dv, dscale, dlog_scale") {
    attention_options o;
    o.scale = scale::fixed(0.8);
    SUBCASE("no mask") { gradcheck(o, 5, 7, 3, 2, 100); }
    SUBCASE("causal, Tq < Tk, key lengths") {
        o.causal = true;
        o.key_lengths = {6, 3};
        gradcheck(o, 4, 7, 5, 3, 200);
    }
    SUBCASE("through normalize_qk") {
        o.normalize_qk = true;
        o.scale = scale::fixed(4.0);
        gradcheck(o, 6, 5, 4, 2, 300);
    }
    SUBCASE("normalize_qk with a per-row policy, causal Tq > Tk (fully masked rows)") {
        o.normalize_qk = true;
        o.causal = true;
        o.scale = scale::gradient_max();
        // rows attending no key ignore a NaN by design (the fully-masked test case covers them)
        gradcheck(o, 8, 5, 3, 2, 400, false);
    }
    SUBCASE("more than one block (two-pass and single-pass paths agree with differences)") {
        o.causal = true;
        gradcheck(o, 66, 67, 2, 1, 500);
    }
}

TEST_CASE("fully masked rows: zero output, lse = -inf, zero gradients, masked entries never read") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    auto q = random4<double>(2, 2, 6, 4, 1), k = random4<double>(2, 2, 4, 4, 2), v = random4<double>(2, 2, 4, 3, 3);
    auto dout = random4<double>(2, 2, 6, 3, 4);
    attention_options o;
    o.causal = true;         // Tq = 6 > Tk = 4: rows 0 and 1 attend nothing
    o.key_lengths = {0, 3};  // batch 0: every row masked; batch 1: key 3 is padding
    const auto ref = naive_forward(q, k, v, o);
    const auto rg = naive_vjp(q, k, v, dout, o);
    // Poison everything no row may read: padding keys, and the dout of rows that attend nothing.
    for (std::size_t h = 0; h < 2; ++h) {
        for (std::size_t c = 0; c < 4; ++c) k(0, h, 1, c) = k(1, h, 3, c) = nan;
        for (std::size_t c = 0; c < 3; ++c) v(0, h, 2, c) = v(1, h, 3, c) = nan;
        for (std::size_t i = 0; i < 6; ++i)
            for (std::size_t c = 0; c < 3; ++c)
                if (i < 2) dout(1, h, i, c) = nan;
        for (std::size_t i = 0; i < 6; ++i)
            for (std::size_t c = 0; c < 3; ++c) dout(0, h, i, c) = nan;
    }
    const auto [out, lse] = attention_forward(q, k, v, o);
    for (std::size_t h = 0; h < 2; ++h) {
        for (std::size_t i = 0; i < 6; ++i) {
            CHECK(lse(0, h, i) == -std::numeric_limits<double>::infinity());
            for (std::size_t c = 0; c < 3; ++c) CHECK(out(0, h, i, c) == 0.0);
        }
        for (std::size_t i = 0; i < 2; ++i) {
            CHECK(lse(1, h, i) == -std::numeric_limits<double>::infinity());
            for (std::size_t c = 0; c < 3; ++c) CHECK(out(1, h, i, c) == 0.0);
        }
    }
    CHECK(max_abs_diff(out, ref.out) <= 1e-13);
    const auto g = attention_vjp(q, k, v, out, lse, dout, o);
    CHECK(max_abs_diff(g.dq, rg.dq) <= 1e-13);
    CHECK(max_abs_diff(g.dk, rg.dk) <= 1e-13);
    CHECK(max_abs_diff(g.dv, rg.dv) <= 1e-13);
    CHECK(std::isfinite(g.dscale));
    CHECK(g.dscale == doctest::Approx(rg.dscale).epsilon(1e-12));
    for (std::size_t h = 0; h < 2; ++h)
        for (std::size_t c = 0; c < 4; ++c) CHECK(g.dq(0, h, 3, c) == 0.0);
}

TEST_CASE("float, both paths: masked rows and NaN padding at tile-sized shapes (d = 64, in-place operands)") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    // Tq = 70 > Tk = 66 causal: rows 0..3 attend nothing; batch 0 has no keys at all, batch 1 has 40.
    auto q = random4<float>(2, 2, 70, 64, 31), k = random4<float>(2, 2, 66, 64, 32),
         v = random4<float>(2, 2, 66, 64, 33);
    auto dout = random4<float>(2, 2, 70, 64, 34);
    attention_options o;
    o.causal = true;
    o.key_lengths = {0, 40};
    const auto ref = naive_forward(to_type<double>(q), to_type<double>(k), to_type<double>(v), o);
    const auto rg = naive_vjp(to_type<double>(q), to_type<double>(k), to_type<double>(v), to_type<double>(dout), o);
    for (std::size_t h = 0; h < 2; ++h) {
        for (std::size_t j = 0; j < 66; ++j)
            for (std::size_t c = 0; c < 64; ++c) {
                k(0, h, j, c) = v(0, h, j, c) = nan;  // batch 0: every key is padding
                if (j >= 40) k(1, h, j, c) = v(1, h, j, c) = nan;
            }
        for (std::size_t i = 0; i < 70; ++i)
            for (std::size_t c = 0; c < 64; ++c) {
                dout(0, h, i, c) = nan;
                if (i < 4) dout(1, h, i, c) = nan;  // rows that attend nothing
            }
    }
    for (const bool wide : {false, true}) {
        CAPTURE(wide);
        avx512_scope scope(wide);
        const auto [out, lse] = attention_forward(q, k, v, o);
        const auto g = attention_vjp(q, k, v, out, lse, dout, o);
        CHECK(max_abs_diff(out, ref.out) <= 2e-5);  // a NaN anywhere fails (max_abs_diff counts it as inf)
        CHECK(max_abs_diff(g.dq, rg.dq) <= 1e-4 * (1 + max_abs(rg.dq)));
        CHECK(max_abs_diff(g.dk, rg.dk) <= 1e-4 * (1 + max_abs(rg.dk)));
        CHECK(max_abs_diff(g.dv, rg.dv) <= 1e-4 * (1 + max_abs(rg.dv)));
        CHECK(std::isfinite(g.dscale));
        for (std::size_t h = 0; h < 2; ++h)
            for (std::size_t i = 0; i < 4; ++i) CHECK(lse(1, h, i) == -std::numeric_limits<float>::infinity());
    }
}

TEST_CASE("causal: future keys are never read (NaN there leaves earlier rows exact)") {
    auto q = random4<float>(1, 1, 100, 8, 5), k = random4<float>(1, 1, 100, 8, 6), v = random4<float>(1, 1, 100, 8, 7);
    const auto dout = random4<float>(1, 1, 100, 8, 8);
    attention_options o;
    o.causal = true;
    const auto clean = attention_forward(q, k, v, o);
    const auto gclean = attention_vjp(q, k, v, clean.out, clean.lse, dout, o);
    for (std::size_t c = 0; c < 8; ++c) k(0, 0, 70, c) = v(0, 0, 70, c) = std::numeric_limits<float>::quiet_NaN();
    const auto dirty = attention_forward(q, k, v, o);
    const auto gdirty = attention_vjp(q, k, v, dirty.out, dirty.lse, dout, o);
    for (std::size_t i = 0; i < 100; ++i)
        for (std::size_t c = 0; c < 8; ++c) {
            if (i < 70) {
                CHECK(dirty.out(0, 0, i, c) == clean.out(0, 0, i, c));
                CHECK(gdirty.dq(0, 0, i, c) == gclean.dq(0, 0, i, c));
            } else {
                CHECK(std::isnan(dirty.out(0, 0, i, c)));
            }
        }
}

TEST_CASE("NaN and Inf in attended inputs propagate to the rows that use them") {
    auto q = random4<double>(1, 1, 4, 3, 9), k = random4<double>(1, 1, 5, 3, 10), v = random4<double>(1, 1, 5, 2, 11);
    q(0, 0, 1, 0) = std::numeric_limits<double>::quiet_NaN();
    v(0, 0, 4, 1) = std::numeric_limits<double>::infinity();
    const auto out = attention(q, k, v);
    CHECK(std::isnan(out(0, 0, 1, 0)));
    CHECK(std::isnan(out(0, 0, 1, 1)));
    CHECK(std::isfinite(out(0, 0, 0, 0)));
    CHECK(std::isinf(out(0, 0, 0, 1)));  // v = +inf with p > 0
    CHECK(std::isfinite(out(0, 0, 2, 0)));
}

TEST_CASE("huge scores (±1e4) stay finite and exact") {
    // Scores s·q·k up to ±1e4: exp would overflow without the running maximum.
    for (int sign : {1, -1}) {
        auto q = random4<double>(1, 2, 70, 4, 20), k = random4<double>(1, 2, 90, 4, 21),
             v = random4<double>(1, 2, 90, 3, 22);
        for (auto& x : q) x *= 50.0 * sign;
        for (auto& x : k) x *= 50.0;
        const auto dout = random4<double>(1, 2, 70, 3, 23);
        attention_options o;
        o.scale = scale::fixed(4.0);  // |s q·k| up to 4·50·50·4 = 4e4, typical ~1e4
        o.causal = sign > 0;
        const auto ref = naive_forward(q, k, v, o);
        const auto [out, lse] = attention_forward(q, k, v, o);
        CHECK(max_abs(ref.lse) > 5e3);
        CHECK(max_abs_diff(out, ref.out) <= 1e-10);
        CHECK(max_abs_diff(lse, ref.lse) <= 1e-9);
        const auto g = attention_vjp(q, k, v, out, lse, dout, o);
        const auto rg = naive_vjp(q, k, v, dout, o);
        CHECK(max_abs_diff(g.dq, rg.dq) <= 1e-7 * (1 + max_abs(rg.dq)));
        CHECK(max_abs_diff(g.dk, rg.dk) <= 1e-7 * (1 + max_abs(rg.dk)));
        CHECK(max_abs_diff(g.dv, rg.dv) <= 1e-9 * (1 + max_abs(rg.dv)));
        // float32: finite, and close (lse is rounded to float at |lse| ~ 1e4, so p carries ~1e-3 relative error).
        const auto [outf, lsef] = attention_forward(to_type<float>(q), to_type<float>(k), to_type<float>(v), o);
        const auto gf =
            attention_vjp(to_type<float>(q), to_type<float>(k), to_type<float>(v), outf, lsef, to_type<float>(dout), o);
        for (const float x : outf) CHECK(std::isfinite(x));
        for (const float x : gf.dq) CHECK(std::isfinite(x));
        for (const float x : gf.dk) CHECK(std::isfinite(x));
        CHECK(max_abs_diff(outf, ref.out) <= 1e-2);
        CHECK(max_abs_diff(gf.dv, rg.dv) <= 1e-2 * (1 + max_abs(rg.dv)));
    }
}

namespace {
// The message of the exception f throws as E ("no exception" when none).
template <class E, class F>
std::string thrown(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    return "no exception";
}
bool one_short_line(const std::string& m) { return m.size() <= 400 && m.find('\n') == std::string::npos; }
}  // namespace

TEST_CASE("scores that overflow the type throw naming the row; NaN inputs still propagate (issue 16)") {
    // q = k = 1e20 in float: q·k = 4e40 overflows float, so no finite lse exists. It used to come out as a
    // silent NaN in out and lse. Both float paths (256-bit; 512-bit where the CPU has it).
    for (const bool wide : {false, true}) {
        CAPTURE(wide);
        avx512_scope scope(wide);
        auto q = random4<float>(1, 2, 5, 4, 31), k = random4<float>(1, 2, 6, 4, 32), v = random4<float>(1, 2, 6, 3, 33);
        const auto fine = attention_forward(q, k, v);  // the same shapes without overflow: finite
        for (const float x : fine.lse) CHECK(std::isfinite(x));
        auto big_q = q, big_k = k, big_v = v;
        for (auto& x : big_q) x = 1e20f;
        for (auto& x : big_k) x = 1e20f;
        for (auto& x : big_v) x = 1e20f;
        std::string m = thrown<std::overflow_error>([&] { attention_forward(big_q, big_k, big_v); });
        CHECK(m.find("exprgrad::attention_forward: scores overflow float at batch 0 head 0 row 0") == 0);
        CHECK(one_short_line(m));
        // The convenience forms and the VJP's recomputing form throw too.
        CHECK(thrown<std::overflow_error>([&] { attention(big_q, big_k, big_v); }).find("overflow") !=
              std::string::npos);
        CHECK(thrown<std::overflow_error>([&] { attention_vjp(big_q, big_k, big_v, big_q); }).find("overflow") !=
              std::string::npos);
        // One row of head 1 overflows (causal: row 3 attends keys 0..4); the message names it.
        for (auto& x : k) x = std::abs(x) + 1.0f;  // every term of row 3's scores beyond 1.5e38
        auto one = q;
        for (std::size_t x = 0; x < 4; ++x) one(0, 1, 3, x) = 3e38f;
        attention_options causal;
        causal.causal = true;
        m = thrown<std::overflow_error>([&] { attention_forward(one, k, v, causal); });
        CHECK(m.find("scores overflow float at batch 0 head 1 row 3,") != std::string::npos);
        CHECK(m.find("over its 5 keys") != std::string::npos);
        // Negative overflow (every score −inf) is no better: exp(−inf + inf) is NaN.
        for (std::size_t x = 0; x < 4; ++x) one(0, 1, 3, x) = -3e38f;
        m = thrown<std::overflow_error>([&] { attention_forward(one, k, v, causal); });
        CHECK(m.find("at batch 0 head 1 row 3,") != std::string::npos);
        // NaN in an attended input is propagation, not overflow: no exception, that row NaN (as documented),
        // and next to an overflowing row elsewhere the error names the overflowing one.
        auto nan_q = q;
        nan_q(0, 0, 2, 1) = std::numeric_limits<float>::quiet_NaN();
        const auto r = attention_forward(nan_q, k, v);
        CHECK(std::isnan(r.lse(0, 0, 2)));
        CHECK(std::isnan(r.out(0, 0, 2, 0)));
        CHECK(std::isfinite(r.lse(0, 0, 1)));
        auto mixed = nan_q;
        for (std::size_t x = 0; x < 4; ++x) mixed(0, 1, 4, x) = 1e30f;
        // scores ~1e20 elsewhere are fine; head 0 row 2 reads its NaN; head 1 row 4 overflows
        m = thrown<std::overflow_error>([&] { attention_forward(mixed, big_k, v); });
        CHECK(m.find("at batch 0 head 1 row 4,") != std::string::npos);
        auto nan_k = big_k;
        nan_k(0, 0, 0, 0) = std::numeric_limits<float>::quiet_NaN();  // every row of head 0 reads it
        m = thrown<std::overflow_error>([&] { attention_forward(big_q, nan_k, v); });
        CHECK(m.find("at batch 0 head 1 row 0,") != std::string::npos);
        // A NaN key read by every row of both heads: propagation everywhere, no exception.
        auto all_nan = k;
        all_nan(0, 0, 0, 0) = all_nan(0, 1, 0, 0) = std::numeric_limits<float>::quiet_NaN();
        const auto rn = attention_forward(big_q, all_nan, v);
        for (const float x : rn.lse) CHECK(std::isnan(x));
        // Masked keys are never read: huge values there change nothing.
        attention_options pad;
        pad.key_lengths = {4};
        auto masked_k = k;
        for (std::size_t x = 0; x < 4; ++x) masked_k(0, 0, 5, x) = 3e38f;
        for (const float x : attention_forward(q, masked_k, v, pad).lse) CHECK(std::isfinite(x));
    }
    // double overflows too (1e200² > 1.8e308), and says so.
    auto qd = random4<double>(1, 1, 2, 3, 34), kd = random4<double>(1, 1, 2, 3, 35), vd = random4<double>(1, 1, 2, 3, 36);
    for (auto& x : qd) x = 1e200;
    for (auto& x : kd) x = -1e200;
    CHECK(thrown<std::overflow_error>([&] { attention_forward(qd, kd, vd); })
              .find("exprgrad::attention_forward: scores overflow double at batch 0 head 0 row 0") == 0);
}

TEST_CASE("the VJP: overflowing scores or products dout·v throw naming the row, never NaN (issue 16)") {
    for (const bool wide : {false, true}) {
        CAPTURE(wide);
        avx512_scope scope(wide);
        const auto q = random4<float>(1, 2, 5, 4, 41), k = random4<float>(1, 2, 6, 4, 42),
                   v = random4<float>(1, 2, 6, 3, 43), dout = random4<float>(1, 2, 5, 3, 44);
        const auto f = attention_forward(q, k, v);
        // Scores that overflow, with a finite lse passed in.
        auto big_q = q, big_k = k;
        for (auto& x : big_q) x = 1e20f;
        for (auto& x : big_k) x = 1e20f;
        std::string m = thrown<std::overflow_error>([&] { attention_vjp(big_q, big_k, v, f.out, f.lse, dout); });
        CHECK(m.find("exprgrad::attention_vjp: scores overflow float at batch 0 head 0 row 0,") == 0);
        CHECK(one_short_line(m));
        // Finite scores of 1e3 against the lse of other inputs: exp(s·q·k − lse) overflows; the lse is named.
        auto q3 = q;
        auto k3 = k;
        for (auto& x : k3) x = std::abs(x) + 1.0f;
        for (auto& x : q3) x = std::abs(x) + 1e3f;
        m = thrown<std::overflow_error>([&] { attention_vjp(q3, k3, v, f.out, f.lse, dout); });
        CHECK(m.find("exprgrad::attention_vjp: exp(s·q·k − lse) overflows float at batch 0 head 0 row 0:") == 0);
        CHECK(m.find("lse_i = ") != std::string::npos);
        CHECK(one_short_line(m));
        // Finite scores, but dout·v = 1e60 overflows: the gradient's products, named as such.
        auto big_v = v, big_dout = dout;
        for (auto& x : big_v) x = 1e30f;
        for (auto& x : big_dout) x = 1e30f;
        const auto fb = attention_forward(q, k, big_v);
        for (const float x : fb.out) CHECK(std::isfinite(x));
        m = thrown<std::overflow_error>([&] { attention_vjp(q, k, big_v, fb.out, fb.lse, big_dout); });
        CHECK(m.find("exprgrad::attention_vjp: the gradient overflows float at batch 0 head 0 row 0,") == 0);
        CHECK(one_short_line(m));
        // A NaN in dout propagates (no exception), and only into what that row touches.
        auto nan_dout = dout;
        nan_dout(0, 1, 3, 0) = std::numeric_limits<float>::quiet_NaN();
        const auto g = attention_vjp(q, k, v, f.out, f.lse, nan_dout);
        CHECK(std::isnan(g.dscale));
        CHECK(std::isnan(g.dq(0, 1, 3, 0)));
        CHECK(std::isfinite(g.dq(0, 0, 3, 0)));
    }
}

TEST_CASE("normalize_qk: qk_eps must be > 0 with a normal square; a zero row then attends uniformly") {
    const auto k = random4<float>(1, 1, 4, 3, 51), v = random4<float>(1, 1, 4, 2, 52);
    auto q = random4<float>(1, 1, 2, 3, 53);
    for (std::size_t x = 0; x < 3; ++x) q(0, 0, 1, x) = 0.0f;  // an all-zero row
    attention_options o;
    o.normalize_qk = true;
    for (const double eps : {0.0, -1e-6, std::numeric_limits<double>::quiet_NaN(), 1e-30, 1e30,
                             std::numeric_limits<double>::infinity()}) {
        CAPTURE(eps);
        o.qk_eps = eps;
        const std::string m = thrown<std::invalid_argument>([&] { attention_forward(q, k, v, o); });
        CHECK(m.find("exprgrad::attention_forward: qk_eps = ") == 0);
        CHECK(m.find("must be > 0") != std::string::npos);
        const auto dout = random4<float>(1, 1, 2, 2, 54);
        const auto f = attention_forward(q, k, v);
        CHECK(thrown<std::invalid_argument>([&] { attention_vjp(q, k, v, f.out, f.lse, dout, o); })
                  .find("exprgrad::attention_vjp: qk_eps") == 0);
    }
    // 1e-30 is fine in double (its square 1e-60 is a normal double), and so is the zero row there.
    o.qk_eps = 1e-30;
    const auto rd = attention_forward(to_type<double>(q), to_type<double>(k), to_type<double>(v), o);
    CHECK(std::isfinite(rd.lse(0, 0, 1)));
    // A zero row with a valid ε: q̂ = 0, all scores 0, out = the mean of v, lse = log n; finite gradients.
    for (const double eps : {1e-6, 2e-19}) {
        o.qk_eps = eps;
        const auto r = attention_forward(q, k, v, o);
        CHECK(r.lse(0, 0, 1) == doctest::Approx(std::log(4.0)).epsilon(1e-6));
        for (std::size_t c = 0; c < 2; ++c) {
            const double mean = (v(0, 0, 0, c) + v(0, 0, 1, c) + v(0, 0, 2, c) + v(0, 0, 3, c)) / 4.0;
            CHECK(r.out(0, 0, 1, c) == doctest::Approx(mean).epsilon(1e-5));
        }
        const auto g = attention_vjp(q, k, v, r.out, r.lse, random4<float>(1, 1, 2, 2, 55), o);
        for (const float x : g.dq) CHECK(std::isfinite(x));
        for (const float x : g.dk) CHECK(std::isfinite(x));
    }
    // Without normalize_qk the ε is not used and not checked.
    o.normalize_qk = false;
    o.qk_eps = 0.0;
    CHECK(std::isfinite(attention_forward(q, k, v, o).lse(0, 0, 1)));
}

TEST_CASE("results are bit-identical for every thread count") {
    struct cfg {
        std::size_t B, H, T;
        bool causal;
    };
    // B·H = 1 < threads takes the two-pass backward with 2 threads and the single pass with 1.
    for (const cfg c : {cfg{1, 1, 200, true}, cfg{1, 1, 150, false}, cfg{1, 3, 130, true}, cfg{2, 2, 65, false}}) {
        CAPTURE(c.B);
        CAPTURE(c.H);
        CAPTURE(c.causal);
        const auto q = random4<float>(c.B, c.H, c.T, 20, 31), k = random4<float>(c.B, c.H, c.T, 20, 32),
                   v = random4<float>(c.B, c.H, c.T, 12, 33), dout = random4<float>(c.B, c.H, c.T, 12, 34);
        attention_options o;
        o.causal = c.causal;
        o.normalize_qk = c.H == 3;
        o.scale = c.H == 3 ? scale::gradient_max() : scale::inv_sqrt_d();
        const std::size_t saved = kernels::num_threads();
        kernels::set_num_threads(1);
        const auto f1 = attention_forward(q, k, v, o);
        const auto g1 = attention_vjp(q, k, v, f1.out, f1.lse, dout, o);
        kernels::set_num_threads(2);
        const auto f2 = attention_forward(q, k, v, o);
        const auto g2 = attention_vjp(q, k, v, f2.out, f2.lse, dout, o);
        o.threads = 7;  // more tasks than threads: another partition
        const auto f7 = attention_forward(q, k, v, o);
        const auto g7 = attention_vjp(q, k, v, f7.out, f7.lse, dout, o);
        kernels::set_num_threads(saved);
        CHECK(bit_equal(f1.out, f2.out));
        CHECK(bit_equal(f1.lse, f2.lse));
        CHECK(bit_equal(g1.dq, g2.dq));
        CHECK(bit_equal(g1.dk, g2.dk));
        CHECK(bit_equal(g1.dv, g2.dv));
        CHECK(g1.dscale == g2.dscale);
        CHECK(bit_equal(f1.out, f7.out));
        CHECK(bit_equal(g1.dq, g7.dq));
        CHECK(bit_equal(g1.dk, g7.dk));
        CHECK(bit_equal(g1.dv, g7.dv));
        CHECK(g1.dlog_scale == g7.dlog_scale);
    }
}

TEST_CASE("scale policies give the documented multipliers per row") {
    // One key per distinct n: with v = e_j the output row is p itself, so log p recovers the scaled scores.
    const std::size_t d = 16;
    const double inv = 1.0 / std::sqrt(16.0);
    CHECK(scale::inv_sqrt_d().multiplier(100, d, false) == doctest::Approx(inv));
    CHECK(scale::entropy_invariant(512).multiplier(512, d, false) == doctest::Approx(inv));
    CHECK(scale::entropy_invariant(512).multiplier(64, d, false) ==
          doctest::Approx(std::log(64.0) / std::log(512.0) * inv));
    CHECK(scale::gradient_max().multiplier(512, d, false) == doctest::Approx(2.0084 * inv).epsilon(1e-4));
    CHECK(scale::gradient_max().multiplier(512, 128, true) == doctest::Approx(24.214).epsilon(1e-4));  // no 1/√d
    CHECK(scale::fixed(0.37).multiplier(9, d, true) == 0.37);
    CHECK(scale::gradient_max().multiplier(1, d, false) == 0.0);

    // The kernel applies the per-row n: rows of a causal head see n = i + 1.
    const std::size_t T = 40;
    auto q = random4<double>(1, 1, T, d, 41), k = random4<double>(1, 1, T, d, 42);
    auto v = xt::xtensor<double, 4>::from_shape({1, 1, T, T});
    v.fill(0.0);
    for (std::size_t j = 0; j < T; ++j) v(0, 0, j, j) = 1.0;
    for (const auto& pol :
         {scale::gradient_max(), scale::entropy_invariant(8), scale::gradient_max(scale_n::half_length)}) {
        attention_options o;
        o.causal = true;
        o.scale = pol;
        const auto out = attention(q, k, v, o);
        for (std::size_t i = 2; i < T; i += 7) {
            const double n = pol.n_choice == scale_n::half_length ? T / 2.0 : static_cast<double>(i + 1);
            const double s = pol.multiplier(n, d, false);
            double dot0 = 0, dot1 = 0;
            for (std::size_t c = 0; c < d; ++c) {
                dot0 += q(0, 0, i, c) * k(0, 0, 0, c);
                dot1 += q(0, 0, i, c) * k(0, 0, 1, c);
            }
            // log p_1 − log p_0 = s (q·k_1 − q·k_0)
            CHECK(std::log(out(0, 0, i, 1) / out(0, 0, i, 0)) == doctest::Approx(s * (dot1 - dot0)).epsilon(1e-10));
        }
    }
}

TEST_CASE("notes §1.5 check 1 through the attention kernel itself: ½‖J‖₁ = α(1 − Σp²)") {
    // One query with q = [1], keys k_j = [s_j], value rows v_j = e_j, scale α: out = p, and the VJP with
    // dout = e_i gives dk_j = ∂p_i/∂s_j, the Jacobian row by row.
    struct row_case {
        std::vector<double> s;
        double alpha, half_l1;
    };
    for (const auto& rc : {row_case{{1, 2, 3}, 1.0, 0.4894569}, row_case{{0.5, -1, 2, 0}, 2.5, 0.1457978},
                           row_case{{0, 0, 0, 0}, 1.0, 0.75}}) {
        const std::size_t n = rc.s.size();
        auto q = xt::xtensor<double, 4>::from_shape({1, 1, 1, 1});
        auto k = xt::xtensor<double, 4>::from_shape({1, 1, n, 1});
        auto v = xt::xtensor<double, 4>::from_shape({1, 1, n, n});
        q(0, 0, 0, 0) = 1.0;
        v.fill(0.0);
        for (std::size_t j = 0; j < n; ++j) {
            k(0, 0, j, 0) = rc.s[j];
            v(0, 0, j, j) = 1.0;
        }
        attention_options o;
        o.scale = scale::fixed(rc.alpha);
        const auto f = attention_forward(q, k, v, o);
        double l1 = 0;
        const auto J = scale::softmax_jacobian(rc.s, rc.alpha);
        for (std::size_t i = 0; i < n; ++i) {
            auto dout = xt::xtensor<double, 4>::from_shape({1, 1, 1, n});
            dout.fill(0.0);
            dout(0, 0, 0, i) = 1.0;
            const auto g = attention_vjp(q, k, v, f.out, f.lse, dout, o);
            for (std::size_t j = 0; j < n; ++j) {
                l1 += std::fabs(g.dk(0, 0, j, 0));
                CHECK(g.dk(0, 0, j, 0) == doctest::Approx(J(i, j)).epsilon(1e-12).scale(1e-15));
            }
        }
        CHECK(0.5 * l1 == doctest::Approx(rc.half_l1).epsilon(1e-6));
    }
}

TEST_CASE("bad shapes and options throw, naming the op and the shapes") {
    const auto q = random4<float>(2, 3, 5, 8, 1), k = random4<float>(2, 3, 6, 8, 2), v = random4<float>(2, 3, 6, 4, 3);
    auto message = [](auto&& f) {
        try {
            f();
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    const auto k7 = random4<float>(2, 3, 6, 7, 4);
    std::string m = message([&] { attention_forward(q, k7, v); });
    CHECK(m.find("attention_forward") != std::string::npos);
    // shapes in the library's one form (exprgrad::format_shape), as tensors::dims::str() prints them
    CHECK(m.find("(2, 3, 5, 8)") != std::string::npos);
    CHECK(m.find("(2, 3, 6, 7)") != std::string::npos);
    const auto v5 = random4<float>(2, 3, 5, 4, 5);
    m = message([&] { attention(q, k, v5); });
    CHECK(m.find("(2, 3, 6, 8)") != std::string::npos);
    CHECK(m.find("(2, 3, 5, 4)") != std::string::npos);
    const auto kh = random4<float>(2, 2, 6, 8, 6);
    m = message([&] { attention(q, kh, v); });
    CHECK(m.find("(2, 2, 6, 8)") != std::string::npos);
    const auto f = attention_forward(q, k, v);
    const auto bad_dout = random4<float>(2, 3, 5, 3, 7);
    m = message([&] { attention_vjp(q, k, v, f.out, f.lse, bad_dout); });
    CHECK(m.find("attention_vjp") != std::string::npos);
    CHECK(m.find("(2, 3, 5, 3)") != std::string::npos);
    CHECK(m.find("(2, 3, 5, 4)") != std::string::npos);
    attention_options o;
    o.key_lengths = {3};
    m = message([&] { attention(q, k, v, o); });
    CHECK(m.find("key_lengths") != std::string::npos);
    o.key_lengths = {3, 7};
    m = message([&] { attention(q, k, v, o); });
    CHECK(m.find("key_lengths[1] = 7") != std::string::npos);
    o.key_lengths.clear();
    o.scale = scale::fixed(std::numeric_limits<double>::infinity());
    CHECK(message([&] { attention(q, k, v, o); }).find("scale::fixed(inf)") != std::string::npos);
    CHECK_THROWS_AS(scale::entropy_invariant(1.0), std::invalid_argument);
    const auto q0 = random4<float>(2, 3, 5, 0, 8), k0 = random4<float>(2, 3, 6, 0, 9);
    CHECK(message([&] { attention(q0, k0, v); }).find("at least 1") != std::string::npos);
}

TEST_CASE("empty dimensions") {
    const auto q = random4<double>(1, 2, 0, 4, 1), k = random4<double>(1, 2, 3, 4, 2),
               v = random4<double>(1, 2, 3, 2, 3);
    const auto f = attention_forward(q, k, v);
    CHECK(f.out.size() == 0);
    const auto q1 = random4<double>(1, 2, 3, 4, 1), k0 = random4<double>(1, 2, 0, 4, 2),
               v0 = random4<double>(1, 2, 0, 2, 3);
    const auto f0 = attention_forward(q1, k0, v0);
    for (const double x : f0.out) CHECK(x == 0.0);
    for (const double x : f0.lse) CHECK(x == -std::numeric_limits<double>::infinity());
    const auto g = attention_vjp(q1, k0, v0, f0.out, f0.lse, f0.out);
    for (const double x : g.dq) CHECK(x == 0.0);
}

TEST_CASE("to_string(attention_options): the adapted settings in declaration order, key_lengths left out") {
    // expected from the defaults declared in ops/attention_options.hpp: causal = false, normalize_qk = false,
    // scale = scale::inv_sqrt_d(), qk_eps = 1e-6, threads = 0
    CHECK(ops::to_string(attention_options{}) ==
          "causal=false normalize_qk=false scale=scale::inv_sqrt_d() qk_eps=1e-06 threads=0");
    attention_options o;
    o.causal = true;
    o.normalize_qk = true;
    o.scale = scale::entropy_invariant(512);
    o.key_lengths = {4, 2};  // per batch: not a setting, not printed
    o.qk_eps = 0.25;
    o.threads = 3;
    CHECK(ops::to_string(o) ==
          "causal=true normalize_qk=true scale=scale::entropy_invariant(512) qk_eps=0.25 threads=3");
    CHECK(field_count_v<attention_options> == 5);
}
