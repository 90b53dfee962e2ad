// expect: d(f, x) differentiates with respect to a variable
#include <exprgrad/sym.hpp>
int main() {
    constexpr auto x = exprgrad::sym::var<0>;
    auto g = d(x * x, 1.0);
    (void)g;
}
