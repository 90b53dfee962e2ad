// expect: exprgrad: hvp: a wrt argument must be a floating-point array
#include <exprgrad/check/hvp.hpp>
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    constexpr auto S = tensor<1>;
    auto H = check::hvp(sum(X * S), wrt<1>);  // S is called with a number below: no direction has its shape
    xt::xarray<double> x = {1.0, 2.0};
    auto r = H(xt::xarray<double>{1.0}, x, 2.0);
    (void)r;
}
