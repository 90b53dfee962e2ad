// attention_definition against the fused kernels (attention_definition_check.hpp): cosine attention
// (normalize_qk) with 1/sqrt(d), causal off/on and padding off/on. Cosine attention with the entropy-invariant
// scale is test_attention_definition_cosine_entropy.cpp (one translation unit for both took 28-37 s to compile).
#include <doctest/doctest.h>

#include "attention_definition_check.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace attention_definition_check;

TEST_CASE("attention_definition equals the kernel: cosine attention (normalize_qk), 1/sqrt(d)") {
    check_masks<scale_type::inv_sqrt_d, true>(8000);
}
