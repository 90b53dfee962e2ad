// A raw number given to tensor functions of several tensors (matmul, norms and their eps, concat,
// embedding, cross_entropy, map): one sentence per use and no other error.
// expect: a raw number cannot appear in a tensor expression
// expect-errors: 9
#include <exprgrad/exprgrad.hpp>
using namespace exprgrad;
int main() {
    constexpr auto X = tensor<0>;
    constexpr auto W = tensor<1>;
    auto e = sum(matmul(X, 2.0)) + sum(matmul(0.5, W)) + sum(rms_norm(X, W, 1e-6)) + sum(concat<0>(X, 1.0)) +
             sum(map(var<0> * var<1>, X, 0.5)) + sum(layer_norm(X, 1.0, 0.0)) + sum(embedding(X, 3)) +
             cross_entropy(X, 1) + sum(rms_norm(1.0, W));
    (void)value_and_grad(e, wrt<0>);
}
