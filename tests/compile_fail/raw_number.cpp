// A raw run-time number inside an expression must be rejected with a sentence saying what to do.
// expect: a raw number cannot appear in an expression
#include <exprgrad/sym.hpp>
int main() {
    constexpr auto x = exprgrad::sym::var<0>;
    auto f = x + 1;
    (void)f;
}
