// expect: hexadecimal floating literals are not supported by _c
#include <exprgrad/sym.hpp>
using namespace exprgrad::sym::literals;
int main() {
    auto a = 0x1p3_c;
    (void)a;
}
