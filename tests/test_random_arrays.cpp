// Random arrays for data (random_arrays.hpp): each draw against its documented formula on the
// generator, moments and frequencies within 5 standard errors over 1e5 draws, ranges (also where
// rounding to the element type would leave them), and the refusals.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>  // declares ::random(): `random::` must still name the namespace
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "exprgrad/nn/init.hpp"

using namespace exprgrad;

namespace {
constexpr std::size_t n = 100000;

struct moments {
    double mean = 0, var = 0;
};
template <class A>
moments moments_of(const A& a) {
    moments m;
    for (auto v : a) m.mean += static_cast<double>(v);
    m.mean /= static_cast<double>(a.size());
    for (auto v : a) m.var += (static_cast<double>(v) - m.mean) * (static_cast<double>(v) - m.mean);
    m.var /= static_cast<double>(a.size() - 1);
    return m;
}
// |mean - mu| within 5 standard errors, and the sample variance within 5 standard errors of sigma2
// (the variance of the sample variance is (mu4 - sigma4 (n-3)/(n-1)) / n; mu4 is passed in).
void check_moments(const moments& m, double mu, double sigma2, double mu4) {
    const double dn = static_cast<double>(n);
    CHECK(std::abs(m.mean - mu) < 5 * std::sqrt(sigma2 / dn));
    CHECK(std::abs(m.var - sigma2) < 5 * std::sqrt((mu4 - sigma2 * sigma2 * (dn - 3) / (dn - 1)) / dn));
}
}  // namespace

TEST_CASE("each draw follows its documented formula on the generator, row-major") {
    rng a(11), b(11);
    const auto x = random::normal(a, {2, 3}, 1.5, 0.5);
    static_assert(std::is_same_v<decltype(x), const xt::xarray<double>>);
    REQUIRE(x.shape() == std::vector<std::size_t>{2, 3});
    for (std::size_t i = 0; i < 6; ++i) CHECK(x.flat(i) == 1.5 + 0.5 * b.normal());
    CHECK(a.state() == b.state());

    const auto u = random::uniform<float>(a, {4}, -2.0, 6.0);
    for (std::size_t i = 0; i < 4; ++i) CHECK(u(i) == static_cast<float>(-2.0 + 8.0 * b.uniform()));

    const auto k = random::integers(a, {5}, -3, 7);
    static_assert(std::is_same_v<decltype(k), const xt::xarray<std::int64_t>>);
    for (std::size_t i = 0; i < 5; ++i) CHECK(k(i) == -3 + static_cast<std::int64_t>(b.below(10)));

    const auto m = random::bernoulli<float>(a, {7}, 0.25);
    for (std::size_t i = 0; i < 7; ++i) CHECK(m(i) == (b.uniform() < 0.25 ? 1.0f : 0.0f));
    CHECK(a.state() == b.state());  // exactly one draw per element for bernoulli
}

TEST_CASE("a seed gives the same arrays; normal equals nn::init::normal on an array of that shape") {
    rng a(3), b(3), c(4);
    CHECK(random::normal<float>(a, {5, 4}) == random::normal<float>(b, {5, 4}));
    CHECK(random::integers(a, {100}, 0, 1000) == random::integers(b, {100}, 0, 1000));
    CHECK_FALSE(random::uniform(a, {100}) == random::uniform(c, {100}));

    rng d(9), e(9);
    xt::xarray<float> w = xt::xarray<float>::from_shape({3, 5});
    nn::init::normal(w, d, 0.0, 0.02);
    CHECK(random::normal<float>(e, {3, 5}, 0.0, 0.02) == w);
    // a shape given as another array's shape
    CHECK(random::uniform<float>(d, w.shape()).shape() == w.shape());
}

TEST_CASE("normal: mean and variance within 5 standard errors over 1e5 draws (double and float)") {
    rng g(1);
    const auto x = random::normal(g, {n}, 2.0, 3.0);
    check_moments(moments_of(x), 2.0, 9.0, 3 * 81.0);
    const auto y = random::normal<float>(g, {100, 1000}, -1.0, 0.5);
    check_moments(moments_of(y), -1.0, 0.25, 3 * 0.0625);
    // a fixed fraction of the mass: P(|z| < 1) = erf(1/sqrt 2) = 0.6827
    double inside = 0;
    for (double v : x) inside += std::abs(v - 2.0) < 3.0;
    const double p = std::erf(1 / std::sqrt(2.0));
    CHECK(std::abs(inside / n - p) < 5 * std::sqrt(p * (1 - p) / n));
    // stddev 0: the mean everywhere
    CHECK(random::normal(g, {3}, 4.0, 0.0) == xt::xarray<double>{4.0, 4.0, 4.0});
}

TEST_CASE("uniform: moments, and every value in [low, high)") {
    rng g(2);
    const auto x = random::uniform(g, {n}, -1.0, 3.0);
    const double w = 4.0;
    check_moments(moments_of(x), 1.0, w * w / 12, w * w * w * w / 80);
    CHECK(xt::amin(x)() >= -1.0);
    CHECK(xt::amax(x)() < 3.0);
    CHECK(xt::amin(x)() < -1.0 + 1e-3);  // the whole range is covered
    CHECK(xt::amax(x)() > 3.0 - 1e-3);
    const auto f = random::uniform<float>(g, {n});
    CHECK(xt::amin(f)() >= 0.0f);
    CHECK(xt::amax(f)() < 1.0f);
}

TEST_CASE("uniform: a value that rounds up to high is drawn again") {
    rng g(5);
    // [1, 1 + 2^-23) holds one float, 1: about half the draws round up to 1 + 2^-23 before the redraw
    const auto f = random::uniform<float>(g, {1000}, 1.0, 1.0 + 0x1p-23);
    for (float v : f) CHECK(v == 1.0f);
    // the same in double: [1, next double after 1) holds only 1
    const auto d = random::uniform(g, {1000}, 1.0, 1.0 + 0x1p-52);
    for (double v : d) CHECK(v == 1.0);
}

TEST_CASE("integers: every value of [low, high) with frequency 1/(high - low); extreme ranges") {
    rng g(3);
    const auto k = random::integers(g, {n}, -3, 4);
    std::vector<double> count(7, 0);
    for (auto v : k) {
        REQUIRE(v >= -3);
        REQUIRE(v < 4);
        count[static_cast<std::size_t>(v + 3)] += 1;
    }
    const double p = 1.0 / 7;
    for (double c : count) CHECK(std::abs(c / n - p) < 5 * std::sqrt(p * (1 - p) / n));

    const auto b = random::integers<std::uint8_t>(g, {1000}, 250, 256);
    CHECK(xt::amin(b)() == 250);
    CHECK(xt::amax(b)() == 255);
    constexpr auto lo = std::numeric_limits<std::int64_t>::min(), hi = std::numeric_limits<std::int64_t>::max();
    const auto wide = random::integers(g, {1000}, lo, hi);
    int negative = 0;
    for (auto v : wide) negative += v < 0;
    CHECK(negative > 400);  // half of the range is negative: 500 expected, sd 16
    CHECK(negative < 600);
    CHECK(random::integers(g, {4}, 7, 8) == xt::xarray<std::int64_t>{7, 7, 7, 7});
}

TEST_CASE("bernoulli: frequency within 5 standard errors; p = 0 and p = 1 are exact") {
    rng g(4);
    const auto m = random::bernoulli<bool>(g, {n}, 0.3);
    double ones = 0;
    for (bool v : m) ones += v;
    CHECK(std::abs(ones / n - 0.3) < 5 * std::sqrt(0.3 * 0.7 / n));
    CHECK(xt::sum(random::bernoulli(g, {1000}, 0.0))() == 0.0);
    CHECK(xt::sum(random::bernoulli<int>(g, {1000}, 1.0))() == 1000);
}

TEST_CASE("shapes: rank 0 holds one element, an empty shape draws nothing") {
    rng g(8), ref(8);
    const auto s = random::normal(g, {});
    CHECK(s.dimension() == 0);
    CHECK(s() == ref.normal());
    const auto e = random::uniform(g, {3, 0});
    CHECK(e.size() == 0);
    CHECK(g.state() == ref.state());
    // an empty shape whose other dimensions would overflow is still empty
    CHECK(random::bernoulli(g, {std::size_t(1) << 40, std::size_t(1) << 40, 0}, 0.5).size() == 0);
}

TEST_CASE("bad parameters are refused naming the function and the value, before any draw") {
    rng g(6);
    const auto before = g.state();
    using doctest::Contains;
    const double nan = std::nan("");
    CHECK_THROWS_WITH_AS(random::normal(g, {2}, 0.0, -1.0),
                         "exprgrad::random::normal: stddev must be finite and >= 0, got -1", std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::normal(g, {2}, 0.0, nan), Contains("stddev must be finite and >= 0, got nan"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::normal(g, {2}, 0.0, INFINITY), Contains("got inf"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::normal(g, {2}, nan, 1.0), Contains("normal: mean must be finite, got nan"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::uniform(g, {2}, 1.0, 1.0),
                         "exprgrad::random::uniform: needs finite low < high, got low = 1, high = 1",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::uniform(g, {2}, 2.0, 0.5), Contains("got low = 2, high = 0.5"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::uniform(g, {2}, nan, 1.0), Contains("got low = nan"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::uniform(g, {2}, -1e308, 1e308), Contains("uniform: the width high - low overflows"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::uniform<float>(g, {2}, 1.0, 1.0 + 1e-12),
                         Contains("uniform: no value of the element type lies in [low, high)"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::integers(g, {2}, 5, 5),
                         "exprgrad::random::integers: needs low < high, got low = 5, high = 5", std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::integers<std::uint8_t>(g, {2}, 0, 300),
                         Contains("integers: [low, high) does not fit the element type, got low = 0, high = 300"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::integers<std::uint32_t>(g, {2}, -1, 5), Contains("got low = -1"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::bernoulli(g, {2}, -0.1), "exprgrad::random::bernoulli: p must be in [0, 1], got -0.1",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::bernoulli(g, {2}, 1.5), Contains("got 1.5"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::bernoulli(g, {2}, nan), Contains("got nan"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::normal(g, {std::size_t(1) << 32, std::size_t(1) << 32}),
                         "exprgrad::random::normal: shape (4294967296, 4294967296) has more elements than an array "
                         "can hold",
                         std::invalid_argument);
    // the element count fits, its size in bytes does not
    CHECK_THROWS_WITH_AS(random::uniform(g, {std::size_t(1) << 62}), Contains("uniform: shape (4611686018427387904,)"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(random::bernoulli(g, std::vector<int>{2, -1}, 0.5),
                         "exprgrad::random::bernoulli: negative dimension -1 in shape (2, -1)", std::invalid_argument);
    CHECK(g.state() == before);  // nothing was drawn
}

TEST_CASE("docs/guide.md: random numbers for data") {
    // docs-begin docs/guide.md
    rng gen(42);
    auto x = random::normal<float>(gen, {64, 16}, 0.0, 1.0);    // N(0, 1) features
    auto w = random::uniform<float>(gen, {16, 4}, -0.5, 0.5);   // U[-0.5, 0.5)
    auto y = random::integers(gen, {64}, 0, 4);                 // int64 labels in [0, 4)
    auto keep = random::bernoulli<float>(gen, x.shape(), 0.9);  // 1 with probability 0.9
    // docs-end
    auto noisy = evaluate(tanh(matmul(tensor<0> * tensor<2>, tensor<1>)), x, w, keep);
    CHECK(noisy.shape() == std::vector<std::size_t>{64, 4});
    CHECK(y.shape() == std::vector<std::size_t>{64});
    CHECK(xt::amax(y)() <= 3);
    CHECK(xt::amin(keep)() == 0.0f);  // 1024 draws at p = 0.9: some zero (the chance of none is 1e-47)
}

TEST_CASE("rng::below refuses an empty range instead of dividing by zero") {
    exprgrad::rng g(7);
    CHECK_THROWS_WITH_AS(g.below(0), "exprgrad::rng::below: n must be > 0, got 0", std::invalid_argument);
    for (int i = 0; i < 100; ++i) CHECK(g.below(1) == 0);
}
