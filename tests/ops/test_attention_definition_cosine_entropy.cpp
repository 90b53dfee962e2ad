// attention_definition against the fused kernels (attention_definition_check.hpp): cosine attention
// (normalize_qk) with the entropy-invariant scale (per row), causal off/on and padding off/on.
#include <doctest/doctest.h>

#include "attention_definition_check.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace attention_definition_check;

TEST_CASE("attention_definition equals the kernel: cosine attention (normalize_qk), entropy-invariant scale") {
    check_masks<scale_type::entropy_invariant<16>, true>(9000);
}
