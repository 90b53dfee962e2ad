// The library's modifications (ops/attention_mods.hpp) through flex attention, each against a plain double loop of
// its own definition written here (visibility as a C++ condition, the modified score and its partials by hand):
// value, lse, dq, dk, dv and ALiBi's dslopes; and the shorthands: attn::causal equals the options' causal mask,
// a sliding window at least as wide as T equals causal, the entropy-invariant modification equals the option form
// under causal masking. Double only (the ISA paths and float run in test_flex_attention.cpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include <exprgrad/exprgrad.hpp>

using namespace exprgrad;

namespace {

xt::xtensor<double, 4> random4(std::size_t B, std::size_t H, std::size_t T, std::size_t d, std::uint64_t seed,
                               double amp) {
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
ref_result reference(const xt::xtensor<double, 4>& q, const xt::xtensor<double, 4>& k, const xt::xtensor<double, 4>& v,
                     const xt::xtensor<double, 4>& dout, const definition& f, const std::vector<double>& slope) {
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

double score_only(double s, double, double, double, double) { return s; }
double one(double, double, double, double, double) { return 1.0; }
double zero(double, double, double, double, double) { return 0.0; }

}  // namespace

TEST_CASE("attention mods: the masks against their definitions") {
    const problem P;
    SUBCASE("causal: j <= i") {
        check_against(P, attn::score, attn::causal, {score_only, one, zero, at_positions([](double i, double j) { return j <= i; })});
    }
    SUBCASE("sliding window of width 5: i - 5 < j <= i") {
        check_against(P, attn::score, attn::sliding_window<5>,
                      {score_only, one, zero, at_positions([](double i, double j) { return i - 5 < j && j <= i; })});
    }
    SUBCASE("prefix-LM with a prefix of 7: j < 7 or j <= i") {
        check_against(P, attn::score, attn::prefix_lm<7>,
                      {score_only, one, zero, at_positions([](double i, double j) { return j < 7 || j <= i; })});
    }
}

TEST_CASE("attention mods: causal alignment when T_q != T_k") {
    for (const auto& [Tq, Tk] : {std::pair<std::size_t, std::size_t>{40, 70}, {70, 40}}) {
        CAPTURE(Tq);
        const problem P(Tq, 1.0, Tk);
        const double off = double(Tk) - double(Tq);
        // bottom-right: j <= i + T_k - T_q (rows i < T_q - T_k see nothing when T_q > T_k)
        check_against(P, attn::score, attn::causal,
                      {score_only, one, zero, at_positions([off](double i, double j) { return j <= i + off; })});
        check_against(P, attn::score, attn::causal_top_left,
                      {score_only, one, zero, at_positions([](double i, double j) { return j <= i; })});
        attention_options opts;
        opts.causal = true;
        const auto a = flex_attention_forward(P.q, P.k, P.v, attn::score, attn::causal, {}, {});
        const auto b = flex_attention_forward(P.q, P.k, P.v, attn::score, 1_c, {}, opts);
        CHECK(max_abs_diff(a.out, b.out) < 1e-12);
        CHECK(max_abs_diff(a.lse, b.lse) < 1e-12);
    }
}

TEST_CASE("attention mods: document masks and the block mask") {
    const problem P;  // T = 70: documents that straddle the 64-row tiles, ids not sorted in batch entry 1
    auto ids = xt::xtensor<std::int64_t, 2>::from_shape({2, 70});
    for (std::size_t i = 0; i < 70; ++i) {
        ids(0, i) = i < 30 ? 0 : i < 66 ? 1 : 2;
        ids(1, i) = i % 16 < 5 ? 7 : 3;
    }
    const auto docs = flex_documents::self(ids);
    auto same = [&](std::size_t b, double i, double j) { return ids(b, std::size_t(i)) == ids(b, std::size_t(j)); };
    SUBCASE("attn::document: the same document, both directions") {
        check_against(P, attn::score, attn::document, {score_only, one, zero, same}, {}, &docs);
    }
    SUBCASE("attn::document_causal, and the cached block mask follows new ids of the same shape") {
        auto causal_same = [&](std::size_t b, double i, double j) { return j <= i && same(b, i, j); };
        check_against(P, attn::score, attn::document_causal, {score_only, one, zero, causal_same}, {}, &docs);
        const auto old_ids = ids;
        for (std::size_t i = 0; i < 70; ++i) ids(0, i) = i < 5 ? 4 : 9, ids(1, i) = std::int64_t(i / 20);
        const auto docs2 = flex_documents::self(ids);
        check_against(P, attn::score, attn::document_causal, {score_only, one, zero, causal_same}, {}, &docs2);
        CHECK(max_abs_diff(old_ids, ids) > 0.5);
    }
    SUBCASE("a mask of batch and head outside the interval arithmetic (a non-integer constant): the per-element "
            "fallback, per (b, h), and again for another shape") {
        // visible ⇔ (i − j + 1)(h + 1) − 30 b + 1/4 > 0: causal in batch entry 0, narrower in entry 1 and head 0
        auto mask = (attn::q_idx - attn::k_idx + 1_c) * (attn::head + 1_c) - attn::batch * 30_c + fc<0.25>;
        for (std::size_t T : {70u, 150u}) {
            const problem Q(T);
            const auto r = flex_attention_forward(Q.q, Q.k, Q.v, attn::score, mask, {}, {});
            const auto g = flex_attention_vjp(Q.q, Q.k, Q.v, Q.dout, attn::score, mask, {}, {});
            for (std::size_t h = 0; h < 2; ++h) {
                definition f{score_only, one, zero, [h](std::size_t b, double i, double j) {
                                 return (i - j + 1) * double(h + 1) - 30.0 * double(b) + 0.25 > 0;
                             }};
                const auto ref = reference(Q.q, Q.k, Q.v, Q.dout, f, {});
                auto head = [h](const xt::xtensor<double, 4>& x) {  // the values of head h, every batch entry
                    const std::size_t n = x.shape()[2] * x.shape()[3];
                    xt::xtensor<double, 1> o = xt::zeros<double>({x.shape()[0] * n});
                    for (std::size_t b = 0; b < x.shape()[0]; ++b)
                        std::copy_n(x.data() + (b * x.shape()[1] + h) * n, n, o.data() + b * n);
                    return o;
                };
                CHECK(max_abs_diff(head(r.out), head(ref.out)) < 1e-10);
                CHECK(max_abs_diff(head(g.dq), head(ref.dq)) < 1e-9);
                // dk, dv of head h come from query head h only (H_q = H_kv)
                CHECK(max_abs_diff(head(g.dk), head(ref.dk)) < 1e-9);
                CHECK(max_abs_diff(head(g.dv), head(ref.dv)) < 1e-9);
            }
        }
    }
    SUBCASE("errors: no ids, ids of the wrong shape or too large") {
        CHECK_THROWS_WITH_AS(flex_attention_forward(P.q, P.k, P.v, attn::score, attn::document, {}, {}),
                             doctest::Contains("no document ids were given"), std::invalid_argument);
        const auto short_ids = flex_documents::self(xt::xtensor<std::int64_t, 2>::from_shape({2, 69}));
        CHECK_THROWS_WITH_AS(flex_attention_forward(P.q, P.k, P.v, attn::score, attn::document, {}, {}, short_ids),
                             doctest::Contains("flex_documents::q has shape (2, 69) but q needs (B, T_q) = (2, 70)"), std::invalid_argument);
        auto big = ids;
        big(1, 3) = std::int64_t{1} << 24;
        CHECK_THROWS_WITH_AS(flex_attention_vjp(P.q, P.k, P.v, P.dout, attn::score, attn::document, {}, {},
                                                flex_documents::self(big)),
                             doctest::Contains("flex_documents::q[1, 3] = 16777216"), std::invalid_argument);
    }
}

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

TEST_CASE("attention mods: the block mask's classes equal a count of the visible pairs of each tile") {
    // Interval arithmetic must find every empty and every full tile of the library's masks, not just be safe: the
    // classes are compared with the count of visible pairs per tile (0: empty, all: full).
    namespace fx = ops::detail::flex;
    auto check = [](auto mask, std::size_t Tq, std::size_t Tk, auto visible) {
        using M = fx::modification<double, std::remove_cvref_t<decltype(attn::score)>, decltype(mask)>;
        fx::block_mask<double> bm;
        fx::classify<M>(bm, 1, 1, Tq, Tk, static_cast<const double*>(nullptr), 0, {}, {});
        std::size_t n[3] = {0, 0, 0};
        for (std::size_t qb = 0; qb * 64 < Tq; ++qb)
            for (std::size_t kb = 0; kb * 64 < Tk; ++kb) {
                std::size_t seen = 0, all = 0;
                for (std::size_t i = qb * 64; i < std::min(Tq, qb * 64 + 64); ++i)
                    for (std::size_t j = kb * 64; j < std::min(Tk, kb * 64 + 64); ++j, ++all) seen += visible(i, j);
                const auto want = seen == 0 ? fx::tile_class::empty
                                  : seen == all ? fx::tile_class::full
                                                : fx::tile_class::partial;
                CHECK((bm.at(0, 0, qb, kb) == want));
                ++n[static_cast<int>(want)];
            }
        CHECK(n[0] > 0);  // the shapes below have tiles of every class
        CHECK(n[1] > 0);
        CHECK(n[2] > 0);
    };
    check(attn::sliding_window<200>, 300, 300, [](double i, double j) { return i - 200 < j && j <= i; });
    check(attn::causal, 200, 330, [](double i, double j) { return j <= i + 130; });
    check(attn::prefix_lm<70>, 260, 260, [](double i, double j) { return j < 70 || j <= i; });
}
