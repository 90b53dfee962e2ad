// expect: write the exponent as a constant
#include <exprgrad/sym.hpp>
int main() {
    constexpr auto x = exprgrad::sym::var<0>;
    auto f = pow(x, 2);
    (void)f;
}
