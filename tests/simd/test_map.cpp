// map and map_value_and_grad over xtensor arrays: agreement with the scalar path (measured ulp
// bound), tails that do not fill a batch, broadcasting, shape errors.
#include <doctest/doctest.h>

#include <cmath>
#include <utility>
#include <vector>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include "exprgrad/simd/map.hpp"
#include "exprgrad/sym.hpp"

using namespace exprgrad::sym;
using namespace exprgrad::sym::literals;
using exprgrad::simd::map;
using exprgrad::simd::map_value_and_grad;

namespace {
constexpr auto x = var<0>;
constexpr auto y = var<1>;
constexpr auto z = var<2>;

// Distance in units in the last place between two finite floats of one sign convention.
template <class T>
double ulp_distance(T a, T b) {
    if (a == b) return 0.0;
    if (!std::isfinite(a) || !std::isfinite(b)) return (std::isnan(a) && std::isnan(b)) ? 0.0 : 1e300;
    const T scale = std::max(std::abs(a), std::abs(b));
    const T ulp = std::nextafter(scale, std::numeric_limits<T>::infinity()) - scale;
    return std::abs(static_cast<double>(a) - static_cast<double>(b)) / static_cast<double>(ulp);
}

template <class T>
xt::xtensor<T, 1> grid(std::size_t n, double lo, double hi) {
    xt::xtensor<T, 1> a = xt::xtensor<T, 1>::from_shape({n});
    for (std::size_t i = 0; i < n; ++i)
        a(i) = static_cast<T>(lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(n));
    return a;
}
}  // namespace

TEST_CASE("map equals the scalar path within a measured ulp bound, every length") {
    constexpr auto f = log(1_c + exp(x * y)) / (1_c + x * x);
    for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 15u, 16u, 17u, 1000u}) {
        const auto xs = grid<float>(n, -3.0, 3.0);
        const auto ys = grid<float>(n, 2.0, -1.0);
        xt::xtensor<float, 1> out = map(f, xs, ys);
        REQUIRE(out.size() == n);
        double worst = 0;
        for (std::size_t i = 0; i < n; ++i) worst = std::max(worst, ulp_distance(out(i), f(xs(i), ys(i))));
        // Each op's SIMD body is within a few ulp of libm (next test); this composition amplifies
        // that where 1 + exp(x*y) is close to 1 (log's condition number): measured worst 15 ulp.
        CHECK(worst <= 32.0);
        // the tail (the last n % 8 elements) takes the scalar path exactly
        for (std::size_t i = n - n % xsimd::batch<float>::size; i < n; ++i) CHECK(out(i) == f(xs(i), ys(i)));
    }
}

TEST_CASE("accuracy of every op's SIMD body against libm, float and double") {
    // Measured maxima, asserted: the SIMD math of xsimd 8.1 is within these ulp of libm.
    auto worst_ulp = [](auto e, auto lo, auto hi, auto tag) {
        using T = decltype(tag);
        const auto xs = grid<T>(4096, lo, hi);
        xt::xarray<T> out = map(e, xs);
        double w = 0;
        for (std::size_t i = 0; i < xs.size(); ++i) w = std::max(w, ulp_distance(out(i), e(xs(i))));
        return w;
    };
    const double lo = -4, hi = 4;
    double w_float = 0, w_double = 0;
    auto both = [&](auto e, double a, double b) {
        const double wf = worst_ulp(e, a, b, 0.0f);
        const double wd = worst_ulp(e, a, b, 0.0);
        INFO(to_string(e) << ": float " << wf << " ulp, double " << wd << " ulp");
        CHECK(wf <= 4.0);
        CHECK(wd <= 4.0);
        w_float = std::max(w_float, wf);
        w_double = std::max(w_double, wd);
    };
    both(exp(x), lo, hi);
    both(log(x), 0.01, 10.0);
    both(log1p(x), -0.9, 10.0);
    both(expm1(x), lo, hi);
    both(sqrt(x), 0.0, 10.0);
    both(tanh(x), lo, hi);
    both(sigmoid(x), lo, hi);
    both(softplus(x), lo, hi);
    both(sin(x), lo, hi);
    both(cos(x), lo, hi);
    both(abs(x), lo, hi);
    both(erf(x), lo, hi);
    both(pow(x, c<3, 2>), 0.0, 10.0);
    MESSAGE("worst SIMD vs libm: float " << w_float << " ulp, double " << w_double << " ulp");
}

TEST_CASE("exp, expm1, sigmoid and softplus over their whole float range: a value does not depend on its lane") {
    // xsimd's float exp overflows from 88.38 (e^x is finite to 88.72) and flushes below e^-87.3 to 0; the
    // batch bodies redo those lanes with libm, so the batch lanes agree with the scalar tail everywhere.
    auto check_range = [](auto e, double lo, double hi) {
        const auto xs = grid<float>(4099, lo, hi);  // 4099: batch lanes and a scalar tail
        xt::xtensor<float, 1> out = map(e, xs);
        double w = 0;
        for (std::size_t i = 0; i < xs.size(); ++i) w = std::max(w, ulp_distance(out(i), e(xs(i))));
        INFO(to_string(e) << " on [" << lo << ", " << hi << "]: worst " << w << " ulp");
        CHECK(w <= 4.0);
        for (float v : {88.5f, 88.7f, -88.5f, -95.0f, -103.0f}) {
            xt::xtensor<float, 1> one = xt::xtensor<float, 1>::from_shape({16});
            one.fill(v);
            xt::xtensor<float, 1> got = map(e, one);
            INFO(to_string(e) << " at " << v);
            CHECK(ulp_distance(got(0), e(v)) <= 4.0);  // a batch lane
        }
    };
    check_range(exp(x), -104.0, 89.0);
    check_range(expm1(x), -104.0, 89.0);
    check_range(sigmoid(x), -89.0, 104.0);
    check_range(softplus(x), -104.0, 104.0);
    xt::xtensor<float, 1> big = xt::xtensor<float, 1>::from_shape({8});
    big.fill(88.5f);
    xt::xtensor<float, 1> e_big = map(exp(x), big);
    CHECK(std::isfinite(e_big(0)));
    CHECK(e_big(0) == std::exp(88.5f));
}

TEST_CASE("pow with an expression exponent: IEEE special values in every lane, libm's accuracy") {
    const std::vector<std::pair<double, double>> special = {
        {0.0, 0.0},  {0.0, -1.0}, {-0.0, -3.0}, {std::nan(""), 0.0}, {-INFINITY, 0.0}, {1.0, std::nan("")},
        {-1.0, INFINITY}, {-2.0, 3.0}, {-2.0, 0.5}, {INFINITY, -1.0}, {0.5, INFINITY}, {2.0, -1074.0}};
    auto check_all = [&](auto tag) {
        using T = decltype(tag);
        const std::size_t n = special.size() * 3 + 1;  // repeated so each pair lands in batch lanes
        xt::xtensor<T, 1> a = xt::xtensor<T, 1>::from_shape({n}), b = a;
        for (std::size_t i = 0; i < n; ++i) {
            a(i) = static_cast<T>(special[i % special.size()].first);
            b(i) = static_cast<T>(special[i % special.size()].second);
        }
        xt::xtensor<T, 1> out = map(pow(x, y), a, b);
        for (std::size_t i = 0; i < n; ++i) {
            const T want = std::pow(a(i), b(i));
            INFO("pow(" << a(i) << ", " << b(i) << ") = " << out(i) << ", libm " << want);
            CHECK(((std::isnan(want) && std::isnan(out(i))) || out(i) == want));
        }
    };
    check_all(0.0f);
    check_all(0.0);
    // d/dx x^y at x = 0, y = 1 is 1 in every lane (it was 0 in batch lanes and 1 in the tail).
    const auto zeros = xt::xtensor<float, 1>::from_shape({9});
    xt::xtensor<float, 1> z0 = zeros;
    z0.fill(0.0f);
    auto [v, g] = map_value_and_grad(pow(x, y), z0, 1.0f);
    for (std::size_t i = 0; i < 9; ++i) CHECK(std::get<0>(g)(i) == 1.0f);
    (void)v;
}

TEST_CASE("pow with a constant exponent: IEEE special values and accuracy of large powers") {
    auto lanes = [](auto e, double v) {
        xt::xtensor<double, 1> a = xt::xtensor<double, 1>::from_shape({8});
        a.fill(v);
        xt::xtensor<double, 1> out = map(e, a);
        return std::pair{out(0), e(v)};  // a batch lane, the scalar path
    };
    for (auto [b, s] : {lanes(pow(x, c<1, 2>), -0.0), lanes(pow(x, c<3, 2>), -0.0)}) {
        CHECK((b == 0.0 && !std::signbit(b)));
        CHECK((s == 0.0 && !std::signbit(s)));
    }
    CHECK(lanes(pow(x, c<1, 2>), -INFINITY).first == INFINITY);
    CHECK(lanes(pow(x, c<1, 2>), -INFINITY).second == INFINITY);
    CHECK(lanes(pow(x, c<-1, 2>), -INFINITY).first == 0.0);
    // x^-3 underflows gradually, as pow does (it was 0 at 1e105).
    const auto [u, us] = lanes(pow(x, c<-3>), 1e105);
    CHECK(u > 0.0);
    CHECK(us > 0.0);
    CHECK(std::fabs(u - std::pow(1e105, -3.0)) <= 2 * 4.9406564584124654e-324);
    // Large integer powers go through libm (repeated squaring to x^63 was 38 ulp off).
    double worst = 0;
    for (double v = 0.5; v < 3.0; v += 0.0137) {
        worst = std::max(worst, ulp_distance(lanes(pow(x, c<63>), v).first, std::pow(v, 63.0)));
        worst = std::max(worst, ulp_distance(lanes(pow(x, c<8>), v).first, std::pow(v, 8.0)));
        worst = std::max(worst, ulp_distance(lanes(pow(x, c<-5>), v).first, std::pow(v, -5.0)));
    }
    MESSAGE("pow(x, 63 | 8 | -5) against libm: worst " << worst << " ulp");
    CHECK(worst <= 4.0);
}

TEST_CASE("map_value_and_grad gives the value and one gradient array per argument") {
    constexpr auto f = tanh(x) * sigmoid(y) + sqrt(x * x + y * y);
    const auto xs = grid<double>(37, -2.0, 2.0);
    const auto ys = grid<double>(37, 1.0, 3.0);
    auto [v, g] = map_value_and_grad(f, xs, ys);
    REQUIRE(g.size() == 2);
    for (std::size_t i = 0; i < xs.size(); ++i) {
        CHECK(v(i) == doctest::Approx(f(xs(i), ys(i))).epsilon(1e-14));
        CHECK(g[0](i) == doctest::Approx(d(f, x)(xs(i), ys(i))).epsilon(1e-14));
        CHECK(g[1](i) == doctest::Approx(d(f, y)(xs(i), ys(i))).epsilon(1e-14));
    }
}

TEST_CASE("scalars broadcast; the gradient for a scalar argument is per element") {
    constexpr auto f = x * y + z;
    const auto xs = grid<float>(11, 0.0, 1.0);
    xt::xarray<float> out = map(f, xs, 2.0f, 1.0f);
    for (std::size_t i = 0; i < xs.size(); ++i) CHECK(out(i) == xs(i) * 2.0f + 1.0f);
    auto [v, g] = map_value_and_grad(f, xs, 2.0f, 1.0f);
    for (std::size_t i = 0; i < xs.size(); ++i) {
        CHECK(g[0](i) == 2.0f);
        CHECK(g[1](i) == xs(i));
        CHECK(g[2](i) == 1.0f);
    }
}

TEST_CASE("multi-dimensional arrays and non-contiguous views") {
    xt::xtensor<double, 2> a = xt::xtensor<double, 2>::from_shape({3, 5});
    for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = 0.1 * static_cast<double>(i);
    xt::xtensor<double, 2> out = map(exp(x), a);
    CHECK(out.shape()[0] == 3);
    CHECK(out(2, 4) == doctest::Approx(std::exp(1.4)));
    auto column = xt::view(a, xt::all(), 1);
    xt::xarray<double> col = map(x * 2_c, column);
    CHECK(col.size() == 3);
    CHECK(col(2) == doctest::Approx(2 * 1.1));
}

TEST_CASE("mismatched shapes throw naming the op and both shapes") {
    const auto a = grid<float>(4, 0, 1);
    const auto b = grid<float>(5, 0, 1);
    CHECK_THROWS_WITH_AS(map(x + y, a, b),
                         "exprgrad::map: argument 1 has shape (5,) but argument 0 has shape (4,) (array arguments "
                         "must have equal shapes; scalars broadcast)",
                         std::invalid_argument);
    CHECK_THROWS_AS(map_value_and_grad(x * y, a, b), std::invalid_argument);
}

TEST_CASE("an output of the wrong rank throws naming the function called") {
    const auto a = grid<float>(4, 0, 1);
    xt::xtensor<float, 2> v2;
    std::array<xt::xtensor<float, 2>, 1> g2;
    CHECK_THROWS_WITH_AS(exprgrad::simd::map_value_and_grad_into(exp(x), v2, g2, a),
                         "exprgrad::map_value_and_grad_into: output of dimension 2 cannot hold a result of shape (4,)",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(exprgrad::simd::map_into(exp(x), v2, a),
                         "exprgrad::map_into: output of dimension 2 cannot hold a result of shape (4,)",
                         std::invalid_argument);
}

TEST_CASE("NaN and infinity propagate elementwise") {
    xt::xtensor<float, 1> a = {1.0f, std::numeric_limits<float>::quiet_NaN(), -1.0f, 0.0f, 2, 3, 4, 5, 6};
    xt::xarray<float> out = map(log(x), a);
    CHECK(out(0) == 0.0f);
    CHECK(std::isnan(out(1)));
    CHECK(std::isnan(out(2)));
    CHECK(out(3) == -std::numeric_limits<float>::infinity());
}
