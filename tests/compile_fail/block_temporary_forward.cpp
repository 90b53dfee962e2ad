// The output of forward is a view into the block's buffers: on a temporary block it would dangle.
// expect: forward on a temporary compiled block
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    xt::xarray<float> x = {1.0f, 2.0f};
    const auto& y = compile<float>(tanh(X), wrt<0>).forward(x);
    (void)y;
}
