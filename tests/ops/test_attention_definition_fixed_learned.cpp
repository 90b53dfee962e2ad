// attention_definition against the fused kernels (attention_definition_check.hpp says what and with which
// tolerance): a fixed scale (1/3) and the learned scale (∂L/∂log s compared too), each with causal off/on and
// padding off/on. Its own translation unit: eight configurations are eight programs to compile.
#include <doctest/doctest.h>

#include "attention_definition_check.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace attention_definition_check;

TEST_CASE("attention_definition equals the kernel: fixed and learned scales") {
    check_masks<scale_type::fixed<decltype(c<1, 3>)>>(2000);
    check_masks<scale_type::learned>(3000);
}
