// The batch exponential (sym/batch_exp.hpp) against std::exp in long double: within 2 ulp over the
// whole double range, subnormal results and the overflow edge included; special values exact.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "exprgrad/random.hpp"
#include "exprgrad/sym/batch_exp.hpp"

using namespace exprgrad;

namespace {

using B = xsimd::batch<double>;

double exp_lane(double x) { return sym::num::exp_batch(B(x)).get(0); }

// Distance in units in the last place (adjacent doubles of one sign are adjacent integers).
std::int64_t ulps(double a, double b) {
    if (a == b) return 0;
    std::int64_t ia, ib;
    std::memcpy(&ia, &a, sizeof a);
    std::memcpy(&ib, &b, sizeof b);
    return ia > ib ? ia - ib : ib - ia;
}

std::int64_t worst_ulps(double lo, double hi, int n, std::uint64_t seed) {
    rng g(seed);
    std::int64_t worst = 0;
    for (int i = 0; i < n; ++i) {
        const double x = lo + (hi - lo) * g.uniform();
        const double want = static_cast<double>(std::exp(static_cast<long double>(x)));
        const std::int64_t d = ulps(exp_lane(x), want);
        if (d > worst) worst = d;
    }
    return worst;
}

}  // namespace

TEST_CASE("exp_batch: within 2 ulp of the correctly rounded exp over the whole double range") {
    CHECK(worst_ulps(-1, 1, 200000, 1) <= 2);
    CHECK(worst_ulps(-700, 700, 200000, 2) <= 2);
    CHECK(worst_ulps(-745.2, -708, 100000, 3) <= 2);  // subnormal results
    CHECK(worst_ulps(705, 709.78, 100000, 4) <= 2);   // near overflow
    // every lane is computed, not only the first
    const B x{-3.0, -0.5, 0.25, 20.0};
    const B y = sym::num::exp_batch(x);
    for (std::size_t i = 0; i < B::size; ++i) CHECK(ulps(y.get(i), std::exp(x.get(i))) <= 2);
}

TEST_CASE("exp_batch: special values and the edges of the range") {
    const double inf = std::numeric_limits<double>::infinity();
    CHECK(exp_lane(0.0) == 1.0);
    CHECK(exp_lane(-0.0) == 1.0);
    CHECK(exp_lane(1.0) == std::exp(1.0));
    CHECK(exp_lane(inf) == inf);
    CHECK(exp_lane(-inf) == 0.0);
    CHECK(std::isnan(exp_lane(std::nan(""))));
    CHECK(exp_lane(709.782712893384) == std::exp(709.782712893384));  // the largest finite result
    CHECK(exp_lane(709.7827128933841) == inf);
    CHECK(exp_lane(-745.1332191019411) == std::numeric_limits<double>::denorm_min());
    CHECK(exp_lane(-745.2) == 0.0);
    CHECK(exp_lane(-1e300) == 0.0);
    CHECK(exp_lane(1e300) == inf);
    // a NaN lane does not disturb its neighbours
    const B y = sym::num::exp_batch(B{std::nan(""), 0.0, -inf, 2.0});
    CHECK(std::isnan(y.get(0)));
    CHECK(y.get(1) == 1.0);
    CHECK(y.get(2) == 0.0);
    CHECK(ulps(y.get(3), std::exp(2.0)) <= 2);
}

TEST_CASE("exp_batch: float batches are xsimd::exp's") {
    using F = xsimd::batch<float>;
    const F x(0.37f);
    CHECK(sym::num::exp_batch(x).get(0) == xsimd::exp(x).get(0));
}
