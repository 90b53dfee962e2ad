// expect: too few arguments for this tensor program
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    constexpr auto W = tensor<1>;
    xt::xarray<double> x = {{1.0, 2.0}};
    auto predict = evaluator(matmul(X, W));
    const auto& y = predict(x);
    (void)y;
}
