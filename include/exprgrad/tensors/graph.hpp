// Tensor expressions as types, and the compiled program that runs them forward and backward.
//
// A tensor expression is an empty type whose children are listed in `children`. A program gathers
// the distinct node types of an expression (children before parents, so common subexpressions
// appear once), owns one value buffer per node and one adjoint buffer per node that lies on a path
// to a differentiated input, and reuses them on every call: a steady-state call allocates nothing.
// The forward pass calls each node's `forward(ctx)` in order; the backward pass calls `backward(ctx)`
// in reverse order on the nodes that need it, each accumulating vector-Jacobian products into its
// children's adjoints.
//
// Adjoints may be *uniform* (every element the same value, as the adjoint of a sum is): a node
// whose VJP can use that (matmul, elementwise maps) reads the single value instead of a buffer, so
// the gradient of sum(A·B) needs no GEMM.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <xtensor/xarray.hpp>

#include "exprgrad/kernels/contiguous.hpp"
#include "exprgrad/sym/type_list.hpp"
#include "exprgrad/tensors/node.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::tensors {

// ---------------------------------------------------------------------------------------------
// Run-time state of one node.

/// A read-only view of a tensor: contiguous row-major data and its shape.
template <class T>
struct cview {
    const T* data = nullptr;
    dims shape;
    std::size_t size() const { return shape.size(); }
};

/// The adjoint of a node as its consumer reads it: either a buffer or one uniform value.
template <class T>
struct adjoint_view {
    const T* data = nullptr;  // null when uniform
    bool uniform = false;
    T value = 0;
    dims shape;
};

template <class T>
struct slot {
    xt::xarray<T> buf;         // the node's value (unused by inputs that view the caller's array)
    cview<T> view;             // what consumers read
    xt::xarray<T> adj;         // the adjoint buffer
    bool adj_set = false;      // some contribution has been written
    bool adj_uniform = false;  // the adjoint is the single value adj_value everywhere
    T adj_value = 0;
    const std::int64_t* ints = nullptr;  // integer inputs
    std::vector<std::int64_t> int_buf;   // integer inputs converted to int64 (reused)
    const void* object = nullptr;        // any other argument (read by the node that knows its type)
    const std::type_info* object_type = nullptr;
};

// ---------------------------------------------------------------------------------------------
// The compiled program.

/// A compiled tensor program for the number type T over the expression E, differentiating with
/// respect to the arguments in Wrt (an std::integer_sequence<int, ...>). Built by value_and_grad or
/// tensors::compile; not reentrant (one call at a time per program object).
template <class T, class E, class Wrt>
class program {
  public:
    using value_type = T;
    /// The expression compiled (E, or the expression inside unlowered(...)) and whether the lowering pass
    /// (tensors/lowering.hpp) runs: nodes are looked up through it, so a node reading its written child reads
    /// the child's replacement.
    using expr = typename detail::program_root<E>::type;
    static constexpr bool lowers = detail::program_root<E>::lower;
    using list = tensor_nodes_t<expr, lowers>;
    static constexpr std::size_t count = list::size;
    /// The number of arguments a call takes: one per placeholder up to the highest tensor<I> the
    /// expression reads or the highest differentiated index, whichever is larger.
    static constexpr int arity = std::max(detail::max_input_of(list{}), detail::max_index_of(Wrt{})) + 1;

    template <class N>
    static constexpr std::size_t pos = meta::index_of_v<typename detail::lowered_if<lowers, N>::type, list>;
    /// True when node N lies on a path from a differentiated input to the output.
    template <class N>
    static constexpr bool needs = detail::needs_grad<typename detail::lowered_if<lowers, N>::type, Wrt>::value;

    // ---- access used by the nodes' forward and backward functions

    template <class N>
    const cview<T>& in() const {
        return std::get<pos<N>>(slots_).view;
    }
    /// An argument that is neither an array nor a number (e.g. a batch of texts for a lattice node),
    /// as the type O the node expects; throws naming the argument if another type was passed.
    template <class N, class O>
    const O& object() const {
        const auto& s = std::get<pos<N>>(slots_);
        if (s.object == nullptr || *s.object_type != typeid(O)) {
            throw shape_error("program", "argument " + std::to_string(N::index) + " must be a " + typeid(O).name());
        }
        return *static_cast<const O*>(s.object);
    }
    template <class N>
    const std::int64_t* ints() const {
        const auto& s = std::get<pos<N>>(slots_);
        if (s.ints == nullptr) {
            throw shape_error("program", "argument " + std::to_string(N::index) + " must be an integer array");
        }
        return s.ints;
    }
    /// The output buffer of node N, resized to `shape`; consumers see it after this call.
    template <class N>
    T* out(const dims& shape) {
        auto& s = std::get<pos<N>>(slots_);
        fit(s.buf, shape);
        s.view.data = s.buf.data();
        s.view.shape = shape;
        return s.buf.data();
    }
    /// Node N's value as `shape` over the elements at `data` (a contiguous value of another node or argument of
    /// this program, as many elements): a view, no copy (reshape). Not for the program's output, which stays a
    /// buffer of its own (blocks and evaluate hand that buffer out).
    template <class N>
    void alias(const T* data, const dims& shape) {
        static_assert(pos<N> != pos<expr>, "exprgrad: the program's output cannot alias another value");
        auto& s = std::get<pos<N>>(slots_);
        s.view.data = data;
        s.view.shape = shape;
    }
    /// Node N's value as `shape` over child C's elements by taking C's buffer (C's view keeps pointing at its
    /// elements, now in N's buffer; C's next forward writes into N's old buffer): a reshape at the program's
    /// output without a copy. False, with nothing moved, when C is an argument or its value is not its own buffer.
    /// The buffers rotate between C, N and the caller (hand_over_output), so such a program stops allocating from
    /// its third call (a record's block from its fourth step), not its second.
    template <class N, class C>
    bool take_buffer(const dims& shape) {
        if constexpr (detail::is_input<C>::value) {
            return false;
        } else {
            auto &s = std::get<pos<N>>(slots_), &c = std::get<pos<C>>(slots_);
            if (c.view.data != c.buf.data() || c.buf.size() != shape.size()) return false;
            std::swap(s.buf, c.buf);
            s.buf.reshape(shape.xshape());
            s.view.data = s.buf.data();
            s.view.shape = shape;
            return true;
        }
    }
    /// Moves node From's adjoint to its child C as C's whole adjoint, reshaped to C's shape (the same number of
    /// elements): the VJP of a reshape without a copy. False, with nothing moved, when C already has a
    /// contribution, From's adjoint is uniform or unset, or From is the output (whose adjoint may be the
    /// caller's array, backward_in_place): the caller then copies or adds. From's adjoint is not read again.
    template <class From, class C>
    bool move_adjoint() {
        if constexpr (pos<From> == pos<expr>) {
            return false;
        } else {
            auto &f = std::get<pos<From>>(slots_), &c = std::get<pos<C>>(slots_);
            if (c.adj_set || !f.adj_set || f.adj_uniform || f.adj.size() != c.view.size()) return false;
            std::swap(f.adj, c.adj);
            c.adj.reshape(c.view.shape.xshape());
            c.adj_set = true;
            c.adj_uniform = false;
            return true;
        }
    }
    template <class N>
    auto& extra() {
        return std::get<pos<N>>(extras_);
    }
    template <class N>
    const auto& extra() const {
        return std::get<pos<N>>(extras_);
    }

    /// The adjoint of node N (uniform or a buffer). A node with no contribution reads as uniform 0.
    template <class N>
    adjoint_view<T> adj() const {
        const auto& s = std::get<pos<N>>(slots_);
        adjoint_view<T> a;
        a.shape = s.view.shape;
        if (!s.adj_set) {
            a.uniform = true;
            a.value = 0;
        } else if (s.adj_uniform) {
            a.uniform = true;
            a.value = s.adj_value;
        } else {
            a.data = s.adj.data();
        }
        return a;
    }
    /// The adjoint of node N as a buffer (a uniform adjoint is written out first).
    template <class N>
    const T* adj_data() {
        auto& s = std::get<pos<N>>(slots_);
        if (!s.adj_set || s.adj_uniform) {
            fit(s.adj, s.view.shape);
            const T v = s.adj_set ? s.adj_value : T(0);
            kernels::fill_value(s.adj.data(), s.adj.size(), v);
            s.adj_set = true;
            s.adj_uniform = false;
        }
        return s.adj.data();
    }
    /// Where to write child C's adjoint contribution: its buffer, with `add` telling whether a
    /// previous contribution must be added to (true) or overwritten (false).
    template <class C>
    T* grad(bool& add) {
        auto& s = std::get<pos<C>>(slots_);
        if (s.adj_set && s.adj_uniform) {
            fit(s.adj, s.view.shape);
            kernels::fill_value(s.adj.data(), s.adj.size(), s.adj_value);
            s.adj_uniform = false;
        } else if (!s.adj_set) {
            fit(s.adj, s.view.shape);
        }
        add = s.adj_set;
        s.adj_set = true;
        return s.adj.data();
    }
    /// Adds the uniform value v to child C's adjoint.
    template <class C>
    void grad_uniform(T v) {
        auto& s = std::get<pos<C>>(slots_);
        if (!s.adj_set) {
            s.adj_set = true;
            s.adj_uniform = true;
            s.adj_value = v;
        } else if (s.adj_uniform) {
            s.adj_value += v;
        } else {
            kernels::add_value(s.adj.data(), s.adj.size(), v);
        }
    }

    // ---- running

    /// Binds the arguments and runs the forward pass; returns a view of the output (valid until the
    /// next call). Exactly `arity` arguments: a missing or an extra one does not compile.
    template <class... Args>
    const cview<T>& forward(const Args&... args) & {
        static_assert(static_cast<int>(sizeof...(Args)) >= arity,
                      "exprgrad: too few arguments for this tensor program: tensor<I> needs at least I + 1");
        static_assert(static_cast<int>(sizeof...(Args)) <= arity,
                      "exprgrad: too many arguments for this tensor program: pass one per placeholder, "
                      "tensor<0> up to the highest tensor<I> it reads (or differentiates)");
        bind_all(std::index_sequence_for<Args...>{}, args...);
        run_forward(list{});
        return std::get<pos<expr>>(slots_).view;
    }
    /// Refused: the view would point into the temporary program's buffers.
    template <class... Args>
    auto forward(const Args&...) && {
        static_assert(detail::always_false<Args...>,
                      "exprgrad: forward on a temporary program returns a view into buffers that die with it; "
                      "keep the program in a variable");
        return cview<T>{};
    }

    /// Runs the backward pass from the output adjoint `seed` (same shape as the output), after
    /// forward. Gradients are then read with grad_of<I>().
    void backward(const T* seed) {
        reset_adjoints(list{});
        auto& root = std::get<pos<expr>>(slots_);
        fit(root.adj, root.view.shape);
        std::copy(seed, seed + root.view.size(), root.adj.data());
        root.adj_set = true;
        run_backward(list{});
    }
    /// The backward pass from a uniform output adjoint (1 for the gradient of a scalar loss).
    void backward_uniform(T seed) {
        reset_adjoints(list{});
        auto& root = std::get<pos<expr>>(slots_);
        root.adj_set = true;
        root.adj_uniform = true;
        root.adj_value = seed;
        run_backward(list{});
    }

    /// The gradient with respect to argument I after backward: an array of the argument's shape (a
    /// buffer the program owns, valid until the next call). Zeros of that shape when the output does
    /// not depend on the argument (also when the expression does not read it at all). I must be an
    /// argument the expression reads or one of the differentiated indices.
    template <int I>
    const xt::xarray<T>& grad_of() {
        if constexpr (meta::contains_v<Input<I>, list>) {
            auto& s = std::get<pos<Input<I>>>(slots_);
            if (!s.adj_set || s.adj_uniform) adj_data<Input<I>>();
            return s.adj;
        } else {
            static_assert(meta::contains_v<Input<I>, absent_list>,
                          "exprgrad: grad_of<I>: argument I is neither read by the expression nor differentiated");
            constexpr std::size_t k = meta::index_of_v<Input<I>, absent_list>;
            fit(absent_grads_[k], absent_shapes_[k]);
            kernels::fill_value(absent_grads_[k].data(), absent_grads_[k].size(), T(0));
            return absent_grads_[k];
        }
    }
    template <int I>
    const cview<T>& input_view() const {
        return std::get<pos<Input<I>>>(slots_).view;
    }
    /// The output's buffer after forward (for an output that is a node, not a bare argument).
    const xt::xarray<T>& output_array() const {
        static_assert(!detail::is_input<expr>::value, "exprgrad: the program's output is one of its arguments");
        return std::get<pos<expr>>(slots_).buf;
    }
    // ---- hand-overs without a copy (tensors::record): std::swap of xt::xarray moves storage pointers only

    /// Swaps the output's buffer with dst after forward: dst holds the output (the output view, which
    /// backward may read, keeps pointing at that storage: keep dst alive and unchanged until backward), and
    /// dst's old storage becomes the buffer the next forward writes into (no allocation when its shape
    /// repeats). False, with nothing moved, when the output is an argument of the call.
    bool hand_over_output(xt::xarray<T>& dst) {
        if constexpr (detail::is_input<expr>::value) {
            return false;
        } else {
            auto& s = std::get<pos<expr>>(slots_);
            if (s.view.data != s.buf.data() || s.buf.size() != s.view.size()) return false;
            std::swap(s.buf, dst);
            return true;
        }
    }
    /// backward(seed.data()) reading seed in place when it has the output's shape (swapped in as the output's
    /// adjoint and back after); otherwise copied. seed is unchanged either way. A program whose output is one of
    /// its arguments copies: the output's adjoint is then that argument's gradient, which the caller takes.
    void backward_in_place(xt::xarray<T>& seed) {
        if constexpr (detail::is_input<expr>::value) {
            return backward(seed.data());
        }
        auto& root = std::get<pos<expr>>(slots_);
        const auto& sh = seed.shape();
        bool same = static_cast<int>(sh.size()) == root.view.shape.rank;
        for (int i = 0; same && i < root.view.shape.rank; ++i) same = sh[static_cast<std::size_t>(i)] == root.view.shape[i];
        if (!same) return backward(seed.data());
        reset_adjoints(list{});
        std::swap(root.adj, seed);
        root.adj_set = true;
        struct swap_back {
            xt::xarray<T>& a;
            xt::xarray<T>& b;
            ~swap_back() { std::swap(a, b); }
        } guard{root.adj, seed};
        run_backward(list{});
    }
    /// Swaps grad_of<I>() with dst after backward: dst holds the gradient, and dst's old storage becomes the
    /// program's buffer for the next backward. The program's grad_of<I> is unspecified until then.
    template <int I>
    void take_grad(xt::xarray<T>& dst) {
        std::swap(const_cast<xt::xarray<T>&>(grad_of<I>()), dst);
    }

    /// Frees every buffer (values, adjoints, saved data); the next call allocates them again.
    /// Checkpointing uses it to keep only one block's intermediates alive at a time.
    void release() {
        slots_ = {};
        extras_ = {};
        absent_grads_ = {};
    }

  private:
    using absent_list = typename detail::absent_wrt<list, Wrt>::type;
    // Shapes of the differentiated arguments the expression does not read (recorded by bind) and
    // their zero gradients.
    std::array<dims, absent_list::size> absent_shapes_{};
    std::array<xt::xarray<T>, absent_list::size> absent_grads_{};

    template <class L>
    struct slots_of;
    template <class... Ns>
    struct slots_of<meta::type_list<Ns...>> {
        using type = std::tuple<decltype((void)sizeof(Ns*), slot<T>{})...>;
        using extras = std::tuple<typename detail::extra_of<Ns, T>::type...>;
    };
    typename slots_of<list>::type slots_;
    typename slots_of<list>::extras extras_;

    template <std::size_t... Is, class... Args>
    void bind_all(std::index_sequence<Is...>, const Args&... args) {
        (bind<static_cast<int>(Is)>(args), ...);
    }

    template <int I, class A>
    void bind(const A& a) {
        if constexpr (meta::contains_v<Input<I>, absent_list>) {
            dims shape;
            if constexpr (xt::is_xexpression<A>::value) shape = dims::of(a.shape());
            absent_shapes_[meta::index_of_v<Input<I>, absent_list>] = shape;
        } else if constexpr (meta::contains_v<Input<I>, list>) {
            auto& s = std::get<pos<Input<I>>>(slots_);
            s.ints = nullptr;
            s.object = nullptr;
            if constexpr (!std::is_arithmetic_v<A> && !xt::is_xexpression<A>::value) {
                s.object = &a;
                s.object_type = &typeid(A);
                s.view.data = nullptr;
                s.view.shape = dims{};
            } else if constexpr (std::is_arithmetic_v<A>) {
                fit(s.buf, dims{});
                s.buf.data()[0] = static_cast<T>(a);
                s.view.data = s.buf.data();
                s.view.shape = dims{};
            } else {
                using V = typename A::value_type;
                const dims shape = dims::of(a.shape());
                if constexpr (std::is_integral_v<V>) {
                    s.int_buf.resize(shape.size());
                    std::size_t i = 0;
                    for (auto v : a) s.int_buf[i++] = static_cast<std::int64_t>(v);
                    s.ints = s.int_buf.data();
                    s.view.data = nullptr;
                    s.view.shape = shape;
                } else {
                    static_assert(std::is_same_v<V, T>,
                                  "exprgrad: all floating arrays of one call share one value type");
                    if constexpr (requires {
                                      a.data();
                                      a.is_contiguous();
                                  }) {
                        if (a.layout() == xt::layout_type::row_major && a.is_contiguous()) {
                            s.view.data = a.data();
                            s.view.shape = shape;
                            return;
                        }
                    }
                    fit(s.buf, shape);
                    std::copy(a.begin(), a.end(), s.buf.begin());
                    s.view.data = s.buf.data();
                    s.view.shape = shape;
                }
            }
        }
    }

    template <class... Ns>
    void run_forward(meta::type_list<Ns...>) {
        (
            [&] {
                if constexpr (!detail::is_input<Ns>::value) Ns::forward(*this);
            }(),
            ...);
    }
    template <class... Ns>
    void reset_adjoints(meta::type_list<Ns...>) {
        ((std::get<pos<Ns>>(slots_).adj_set = false, std::get<pos<Ns>>(slots_).adj_uniform = false), ...);
    }
    template <class... Ns>
    void run_backward(meta::type_list<Ns...>) {
        using reversed = typename detail::reverse<meta::type_list<>, Ns...>::type;
        run_backward_reversed(reversed{});
    }
    template <class... Ns>
    void run_backward_reversed(meta::type_list<Ns...>) {
        (
            [&] {
                // A node no contribution reached (read only under stop_gradient, say) passes on exactly 0:
                // skipped, so that an infinite local derivative there cannot turn that 0 into NaN (0·∞).
                if constexpr (!detail::is_input<Ns>::value && needs<Ns>) {
                    if (std::get<pos<Ns>>(slots_).adj_set) Ns::backward(*this);
                }
            }(),
            ...);
    }
};

}  // namespace exprgrad::tensors
