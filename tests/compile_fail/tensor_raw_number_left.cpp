// A raw number on the left of each operator: one sentence per use and no other error.
// expect: a raw number cannot appear in a tensor expression
// expect-errors: 4
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    auto e = sum(1.0 + X) + sum(2 - X) + sum(3.0f * X) + sum(1.0 / X);
    (void)value_and_grad(e, wrt<0>);
}
