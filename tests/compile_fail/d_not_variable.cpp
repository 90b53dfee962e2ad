// expect: d(f, x) differentiates with respect to a variable
#include <exprgrad/sym.hpp>
using namespace exprgrad::sym::literals;
int main() {
    constexpr auto x = exprgrad::sym::var<0>;
    auto g = d(x * x, 2_c);
    (void)g;
}
