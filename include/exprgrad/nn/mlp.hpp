// Dense layers and multi-layer perceptrons built at run time from compiled blocks.
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "exprgrad/nn/init.hpp"
#include "exprgrad/nn/layer.hpp"
#include "exprgrad/nn/parameters.hpp"
#include "exprgrad/random.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"

namespace exprgrad::nn {

/// The nonlinearity after a dense layer.
enum class activation { none, tanh, relu };

namespace detail {
inline constexpr tensors::Input<0> X{};
inline constexpr tensors::Input<1> W{};
inline constexpr tensors::Input<2> B{};
// One compiled block per activation: y = act(x·W + b), x [.., in], W [in, out], b [out].
using dense_none = decltype(tensors::matmul(X, W) + B);
using dense_tanh = decltype(tensors::tanh(tensors::matmul(X, W) + B));
using dense_relu = decltype(tensors::relu(tensors::matmul(X, W) + B));
}  // namespace detail

/// A dense layer y = act(x·W + b) with W [in, out] (Xavier-uniform for tanh and none, Kaiming-uniform
/// for relu, from `gen`) and b [out] (zeros), registered in `params` as name.W and name.b.
/// x is [batch, in] or [batch, time, in].
template <class T>
std::unique_ptr<layer<T>> dense(parameter_set<T>& params, const std::string& name, std::size_t in, std::size_t out,
                                activation act, rng& gen) {
    if (in == 0 || out == 0) throw tensors::shape_error("nn::dense", "widths must be positive");
    auto& w = params.add(name + ".W", xt::xarray<T>::from_shape({in, out}));
    auto& b = params.add(name + ".b", xt::xarray<T>::from_shape({out}));
    if (act == activation::relu) {
        init::kaiming_uniform(w.value, gen);
    } else {
        init::xavier_uniform(w.value, gen, act == activation::tanh ? 5.0 / 3.0 : 1.0);
    }
    init::zeros(b.value);
    std::array<parameter<T>*, 2> p{&w, &b};
    switch (act) {
        case activation::tanh:
            return std::make_unique<expr_layer<T, detail::dense_tanh, 2>>(p);
        case activation::relu:
            return std::make_unique<expr_layer<T, detail::dense_relu, 2>>(p);
        default:
            return std::make_unique<expr_layer<T, detail::dense_none, 2>>(p);
    }
}

/// A multi-layer perceptron with the given widths (input first, output last): dense layers with
/// `act` between them and none after the last. Example: mlp<float>(params, {8, 64, 64, 1},
/// activation::tanh, gen) has three dense layers.
template <class T>
std::unique_ptr<sequential<T>> mlp(parameter_set<T>& params, const std::vector<std::size_t>& widths, activation act,
                                   rng& gen, const std::string& name = "mlp") {
    if (widths.size() < 2) throw tensors::shape_error("nn::mlp", "needs at least an input and an output width");
    auto s = std::make_unique<sequential<T>>();
    for (std::size_t i = 0; i + 1 < widths.size(); ++i) {
        const bool last = i + 2 == widths.size();
        s->add(dense<T>(params, name + "." + std::to_string(i), widths[i], widths[i + 1], last ? activation::none : act,
                        gen));
    }
    return s;
}

}  // namespace exprgrad::nn
