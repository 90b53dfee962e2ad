// jvp and hvp per node family, part 3 (jvp_check.hpp: what is checked and with which tolerance):
// softmax, log_softmax, rms_norm and layer_norm.
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

TEST_CASE("jvp and hvp of softmax and log_softmax, last and first axis") {
    check_family<0>(softmax(X) * log_softmax<0>(X) + softmax<0>(X * X), std::tuple{rnd({3, 4}, 13)}, 14);
}

TEST_CASE("jvp and hvp of rms_norm and layer_norm, input and weight") {
    constexpr auto G = tensor<1>;
    constexpr auto B = tensor<2>;
    const std::tuple args{rnd({3, 4}, 15), rnd({4}, 16), rnd({4}, 17)};
    check_family<0>(rms_norm(X, G) * layer_norm(X, G, B), args, 18);
    check_family<1>(rms_norm(X, G) * layer_norm(X, G, B), args, 19);
}

