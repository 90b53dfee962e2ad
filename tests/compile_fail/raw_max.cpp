// The library's sentence must be the first error, not "incomplete type" or "no matching function".
// expect: a raw number cannot appear in an expression
#include <exprgrad/sym.hpp>
int main() {
    constexpr auto x = exprgrad::sym::var<0>;
    constexpr auto y = exprgrad::sym::var<1>;
    auto f = max(0.5, x);
    (void)f;
    (void)y;
}
