// Run-time composition of compiled blocks: what a type cannot know (depth, widths, which loss) is
// chosen at run time by stacking layers, each a compiled tensor program with a forward pass and a
// VJP. A sequence runs its backward pass in reverse. A layer in recompute mode keeps only its input
// after forward and recomputes its forward pass during backward instead of keeping intermediates.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/nn/parameters.hpp"
#include "exprgrad/tensors/graph.hpp"

namespace exprgrad::nn {

/// A layer of a run-time model: y = f(x; θ). Not reentrant; the returned arrays belong to the layer
/// and stay valid until its next call.
///
/// The gradient rule (one rule for the whole library, docs/tensor.md "Gradients: assigned or
/// accumulated"): what a call *returns* is assigned, fresh on each call (value_and_grad's gradients,
/// a block's grad<I>(), the dL/dx that backward returns); what lands in a *parameter's* `grad` is
/// accumulated (`grad += dL/dθ`), so that a parameter shared by several layers, or several backward
/// passes (gradient accumulation over micro-batches), sum. The caller zeroes parameter gradients
/// before each step: `params.zero_grad(); net.forward(x); net.backward(dy); opt.step(params);`.
template <class T>
class layer {
  public:
    virtual ~layer() = default;
    /// The output for input x (keeps what backward needs).
    virtual const xt::xarray<T>& forward(const xt::xarray<T>& x) = 0;
    /// Given dL/dy for the last forward, *adds* dL/dθ into each parameter's `grad` (zero them
    /// before a step) and returns dL/dx (assigned: this call's value only).
    virtual const xt::xarray<T>& backward(const xt::xarray<T>& dy) = 0;
    /// Recompute mode (what other libraries call activation checkpointing; in exprgrad a checkpoint is a
    /// saved file, nn/checkpoint.hpp): keep only the input after forward and recompute the forward pass
    /// during backward. Gradients are identical either way; memory drops to the inputs of the layers.
    virtual void set_recompute(bool on) = 0;
};

namespace detail {
template <int NP>
struct all_args {
    template <int... I>
    static std::integer_sequence<int, 0, (I + 1)...> make(std::integer_sequence<int, I...>);
    using type = decltype(make(std::make_integer_sequence<int, NP>{}));
};
}  // namespace detail

/// A layer from a tensor expression E that reads the input as tensor<0> and its NP parameters as
/// tensor<1> ... tensor<NP>. Example: a dense tanh layer,
///   expr_layer<float, decltype(tanh(matmul(tensor<0>, tensor<1>) + tensor<2>)), 2>(params, {&w, &b})
template <class T, class E, int NP>
class expr_layer : public layer<T> {
  public:
    explicit expr_layer(std::array<parameter<T>*, NP> params) : params_(params) {}

    const xt::xarray<T>& forward(const xt::xarray<T>& x) override {
        if (recompute_) {
            input_ = x;
            run(x);
            out_ = prog_.output_array();
            prog_.release();
            return out_;
        }
        run(x);
        return prog_.output_array();
    }

    const xt::xarray<T>& backward(const xt::xarray<T>& dy) override {
        if (recompute_) run(input_);  // recompute the intermediates
        const auto& y = prog_.output_array();
        if (dy.size() != y.size()) {
            throw tensors::shape_error("layer::backward", "adjoint of " + std::to_string(dy.size()) +
                                                              " elements for an output of " + std::to_string(y.size()));
        }
        prog_.backward(dy.data());
        add_param_grads(std::make_integer_sequence<int, NP>{});
        dx_ = prog_.template grad_of<0>();
        if (recompute_) prog_.release();
        return dx_;
    }

    void set_recompute(bool on) override { recompute_ = on; }

  private:
    template <int... I>
    void run_with(const xt::xarray<T>& x, std::integer_sequence<int, I...>) {
        prog_.forward(x, params_[static_cast<std::size_t>(I)]->value...);
    }
    void run(const xt::xarray<T>& x) { run_with(x, std::make_integer_sequence<int, NP>{}); }

    template <int... I>
    void add_param_grads(std::integer_sequence<int, I...>) {
        (params_[static_cast<std::size_t>(I)]->accumulate_grad(prog_.template grad_of<I + 1>()), ...);
    }

    tensors::program<T, E, typename detail::all_args<NP>::type> prog_;
    std::array<parameter<T>*, NP> params_;
    bool recompute_ = false;
    xt::xarray<T> input_, out_, dx_;
};

/// Layers applied in order; backward runs them in reverse.
template <class T>
class sequential : public layer<T> {
  public:
    /// Appends a layer (the sequence owns it).
    layer<T>& add(std::unique_ptr<layer<T>> l) {
        layers_.push_back(std::move(l));
        layers_.back()->set_recompute(recompute_);
        return *layers_.back();
    }
    std::size_t size() const { return layers_.size(); }
    /// The i-th layer (i < size(), else std::out_of_range): for a caller that runs the backward pass layer
    /// by layer, e.g. to start a gradient all-reduce as soon as a block's gradients are complete.
    layer<T>& at(std::size_t i) { return *layers_.at(i); }

    const xt::xarray<T>& forward(const xt::xarray<T>& x) override {
        if (layers_.empty()) throw tensors::shape_error("sequential", "no layers");
        const xt::xarray<T>* h = &x;
        for (auto& l : layers_) h = &l->forward(*h);
        return *h;
    }
    const xt::xarray<T>& backward(const xt::xarray<T>& dy) override {
        const xt::xarray<T>* g = &dy;
        for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) g = &(*it)->backward(*g);
        return *g;
    }
    /// Recompute mode for every layer, present and future.
    void set_recompute(bool on) override {
        recompute_ = on;
        for (auto& l : layers_) l->set_recompute(on);
    }

  private:
    std::vector<std::unique_ptr<layer<T>>> layers_;
    bool recompute_ = false;
};

}  // namespace exprgrad::nn
