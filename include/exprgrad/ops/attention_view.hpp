// A read-only view of a caller's array for the attention kernels: a pointer and a shape, so that a caller whose
// arrays are not xt::xtensor (a compiled tensor program's buffers, a raw buffer) passes them without a copy.
#pragma once

#include <array>
#include <cstddef>

#include <xtensor/xtensor.hpp>

namespace exprgrad::ops {

/// A non-owning, read-only view of a contiguous row-major array with N axes: element (i0, …, iN−1) is
/// ptr[((i0·shape[1] + i1)·shape[2] + …)]. The viewed memory must stay alive and unchanged while a kernel reads it.
/// Nothing is checked here (the kernels check the shapes against each other); a null ptr is allowed only with
/// a zero extent. Example: `attention_view<float, 4> q{buf.data(), {B, H, T, d}};` or `view_of(xtensor_q)`.
template <class T, std::size_t N>
struct attention_view {
    const T* ptr = nullptr;
    std::array<std::size_t, N> dims{};

    const T* data() const { return ptr; }
    const std::array<std::size_t, N>& shape() const { return dims; }
    std::size_t size() const {
        std::size_t n = 1;
        for (std::size_t e : dims) n *= e;
        return n;
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
