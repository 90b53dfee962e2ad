// The recorded backward over compiled blocks: run-time composition without hand-wired VJPs.
//
// What a type cannot know (depth, which loss, a loop over layers chosen by flags) is composed at run time
// from compiled blocks (tensors::compile). A record remembers each block call of a step (the block, where its
// arguments live, where its output went), and one backward on the loss runs the recorded VJPs in reverse,
// chaining every intermediate adjoint and accumulating every leaf's gradient. libtorch's autograd records
// every operation; a record holds compiled blocks only, a few entries per layer. Nothing is allocated in
// steady state: entries, values and adjoints are kept per position and reused while the shapes repeat, and a
// block's output and the gradients it passes on are swapped between its buffers and the record's, not copied.
//
//   tensors::record<float> rec;
//   auto blk  = tensors::compile<float>(tanh(matmul(tensor<0>, tensor<1>)), tensors::wrt<0, 1>);
//   auto loss = tensors::compile<float>(mean(square(tensor<0>)), tensors::wrt<0>);
//   rec.clear();                                   // a new step (keeps the buffers)
//   auto x = rec.constant(xs);                     // data: no gradient
//   auto w = rec.leaf(W, dW);                      // a parameter: dW += dL/dW at backward
//   auto h = rec.call(blk, x, w);                  // ordinary C++ control flow: loops, branches
//   auto l = rec.call(loss, rec.call(blk, h, w));  // the same block twice: its gradients sum
//   rec.backward(l);                               // every VJP, in reverse; no user code calls one
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/format.hpp"
#include "exprgrad/kernels/contiguous.hpp"
#include "exprgrad/tensors/value_and_grad.hpp"

namespace exprgrad::tensors {

/// A value of a record: the output of a recorded call, a constant or a leaf. Cheap to copy; valid until
/// the record's next clear() (a handle of an earlier step is refused, naming the operation).
struct handle {
    std::uint32_t index = 0;
    std::uint32_t generation = 0;
};

namespace detail {
template <class B>
struct block_traits {
    static constexpr bool is_block = false;
};
template <class T, class E, int... W>
struct block_traits<block<T, E, W...>> {
    static constexpr bool is_block = true;
    using value_type = T;
    template <int I>
    static constexpr bool differentiates = ((I == W) || ...);
};

template <class A>
constexpr bool is_integer_array() {
    if constexpr (xt::is_xexpression<A>::value) {
        return std::is_integral_v<typename A::value_type>;
    } else {
        return false;
    }
}
}  // namespace detail

/// The record of one step's block calls (see the top of this file). T is float or double. Not reentrant:
/// one step at a time. The gradient rule is the library's (docs/tensor.md, "Gradients: assigned or
/// accumulated"): a leaf's gradient array is *accumulated* into (zero it before a step, or accumulate
/// micro-batches on purpose); an intermediate's adjoint, read with grad(h), is *assigned* by each backward.
template <class T>
class record {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "exprgrad: a record computes in float or double");

  public:
    /// Called once per leaf when its gradient is complete during backward (every recorded call that reads
    /// it has run its VJP), with the leaf's handle and its gradient array; data-parallel training starts the
    /// all-reduce of a bucket here. Leaves no recorded call reads fire after the last VJP. Set once;
    /// an empty function removes the hook.
    using gradient_hook = std::function<void(handle leaf, xt::xarray<T>& grad)>;

    /// Starts a new step: forgets the recorded calls and invalidates their handles; keeps every buffer, so
    /// a step of the same shapes allocates nothing.
    void clear() {
        ++generation_;
        values_used_ = 0;
        entries_.clear();
        slots_.clear();
        leaves_.clear();
    }

    /// A float array that takes no gradient (data, a mask, positions as floats). Copied into the record.
    handle constant(const xt::xarray<T>& a) {
        const handle h = new_value(false);
        auto& v = values_[h.index];
        copy_into(v.own, a.shape(), a.data(), a.size());
        v.value = &v.own;
        return h;
    }

    /// A trainable leaf: its value is read from `value` in place (keep it alive and unchanged until
    /// backward), and backward adds dL/dleaf into `grad`, which must have as many elements as `value`
    /// (checked here). Example: `auto w = rec.leaf(p.value, p.grad);` for an nn::parameter p.
    handle leaf(const xt::xarray<T>& value, xt::xarray<T>& grad) {
        if (grad.size() != value.size()) {
            throw shape_error("record::leaf", "gradient array of " + std::to_string(grad.size()) +
                                        " elements for a value of shape " + format_shape(value.shape()) +
                                        " (zero it to the value's shape first)");
        }
        const handle h = new_value(true);
        auto& v = values_[h.index];
        v.value = &value;
        v.leaf_grad = &grad;
        v.first_reader = no_entry;
        leaves_.push_back(h.index);
        return h;
    }

    /// Runs block b on the arguments and records the call; returns the output's handle. Arguments by
    /// position: a handle (the value it names; its gradient flows if b differentiates that position), an
    /// integer array (tokens, targets; read in place: keep it alive and unchanged until backward) or a
    /// number. A handle that carries a gradient at a position b does not differentiate is refused (its
    /// gradient would be lost silently): compile b with that position in wrt<...>.
    template <class B, class... Args>
    handle call(B& b, const Args&... args) {
        using traits = detail::block_traits<std::remove_cvref_t<B>>;
        static_assert(traits::is_block,
                      "exprgrad: record::call takes a compiled block (tensors::compile<T>(expr, wrt<...>))");
        static_assert(std::is_same_v<typename traits::value_type, T>,
                      "exprgrad: record::call: the block computes in another number type than the record");
        static_assert((valid_argument<Args>() && ...),
                      "exprgrad: record::call arguments are handles, integer arrays or numbers (wrap float "
                      "arrays with record::constant or record::leaf)");
        entry e;
        e.block = &b;
        e.first_slot = slots_.size();
        e.slot_count = sizeof...(Args);
        e.forward = &replay<B, Args...>;
        e.vjp = &run_vjp<B, Args...>;
        try {
            store_slots<B>(std::index_sequence_for<Args...>{}, args...);
        } catch (...) {
            slots_.resize(e.first_slot);
            throw;
        }
        // Gradients flow to the output when some differentiated position reads a value that carries one.
        e.carries = any_carrying<B>(std::index_sequence_for<Args...>{}, e.first_slot);
        mark_earlier_call_stale(&b);
        if (recompute_) e.release = [](void* p) { static_cast<B*>(p)->release(); };
        const cview<T>* r = nullptr;
        try {
            r = &forward_with<B, Args...>(b, e.first_slot, std::index_sequence_for<Args...>{});
        } catch (...) {
            slots_.resize(e.first_slot);  // a refused call leaves no entry behind
            throw;
        }
        const std::size_t id = entries_.size();
        for (std::size_t k = 0; k < e.slot_count; ++k) {
            const slot& s = slots_[e.first_slot + k];
            if (s.kind == slot::value && values_[s.index].leaf_grad && values_[s.index].first_reader == no_entry)
                values_[s.index].first_reader = id;
        }
        const handle out = push_entry(e);
        auto& v = values_[out.index];  // the block's output buffer itself when it is one (no copy)
        if (!b.hand_over_output(v.own)) copy_into(v.own, r->shape.xshape(), r->data, r->size());
        if (e.release) {  // recompute mode: keep only the recorded values; backward re-runs the forward pass
            e.release(&b);
            entries_.back().stale = true;
        }
        return out;
    }

    /// Runs a run-time layer L on x and records the call; returns the output's handle. L is any object with
    /// `const xt::xarray<T>& forward(const xt::xarray<T>&)` and `const xt::xarray<T>& backward(const
    /// xt::xarray<T>& dy)` returning dL/dx and adding its parameters' gradients into their own arrays: the
    /// nn::layer interface (nn::sequential, nn::transformer's stack, nn::residual, ...). So a model mixes
    /// compiled blocks and layers, and one backward reaches both. Its parameters are not leaves of the record:
    /// the gradient hook does not fire for them. Example: `h = rec.call_layer(*stack.blocks, h);`
    template <class L>
    handle call_layer(L& layer, handle x) {
        static_assert(requires(L& l, const xt::xarray<T>& a) {
            { l.forward(a) } -> std::convertible_to<const xt::xarray<T>&>;
            { l.backward(a) } -> std::convertible_to<const xt::xarray<T>&>;
        }, "exprgrad: record::call_layer takes a layer with forward(x) and backward(dy) over xt::xarray<T> (nn::layer)");
        entry e;
        e.block = &layer;
        e.first_slot = slots_.size();
        e.slot_count = 1;
        e.forward = &replay_layer<L>;
        e.vjp = &layer_vjp<L>;
        slot s;
        s.kind = slot::value;
        s.index = checked(x, "record::call_layer");
        slots_.push_back(s);
        e.carries = true;  // a layer has parameters of its own
        mark_earlier_call_stale(&layer);
        const xt::xarray<T>* y = nullptr;
        try {
            y = &layer.forward(*values_[s.index].value);
        } catch (...) {
            slots_.resize(e.first_slot);
            throw;
        }
        const handle out = push_entry(e);
        copy_into(values_[out.index].own, y->shape(), y->data(), y->size());
        return out;
    }

    /// The value a handle names (valid until the next clear()).
    const xt::xarray<T>& value(handle h) const { return *values_[checked(h, "record::value")].value; }

    /// The adjoint dL/dh of the last backward (assigned by each backward; zeros when h does not reach the
    /// loss). For a leaf, its gradient array (accumulated).
    const xt::xarray<T>& grad(handle h) {
        auto& v = values_[checked(h, "record::grad")];
        if (v.leaf_grad) return *v.leaf_grad;
        if (!v.adj_set) {
            copy_shape(v.adj, v.value->shape());
            v.adj.fill(T(0));
        }
        return v.adj;
    }

    /// backward from a one-element loss: seeds dL/dL = 1 and runs every recorded VJP in reverse order.
    void backward(handle loss) {
        const auto& v = values_[checked(loss, "record::backward")];
        if (v.value->size() != 1) {
            throw shape_error("record::backward", "the loss has shape " + format_shape(v.value->shape()) +
                                        "; pass a seed (backward(h, dL_dh)) for an output of more than one element");
        }
        seed_buffer_.resize({std::size_t{1}});
        seed_buffer_.data()[0] = T(1);
        backward(loss, seed_buffer_);
    }

    /// backward from an output with the adjoint `seed` (as many elements as the output).
    void backward(handle out, const xt::xarray<T>& seed) {
        const std::uint32_t o = checked(out, "record::backward");
        if (seed.size() != values_[o].value->size()) {
            throw shape_error("record::backward", "seed of " + std::to_string(seed.size()) +
                                        " elements for an output of shape " + format_shape(values_[o].value->shape()));
        }
        for (std::uint32_t i = 0; i < values_used_; ++i) values_[i].adj_set = false;
        auto& root = values_[o];
        if (root.leaf_grad) {
            add_into(*root.leaf_grad, seed.data(), seed.size());
        } else {
            copy_into(root.adj, root.value->shape(), seed.data(), seed.size());
            root.adj_set = true;
        }
        for (std::size_t e = entries_.size(); e-- > 0;) {
            entry& en = entries_[e];
            value_slot& y = values_[en.output];
            if (en.carries && y.adj_set) {
                if (en.stale) en.forward(en.block, *this, en.first_slot);
                en.vjp(en.block, *this, en.first_slot, y.adj);
                if (en.release) en.release(en.block);
                // The block's intermediates now belong to an earlier call of it or to nobody.
                en.stale = true;
            }
            if (call_hook_) call_hook_(e);
            fire_hooks(e);
        }
        fire_hooks(no_entry);
    }

    /// Sets the hook called when a leaf's gradient is complete (see gradient_hook).
    void on_gradient_ready(gradient_hook h) { hook_ = std::move(h); }

    /// Called during backward after each recorded call's VJP (or after its turn, when its output does not
    /// reach the loss), with the call's index in recording order (0 for the first call after clear()). For
    /// what leaves cannot name: the parameters inside a layer recorded with call_layer are complete once
    /// its call is done. Set once; an empty function removes the hook.
    using call_hook = std::function<void(std::size_t call)>;
    void on_call_done(call_hook h) { call_hook_ = std::move(h); }

    /// The number of recorded calls since the last clear().
    std::size_t calls() const noexcept { return entries_.size(); }

    /// Recompute mode for the calls recorded from now on: each block frees its intermediates after its forward
    /// pass and re-runs it at backward (same gradients, less memory). Returns the previous mode:
    /// `const bool was = rec.set_recompute(true); ...; rec.set_recompute(was);`
    bool set_recompute(bool on) noexcept {
        std::swap(on, recompute_);
        return on;
    }

  private:
    static constexpr std::size_t no_entry = static_cast<std::size_t>(-1);

    struct value_slot {
        xt::xarray<T> own;                  // the value, for outputs and constants
        const xt::xarray<T>* value = nullptr;
        xt::xarray<T>* leaf_grad = nullptr;  // leaves only
        xt::xarray<T> adj;                   // intermediates' adjoints
        bool adj_set = false, carries = false;
        std::size_t first_reader = no_entry;
    };
    struct slot {
        enum kind_t { value, external, number } kind = value;
        std::uint32_t index = 0;
        const void* ptr = nullptr;
        double num = 0;
    };
    using forward_fn = void (*)(void* block, record& r, std::size_t first_slot);
    using vjp_fn = void (*)(void* block, record& r, std::size_t first_slot, xt::xarray<T>& dout);
    struct entry {
        void* block = nullptr;
        forward_fn forward = nullptr;
        vjp_fn vjp = nullptr;
        void (*release)(void* block) = nullptr;  // recompute mode only
        std::size_t first_slot = 0, slot_count = 0;
        std::uint32_t output = 0;
        bool carries = false, stale = false;
    };

    std::deque<value_slot> values_;  // a deque: outputs point into their own slot, which must not move
    std::uint32_t values_used_ = 0, generation_ = 1;
    std::vector<entry> entries_;
    std::vector<slot> slots_;
    std::vector<std::uint32_t> leaves_;
    xt::xarray<T> seed_buffer_;
    gradient_hook hook_;
    call_hook call_hook_;
    bool recompute_ = false;

    // A block or layer called again overwrites its intermediates: its previous call re-runs its forward pass at
    // backward (the recompute path), which makes calling one block many times per step correct.
    void mark_earlier_call_stale(const void* callee) {
        for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
            if (it->block == callee) {
                it->stale = true;
                return;
            }
        }
    }

    // Records the call e; the caller fills the output's slot (a block hands its buffer over, a layer's is copied).
    handle push_entry(entry& e) {
        const handle out = new_value(e.carries);
        e.output = out.index;
        entries_.push_back(e);
        values_[out.index].value = &values_[out.index].own;
        return out;
    }

    template <class A>
    static constexpr bool valid_argument() { return std::is_same_v<A, handle> || std::is_arithmetic_v<A> || detail::is_integer_array<A>(); }

    handle new_value(bool carries) {
        if (values_used_ == values_.size()) values_.emplace_back();
        auto& v = values_[values_used_];
        v.value = nullptr;
        v.leaf_grad = nullptr;
        v.adj_set = false;
        v.carries = carries;
        v.first_reader = no_entry;
        return handle{values_used_++, generation_};
    }

    std::uint32_t checked(handle h, const char* op) const {
        if (h.generation != generation_ || h.index >= values_used_) {
            throw shape_error(op, "handle " + std::to_string(h.index) +
                                        " belongs to an earlier step (recorded before the last clear()) or to "
                                        "another record");
        }
        return h.index;
    }

    template <class Shape>
    static void copy_shape(xt::xarray<T>& dst, const Shape& shape) {
        if (dst.dimension() != shape.size() || !std::equal(shape.begin(), shape.end(), dst.shape().begin())) {
            typename xt::xarray<T>::shape_type s(shape.begin(), shape.end());
            dst.resize(s);
        }
    }
    template <class Shape>
    static void copy_into(xt::xarray<T>& dst, const Shape& shape, const T* src, std::size_t n) {
        copy_shape(dst, shape);
        std::copy(src, src + n, dst.data());
    }
    static void add_into(xt::xarray<T>& dst, const T* src, std::size_t n) { kernels::add_row(dst.data(), src, n); }

    template <class B, std::size_t... I, class... Args>
    void store_slots(std::index_sequence<I...>, const Args&... args) {
        (store_slot<B, static_cast<int>(I)>(args), ...);
    }
    template <class B, int I, class A>
    void store_slot(const A& a) {
        slot s;
        if constexpr (std::is_same_v<A, handle>) {
            s.kind = slot::value;
            s.index = checked(a, "record::call");
            if (values_[s.index].carries && !detail::block_traits<std::remove_cvref_t<B>>::template differentiates<I>) {
                throw shape_error("record::call", "argument " + std::to_string(I) +
                                            " carries a gradient but the block does not differentiate it; "
                                            "compile the block with position " + std::to_string(I) + " in wrt<...>");
            }
        } else if constexpr (std::is_arithmetic_v<A>) {
            s.kind = slot::number;
            s.num = static_cast<double>(a);
        } else {
            s.kind = slot::external;
            s.ptr = &a;
        }
        slots_.push_back(s);
    }

    template <class B, std::size_t... I>
    bool any_carrying(std::index_sequence<I...>, std::size_t first) const {
        using traits = detail::block_traits<std::remove_cvref_t<B>>;
        return ((traits::template differentiates<static_cast<int>(I)> && slots_[first + I].kind == slot::value &&
                 values_[slots_[first + I].index].carries) ||
                ...);
    }

    template <class A>
    decltype(auto) argument(const slot& s) const {
        if constexpr (std::is_same_v<A, handle>) {
            return static_cast<const xt::xarray<T>&>(*values_[s.index].value);
        } else if constexpr (std::is_arithmetic_v<A>) {
            return static_cast<A>(s.num);
        } else {
            return static_cast<const A&>(*static_cast<const A*>(s.ptr));
        }
    }

    template <class B, class... Args, std::size_t... I>
    const cview<T>& forward_with(B& b, std::size_t first, std::index_sequence<I...>) {
        return b.forward(argument<Args>(slots_[first + I])...);
    }
    template <class B, class... Args>
    static void replay(void* blk, record& r, std::size_t first) {
        r.forward_with<B, Args...>(*static_cast<B*>(blk), first, std::index_sequence_for<Args...>{});
    }

    template <class B, int I, class A>
    void take_grad(B& b, const slot& s) {
        if constexpr (std::is_same_v<A, handle> &&
                      detail::block_traits<std::remove_cvref_t<B>>::template differentiates<I>) {
            value_slot& v = values_[s.index];
            if (v.carries && !v.leaf_grad && !v.adj_set) {
                b.template take_grad<I>(v.adj);  // a first contribution to an intermediate: moved, not copied
                v.adj_set = true;
            } else if (v.carries) deliver(v, b.template grad<I>());
        }
    }
    // A gradient reaching a value: added into a leaf's array; the first contribution to an intermediate's
    // adjoint is assigned, later ones added.
    static void deliver(value_slot& v, const xt::xarray<T>& g) {
        if (v.leaf_grad) {
            add_into(*v.leaf_grad, g.data(), g.size());
        } else if (v.adj_set) {
            add_into(v.adj, g.data(), g.size());
        } else {
            copy_into(v.adj, v.value->shape(), g.data(), g.size());
            v.adj_set = true;
        }
    }
    template <class B, class... Args, std::size_t... I>
    void take_grads(B& b, std::size_t first, std::index_sequence<I...>) {
        (take_grad<B, static_cast<int>(I), Args>(b, slots_[first + I]), ...);
    }
    template <class B, class... Args>
    static void run_vjp(void* blk, record& r, std::size_t first, xt::xarray<T>& dout) {
        B& b = *static_cast<B*>(blk);
        b.vjp_in_place(dout);
        r.take_grads<B, Args...>(b, first, std::index_sequence_for<Args...>{});
    }

    template <class L>
    static void replay_layer(void* l, record& r, std::size_t first) {
        static_cast<L*>(l)->forward(*r.values_[r.slots_[first].index].value);
    }
    template <class L>
    static void layer_vjp(void* l, record& r, std::size_t first, xt::xarray<T>& dout) {
        const xt::xarray<T>& dx = static_cast<L*>(l)->backward(dout);
        value_slot& v = r.values_[r.slots_[first].index];
        if (v.carries) deliver(v, dx);
    }

    void fire_hooks(std::size_t entry_index) {
        if (!hook_) return;
        for (const std::uint32_t l : leaves_) {
            value_slot& v = values_[l];
            if (v.first_reader == entry_index) hook_(handle{l, generation_}, *v.leaf_grad);
        }
    }
};

}  // namespace exprgrad::tensors
