// expect: does not fit an exact 64-bit rational
#include <exprgrad/sym.hpp>
using namespace exprgrad::sym::literals;
int main() {
    auto a = 0x1'0000'0000'0000'0000_c;
    (void)a;
}
