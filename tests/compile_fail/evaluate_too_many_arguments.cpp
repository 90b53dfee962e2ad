// expect: too many arguments for this tensor program
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    xt::xarray<double> x = {1.0, 2.0};
    const auto y = evaluate(tanh(X), x, x);
    (void)y;
}
