// Parameter store and initializers. The statistical checks use a fixed seed and tolerances of 5
// standard errors derived from the sample size n: for the mean sqrt(σ²/n), for the variance
// sqrt((μ4 − σ⁴)/n) with μ4 the distribution's fourth central moment, for the excess kurtosis of a
// normal sample sqrt(24/n).
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>

#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include <exprgrad/nn/init.hpp>
#include <exprgrad/nn/parameters.hpp>

using namespace exprgrad;
namespace init = exprgrad::nn::init;

TEST_CASE("parameter_set: insertion order, lookup by name, zero_grad, numel") {
    nn::parameter_set<float> ps;
    auto& w = ps.add("layer0.weight", xt::xarray<float>::from_shape({3, 2}));
    auto& b = ps.add("layer0.bias", xt::zeros<float>({2}));
    ps.add("scale", xt::xarray<float>(1.5f));
    CHECK(ps.size() == 3);
    CHECK(ps.numel() == 6 + 2 + 1);
    CHECK(ps[0].name == "layer0.weight");
    CHECK(ps[2].name == "scale");
    CHECK(&ps.at("layer0.bias") == &b);
    CHECK(ps.find("missing") == nullptr);
    CHECK_FALSE(ps.contains("missing"));
    CHECK_THROWS_WITH_AS(ps.at("missing"), doctest::Contains("missing"), std::out_of_range);
    // Gradients start as zeros of the value's shape.
    CHECK(w.grad.shape() == w.value.shape());
    CHECK(xt::all(xt::equal(w.grad, 0.0f)));
    // References stay valid when more parameters are added.
    for (int i = 0; i < 100; ++i) ps.add("p" + std::to_string(i), xt::zeros<float>({1}));
    CHECK(&ps.at("layer0.weight") == &w);
    w.grad.fill(3.0f);
    b.grad.fill(1.0f);
    ps.zero_grad();
    CHECK(xt::all(xt::equal(w.grad, 0.0f)));
    CHECK(xt::all(xt::equal(b.grad, 0.0f)));
    // zero_grad follows a reshaped value.
    w.value = xt::zeros<float>({4});
    w.zero_grad();
    CHECK(w.grad.shape() == w.value.shape());

    std::vector<std::string> order;
    for (const auto& p : ps) order.push_back(p.name);
    CHECK(order[1] == "layer0.bias");

    CHECK_THROWS_AS(ps.add("scale", xt::zeros<float>({1})), std::invalid_argument);  // duplicate
    for (const char* bad : {"", ".hidden", "-x", "a/b", "a b", "..", "ä"})
        CHECK_THROWS_AS(ps.add(bad, xt::zeros<float>({1})), std::invalid_argument);
    CHECK(nn::is_valid_parameter_name("mlp.0.weight"));
    CHECK(nn::is_valid_parameter_name("a-b_C.9"));
}

namespace {

struct moments {
    double mean, var, excess_kurtosis;
};

template <class A>
moments sample_moments(const A& a) {
    long double s = 0;
    for (auto v : a) s += v;
    const long double n = static_cast<long double>(a.size());
    const long double m = s / n;
    long double s2 = 0, s4 = 0;
    for (auto v : a) {
        const long double d = v - m;
        s2 += d * d;
        s4 += d * d * d * d;
    }
    const long double var = s2 / (n - 1);
    const long double m2 = s2 / n;
    return {static_cast<double>(m), static_cast<double>(var), static_cast<double>(s4 / n / (m2 * m2) - 3)};
}

// Checks mean and variance against (mu, sigma2) with 5-standard-error tolerances; mu4 is the fourth
// central moment of the distribution.
void check_stats(const moments& got, double n, double mu, double sigma2, double mu4) {
    const double tol_mean = 5 * std::sqrt(sigma2 / n);
    const double tol_var = 5 * std::sqrt((mu4 - sigma2 * sigma2) / n);
    INFO("mean ", got.mean, " vs ", mu, " (tol ", tol_mean, "), var ", got.var, " vs ", sigma2, " (tol ", tol_var, ")");
    CHECK(std::abs(got.mean - mu) <= tol_mean);
    CHECK(std::abs(got.var - sigma2) <= tol_var);
}

void check_uniform_stats(const xt::xarray<float>& a, double lo, double hi) {
    const double n = static_cast<double>(a.size());
    const double w = hi - lo;
    check_stats(sample_moments(a), n, (lo + hi) / 2, w * w / 12, w * w * w * w / 80);
    CHECK(xt::amin(a)() >= static_cast<float>(lo));
    CHECK(xt::amax(a)() <= static_cast<float>(hi));
    // The whole range is used: the extremes are within a few spacings (w / n) of the bounds.
    CHECK(xt::amin(a)() < lo + 20 * w / n);
    CHECK(xt::amax(a)() > hi - 20 * w / n);
}

void check_normal_stats(const xt::xarray<float>& a, double mean, double std) {
    const double n = static_cast<double>(a.size());
    const double s2 = std * std;
    const moments got = sample_moments(a);
    check_stats(got, n, mean, s2, 3 * s2 * s2);
    CHECK(std::abs(got.excess_kurtosis) <= 5 * std::sqrt(24 / n));
}

}  // namespace

TEST_CASE("uniform and normal: sample statistics within 5 standard errors, deterministic for a seed") {
    rng g(12345);
    auto a = xt::xarray<float>::from_shape({200, 300});
    init::uniform(a, g, -2.0, 3.0);
    check_uniform_stats(a, -2.0, 3.0);

    init::normal(a, g, 0.5, 2.0);
    check_normal_stats(a, 0.5, 2.0);

    // Same seed, same numbers (row-major order, one draw per element); another seed differs.
    rng g1(7), g2(7), g3(8);
    auto b1 = xt::xarray<double>::from_shape({10, 10});
    auto b2 = b1, b3 = b1;
    init::normal(b1, g1, 0, 1);
    init::normal(b2, g2, 0, 1);
    init::normal(b3, g3, 0, 1);
    CHECK((b1 == b2));
    CHECK_FALSE((b1 == b3));
    // The first element is exactly mean + std * the generator's first normal.
    rng g4(7);
    CHECK(b1(0, 0) == g4.normal());

    CHECK_THROWS_AS(init::uniform(a, g, 1.0, 0.0), std::invalid_argument);
    CHECK_THROWS_AS(init::uniform(a, g, 0.0, INFINITY), std::invalid_argument);
    CHECK_THROWS_AS(init::normal(a, g, 0.0, -1.0), std::invalid_argument);
    CHECK_THROWS_AS(init::normal(a, g, NAN, 1.0), std::invalid_argument);
}

TEST_CASE("zeros and constant") {
    auto a = xt::xarray<double>::from_shape({3, 4});
    init::constant(a, 2.5);
    CHECK(xt::all(xt::equal(a, 2.5)));
    init::zeros(a);
    CHECK(xt::all(xt::equal(a, 0.0)));
}

TEST_CASE("fans from the shape") {
    const auto f = init::compute_fans(std::vector<std::size_t>{784, 128});
    CHECK(f.fan_in == 784);
    CHECK(f.fan_out == 128);
    const auto c = init::compute_fans(std::vector<std::size_t>{16, 3, 5, 5}, init::layout::out_in);
    CHECK(c.fan_in == 75);
    CHECK(c.fan_out == 400);
    auto v = xt::xarray<float>::from_shape({10});
    rng g(1);
    CHECK_THROWS_WITH_AS(init::xavier_uniform(v, g), doctest::Contains("got shape (10,)"), std::invalid_argument);
    CHECK(init::gain("relu") == std::sqrt(2.0));
    CHECK(init::gain("tanh") == 5.0 / 3.0);
    CHECK(init::gain("leaky_relu", 0.2) == std::sqrt(2.0 / 1.04));
    CHECK_THROWS_AS(init::gain("swish"), std::invalid_argument);
}

TEST_CASE("xavier and kaiming: bounds and variances from the fans") {
    rng g(99);
    // (fan_in, fan_out) = (300, 200) in the library's in_out layout.
    auto w = xt::xarray<float>::from_shape({300, 200});
    const double fi = 300, fo = 200;

    init::xavier_uniform(w, g);
    double b = std::sqrt(6.0 / (fi + fo));
    check_uniform_stats(w, -b, b);

    init::glorot_normal(w, g, 2.0);
    check_normal_stats(w, 0.0, 2.0 * std::sqrt(2.0 / (fi + fo)));

    init::kaiming_uniform(w, g);  // gain sqrt(2), fan_in: b = sqrt(2) sqrt(3 / 300)
    b = std::sqrt(2.0) * std::sqrt(3.0 / fi);
    check_uniform_stats(w, -b, b);

    init::he_normal(w, g, 1.0, init::fan_mode::fan_out);
    check_normal_stats(w, 0.0, 1.0 / std::sqrt(fo));

    // PyTorch's (out, in) layout swaps the fans.
    init::kaiming_normal(w, g, std::sqrt(2.0), init::fan_mode::fan_in, init::layout::out_in);
    check_normal_stats(w, 0.0, std::sqrt(2.0) / std::sqrt(fo));
}
