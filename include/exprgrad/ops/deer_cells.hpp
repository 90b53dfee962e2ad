// DEER's cells: a recurrence step y_t = f(y_{t−1}, x_t; θ) given as a tensor expression and its parameters,
// with the tanh RNN and GRU cells built in (ops/deer.hpp describes the method).
#pragma once

#include <array>
#include <cstddef>
#include <utility>

#include <xtensor/xarray.hpp>

#include "exprgrad/ops/deer_types.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/layout.hpp"
#include "exprgrad/tensors/map.hpp"
#include "exprgrad/tensors/matmul.hpp"

namespace exprgrad::ops {

/// A cell: its expression type E (tensor<0> state, tensor<1> input, tensor<2 + i> = params[i]) and
/// the P parameter arrays it is evaluated with. Build one with make_cell, tanh_rnn_cell or gru_cell.
template <class E, class T, std::size_t P>
struct deer_cell {
    using expr_type = E;
    using value_type = T;
    static constexpr std::size_t num_params = P;
    std::array<xt::xarray<T>, P> params;
};

/// Binds a cell expression to its parameters (all of one floating type):
/// `auto cell = make_cell(tanh(matmul(tensor<0>, transpose(tensor<2>)) + tensor<1>), A);`
template <tensors::TensorExpr E, class A0, class... As>
auto make_cell(E, const A0& p0, const As&... ps) {
    using T = typename A0::value_type;
    static_assert(std::is_floating_point_v<T>, "exprgrad: DEER cells compute in float or double");
    return deer_cell<std::remove_cvref_t<E>, T, 1 + sizeof...(As)>{{xt::xarray<T>(p0), xt::xarray<T>(ps)...}};
}

/// The expression of the tanh RNN cell y = tanh(A y + U x + b), in row form:
/// tanh(Yprev·Aᵀ + X·Uᵀ + b) with A [n, n] = tensor<2>, U [n, m] = tensor<3>, b [n] = tensor<4>.
inline constexpr auto tanh_rnn_expr =
    tensors::tanh(tensors::matmul(tensors::Input<0>{}, tensors::transpose(tensors::Input<2>{})) +
                  tensors::matmul(tensors::Input<1>{}, tensors::transpose(tensors::Input<3>{})) + tensors::Input<4>{});

/// The tanh RNN cell y_t = tanh(A y_{t−1} + U x_t + b): A [n, n], U [n, m], b [n] (other shapes throw
/// std::invalid_argument "exprgrad::tanh_rnn_cell: A must be square [n, n], got (4, 3)" and the like).
/// With U = I and b = 0 it is the post's x_t = tanh(A x_{t−1} + u_t). Example:
/// `auto r = deer_solve(tanh_rnn_cell(A, U, b), y0, x);`
template <class AA, class AU, class AB>
auto tanh_rnn_cell(const AA& A, const AU& U, const AB& b) {
    // A non-square A would fail later as an anonymous matmul shape error inside deer_solve.
    const tensors::dims a = tensors::dims::of(A.shape()), u = tensors::dims::of(U.shape()), bd = tensors::dims::of(b.shape());
    if (a.rank != 2 || a[0] != a[1])
        throw tensors::shape_error("tanh_rnn_cell", "A must be square [n, n], got " + a.str());
    if (u.rank != 2 || u[0] != a[0])
        throw tensors::shape_error("tanh_rnn_cell", "U must be [n, m] with n = " + std::to_string(a[0]) + " (A " + a.str() +
                                                    "), got " + u.str());
    if (bd.rank != 1 || bd[0] != a[0])
        throw tensors::shape_error("tanh_rnn_cell", "b must be [n] with n = " + std::to_string(a[0]) + " (A " + a.str() +
                                                    "), got " + bd.str());
    return make_cell(tanh_rnn_expr, A, U, b);
}

namespace detail {
template <int I>
constexpr tensors::Input<I> in{};
template <class W, class U, class B>
constexpr auto affine(W, U, B) {  // X·Wᵀ + H·Uᵀ + b
    return tensors::matmul(in<1>, tensors::transpose(W{})) + tensors::matmul(in<0>, tensors::transpose(U{})) + B{};
}
inline constexpr auto gru_z = tensors::sigmoid(affine(in<2>, in<3>, in<4>));
inline constexpr auto gru_r = tensors::sigmoid(affine(in<5>, in<6>, in<7>));
inline constexpr auto gru_h = tensors::tanh(tensors::matmul(in<1>, tensors::transpose(in<8>)) +
                                            tensors::matmul(gru_r * in<0>, tensors::transpose(in<9>)) + in<10>);
}  // namespace detail

/// The expression of the GRU cell (the post's and Cho et al.'s convention):
///   z = σ(W_z x + U_z h + b_z),  r = σ(W_r x + U_r h + b_r),  ĥ = tanh(W_h x + U_h (r ⊙ h) + b_h),
///   h' = (1 − z) ⊙ h + z ⊙ ĥ,
/// parameters tensor<2..10> = W_z, U_z, b_z, W_r, U_r, b_r, W_h, U_h, b_h (W [n, m], U [n, n], b [n]).
inline constexpr auto gru_expr = (sym::c<1> - detail::gru_z) * detail::in<0> + detail::gru_z * detail::gru_h;

/// The GRU cell (see gru_expr) with W_* [n, m], U_* [n, n], b_* [n]. Its fixed_a Jacobian at zero
/// input and bias is ½(I + ½U_h), the post's matrix.
template <class A>
auto gru_cell(const A& Wz, const A& Uz, const A& bz, const A& Wr, const A& Ur, const A& br, const A& Wh, const A& Uh,
              const A& bh) {
    return make_cell(gru_expr, Wz, Uz, bz, Wr, Ur, br, Wh, Uh, bh);
}

}  // namespace exprgrad::ops
