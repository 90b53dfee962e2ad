// attention_definition against the fused kernels (attention_definition_check.hpp): the gradient-maximizing
// scale α*(n)/√d, n the number of keys a row attends (per row and n = T_k/2; the definition solves for α* by five
// Newton steps), with causal off/on and padding off/on.
#include <doctest/doctest.h>

#include "attention_definition_check.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace attention_definition_check;
using test_util::random_array;

TEST_CASE("attention_definition equals the kernel: gradient-maximizing scale, per row and n = T_k/2") {
    check_masks<scale_type::gradient_max>(6000);
    check_masks<scale_type::gradient_max_n<scale_n::half_length>>(7000);
}
