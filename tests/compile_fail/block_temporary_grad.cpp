// expect: grad on a temporary compiled block
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    const auto& g = compile<float>(tanh(X), wrt<0>).grad<0>();
    (void)g;
}
