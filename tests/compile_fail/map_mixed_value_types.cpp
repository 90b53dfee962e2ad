// expect: map needs all array arguments to have one value type
#include <exprgrad/simd/map.hpp>
#include <exprgrad/sym.hpp>
int main() {
    constexpr auto x = exprgrad::sym::var<0>;
    constexpr auto y = exprgrad::sym::var<1>;
    xt::xtensor<float, 1> a = {1.0f};
    xt::xtensor<double, 1> b = {1.0};
    auto r = exprgrad::simd::map(x * y, a, b);
    (void)r;
}
