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

/// y = x + f(x) for an inner layer f whose output has the input's shape (otherwise the addition throws
/// std::invalid_argument naming the shapes); dL/dx = dy + f's VJP of dy, chained by the record.
/// Example: `residual<float> r(dense<float>(params, "fc", 16, 16, activation::tanh, gen));`
template <class T>
class residual : public layer<T> {
  public:
    explicit residual(std::unique_ptr<layer<T>> inner) : inner_(std::move(inner)) {
        if (!inner_) throw tensors::shape_error("nn::residual", "no inner layer");
    }

    tensors::handle record_into(tensors::record<T>& rec, tensors::handle x) override {
        return inner_->record_residual_into(rec, x);
    }

    void set_recompute(bool on) override {
        layer<T>::set_recompute(on);
        inner_->set_recompute(on);
    }

    layer<T>& inner() { return *inner_; }

  private:
    std::unique_ptr<layer<T>> inner_;
};

}  // namespace exprgrad::nn
