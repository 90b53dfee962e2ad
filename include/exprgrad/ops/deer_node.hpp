// DEER as a node of a tensor program: y = deer_solve(cell, y0, x) inside an expression, its VJP by
// deer_vjp (one reverse adjoint scan at the solution, never through the iterations). The method is part
// of the node's type, as every option that changes what a node computes is (DESIGN principle 2).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/ops/deer.hpp"
#include "exprgrad/tensors/graph.hpp"

namespace exprgrad::ops {

/// The DEER node: children Y0 ([n] or [B, n]), X ([T, m] or [B, T, m]) and the cell's parameters Ps;
/// CellE is the cell expression (tensor<0> state, tensor<1> input, tensor<2 + i> = Ps[i]), which is
/// not a child: its placeholders are the cell's own.
template <deer_method M, class CellE, class Y0, class X, class... Ps>
struct Deer {
    using children = tensors::meta::type_list<Y0, X, Ps...>;
    static constexpr const char* name = "deer";
    static constexpr std::size_t P = sizeof...(Ps);

    template <class T>
    struct extra {
        using cell_type = deer_cell<CellE, T, P>;
        cell_type cell{};
        deer_solver<cell_type> solver;
        xt::xarray<T> y0, x, y, dy;
        deer_report report{};
        /// The solver's options (tolerances, cap, fallback, scan; the method is M unless runtime_method), set
        /// through the block (tensors::block::extra<Deer>()) by a layer that takes them at run time (nn::deer_mixer).
        deer_options opts{};
        bool runtime_method = false;  ///< opts.method instead of M: one compiled node for every method
    };

    template <class T>
    static void copy_in(const tensors::cview<T>& c, xt::xarray<T>& dst) {
        std::vector<std::size_t> s(c.shape.d.begin(), c.shape.d.begin() + c.shape.rank);
        if (!std::equal(s.begin(), s.end(), dst.shape().begin(), dst.shape().end())) dst.resize(s);
        std::copy(c.data, c.data + c.size(), dst.data());
    }

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        auto& ex = ctx.template extra<Deer>();
        copy_in(ctx.template in<Y0>(), ex.y0);
        copy_in(ctx.template in<X>(), ex.x);
        std::size_t i = 0;
        ((copy_in(ctx.template in<Ps>(), ex.cell.params[i++])), ...);
        deer_options o = ex.opts;
        if (!ex.runtime_method) o.method = M;
        auto r = ex.solver.solve(ex.cell, ex.y0, ex.x, o);
        ex.y = std::move(r.y);
        ex.report = r.report;
        T* out = ctx.template out<Deer>(tensors::dims::of(ex.y.shape()));
        std::copy(ex.y.begin(), ex.y.end(), out);
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        auto& ex = ctx.template extra<Deer>();
        const T* g = ctx.template adj_data<Deer>();
        if (ex.dy.shape() != ex.y.shape()) ex.dy.resize(ex.y.shape());
        std::copy(g, g + ex.y.size(), ex.dy.data());
        auto grads = ex.solver.vjp(ex.cell, ex.y0, ex.x, ex.y, ex.dy, ex.opts.scan);
        auto give = [&](auto child, const xt::xarray<T>& d) {
            using C = typename decltype(child)::type;
            if constexpr (Ctx::template needs<C>) {
                bool add = false;
                T* dst = ctx.template grad<C>(add);
                for (std::size_t k = 0; k < d.size(); ++k) dst[k] = add ? dst[k] + d.data()[k] : d.data()[k];
            }
        };
        give(std::type_identity<Y0>{}, grads.dy0);
        give(std::type_identity<X>{}, grads.dx);
        std::size_t i = 0;
        (give(std::type_identity<Ps>{}, grads.dparams[i++]), ...);
    }
};

/// y = deer(cell)(y0, x; params...) as a tensor expression: `deer_node(tanh_rnn_expr, Y0, X, A, U, b)`
/// (Newton) or `deer_node<deer_method::quasi>(...)`. y has the shape [T, n] or [B, T, n] of deer_solve;
/// gradients flow to y0, x and every parameter. The solver's default tolerances and cap apply, with the
/// sequential fallback, so the value is always the recurrence's trajectory.
template <deer_method M = deer_method::newton, class CellE, tensors::TensorExpr Y0, tensors::TensorExpr X,
          tensors::TensorExpr... Ps>
constexpr Deer<M, std::remove_cvref_t<CellE>, Y0, X, Ps...> deer_node(CellE, Y0, X, Ps...) {
    return {};
}

}  // namespace exprgrad::ops
