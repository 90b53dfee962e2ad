// The gradient-maximising scale written as a score modification (ops/attention_mods.hpp) against ops::attention with
// the scale policy: attn::gradient_max_causal against scale::gradient_max() under causal masking with T_q = T_k
// (where every row i sees i + 1 keys), in value, lse, dq, dk and dv; and α*(n) of the modification's unrolled Newton
// steps against scale::gradient_max_alpha over n. (attn::entropy_invariant_causal against scale::entropy_invariant:
// tests/ops/test_attention_mods.cpp, "the shorthands".) Double only. Release runs only (suite 'ops', not named
// test_*): the arithmetic's equality, whose kernels the unit suite 'flex_attention' runs under the sanitizers.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include <exprgrad/exprgrad.hpp>

#include "attention_inputs.hpp"

using namespace exprgrad;

namespace {

// [2, 2, T, d] from the attention tests' generator.
xt::xtensor<double, 4> random4(std::size_t T, std::size_t d, std::uint64_t seed, double amp) {
    return attention_test::random4<double>(2, 2, T, d, seed, amp);
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

// T = 70: past one 64-row tile and not a multiple of it; d = 5, dv = 3: not SIMD multiples. Scores of order 3,
// where the multipliers (α* up to 1.6 at n = 70) make the softmax far from uniform.
struct problem {
    xt::xtensor<double, 4> q = random4(70, 5, 21, 1.5), k = random4(70, 5, 22, 1.5), v = random4(70, 3, 23, 1.0),
                           dout = random4(70, 3, 24, 1.0);
};

/// The modification under attn::causal against the bare score with opts.causal and `policy`, value and gradients.
template <class Mod>
void check_same(const problem& P, Mod mod, scale_policy policy, double tol) {
    attention_options o;
    o.causal = true;
    o.scale = policy;
    const auto a = flex_attention_forward(P.q, P.k, P.v, mod, attn::causal, {}, {});
    const auto b = attention_forward(P.q, P.k, P.v, o);
    CHECK(max_abs_diff(a.out, b.out) < tol);
    CHECK(max_abs_diff(a.lse, b.lse) < tol);
    const auto ga = flex_attention_vjp(P.q, P.k, P.v, P.dout, mod, attn::causal, {}, {});
    const auto gb = attention_vjp(P.q, P.k, P.v, P.dout, o);
    CHECK(max_abs_diff(ga.dq, gb.dq) < tol);
    CHECK(max_abs_diff(ga.dk, gb.dk) < tol);
    CHECK(max_abs_diff(ga.dv, gb.dv) < tol);
}

}  // namespace

TEST_CASE("scale policies as modifications: α* of the unrolled Newton steps") {
    // z = score · α*(i + 1) · min(i, 1) at score = 1: α*(n) for n = i + 1.
    const auto alpha = [](double i) { return sym::evaluate(attn::gradient_max_causal, 1.0, 0.0, 0.0, i); };
    CHECK(alpha(0.0) == 0.0);  // n = 1: α* = 0
    double worst = 0;
    for (double i = 1; i < 5000; ++i) {
        const double want = scale::gradient_max_alpha(i + 1);
        worst = std::max(worst, std::fabs(alpha(i) - want) / want);
    }
    for (double n : {1e4, 1e5, 1e6, 1e7, 1e8, 1e9}) {
        const double want = scale::gradient_max_alpha(n);
        worst = std::max(worst, std::fabs(alpha(n - 1) - want) / want);
    }
    CHECK(worst < 1e-14);
    CHECK(std::fabs(alpha(511.0) - 2.0084) < 1e-4);  // n = 512: the post's value (docs/attention.md)
}

TEST_CASE("scale policies as modifications: equal to the option form under causal masking") {
    const problem P;
    SUBCASE("attn::gradient_max_causal = scale::gradient_max()") {
        check_same(P, attn::gradient_max_causal, scale::gradient_max(), 1e-12);
    }
    SUBCASE("and the comparison can fail: the gradient-maximising modification is not 1/sqrt(d)") {
        attention_options o;
        o.causal = true;
        const auto a = flex_attention_forward(P.q, P.k, P.v, attn::gradient_max_causal, attn::causal, {}, {});
        const auto b = attention_forward(P.q, P.k, P.v, o);
        CHECK(max_abs_diff(a.out, b.out) > 1e-3);
    }
}
