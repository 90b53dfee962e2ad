// A read-only view of a caller's array for the attention kernels: a pointer and a shape, so that a caller whose
// arrays are not xt::xtensor (a compiled tensor program's buffers, a raw buffer) passes them without a copy.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <array>
#include <cstddef>

#include <xtensor/xtensor.hpp>

namespace exprgrad::ops {

/// Where the rows of a [B, H, T, d] array start: row (b, h, t) at element b·b_step + h·h_step + t·t_step, its d
/// entries contiguous. Heads split out of a [B, T, 3·H·d] projection without a copy are rows with b_step = 3·T·H·d,
/// h_step = d, t_step = 3·H·d. Example: `attention_rows::row_major(H, T, d)` is {H·T·d, T·d, d}.
struct attention_rows {
    std::size_t b_step = 0, h_step = 0, t_step = 0;

    /// The rows of a contiguous row-major [B, H, T, d] array.
    static attention_rows row_major(std::size_t H, std::size_t T, std::size_t d) { return {H * T * d, T * d, d}; }
    /// The offset of row t of the head bh = b·H + h.
    std::size_t at(std::size_t bh, std::size_t H, std::size_t t) const {
        return (bh / H) * b_step + (bh % H) * h_step + t * t_step;
    }
    bool operator==(const attention_rows&) const = default;
};

/// A non-owning, read-only view of an array with N axes: by default contiguous row-major, element (i0, …, iN−1)
/// at ptr[((i0·shape[1] + i1)·shape[2] + …)]. A 4-axis view may instead give its rows' strides (the member
/// `strides`, an attention_rows; the last axis stays contiguous): the attention kernels read such q, k, v, out
/// and dout in place (flex attention refuses them).
/// The viewed memory must stay alive and unchanged while a kernel reads it. Nothing is checked here (the kernels
/// check the shapes against each other); a null ptr is allowed only with a zero extent.
/// Example: `attention_view<float, 4> q{buf.data(), {B, H, T, d}};` or `view_of(xtensor_q)`; the q heads of a
/// [B, T, 3·H·d] projection: `attention_view<float, 4> q{qkv.data(), {B, H, T, d}, {3 * T * H * d, d, 3 * H * d}};`
template <class T, std::size_t N>
struct attention_view {
    const T* ptr = nullptr;
    std::array<std::size_t, N> dims{};
    /// Strides of a 4-axis view's rows; all zero (the default) means row-major.
    attention_rows strides{};

    const T* data() const { return ptr; }
    const std::array<std::size_t, N>& shape() const { return dims; }
    std::size_t size() const {
        std::size_t n = 1;
        for (std::size_t e : dims) n *= e;
        return n;
    }
    /// The rows' strides (4 axes): the given ones, or the row-major ones of the shape.
    attention_rows rows() const
        requires(N == 4)
    {
        return strides == attention_rows{} ? attention_rows::row_major(dims[1], dims[2], dims[3]) : strides;
    }
    /// Whether the rows are those of a contiguous row-major array.
    bool contiguous() const
        requires(N == 4)
    {
        return rows() == attention_rows::row_major(dims[1], dims[2], dims[3]);
    }
    /// The first entry of row t of head bh = b·H + h (4 axes).
    const T* row(std::size_t bh, std::size_t t) const
        requires(N == 4)
    {
        return ptr + rows().at(bh, dims[1], t);
    }
};

/// The view of an xt::xtensor (row-major, as xt::xtensor is by default). Example: `auto q_v = view_of(q);`
template <class T, std::size_t N>
attention_view<T, N> view_of(const xt::xtensor<T, N>& a) {
    attention_view<T, N> r{a.data(), {}};
    for (std::size_t i = 0; i < N; ++i) r.dims[i] = a.shape()[i];
    return r;
}

}  // namespace exprgrad::ops
