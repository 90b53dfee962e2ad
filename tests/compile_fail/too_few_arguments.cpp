// expect: too few arguments
#include <exprgrad/sym.hpp>
int main() {
    constexpr auto x = exprgrad::sym::var<0>;
    constexpr auto y = exprgrad::sym::var<1>;
    return static_cast<int>((x * y)(1.0));
}
