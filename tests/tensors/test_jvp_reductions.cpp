// jvp and hvp per node family, part 2 (jvp_check.hpp: what is checked and with which tolerance):
// reductions (with parts 1 and 3 in one file it was 2.1 GB to compile).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>

#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include "jvp_check.hpp"

using namespace exprgrad;
using namespace jvp_check;

TEST_CASE("jvp and hvp of reductions: sum, mean, max, logsumexp over an axis and over everything") {
    check_family<0>(sum<1>(X * X) + mean<1>(X * X * X) + max<1>(X) * max<1>(X) + logsumexp<1>(X * X),
                    std::tuple{rnd({3, 4}, 9)}, 10);
    check_family<0>(logsumexp<0>(X) * max<0>(X) + logsumexp(X) * max(X * X) + mean(X) * sum<0>(X),
                    std::tuple{rnd({3, 4}, 11)}, 12);
}

