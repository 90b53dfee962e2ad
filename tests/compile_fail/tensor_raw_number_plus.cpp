// expect: a raw number cannot appear in a tensor expression
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    xt::xarray<double> x = {1.0, 2.0};
    auto [v, g] = value_and_grad(sum(square(X + 1.0)), wrt<0>)(x);
    (void)v;
    (void)g;
}
