// An extra argument to a tensor program is refused at compile time (it used to be ignored).
// expect: too many arguments for this tensor program
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    constexpr auto W = tensor<1>;
    xt::xarray<double> x = xt::ones<double>({1, 2}), w = xt::ones<double>({2, 1}), y = xt::ones<double>({1});
    auto prog = value_and_grad(mean(square(matmul(X, W))), wrt<1>);
    auto [v, g] = prog(x, w, y);
    (void)v;
    (void)g;
}
