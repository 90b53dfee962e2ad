// emo_definition against the fused kernel (emo_definition_check.hpp says what and with which tolerance) for the
// objectives that weight or mix CE and EMO: mode1, mode1_capped with a cap that does not bind (3) and one that does
// (1/2, guarded in test_emo_definition.cpp), and mode2; on logits [N, V] and [B, T, V], ignored positions, all
// positions ignored, a zero row of E and a −inf logit.
#include <doctest/doctest.h>

#include "emo_definition_check.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace emo_definition_check;

TEST_CASE("emo_definition equals the kernel: mode1, mode1_capped (cap 3 and a binding cap 1/2), mode2") {
    check_cases<emo_objective::mode1>(300);
    check_cases<emo_objective::mode1_capped>(400);
    check_cases<emo_objective::mode1_capped, sym::Const<1, 2>>(500);
    check_cases<emo_objective::mode2>(600);
}
