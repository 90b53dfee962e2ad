// The linear recurrence y_t = M_t y_{t−1} + b_t (y_{−1} = 0) as a node of a tensor program: the
// forward pass is the scan of ops/scan.hpp, the VJP its adjoint scan
//     λ_t = g_t + M_{t+1}ᵀ λ_{t+1},   ∂L/∂b_t = λ_t,   ∂L/∂M_t = λ_t y_{t−1}ᵀ (diagonal: λ_t ⊙ y_{t−1}),
// summed over the steps (and channels) a shared map stands for. Time-varying AR(1) processes,
// exponential moving averages and linear RNN layers are this node with an elementwise map around it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "exprgrad/ops/scan.hpp"
#include "exprgrad/tensors/graph.hpp"

namespace exprgrad::ops {

namespace detail {

// How the maps' shape relates to the offsets' shape b = [T], [T, n] or [B, T, n].
enum class map_kind {
    per_step,  // diagonal, b's shape: one map per step and channel
    shared,    // diagonal, b's shape without the time axis: the same map at every step
    scalar,    // a single value: every step, channel and sequence
    dense      // [.., T, n, n]: one n×n matrix per step
};

struct layout {
    map_kind kind = map_kind::per_step;
    std::size_t batch = 1, steps = 0, n = 1;
};

inline layout check(const tensors::dims& m, const tensors::dims& b) {
    const char* op = "linear_recurrence";
    auto bad = [&](const std::string& why) {
        return tensors::shape_error(op, why + " (maps " + m.str() + ", offsets " + b.str() + ")");
    };
    if (b.rank < 1 || b.rank > 3) throw bad("the offsets must be [T], [T, n] or [B, T, n]");
    layout s;
    s.batch = b.rank == 3 ? b[0] : 1;
    s.steps = b.rank == 1 ? b[0] : b.at(-2);
    s.n = b.rank == 1 ? 1 : b.at(-1);
    auto same_prefix = [&](int count) {
        for (int i = 0; i < count; ++i)
            if (m[i] != b[i]) return false;
        return true;
    };
    if (m == b) {
        s.kind = map_kind::per_step;
    } else if (m.size() == 1 && m.rank <= b.rank) {
        s.kind = map_kind::scalar;
    } else if (b.rank >= 2 && m.rank == b.rank - 1 && m.at(-1) == s.n && (b.rank == 2 || m[0] == s.batch)) {
        s.kind = map_kind::shared;
    } else if (b.rank >= 2 && m.rank == b.rank + 1 && same_prefix(b.rank) && m.at(-1) == s.n) {
        s.kind = map_kind::dense;
    } else {
        throw bad(
            "the maps must have the offsets' shape (one diagonal map per step), that shape without "
            "the time axis (one map for every step), a single value, or [.., T, n, n] (dense)");
    }
    return s;
}

}  // namespace detail

template <class M, class B>
struct LinearRecurrence {
    using children = tensors::meta::type_list<M, B>;
    static constexpr const char* name = "linear_recurrence";

    template <class T>
    struct extra {
        detail::layout lay;
        std::vector<T> m;       // the maps as the kernels read them (a scalar expanded to n values)
        std::vector<T> lambda;  // the adjoint scan
    };

    // The maps in the kernels' layout: pointer, elements between steps, elements between sequences.
    template <class T>
    struct map_ptr {
        const T* data;
        std::size_t step, batch;
    };
    template <class T>
    static map_ptr<T> maps(extra<T>& ex, const tensors::cview<T>& m) {
        using detail::map_kind;
        const auto& s = ex.lay;
        switch (s.kind) {
            case map_kind::per_step:
                return {m.data, s.n, s.steps * s.n};
            case map_kind::shared:
                return {m.data, 0, s.n};
            case map_kind::dense:
                return {m.data, s.n * s.n, s.steps * s.n * s.n};
            case map_kind::scalar:
                break;
        }
        ex.m.assign(s.n, m.data[0]);
        return {ex.m.data(), 0, 0};
    }

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        auto& ex = ctx.template extra<LinearRecurrence>();
        const tensors::cview<T>& m = ctx.template in<M>();
        const tensors::cview<T>& b = ctx.template in<B>();
        ex.lay = detail::check(m.shape, b.shape);
        const auto& s = ex.lay;
        T* y = ctx.template out<LinearRecurrence>(b.shape);
        const auto mp = maps(ex, m);
        if (s.kind == detail::map_kind::dense) {
            linear_recurrence_dense(mp.data, b.data, static_cast<const T*>(nullptr), y, s.batch, s.steps, s.n, mp.step,
                                    mp.batch);
        } else {
            linear_recurrence_diag(mp.data, b.data, static_cast<const T*>(nullptr), y, s.batch, s.steps, s.n, mp.step,
                                   mp.batch);
        }
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        using detail::map_kind;
        auto& ex = ctx.template extra<LinearRecurrence>();
        const auto& s = ex.lay;
        const tensors::cview<T>& m = ctx.template in<M>();
        const std::size_t total = s.batch * s.steps * s.n;
        const T* g = ctx.template adj_data<LinearRecurrence>();
        // λ = ∂L/∂b: written straight into b's adjoint when nothing else has contributed to it yet
        T* db = nullptr;
        bool add_b = false;
        if constexpr (Ctx::template needs<B>) db = ctx.template grad<B>(add_b);
        T* lam = db;
        if (db == nullptr || add_b) {
            ex.lambda.resize(total);
            lam = ex.lambda.data();
        }
        const auto mp = maps(ex, m);
        if (s.kind == map_kind::dense) {
            linear_recurrence_dense_reverse(mp.data, g, lam, static_cast<T*>(nullptr), s.batch, s.steps, s.n, mp.step,
                                            mp.batch);
        } else {
            linear_recurrence_diag_reverse(mp.data, g, lam, static_cast<T*>(nullptr), s.batch, s.steps, s.n, mp.step,
                                           mp.batch);
        }
        if (db != nullptr && add_b) kernels::add_row(db, static_cast<const T*>(lam), total);
        if constexpr (Ctx::template needs<M>) {
            // ∂L/∂M_t = λ_t y_{t−1}ᵀ; the first step multiplies y_{−1} = 0 and gets nothing
            const T* y = ctx.template in<LinearRecurrence>().data;
            const std::size_t n = s.n, steps = s.steps;
            bool add = false;
            T* dm = ctx.template grad<M>(add);
            if (!add) std::fill(dm, dm + m.size(), T(0));
            for (std::size_t bi = 0; bi < s.batch; ++bi) {
                const T* yb = y + bi * steps * n;
                const T* lb = lam + bi * steps * n;
                switch (s.kind) {
                    case map_kind::per_step: {
                        T* d = dm + bi * steps * n;
                        for (std::size_t t = 1; t < steps; ++t)
                            for (std::size_t j = 0; j < n; ++j) d[t * n + j] += lb[t * n + j] * yb[(t - 1) * n + j];
                        break;
                    }
                    case map_kind::shared: {
                        T* d = dm + bi * n;
                        for (std::size_t t = 1; t < steps; ++t)
                            for (std::size_t j = 0; j < n; ++j) d[j] += lb[t * n + j] * yb[(t - 1) * n + j];
                        break;
                    }
                    case map_kind::scalar: {
                        // four accumulators: a single one would wait on the add latency every element
                        T acc[4] = {0, 0, 0, 0};
                        const std::size_t len = steps * n;
                        std::size_t i = n;
                        for (; i + 4 <= len; i += 4)
                            for (std::size_t k = 0; k < 4; ++k) acc[k] += lb[i + k] * yb[i + k - n];
                        for (; i < len; ++i) acc[0] += lb[i] * yb[i - n];
                        dm[0] += (acc[0] + acc[1]) + (acc[2] + acc[3]);
                        break;
                    }
                    case map_kind::dense: {
                        T* d = dm + bi * steps * n * n;
                        for (std::size_t t = 1; t < steps; ++t)
                            for (std::size_t r = 0; r < n; ++r)
                                for (std::size_t c = 0; c < n; ++c)
                                    d[(t * n + r) * n + c] += lb[t * n + r] * yb[(t - 1) * n + c];
                        break;
                    }
                }
            }
        }
    }
};

/// y_t = M_t y_{t−1} + b_t for t = 0..T−1, with y_{−1} = 0 (an initial state y0 enters as
/// b_0 + M_0 y0). The offsets b are [T], [T, n] or [B, T, n] (B independent sequences); y has b's
/// shape. The maps M are diagonal — b's shape (one per step), b's shape without the time axis ([n],
/// [B, n]: the same map at every step) or a single value (every step and channel) — or dense,
/// [T, n, n] / [B, T, n, n]. Gradients flow to both: ∂L/∂b_t = λ_t with λ_t = ∂L/∂y_t + M_{t+1}ᵀ λ_{t+1},
/// ∂L/∂M_t = λ_t y_{t−1}ᵀ (summed over the steps a shared map stands for).
/// Long sequences are split over the library's threads (see scan_options in ops/scan.hpp: results
/// then differ from the sequential loop by rounding; one thread gives the plain loop exactly).
/// NaN/Inf propagate as in the loop. Shape disagreements throw std::invalid_argument naming both.
/// Example, an AR(1) process h_t = φ h_{t−1} + e_t:
///     auto h = tensors::linear_recurrence(tensor<0>, tensor<1>);   // called with φ (a scalar) and e [T]
template <tensors::TensorExpr M, tensors::TensorExpr B>
constexpr LinearRecurrence<M, B> linear_recurrence(M, B) {
    return {};
}

}  // namespace exprgrad::ops
