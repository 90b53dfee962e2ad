// The position-wise feed-forward sublayer of a pre-norm transformer as one compiled block.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string>

#include <xtensor/xarray.hpp>

#include "exprgrad/nn/init.hpp"
#include "exprgrad/nn/layer.hpp"
#include "exprgrad/nn/parameters.hpp"
#include "exprgrad/random.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/norm.hpp"

namespace exprgrad::nn {

namespace detail {
// f(x) = relu(rms_norm(x, g)·W1 + b1)·W2 + b2
using feed_forward_expr = decltype(tensors::matmul(tensors::relu(tensors::matmul(tensors::rms_norm(tensors::Input<0>{},
                                                                                                   tensors::Input<1>{}),
                                                                                 tensors::Input<2>{}) +
                                                                 tensors::Input<3>{}),
                                                   tensors::Input<4>{}) +
                                   tensors::Input<5>{});
// x + f(x) with x passed again as tensor<6>: the residual added inside the last block (no separate addition
// block, no copy of f(x)); ((h·W2 + b2) + x) rounds as f(x) + x did.
using feed_forward_residual_expr = decltype(feed_forward_expr{} + tensors::Input<6>{});

// The feed-forward layer: one compiled program for both uses. Under nn::residual it adds x itself; alone it
// adds the number 0 in x's place (f(x) + 0 = f(x), only an output of -0 reads +0), so that a model compiles
// one feed-forward program, not two (the second cost tiny_lm/model.cpp 80 MB of compiler memory).
template <class T>
class feed_forward_layer : public layer<T> {
  public:
    explicit feed_forward_layer(std::array<parameter<T>*, 5> p) : p_(p) {}
    tensors::handle record_into(tensors::record<T>& rec, tensors::handle x) override { return call(rec, x, false); }
    tensors::handle record_residual_into(tensors::record<T>& rec, tensors::handle x) override {
        return call(rec, x, true);
    }

  private:
    tensors::handle call(tensors::record<T>& rec, tensors::handle x, bool residual) {
        typename layer<T>::recompute_scope scope(rec, *this);
        const tensors::handle g = leaf(rec, *p_[0]), w1 = leaf(rec, *p_[1]), b1 = leaf(rec, *p_[2]),
                              w2 = leaf(rec, *p_[3]), b2 = leaf(rec, *p_[4]);
        return residual ? rec.call(block_, x, g, w1, b1, w2, b2, x) : rec.call(block_, x, g, w1, b1, w2, b2, T(0));
    }

    std::array<parameter<T>*, 5> p_;
    tensors::block<T, feed_forward_residual_expr, 0, 1, 2, 3, 4, 5, 6> block_;
};
}  // namespace detail

/// f(x) = relu(rms_norm(x, g)·W1 + b1)·W2 + b2 for x [..., d] with a hidden width `hidden`; parameters
/// name.norm (ones), name.w1 [d, hidden] (Kaiming-uniform), name.b1, name.w2 [hidden, d] (Xavier-uniform
/// times out_gain), name.b2 (zeros). Wrap it in nn::residual for a transformer sublayer (the layer then adds
/// x inside its one block: one record entry).
/// Example: `auto ff = feed_forward<float>(params, "l0.mlp", 64, 256, gen);`
template <class T>
std::unique_ptr<layer<T>> feed_forward(parameter_set<T>& params, const std::string& name, std::size_t d,
                                       std::size_t hidden, rng& gen, double out_gain = 1.0) {
    auto& g = params.add(name + ".norm", xt::ones<T>({d}));
    auto& w1 = params.add(name + ".w1", xt::xarray<T>::from_shape({d, hidden}));
    auto& b1 = params.add(name + ".b1", xt::zeros<T>({hidden}));
    auto& w2 = params.add(name + ".w2", xt::xarray<T>::from_shape({hidden, d}));
    auto& b2 = params.add(name + ".b2", xt::zeros<T>({d}));
    init::kaiming_uniform(w1.value, gen);
    init::xavier_uniform(w2.value, gen, out_gain);
    return std::make_unique<detail::feed_forward_layer<T>>(std::array<parameter<T>*, 5>{&g, &w1, &b1, &w2, &b2});
}

// The feed-forward layer is compiled once into libexprgrad in float and double (src/nn/feed_forward.cpp).
extern template class detail::feed_forward_layer<float>;
extern template class detail::feed_forward_layer<double>;

}  // namespace exprgrad::nn
