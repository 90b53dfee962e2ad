// A residual connection around a run-time layer: y = x + f(x), the skeleton of pre-norm transformer
// blocks (nn/transformer.hpp).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include <xtensor/xarray.hpp>

#include "exprgrad/nn/layer.hpp"

namespace exprgrad::nn {

/// y = x + f(x) for an inner layer f whose output has the input's shape; dL/dx = dy + f's VJP of dy.
/// Example: `residual<float> r(dense<float>(params, "fc", 16, 16, activation::tanh, gen));`
template <class T>
class residual : public layer<T> {
  public:
    explicit residual(std::unique_ptr<layer<T>> inner) : inner_(std::move(inner)) {
        if (!inner_) throw tensors::shape_error("nn::residual", "no inner layer");
    }

    const xt::xarray<T>& forward(const xt::xarray<T>& x) override {
        const xt::xarray<T>& f = inner_->forward(x);
        if (f.shape() != x.shape()) {
            throw tensors::shape_error("nn::residual", "the inner layer maps " + std::to_string(x.size()) +
                                                           " elements to " + std::to_string(f.size()) +
                                                           " (shapes must match)");
        }
        if (y_.shape() != x.shape()) y_.resize(x.shape());
        T* y = y_.data();
        const T* a = x.data();
        const T* b = f.data();
        for (std::size_t i = 0; i < x.size(); ++i) y[i] = a[i] + b[i];
        return y_;
    }

    const xt::xarray<T>& backward(const xt::xarray<T>& dy) override {
        const xt::xarray<T>& g = inner_->backward(dy);
        if (dx_.shape() != dy.shape()) dx_.resize(dy.shape());
        T* d = dx_.data();
        const T* a = dy.data();
        const T* b = g.data();
        for (std::size_t i = 0; i < dy.size(); ++i) d[i] = a[i] + b[i];
        return dx_;
    }

    void set_recompute(bool on) override { inner_->set_recompute(on); }

    layer<T>& inner() { return *inner_; }

  private:
    std::unique_ptr<layer<T>> inner_;
    xt::xarray<T> y_, dx_;
};

}  // namespace exprgrad::nn
