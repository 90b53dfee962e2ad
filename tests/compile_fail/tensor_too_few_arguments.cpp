// expect: too few arguments for this tensor program
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    constexpr auto W = tensor<1>;
    xt::xarray<double> x = {{1.0, 2.0}};
    auto prog = value_and_grad(mean(square(matmul(X, W))), wrt<0>);
    auto [v, g] = prog(x);
    (void)v;
    (void)g;
}
