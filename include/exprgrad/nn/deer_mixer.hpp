// A recurrent token mixer evaluated in parallel over the sequence by DEER (ops/deer.hpp): the layer that
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
#include "exprgrad/random.hpp"
#include "exprgrad/tensors/matmul.hpp"
#include "exprgrad/tensors/norm.hpp"

namespace exprgrad::nn {

namespace detail {
using rms_norm_expr = decltype(tensors::rms_norm(tensors::Input<0>{}, tensors::Input<1>{}));
using projection_expr = decltype(tensors::matmul(tensors::Input<0>{}, tensors::Input<1>{}));
}  // namespace detail

/// f(x) = h·Wo where h_t = tanh(A h_{t−1} + U u_t + b), h_0 = 0, u = rms_norm(x, g), over each sequence
/// of x [B, T, d]; the recurrence of state width n is solved by deer_solve (Newton by default), its VJP by
/// deer_vjp, with the cell's Jacobian derived by the engine. Parameters: g [d], A [n, n], U [n, d],
/// b [n], Wo [n, d]. The cost per iteration grows as B·T·n³ (dense Jacobians): keep n small (16–64).
/// If an iteration does not converge within the cap, the solver's sequential fallback keeps the output
/// exact; last_report() tells. Not reentrant.
template <class T>
class deer_mixer : public layer<T> {
  public:
    using cell_type = decltype(ops::tanh_rnn_cell(std::declval<xt::xarray<T>>(), std::declval<xt::xarray<T>>(),
                                                  std::declval<xt::xarray<T>>()));

    deer_mixer(parameter<T>& norm, parameter<T>& a, parameter<T>& u, parameter<T>& b, parameter<T>& w_out,
               ops::deer_options opts)
        : norm_({&norm}), out_({&w_out}), a_(&a), u_(&u), b_(&b), opts_(std::move(opts)) {
        const std::size_t n = a.value.shape(0), d = norm.value.size();
        if (a.value.dimension() != 2 || a.value.shape(1) != n || u.value.dimension() != 2 || u.value.shape(0) != n ||
            u.value.shape(1) != d || b.value.size() != n || w_out.value.dimension() != 2 || w_out.value.shape(0) != n ||
            w_out.value.shape(1) != d) {
            throw tensors::shape_error("nn::deer_mixer", "expected A [n, n], U [n, " + std::to_string(d) +
                                                             "], b [n], Wo [n, " + std::to_string(d) + "]");
        }
    }

    const xt::xarray<T>& forward(const xt::xarray<T>& x) override {
        if (x.dimension() != 3) throw tensors::shape_error("nn::deer_mixer", "input must be [B, T, d]");
        u_in_ = norm_.forward(x);
        cell_.params = {a_->value, u_->value, b_->value};
        const std::size_t n = a_->value.shape(0);
        if (y0_.dimension() != 2 || y0_.shape(0) != x.shape(0) || y0_.shape(1) != n)
            y0_ = xt::zeros<T>({x.shape(0), n});
        auto r = solver_.solve(cell_, y0_, u_in_, opts_);
        h_ = std::move(r.y);
        report_ = r.report;
        return out_.forward(h_);
    }

    const xt::xarray<T>& backward(const xt::xarray<T>& dy) override {
        const xt::xarray<T>& dh = out_.backward(dy);
        auto g = solver_.vjp(cell_, y0_, u_in_, h_, dh, opts_.scan);
        a_->accumulate_grad(g.dparams[0]);
        u_->accumulate_grad(g.dparams[1]);
        b_->accumulate_grad(g.dparams[2]);
        return norm_.backward(g.dx);
    }

    void set_recompute(bool on) override {
        norm_.set_recompute(on);
        out_.set_recompute(on);
    }

    /// What the last forward solve did (iterations, residual, fallback).
    const ops::deer_report& last_report() const { return report_; }

  private:
    expr_layer<T, detail::rms_norm_expr, 1> norm_;
    expr_layer<T, detail::projection_expr, 1> out_;
    parameter<T>*a_, *u_, *b_;
    ops::deer_options opts_;
    cell_type cell_{};
    ops::deer_solver<cell_type> solver_;
    xt::xarray<T> u_in_, h_, y0_;
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

}  // namespace exprgrad::nn
