// Strided walks over a shape: the element offsets of several operands at every position of an
// iteration shape, in row-major order. The layout primitives (permute, where, the comparisons,
// batched matmul's batch axes) read their operands through it instead of materializing copies.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <array>
#include <cstddef>
#include <string>

#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::tensors::detail {

/// Per-axis element strides of one operand along an iteration shape.
using strides = std::array<std::size_t, dims::max_rank>;

/// The row-major strides of a contiguous tensor of shape s.
inline strides row_major_strides(const dims& s) {
    strides st{};
    std::size_t k = 1;
    for (int i = s.rank - 1; i >= 0; --i) {
        st[static_cast<std::size_t>(i)] = k;
        k *= s[i];
    }
    return st;
}

/// The strides with which an operand of shape s is read at the positions of the broadcast shape out
/// (s right-aligned to out, NumPy rules): 0 along the axes where s has extent 1 or no axis. The
/// caller has checked that s broadcasts to out.
inline strides broadcast_strides(const dims& s, const dims& out) {
    const strides own = row_major_strides(s);
    strides st{};
    for (int j = 0; j < out.rank; ++j) {
        const int js = s.rank - out.rank + j;
        st[static_cast<std::size_t>(j)] = (js < 0 || s[js] == 1) ? 0 : own[static_cast<std::size_t>(js)];
    }
    return st;
}

/// Calls f(flat, off) for every position of `shape` in row-major order, where flat is the position's
/// row-major index and off[k] = Σ_j index_j · st[k][j] is operand k's element offset there.
/// Example: walking (2, 3) with strides {{3, 1}, {1, 2}} visits a transpose's offsets.
template <std::size_t K, class F>
void strided_walk(const dims& shape, const std::array<strides, K>& st, F&& f) {
    const std::size_t n = shape.size();
    if (n == 0) return;
    std::array<std::size_t, K> off{};
    if (shape.rank == 0) {
        f(std::size_t{0}, off);
        return;
    }
    // The last axis as a tight inner loop (the odometer carries only between runs): layout primitives
    // move runs of the last axis, e.g. the heads' [.., T, d] rows of a permute.
    const auto last = static_cast<std::size_t>(shape.rank - 1);
    const std::size_t inner = shape[shape.rank - 1];
    std::array<std::size_t, K> step{};
    for (std::size_t k = 0; k < K; ++k) step[k] = st[k][last];
    std::array<std::size_t, dims::max_rank> idx{};
    for (std::size_t flat = 0; flat < n; flat += inner) {
        std::array<std::size_t, K> o = off;
        for (std::size_t i = 0; i < inner; ++i) {
            f(flat + i, o);
            for (std::size_t k = 0; k < K; ++k) o[k] += step[k];
        }
        // odometer step over the axes before the last, carrying into earlier ones
        for (int j = shape.rank - 2; j >= 0; --j) {
            const auto u = static_cast<std::size_t>(j);
            if (++idx[u] < shape[j]) {
                for (std::size_t k = 0; k < K; ++k) off[k] += st[k][u];
                break;
            }
            for (std::size_t k = 0; k < K; ++k) off[k] -= (shape[j] - 1) * st[k][u];
            idx[u] = 0;
        }
    }
}

/// Throws naming the op when an operand holds no floating-point values (an integer array argument,
/// whose values a layout primitive cannot read as T).
template <class T>
void require_values(const char* op, const char* which, const T* data, const dims& shape) {
    if (data == nullptr && shape.size() != 0) {
        throw shape_error(op, std::string("the ") + which + " operand of shape " + shape.str() +
                                  " must be a floating-point array (an integer array was passed)");
    }
}

}  // namespace exprgrad::tensors::detail
