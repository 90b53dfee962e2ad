// A first program: logistic regression trained with Adam on random data, accuracy printed.
// Exits 1 when the accuracy stays below what the data allow (so the suite catches broken training).
//
//   build/examples/first_logistic_regression
#include <cstdio>
#include <vector>

#include <exprgrad/exprgrad.hpp>
#include <exprgrad/nn/adam.hpp>

using namespace exprgrad;

int main() {
    // Data: 512 points in 8 dimensions, labelled by a hidden plane, 10% of labels flipped.
    // The best any classifier can do is about 90% accuracy.
    constexpr auto X = tensor<0>;  // placeholders: the program's arguments, by position
    constexpr auto W = tensor<1>;
    constexpr auto B = tensor<2>;
    constexpr auto Y = tensor<3>;
    const std::size_t n = 512, dim = 8;
    rng gen(42);
    const xt::xarray<float> x = random::normal<float>(gen, {n, dim});
    const xt::xarray<float> w_true = random::normal<float>(gen, {dim, 1});
    const xt::xarray<float> flip = random::bernoulli<float>(gen, {n, 1}, 0.1);
    const xt::xarray<float> clean = xt::cast<float>(evaluate(matmul(X, W), x, w_true) > 0.0f);
    const xt::xarray<float> y = xt::abs(clean - flip);  // 0/1 labels, flipped where flip = 1

    // The model's parameters: named arrays with a gradient each (what an optimizer updates).
    nn::parameter_set<float> params;
    auto& w = params.add("w", xt::zeros<float>(std::vector<std::size_t>{dim, 1}));
    auto& b = params.add("b", xt::zeros<float>({1}));

    // The loss as an expression: logits z = X·w + b, mean of softplus(z) − y·z (the logistic loss).
    // value_and_grad compiles it once, with gradients for arguments 1 (w) and 2 (b).
    const auto z = matmul(X, W) + B;
    auto loss_and_grad = value_and_grad(mean(softplus(z) - Y * z), wrt<1, 2>);
    auto predict = evaluator(sigmoid(z));  // the probabilities, no gradient buffers
    // The compiled gradient against finite differences (in double), once, before training on it.
    if (!check::gradcheck(loss_and_grad, x, w.value, b.value, y)) return 1;

    nn::adam<float> opt({.lr = 0.05});
    for (int step = 0; step <= 200; ++step) {
        auto [loss, grads] = loss_and_grad(x, w.value, b.value, y);
        w.grad = std::get<0>(grads);  // hand the gradients to the parameters
        b.grad = std::get<1>(grads);
        opt.step(params);
        if (step % 50 == 0) std::printf("step %3d  loss %.4f\n", step, loss);
    }

    // Accuracy: a prediction is right when p > 0.5 agrees with the label.
    const xt::xarray<float> p = predict(x, w.value, b.value);
    const double accuracy = xt::mean(xt::equal(xt::cast<float>(p > 0.5f), y))();
    std::printf("accuracy %.3f (about 0.9 is the best the noisy labels allow)\n", accuracy);
    return accuracy >= 0.85 ? 0 : 1;
}
