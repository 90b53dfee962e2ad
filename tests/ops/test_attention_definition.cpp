// attention_definition against the fused kernels (attention_definition_check.hpp says what and with which
// tolerance): 1/sqrt(d) with causal off/on and padding off/on (the other scales have their own translation
// units, test_attention_definition_*.cpp); and the definition inside a larger expression, checked by finite
// differences.
#include <doctest/doctest.h>

#include "attention_definition_check.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace attention_definition_check;
using test_util::random_array;

TEST_CASE("attention_definition equals the kernel: 1/sqrt(d)") { check_masks<scale_type::inv_sqrt_d>(1000); }

TEST_CASE("docs/attention.md: the definition inside a larger expression, gradients checked by finite differences") {
    // a residual around causal attention with key padding (the docs example), batch entry 1 padded to 2 keys
    const auto q = random_array({2, 2, 4, 3}, 41), k = random_array({2, 2, 4, 3}, 42),
               v = random_array({2, 2, 4, 3}, 43);
    const xt::xarray<int> lengths = {4, 2};
    // docs-begin
    using cfg = attention_config</*causal*/ true, false, scale_type::inv_sqrt_d, /*padded*/ true>;
    constexpr auto y = attention_definition<cfg>(tensor<0>, tensor<1>, tensor<2>, tensor<3>) + tensor<0>;
    auto [loss, grads] = value_and_grad(sum(tensors::square(y)), wrt<0, 1, 2>)(q, k, v, lengths);
    // docs-end
    CHECK(std::isfinite(loss));
    auto r = check::gradcheck(sum(tensors::square(y)), q, k, v, lengths);
    INFO(r.message());
    CHECK(r.ok);
    // padded keys (batch entry 1, keys 2 and 3) get no gradient
    for (std::size_t h = 0; h < 2; ++h)
        for (std::size_t j = 2; j < 4; ++j)
            for (std::size_t c = 0; c < 3; ++c) CHECK(std::get<1>(grads)(1, h, j, c) == 0.0);
}
