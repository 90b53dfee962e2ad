// jvp and hvp per node family, part 1 (jvp_check.hpp: what is checked and with which tolerance): maps and
// matmul. The families are split over five files to keep each translation unit under 1.5 GB.
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

TEST_CASE("jvp and hvp of maps with broadcasting") {
    check_family<0>(sin(X * W) + X * X * W / (2_c + exp(X)), std::tuple{rnd({3, 4}, 1), rnd({4}, 2)}, 3);
    check_family<1>(sin(X * W) + softplus(X * W), std::tuple{rnd({3, 4}, 1), rnd({4}, 2)}, 4);
}

TEST_CASE("jvp and hvp of matmul: both operands, batched") {
    check_family<0>(matmul(X, transpose(X)), std::tuple{rnd({3, 4}, 5)}, 6);
    check_family<0>(matmul(tanh(X), permute<0, 2, 1>(X)), std::tuple{rnd({2, 3, 4}, 7)}, 8);
}

