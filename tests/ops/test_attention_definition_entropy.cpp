// attention_definition against the fused kernels (attention_definition_check.hpp): the entropy-invariant
// scale, which depends on the number n of keys a row attends (per row and n = T_k/2), with causal off/on and
// padding off/on.
#include <doctest/doctest.h>

#include "attention_definition_check.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace attention_definition_check;
using test_util::random_array;

TEST_CASE("attention_definition equals the kernel: entropy-invariant scale, per row and n = T_k/2") {
    check_masks<scale_type::entropy_invariant<16>>(4000);
    check_masks<scale_type::entropy_invariant<512, scale_n::half_length>>(5000);
}
