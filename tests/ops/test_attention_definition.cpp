// attention_definition against the fused kernels (attention_definition_check.hpp says what and with which
// tolerance): 1/sqrt(d), fixed and learned scales, each with causal off/on and padding off/on; and the
// definition inside a larger expression, checked by finite differences.
#include <doctest/doctest.h>

#include "attention_definition_check.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace attention_definition_check;
using test_util::random_array;

TEST_CASE("attention_definition equals the kernel: 1/sqrt(d)") { check_masks<scale_type::inv_sqrt_d>(1000); }


TEST_CASE("attention_definition equals the kernel: fixed and learned scales") {
    check_masks<scale_type::fixed<decltype(c<1, 3>)>>(2000);
    check_masks<scale_type::learned>(3000);
}


TEST_CASE("attention_definition: usable inside a larger expression, and gradcheck of the definition itself") {
    // a residual around causal attention, differentiated by the engine and checked by finite differences
    const auto q = random_array({1, 2, 4, 3}, 41), k = random_array({1, 2, 4, 3}, 42),
               v = random_array({1, 2, 4, 3}, 43);
    constexpr auto f = sum(tensors::square(attention_definition<attention_config<true>>(tensor<0>, tensor<1>, tensor<2>) +
                                  tensor<0>));
    auto r = check::gradcheck(f, q, k, v);
    INFO(r.message());
    CHECK(r.ok);
}
