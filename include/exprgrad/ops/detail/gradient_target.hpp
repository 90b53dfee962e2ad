// Where a fused node's kernel writes a child's gradient: straight into the child's adjoint buffer when the node is
// the child's first contribution (no copy), else into the node's scratch, added to the adjoint afterwards. The
// attention and flex attention nodes use it for dq, dk, dv, so that their kernels never copy the program's buffers.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstddef>
#include <type_traits>
#include <vector>

namespace exprgrad::ops::detail {

/// What the kernel writes (`kernel`) and, when that is scratch, the adjoint to add it to afterwards (`add_to`,
/// null otherwise: the kernel wrote the adjoint itself, or the child needs no gradient).
template <class T>
struct gradient_target {
    T* kernel;
    T* add_to;

    /// Adds the scratch into the adjoint (when the kernel did not write the adjoint itself); n entries.
    void finish(std::size_t n) const {
        if (add_to)
            for (std::size_t i = 0; i < n; ++i) add_to[i] += kernel[i];
    }
};

/// The target of child C's gradient of n entries in the program context `ctx`. A child read twice by the node
/// (q = k in self-attention) gets its buffer for the first, scratch for the second (grad reports it as set).
/// A child that needs no gradient gets scratch, discarded. Example:
/// `const auto tq = place_gradient<Q>(ctx, scratch_q, q.size()); kernel(tq.kernel); tq.finish(q.size());`
template <class C, class Ctx, class T>
gradient_target<T> place_gradient(Ctx& ctx, std::vector<T>& scratch, std::size_t n) {
    if constexpr (Ctx::template needs<C>) {
        bool add = false;
        T* dst = ctx.template grad<C>(add);
        if (!add) return {dst, nullptr};
        scratch.resize(n);
        return {scratch.data(), dst};
    } else {
        scratch.resize(n);
        return {scratch.data(), nullptr};
    }
}

}  // namespace exprgrad::ops::detail
