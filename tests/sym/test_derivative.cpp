// Symbolic derivatives: known closed forms, higher orders, kink conventions, IEEE behaviour at
// points outside an op's domain.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <type_traits>

#include "exprgrad/sym.hpp"

using namespace exprgrad::sym;
using namespace exprgrad::sym::literals;

namespace {
constexpr auto x = var<0>;
constexpr auto y = var<1>;
template <class A, class B>
constexpr bool same(A, B) {
    return std::is_same_v<std::remove_cvref_t<A>, std::remove_cvref_t<B>>;
}
}  // namespace

TEST_CASE("derivatives of leaves and simple forms are simplified types") {
    static_assert(same(d(x, x), 1_c));
    static_assert(same(d(y, x), 0_c));
    static_assert(same(d(3_c, x), 0_c));
    static_assert(same(d(constants::pi * x, x), constants::pi));
    static_assert(same(d(x * y, x), y));
    static_assert(same(d(x * y, y), x));
    static_assert(same(d(x + y, x), 1_c));
    static_assert(same(d(x - y, y), c<-1>));
    static_assert(same(d(pow(x, 3_c), x), 3_c * pow(x, 2_c)));
    static_assert(same(d(d(pow(x, 3_c), x), x), 6_c * x));
    static_assert(same(d(d(d(pow(x, 3_c), x), x), x), 6_c));
    static_assert(same(d(exp(x), x), exp(x)));
    static_assert(same(d(sin(x), x), cos(x)));
    static_assert(same(d(cos(x), x), -sin(x)));
    static_assert(same(d(d(sin(x), x), x), -sin(x)));
    static_assert(same(d(log(x), x), 1_c / x));
    static_assert(same(d(abs(x), x), sign(x)));
    static_assert(same(d(softplus(x), x), sigmoid(x)));
    CHECK(true);
}

TEST_CASE("derivative values match closed forms") {
    const double a = 0.7, b = -1.3;
    CHECK(d(tanh(x), x)(a) == doctest::Approx(1 - std::tanh(a) * std::tanh(a)));
    CHECK(d(sigmoid(x), x)(a) == doctest::Approx(std::exp(-a) / std::pow(1 + std::exp(-a), 2)));
    CHECK(d(erf(x), x)(a) == doctest::Approx(2 / std::sqrt(M_PI) * std::exp(-a * a)));
    CHECK(d(sqrt(x), x)(a) == doctest::Approx(0.5 / std::sqrt(a)));
    CHECK(d(log1p(x), x)(a) == doctest::Approx(1 / (1 + a)));
    CHECK(d(expm1(x), x)(a) == doctest::Approx(std::exp(a)));
    CHECK(d(pow(x, y), x)(a, b) == doctest::Approx(b * std::pow(a, b - 1)));
    CHECK(d(pow(x, y), y)(a, b) == doctest::Approx(std::pow(a, b) * std::log(a)));
    CHECK(d(x / y, y)(a, b) == doctest::Approx(-a / (b * b)));
    CHECK(d(pow(x, c<-3, 2>), x)(a) == doctest::Approx(-1.5 * std::pow(a, -2.5)));
    // expm1' uses exp, which keeps its digits where expm1(a) + 1 would round to 0.
    CHECK(d(expm1(x), x)(-50.0) == doctest::Approx(std::exp(-50.0)).epsilon(1e-15));
}

TEST_CASE("kink conventions: abs'(0) = 0, ties of min and max split 1/2 and 1/2") {
    CHECK(d(abs(x), x)(0.0) == 0.0);
    CHECK(d(abs(x), x)(-2.0) == -1.0);
    CHECK(d(abs(x), x)(3.0) == 1.0);
    CHECK(d(min(x, y), x)(1.0, 1.0) == 0.5);
    CHECK(d(min(x, y), y)(1.0, 1.0) == 0.5);
    CHECK(d(max(x, y), x)(1.0, 1.0) == 0.5);
    CHECK(d(min(x, y), x)(1.0, 2.0) == 1.0);
    CHECK(d(min(x, y), y)(1.0, 2.0) == 0.0);
    CHECK(d(max(x, y), x)(1.0, 2.0) == 0.0);
    CHECK(d(max(x, y), y)(1.0, 2.0) == 1.0);
    // ties of equal infinities split too (step(y − x) gave NaN there: ∞ − ∞)
    const double inf = std::numeric_limits<double>::infinity();
    CHECK(d(max(x, y), x)(inf, inf) == 0.5);
    CHECK(d(min(x, y), y)(-inf, -inf) == 0.5);
    CHECK(d(min(x, y), x)(inf, 1.0) == 0.0);
    CHECK(std::isnan(d(max(x, y), x)(std::nan(""), 1.0)));
    // and the SIMD path agrees lane by lane
    const xsimd::batch<double> a(inf), b(inf);
    CHECK(d(max(x, y), x)(a, b).get(0) == 0.5);
}

TEST_CASE("NaN propagates through min, max, sign and step") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    CHECK(std::isnan(min(x, y)(nan, 1.0)));
    CHECK(std::isnan(min(x, y)(1.0, nan)));
    CHECK(std::isnan(max(x, y)(nan, 1.0)));
    CHECK(std::isnan(max(x, y)(1.0, nan)));
    CHECK(std::isnan(sign(x)(nan)));
    CHECK(std::isnan(step(x)(nan)));
    CHECK(std::isnan(exp(x)(nan)));
}

TEST_CASE("outside the domain: IEEE results, no crash") {
    CHECK(std::isnan(log(x)(-1.0)));
    CHECK(d(log(x), x)(0.0) == std::numeric_limits<double>::infinity());
    CHECK(std::isnan(d(sqrt(x), x)(-1.0)));
    CHECK(d(sqrt(x), x)(0.0) == std::numeric_limits<double>::infinity());
    CHECK(log1p(x)(-1.0) == -std::numeric_limits<double>::infinity());
    CHECK(std::isnan(d(pow(x, y), y)(-1.0, 0.5)));
    CHECK(softplus(x)(1000.0) == 1000.0);
    CHECK(softplus(x)(-1000.0) == 0.0);
    CHECK(sigmoid(x)(-1000.0) == 0.0);
    CHECK(sigmoid(x)(1000.0) == 1.0);
    // the documented simplification cases: x - x is 0 even at infinity
    CHECK((x - x)(std::numeric_limits<double>::infinity()) == 0.0);
}

TEST_CASE("grad and hessian") {
    constexpr auto f = exp(sin(x) * y) / (1_c + x * x);
    auto g = grad(f);
    static_assert(std::tuple_size_v<decltype(g)> == 2);
    static_assert(same(std::get<0>(g), d(f, x)));
    static_assert(same(std::get<1>(g), d(f, y)));
    auto h = hessian(f);
    static_assert(same(std::get<1>(std::get<0>(h)), d(d(f, x), y)));
    CHECK(std::get<0>(std::get<1>(h))(0.5, 2.0) ==
          doctest::Approx(std::get<1>(std::get<0>(h))(0.5, 2.0)).epsilon(1e-13));
    // Closed form of df/dy = sin(x) exp(sin(x) y) / (1 + x^2).
    const double a = 0.5, b = 2.0;
    CHECK(std::get<1>(g)(a, b) == doctest::Approx(std::sin(a) * std::exp(std::sin(a) * b) / (1 + a * a)));
}
