// expect: too many arguments for this tensor program
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    xt::xarray<float> x = {1.0f, 2.0f};
    auto blk = compile<float>(tanh(X), wrt<0>);
    (void)blk.forward(x, x);
}
