// expect: must share one number type
#include <exprgrad/sym.hpp>
int main() {
    constexpr auto x = exprgrad::sym::var<0>;
    constexpr auto y = exprgrad::sym::var<1>;
    auto v = (x * y)(1.0, xsimd::batch<float>(2.0f));
    (void)v;
}
