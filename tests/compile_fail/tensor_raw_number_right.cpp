// A raw number on the right of each operator (double, int, float): one sentence per use and no
// other error.
// expect: a raw number cannot appear in a tensor expression
// expect-errors: 4
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    auto e = sum(X + 1.0) + sum(X - 1) + sum(X * 2.0f) + sum(X / 2);
    (void)value_and_grad(e, wrt<0>);
}
