// Run-time composition of compiled blocks: what a type cannot know (depth, widths, which loss) is
// chosen at run time by stacking layers, each a few compiled tensor blocks that it records into a
// tensors::record with its parameters as leaves; the record's backward runs every VJP in reverse and
// accumulates the parameters' gradients. A layer in recompute mode keeps only its blocks' inputs after
// forward and recomputes their forward passes during backward instead of keeping intermediates.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/nn/parameters.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/record.hpp"

namespace exprgrad::nn {

/// A parameter as a leaf of a record: rec reads p.value in place and its backward adds dL/dp into p.grad
/// (a grad of another shape than the value is reset to zeros first, as parameter::accumulate_grad does).
/// Example: `auto w = nn::leaf(rec, params["fc.w"]);`
template <class T>
tensors::handle leaf(tensors::record<T>& rec, parameter<T>& p) {
    if (p.grad.shape() != p.value.shape()) p.grad = xt::zeros<T>(p.value.shape());
    return rec.leaf(p.value, p.grad);
}

/// A layer of a run-time model: y = f(x; θ). A layer is compiled blocks (tensors::compile) that it records
/// into a tensors::record with its parameters as the record's leaves (record_into); the record's backward
/// chains the blocks' VJPs and accumulates every parameter's gradient, so no layer calls a VJP itself.
/// forward/backward run a layer on its own (one record per layer, the same blocks): the interface of tests,
/// evaluation and code that does not keep a record. Not reentrant; the returned arrays belong to the layer
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

    /// Records f(x) into rec (x a value of rec; its gradient flows if it carries one) and returns the
    /// output's handle; rec's backward adds dL/dθ into each parameter's `grad`. A few entries per layer.
    /// Example: `rec.clear(); auto h = rec.constant(x); h = net.record_into(rec, h); ... rec.backward(loss);`
    virtual tensors::handle record_into(tensors::record<T>& rec, tensors::handle x) = 0;

    /// Records x + f(x) (nn::residual). The default records f and an addition; a layer whose last block can
    /// add x itself overrides it (one entry and one copy fewer).
    /// Throws tensors::shape_error naming both shapes when f(x) does not have x's shape (the addition would
    /// broadcast one into the other, which a residual never means).
    virtual tensors::handle record_residual_into(tensors::record<T>& rec, tensors::handle x) {
        const tensors::handle f = record_into(rec, x);
        const auto &xs = rec.value(x).shape(), &fs = rec.value(f).shape();
        if (!std::equal(xs.begin(), xs.end(), fs.begin(), fs.end())) {
            auto str = [](const auto& sh) {
                std::string r = "[";
                for (std::size_t i = 0; i < sh.size(); ++i) r += (i ? ", " : "") + std::to_string(sh[i]);
                return r + "]";
            };
            throw tensors::shape_error("nn::residual", "the inner layer's output " + str(fs) +
                                                           " does not have the input's shape " + str(xs));
        }
        return rec.call(add_, x, f);
    }

    /// The output for input x (keeps what backward needs): records the layer into its own record.
    const xt::xarray<T>& forward(const xt::xarray<T>& x) {
        if (!own_) own_ = std::make_unique<own_record>();
        own_record& o = *own_;
        o.rec.clear();
        o.ready = false;  // a forward that throws leaves nothing for backward
        copy_shape(o.input, x.shape());
        std::copy(x.data(), x.data() + x.size(), o.input.data());
        copy_shape(o.dx, x.shape());
        o.out = record_into(o.rec, o.rec.leaf(o.input, o.dx));
        o.ready = true;
        return o.rec.value(o.out);
    }
    /// Given dL/dy for the last forward, *adds* dL/dθ into each parameter's `grad` (zero them
    /// before a step) and returns dL/dx (assigned: this call's value only). Throws std::logic_error
    /// without a forward before it.
    const xt::xarray<T>& backward(const xt::xarray<T>& dy) {
        if (!own_ || !own_->ready) throw std::logic_error("nn::layer::backward without a forward before it");
        own_record& o = *own_;
        const auto& y = o.rec.value(o.out);
        if (dy.size() != y.size()) {
            throw tensors::shape_error("layer::backward", "adjoint of " + std::to_string(dy.size()) +
                                                              " elements for an output of " + std::to_string(y.size()));
        }
        o.dx.fill(T(0));
        o.rec.backward(o.out, dy);
        return o.dx;
    }
    /// Recompute mode (what other libraries call activation checkpointing; in exprgrad a checkpoint is a
    /// saved file, nn/checkpoint.hpp): the layer's blocks keep only their inputs after forward and recompute
    /// their forward pass during backward (record::set_recompute). Gradients are identical either way.
    virtual void set_recompute(bool on) { recompute_ = on; }
    bool recompute() const noexcept { return recompute_; }

  protected:
    /// Switches rec to this layer's recompute mode for the layer's calls; restores it when destroyed.
    struct recompute_scope {
        tensors::record<T>& rec;
        bool was;
        recompute_scope(tensors::record<T>& r, const layer& l) : rec(r), was(r.set_recompute(l.recompute_)) {}
        ~recompute_scope() { rec.set_recompute(was); }
        recompute_scope(const recompute_scope&) = delete;
        recompute_scope& operator=(const recompute_scope&) = delete;
    };

  private:
    struct own_record {
        tensors::record<T> rec;
        xt::xarray<T> input, dx;
        tensors::handle out;
        bool ready = false;
    };
    template <class Shape>
    static void copy_shape(xt::xarray<T>& a, const Shape& s) {
        if (a.shape() != s) a.resize(s);
    }

    bool recompute_ = false;
    std::unique_ptr<own_record> own_;
    decltype(tensors::compile<T>(tensors::Input<0>{} + tensors::Input<1>{}, tensors::wrt<0, 1>)) add_;
};

namespace detail {
template <class T, class E, class Wrt>
struct block_of;
template <class T, class E, int... W>
struct block_of<T, E, std::integer_sequence<int, W...>> {
    using type = tensors::block<T, E, W...>;
};
template <int NP>
struct all_args {
    template <int... I>
    static std::integer_sequence<int, 0, (I + 1)...> make(std::integer_sequence<int, I...>);
    using type = decltype(make(std::make_integer_sequence<int, NP>{}));
};
}  // namespace detail

/// A layer from a tensor expression E that reads the input as tensor<0> and its NP parameters as
/// tensor<1> ... tensor<NP>: one compiled block, one record entry. Example: a dense tanh layer,
///   expr_layer<float, decltype(tanh(matmul(tensor<0>, tensor<1>) + tensor<2>)), 2>(params, {&w, &b})
template <class T, class E, int NP>
class expr_layer : public layer<T> {
  public:
    explicit expr_layer(std::array<parameter<T>*, NP> params) : params_(params) {}

    tensors::handle record_into(tensors::record<T>& rec, tensors::handle x) override {
        typename layer<T>::recompute_scope scope(rec, *this);
        return call(rec, x, std::make_integer_sequence<int, NP>{});
    }

  private:
    template <int... I>
    tensors::handle call(tensors::record<T>& rec, tensors::handle x, std::integer_sequence<int, I...>) {
        return rec.call(block_, x, leaf(rec, *params_[static_cast<std::size_t>(I)])...);
    }

    typename detail::block_of<T, E, typename detail::all_args<NP>::type>::type block_;
    std::array<parameter<T>*, NP> params_;
};

/// Layers applied in order; backward runs them in reverse (the record's backward).
template <class T>
class sequential : public layer<T> {
  public:
    /// Appends a layer (the sequence owns it).
    layer<T>& add(std::unique_ptr<layer<T>> l) {
        layers_.push_back(std::move(l));
        layers_.back()->set_recompute(this->recompute());
        return *layers_.back();
    }
    std::size_t size() const { return layers_.size(); }
    /// The i-th layer (i < size(), else std::out_of_range): for a caller that records the layers one by one,
    /// e.g. to know which record calls complete which block's gradients (data-parallel all-reduce).
    layer<T>& at(std::size_t i) { return *layers_.at(i); }

    tensors::handle record_into(tensors::record<T>& rec, tensors::handle x) override {
        if (layers_.empty()) throw tensors::shape_error("sequential", "no layers");
        for (auto& l : layers_) x = l->record_into(rec, x);
        return x;
    }
    /// Recompute mode for every layer, present and future.
    void set_recompute(bool on) override {
        layer<T>::set_recompute(on);
        for (auto& l : layers_) l->set_recompute(on);
    }

  private:
    std::vector<std::unique_ptr<layer<T>>> layers_;
};

}  // namespace exprgrad::nn
