// A recurrent token mixer evaluated in parallel over the sequence by DEER (ops/deer_node.hpp): the layer that
// stands in for attention in a transformer block when a model should carry state along the sequence.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include <xtensor/xarray.hpp>

#include "exprgrad/nn/init.hpp"
#include "exprgrad/nn/layer.hpp"
#include "exprgrad/nn/parameters.hpp"
#include "exprgrad/ops/deer.hpp"
#include "exprgrad/ops/deer_node.hpp"
#include "exprgrad/random.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/norm.hpp"
#include "exprgrad/tensors/record.hpp"

namespace exprgrad::nn {

namespace detail {
using rms_norm_expr = decltype(tensors::rms_norm(tensors::Input<0>{}, tensors::Input<1>{}));
using projection_expr = decltype(tensors::matmul(tensors::Input<0>{}, tensors::Input<1>{}));

// The recurrence h = deer(tanh cell)(y0 = tensor<0>, u = tensor<1>; A = tensor<2>, U = tensor<3>, b = tensor<4>):
// one compiled DEER node that takes every option at run time, the method included.
template <class T>
struct deer_core {
    using node = decltype(ops::deer_node(ops::tanh_rnn_expr, tensors::Input<0>{}, tensors::Input<1>{},
                                         tensors::Input<2>{}, tensors::Input<3>{}, tensors::Input<4>{}));
    tensors::block<T, node, 1, 2, 3, 4> blk;
    tensors::handle call(tensors::record<T>& rec, tensors::handle y0, tensors::handle u, tensors::handle a,
                         tensors::handle uw, tensors::handle b, const ops::deer_options& o, ops::deer_report& report) {
        auto& state = blk.template extra<node>();
        state.opts = o;
        state.runtime_method = true;
        const tensors::handle h = rec.call(blk, y0, u, a, uw, b);
        report = state.report;
        return h;
    }
};
}  // namespace detail

/// f(x) = h·Wo where h_t = tanh(A h_{t−1} + U u_t + b), h_0 = 0, u = rms_norm(x, g), over each sequence
/// of x [B, T, d]; the recurrence of state width n is solved by the DEER node (ops/deer_node.hpp, the
/// options' method, tolerances, cap, fallback and scan), its VJP by deer_vjp, with the cell's Jacobian
/// derived by the engine. Three compiled blocks recorded per call (layer::record_into): the norm, the
/// recurrence (never recomputed: it keeps its solution), the output projection.
/// Parameters: g [d], A [n, n], U [n, d], b [n], Wo [n, d]. The cost per iteration grows as B·T·n³ (dense
/// Jacobians): keep n small (16–64). If an iteration does not converge within the cap, the solver's
/// sequential fallback keeps the output exact; last_report() tells. Not reentrant.
template <class T>
class deer_mixer : public layer<T> {
  public:
    deer_mixer(parameter<T>& norm, parameter<T>& a, parameter<T>& u, parameter<T>& b, parameter<T>& w_out,
               ops::deer_options opts)
        : norm_p_(&norm), out_p_(&w_out), a_(&a), u_(&u), b_(&b), opts_(std::move(opts)) {
        const std::size_t n = a.value.shape(0), d = norm.value.size();
        if (a.value.dimension() != 2 || a.value.shape(1) != n || u.value.dimension() != 2 || u.value.shape(0) != n ||
            u.value.shape(1) != d || b.value.size() != n || w_out.value.dimension() != 2 || w_out.value.shape(0) != n ||
            w_out.value.shape(1) != d) {
            throw tensors::shape_error("nn::deer_mixer", "expected A [n, n], U [n, " + std::to_string(d) +
                                                             "], b [n], Wo [n, " + std::to_string(d) + "]");
        }
    }

    tensors::handle record_into(tensors::record<T>& rec, tensors::handle x) override {
        const xt::xarray<T>& xv = rec.value(x);
        if (xv.dimension() != 3) throw tensors::shape_error("nn::deer_mixer", "input must be [B, T, d]");
        const std::size_t n = a_->value.shape(0);
        if (y0_.dimension() != 2 || y0_.shape(0) != xv.shape(0) || y0_.shape(1) != n) y0_ = xt::zeros<T>({xv.shape(0), n});
        typename layer<T>::recompute_scope scope(rec, *this);
        const tensors::handle u = rec.call(norm_, x, leaf(rec, *norm_p_));
        const bool was = rec.set_recompute(false);
        tensors::handle h;
        try {
            h = core_.call(rec, rec.constant(y0_), u, leaf(rec, *a_), leaf(rec, *u_), leaf(rec, *b_), opts_, report_);
        } catch (...) {
            rec.set_recompute(was);
            throw;
        }
        rec.set_recompute(was);
        return rec.call(out_, h, leaf(rec, *out_p_));
    }

    /// What the last forward solve did (iterations, residual, fallback).
    const ops::deer_report& last_report() const { return report_; }

  private:
    parameter<T>*norm_p_, *out_p_;
    parameter<T>*a_, *u_, *b_;
    ops::deer_options opts_;
    tensors::block<T, detail::rms_norm_expr, 0, 1> norm_;
    tensors::block<T, detail::projection_expr, 0, 1> out_;
    detail::deer_core<T> core_;
    xt::xarray<T> y0_;
    ops::deer_report report_{};
};

/// A DEER mixer of width d and state width n, registered as name.norm (ones), name.A (normal with std
/// spectral_radius/√n, so the recurrence contracts and DEER converges in few iterations), name.U and
/// name.Wo (Xavier-uniform, Wo times out_gain), name.b (zeros).
/// Example: `auto m = deer_mixer_layer<float>(params, "l1.rnn", 64, 32, {}, gen);`
template <class T>
std::unique_ptr<deer_mixer<T>> deer_mixer_layer(parameter_set<T>& params, const std::string& name, std::size_t d,
                                                std::size_t n, ops::deer_options opts, rng& gen, double out_gain = 1.0,
                                                double spectral_radius = 0.5) {
    if (d == 0 || n == 0) throw tensors::shape_error("nn::deer_mixer_layer", "widths must be positive");
    auto& g = params.add(name + ".norm", xt::ones<T>({d}));
    auto& a = params.add(name + ".A", xt::xarray<T>::from_shape({n, n}));
    auto& u = params.add(name + ".U", xt::xarray<T>::from_shape({n, d}));
    auto& b = params.add(name + ".b", xt::zeros<T>({n}));
    auto& wo = params.add(name + ".Wo", xt::xarray<T>::from_shape({n, d}));
    init::normal(a.value, gen, 0.0, spectral_radius / std::sqrt(static_cast<double>(n)));
    init::xavier_uniform(u.value, gen);
    init::xavier_uniform(wo.value, gen, out_gain);
    return std::make_unique<deer_mixer<T>>(g, a, u, b, wo, std::move(opts));
}

// Compiled once into libexprgrad in float and double (src/nn/deer_mixer_float.cpp, _double.cpp), so that a
// model's translation unit does not compile the DEER solver again.
extern template class deer_mixer<float>;
extern template class deer_mixer<double>;

}  // namespace exprgrad::nn
