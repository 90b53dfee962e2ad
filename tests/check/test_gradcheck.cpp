// check::gradcheck: the wrt form perturbs and checks only the differentiated arguments (a mask holding
// -inf is an input held fixed), the form without wrt checks every floating-point array argument, and
// the check can fail.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;

namespace {
constexpr auto X = tensor<0>;
constexpr auto Y = tensor<1>;
constexpr auto Z = tensor<2>;

using test_util::random_array;
}  // namespace

TEST_CASE("gradcheck perturbs only the wrt arguments: a -inf mask is an input held fixed") {
    // softmax(X + M) with M = 0 where visible and -inf where masked: M has no finite difference at -inf.
    const auto a = random_array({3, 5}, 37), y = random_array({3, 5}, 38);
    xt::xarray<double> m = xt::zeros<double>({3, 5});
    m(0, 1) = m(1, 4) = m(2, 0) = -INFINITY;
    const auto e = sum(softmax(X + Y) * Z);
    const auto r = check::gradcheck(e, wrt<0, 2>, a, m, y);
    INFO(r.message());
    CHECK(r.ok);
    CHECK(r.checked == a.size() + y.size());  // exactly the two wrt arguments, every entry
    // the same check over every floating argument perturbs the mask and fails on its -inf entries
    const auto all = check::gradcheck(e, a, m, y);
    CHECK_FALSE(all.ok);
    CHECK(all.worst_argument == 1);
    CHECK(all.checked == a.size() + m.size() + y.size());
    // with options, and able to fail: a wrong rule would be caught (here a too tight tolerance)
    check::gradcheck_options tight;
    tight.rtol = 0;
    tight.step = 1e-2;
    CHECK_FALSE(check::gradcheck(sum(exp(X)), wrt<0>, tight, a).ok);
    CHECK(check::gradcheck(sum(exp(X)), wrt<0>, check::gradcheck_options{}, a).ok);
}

TEST_CASE("docs/tensor.md: gradcheck of a compiled program checks its wrt arguments only") {
    // docs-begin docs/tensor.md
    constexpr auto S = tensor<0>;  // attention scores
    constexpr auto M = tensor<1>;  // additive mask: 0 where a key is visible, -inf where it is hidden
    constexpr auto V = tensor<2>;  // values
    auto prog = value_and_grad(sum(square(matmul(softmax(S + M), V))), wrt<0, 2>);
    rng gen(1);
    const auto s = random::normal(gen, {3, 4}), v = random::normal(gen, {4, 2});
    xt::xarray<double> m = xt::zeros<double>({3, 4});
    m(0, 3) = m(1, 2) = m(1, 3) = -INFINITY;
    const auto r = check::gradcheck(prog, s, m, v);  // perturbs s and v (the program's wrt), never m
    CHECK_MESSAGE(r.ok, r.message());
    check::gradcheck_options opts;
    opts.max_entries = 4;  // a fixed random sample of 4 entries per argument
    CHECK(check::gradcheck(prog, opts, s, m, v).checked == 8);
    // docs-end
    CHECK(r.checked == s.size() + v.size());
    CHECK(r.worst_argument != 1);
    // Perturbing every argument (what the form without wrt does) steps off -inf into NaN: a false failure.
    const auto every = check::gradcheck(sum(square(matmul(softmax(S + M), V))), s, m, v);
    CHECK_FALSE(every.ok);
    CHECK(every.worst_argument == 1);
    // The program still computes its own results: gradcheck used programs of its own.
    xt::xarray<float> sf = s, vf = v, mf = m;
    const auto [value, grads] = prog(sf, mf, vf);
    CHECK(std::isfinite(value));
    CHECK(std::get<0>(grads).shape() == sf.shape());
}
