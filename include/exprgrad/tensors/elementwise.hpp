// Elementwise maps of symbolic expressions over tensors with NumPy broadcasting: the forward pass
// and the fused backward pass (every needed partial, times the incoming adjoint, in one SIMD pass,
// reduced over broadcast dimensions into each argument's adjoint).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include <xsimd/xsimd.hpp>

#include "exprgrad/kernels/contiguous.hpp"
#include "exprgrad/sym/derivative.hpp"
#include "exprgrad/sym/evaluate.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::tensors {

namespace detail {

// One operand of a broadcast loop: data, and its element stride along each (collapsed) dimension,
// 0 where it is broadcast.
template <class T>
struct operand_ref {
    T* data;
    std::array<std::ptrdiff_t, dims::max_rank> stride{};
};

// The iteration space of a broadcast loop, with adjacent dimensions merged where every operand
// allows it, so a same-shape map is one long contiguous loop.
template <std::size_t K>
struct loop_plan {
    int rank = 0;
    std::array<std::size_t, dims::max_rank> shape{};
    std::array<std::array<std::ptrdiff_t, dims::max_rank>, K> stride{};
};

template <std::size_t K>
loop_plan<K> make_plan(const dims& out, const std::array<dims, K>& shapes) {
    loop_plan<K> p;
    // the common case, every operand the output's shape or a single value: one flat loop
    bool flat = true;
    for (std::size_t k = 0; flat && k < K; ++k) flat = shapes[k] == out || shapes[k].size() == 1;
    if (flat) {
        p.rank = 1;
        p.shape[0] = out.size();
        for (std::size_t k = 0; k < K; ++k) p.stride[k][0] = shapes[k] == out ? 1 : 0;
        return p;
    }
    // right-align each operand to the output rank; stride 0 on broadcast dimensions
    std::array<std::array<std::ptrdiff_t, dims::max_rank>, K> st{};
    for (std::size_t k = 0; k < K; ++k) {
        std::ptrdiff_t s = 1;
        for (int j = out.rank - 1; j >= 0; --j) {
            const int jk = shapes[k].rank - out.rank + j;
            const std::size_t dk = jk >= 0 ? shapes[k][jk] : 1;
            st[k][static_cast<std::size_t>(j)] = (dk == 1 && out[j] != 1) ? 0 : s;
            s *= static_cast<std::ptrdiff_t>(dk);
        }
    }
    // merge dimension j into the running one when every operand is contiguous across them
    for (int j = 0; j < out.rank; ++j) {
        if (out[j] == 1) continue;
        bool merge = p.rank > 0;
        for (std::size_t k = 0; merge && k < K; ++k) {
            merge = st[k][static_cast<std::size_t>(j)] * static_cast<std::ptrdiff_t>(out[j]) ==
                    p.stride[k][static_cast<std::size_t>(p.rank - 1)];
        }
        if (merge) {
            p.shape[static_cast<std::size_t>(p.rank - 1)] *= out[j];
            for (std::size_t k = 0; k < K; ++k)
                p.stride[k][static_cast<std::size_t>(p.rank - 1)] = st[k][static_cast<std::size_t>(j)];
        } else {
            p.shape[static_cast<std::size_t>(p.rank)] = out[j];
            for (std::size_t k = 0; k < K; ++k)
                p.stride[k][static_cast<std::size_t>(p.rank)] = st[k][static_cast<std::size_t>(j)];
            ++p.rank;
        }
    }
    if (p.rank == 0) {  // a single element: every operand is read or written at offset 0
        p.rank = 1;
        p.shape[0] = 1;
        for (std::size_t k = 0; k < K; ++k) p.stride[k][0] = 1;
    }
    return p;
}

// One output of the broadcast loop.
template <class T>
struct out_ref {
    T* data;
    bool accumulate;  // add into existing values (always true for reduced outputs)
};

/// The broadcast loop: evaluates the sym expressions Outs (reading var<k> from input k) over the
/// output iteration space `out`, writing output m into outs[m] (whose shape may be reduced: then it
/// accumulates over the broadcast dimensions, and must have been zeroed or hold the previous value).
/// Each innermost row is one kernels::elementwise_row (the loop simd::map_into runs too): an operand's
/// inner stride is 1 or 0 (broadcast), an output's 0 makes it a put_mode::sum output.
template <class T, class... Outs, std::size_t NI, std::size_t NO>
void broadcast_loop(std::tuple<Outs...>, const dims& out, const std::array<const T*, NI>& in_data,
                    const std::array<dims, NI>& in_shapes, const std::array<out_ref<T>, NO>& outs,
                    const std::array<dims, NO>& out_shapes) {
    static_assert(sizeof...(Outs) == NO);
    constexpr std::size_t K = NI + NO;
    std::array<dims, K> shapes;
    for (std::size_t k = 0; k < NI; ++k) shapes[k] = in_shapes[k];
    for (std::size_t m = 0; m < NO; ++m) shapes[NI + m] = out_shapes[m];
    const loop_plan<K> plan = make_plan(out, shapes);
    const int last = plan.rank - 1;
    const std::size_t n = plan.shape[static_cast<std::size_t>(last)];
    std::size_t outer = 1;
    for (int j = 0; j < last; ++j) outer *= plan.shape[static_cast<std::size_t>(j)];

    using B = xsimd::batch<T>;
    using L = sym::node_list_t<Outs...>;
    using PB = sym::compiled_nodes<B, L>;
    using PS = sym::compiled_nodes<T, L>;
    // constant subtrees (log(2*pi), ...) depend on nothing at run time: evaluated once per program type
    static const auto cb = PB::constants();
    static const auto cs = PS::constants();
    auto eval = [&](const auto& args, auto&& emit) {
        using V = typename std::remove_cvref_t<decltype(args)>::value_type;
        std::size_t m = 0;
        if constexpr (std::is_same_v<V, B>) {
            const auto vals = PB::run(args, cb);
            (emit(m++, PB::template get<Outs>(vals, cb)), ...);
        } else {
            const auto vals = PS::run(args, cs);
            (emit(m++, PS::template get<Outs>(vals, cs)), ...);
        }
    };
    std::array<bool, NI> step{};
    for (std::size_t k = 0; k < NI; ++k) step[k] = plan.stride[k][static_cast<std::size_t>(last)] != 0;
    std::array<kernels::put_mode, NO> how{};
    for (std::size_t m = 0; m < NO; ++m) {
        how[m] = plan.stride[NI + m][static_cast<std::size_t>(last)] == 0 ? kernels::put_mode::sum
                 : outs[m].accumulate                                     ? kernels::put_mode::add
                                                                          : kernels::put_mode::store;
    }

    for (std::size_t o = 0; o < outer; ++o) {
        // offsets of this row
        std::array<std::ptrdiff_t, K> off{};
        std::size_t rem = o;
        for (int j = last - 1; j >= 0; --j) {
            const std::size_t idx = rem % plan.shape[static_cast<std::size_t>(j)];
            rem /= plan.shape[static_cast<std::size_t>(j)];
            for (std::size_t k = 0; k < K; ++k)
                off[k] += static_cast<std::ptrdiff_t>(idx) * plan.stride[k][static_cast<std::size_t>(j)];
        }
        std::array<const T*, NI> ip;
        for (std::size_t k = 0; k < NI; ++k) ip[k] = in_data[k] + off[k];
        std::array<T*, NO> op;
        for (std::size_t m = 0; m < NO; ++m) op[m] = outs[m].data + off[NI + m];
        kernels::elementwise_row(n, ip, step, op, how, eval);
    }
}

template <class F, std::size_t K, std::size_t... Is>
constexpr auto backward_exprs(std::index_sequence<Is...>) {
    // d F / d x_i times the adjoint, which the backward loop binds as var<K>
    return std::tuple{(sym::d(F{}, sym::var<static_cast<int>(Is)>) * sym::var<static_cast<int>(K)>)...};
}

// E with every occurrence of the subexpression F replaced by R (a type transformation, nothing is
// simplified).
template <class E, class F, class R>
struct replace_sub {
    using type = std::conditional_t<std::is_same_v<E, F>, R, E>;
};
template <class E, class F, class R>
using replace_sub_t = typename replace_sub<E, F, R>::type;
template <class Op, class... Cs, class F, class R>
struct replace_sub<sym::Node<Op, Cs...>, F, R> {
    using type =
        std::conditional_t<std::is_same_v<sym::Node<Op, Cs...>, F>, R, sym::Node<Op, replace_sub_t<Cs, F, R>...>>;
};

template <class E>
struct is_sym_node : std::false_type {};
template <class Op, class... Cs>
struct is_sym_node<sym::Node<Op, Cs...>> : std::true_type {};

// The partials of backward_exprs with the map's own expression F read from var<K> (the forward
// output) wherever it occurs: tanh's 1 − tanh(u)², exp's exp(u), sigmoid's σ(u)(1 − σ(u)) then cost
// a load instead of a second evaluation.
template <class F, int K, class... Ds>
constexpr auto reuse_output(std::tuple<Ds...>) {
    if constexpr (is_sym_node<F>::value) {
        return std::tuple<replace_sub_t<Ds, F, sym::Var<K>>...>{};
    } else {
        return std::tuple<Ds...>{};
    }
}

}  // namespace detail

/// An elementwise map of the sym expression F over the tensors Args (NumPy broadcasting); argument
/// k binds var<k>. Built by map(f, a, b, ...) and the arithmetic operators on tensor expressions.
template <class F, class... Args>
struct Map {
    using children = meta::type_list<Args...>;
    static constexpr const char* name = "map";
    static constexpr std::size_t n = sizeof...(Args);

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const std::array<const cview<T>*, n> v{&ctx.template in<Args>()...};
        dims shape;
        for (std::size_t k = 0; k < n; ++k) shape = broadcast("map", shape, v[k]->shape);
        T* out = ctx.template out<Map>(shape);
        std::array<const T*, n> data;
        std::array<dims, n> shapes;
        for (std::size_t k = 0; k < n; ++k) {
            data[k] = v[k]->data;
            shapes[k] = v[k]->shape;
        }
        detail::broadcast_loop<T>(std::tuple<F>{}, shape, data, shapes,
                                  std::array<detail::out_ref<T>, 1>{detail::out_ref<T>{out, false}},
                                  std::array<dims, 1>{shape});
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        backward_impl(ctx, std::make_index_sequence<n>{});
    }

  private:
    template <class Ctx, std::size_t... Is>
    static void backward_impl(Ctx& ctx, std::index_sequence<Is...>) {
        using T = typename Ctx::value_type;
        using args_list = std::tuple<Args...>;
        using plain = decltype(detail::backward_exprs<F, n>(std::index_sequence<Is...>{}));
        using reused = decltype(detail::reuse_output<F, static_cast<int>(n + 1)>(plain{}));
        // the output is an operand only when some partial reads it: an unused operand still costs a
        // load per batch (normal_log_pdf's gradient was 40% slower with one)
        constexpr bool reads_out = !std::is_same_v<plain, reused>;
        constexpr std::size_t NI = n + 1 + (reads_out ? 1 : 0);
        const reused all{};
        // only the partials of arguments that need a gradient are evaluated
        constexpr std::array<bool, n> needed{Ctx::template needs<std::tuple_element_t<Is, args_list>>...};
        const cview<T>& self = ctx.template in<Map>();
        const adjoint_view<T> g = ctx.template adj<Map>();
        // var<n> is the adjoint, var<n + 1> the forward output
        std::array<const T*, NI> data{ctx.template in<Args>().data..., g.uniform ? &g.value : g.data};
        std::array<dims, NI> shapes{ctx.template in<Args>().shape..., g.uniform ? dims{} : self.shape};
        if constexpr (reads_out) {
            data[n + 1] = self.data;
            shapes[n + 1] = self.shape;
        }
        run_needed(ctx, all, data, shapes, self.shape, std::integral_constant<std::size_t, 0>{},
                   std::integral_constant<bool, needed[0]>{}, std::tuple<>{}, std::array<detail::out_ref<T>, 0>{},
                   std::array<dims, 0>{}, std::index_sequence<Is...>{});
    }

    // Builds, at compile time, the tuple of the needed partials and, at run time, their targets;
    // then runs one broadcast loop for all of them.
    template <class Ctx, class All, class T, std::size_t NI, std::size_t I, bool Need, class... Sel, std::size_t M,
              std::size_t... Is>
    static void run_needed(Ctx& ctx, const All& all, const std::array<const T*, NI>& data,
                           const std::array<dims, NI>& shapes, const dims& out_shape,
                           std::integral_constant<std::size_t, I>, std::integral_constant<bool, Need>,
                           std::tuple<Sel...> sel, std::array<detail::out_ref<T>, M> outs,
                           std::array<dims, M> out_shapes, std::index_sequence<Is...> seq) {
        if constexpr (I == n) {
            if constexpr (M > 0) detail::broadcast_loop<T>(sel, out_shape, data, shapes, outs, out_shapes);
        } else {
            using A = std::tuple_element_t<I, std::tuple<Args...>>;
            constexpr bool next_need =
                (I + 1 < n) ? Ctx::template needs<std::tuple_element_t<(I + 1 < n ? I + 1 : 0), std::tuple<Args...>>>
                            : false;
            if constexpr (Need && !sym::detail::is_const_v<std::remove_cvref_t<decltype(std::get<I>(all))>, 0>) {
                bool add = false;
                const cview<T>& a = ctx.template in<A>();
                const bool reduced = !(a.shape == out_shape);
                T* target = ctx.template grad<A>(add);
                if (reduced && !add) std::fill(target, target + a.size(), T(0));
                std::array<detail::out_ref<T>, M + 1> o2;
                std::array<dims, M + 1> s2;
                for (std::size_t m = 0; m < M; ++m) {
                    o2[m] = outs[m];
                    s2[m] = out_shapes[m];
                }
                o2[M] = detail::out_ref<T>{target, add || reduced};
                s2[M] = a.shape;
                run_needed(ctx, all, data, shapes, out_shape, std::integral_constant<std::size_t, I + 1>{},
                           std::integral_constant<bool, next_need>{}, std::tuple_cat(sel, std::tuple{std::get<I>(all)}),
                           o2, s2, seq);
            } else {
                run_needed(ctx, all, data, shapes, out_shape, std::integral_constant<std::size_t, I + 1>{},
                           std::integral_constant<bool, next_need>{}, sel, outs, out_shapes, seq);
            }
        }
    }
};

}  // namespace exprgrad::tensors
