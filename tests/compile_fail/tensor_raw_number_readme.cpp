// The new user's program from the issue: a raw double scaling a tensor loss. The library's sentence
// must be the only error (it was error 202 of 213, after "no match for operator" and its fallout).
// expect: a raw number cannot appear in a tensor expression
// expect-errors: 1
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    constexpr auto W = tensor<1>;
    xt::xarray<double> x = xt::ones<double>({1, 2}), w = xt::ones<double>({2, 1});
    auto prog = value_and_grad(mean(square(matmul(X, W))) * 0.5, wrt<1>);
    auto [v, g] = prog(x, w);
    (void)v;
    (void)g;
}
