// attention_definition against the fused kernels (attention_definition_check.hpp): cosine attention
// (normalize_qk) with 1/sqrt(d) and the entropy-invariant scale, causal off/on and padding off/on.
#include <doctest/doctest.h>

#include "attention_definition_check.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace attention_definition_check;
using test_util::random_array;

TEST_CASE("attention_definition equals the kernel: cosine attention (normalize_qk)") {
    check_masks<scale_type::inv_sqrt_d, true>(8000);
    check_masks<scale_type::entropy_invariant<16>, true>(9000);
}
