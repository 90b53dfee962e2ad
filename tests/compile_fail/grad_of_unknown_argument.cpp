// expect: grad_of<I>: argument I is neither read by the expression nor differentiated
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    tensors::program<double, std::remove_cvref_t<decltype(sum(X))>, std::integer_sequence<int, 0>> p;
    (void)p.grad_of<3>();
}
