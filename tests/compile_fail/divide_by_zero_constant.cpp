// expect: division by the constant zero
#include <exprgrad/sym.hpp>
using namespace exprgrad::sym::literals;
int main() {
    constexpr auto x = exprgrad::sym::var<0>;
    auto f = x / 0_c;
    (void)f;
}
