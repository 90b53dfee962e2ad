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
