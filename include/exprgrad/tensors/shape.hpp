// Shapes of run-time tensors: a fixed-capacity dimension list (no allocation), NumPy broadcasting,
// and the error messages that name the op and the offending shapes.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/format.hpp"

namespace exprgrad::tensors {

/// The dimensions of a tensor, row-major, rank 0 to 6.
struct dims {
    static constexpr int max_rank = 6;
    std::array<std::size_t, max_rank> d{};
    int rank = 0;

    dims() = default;
    dims(std::initializer_list<std::size_t> l) {
        if (l.size() > max_rank) throw std::invalid_argument("exprgrad: tensors have at most 6 dimensions");
        for (std::size_t v : l) d[static_cast<std::size_t>(rank++)] = v;
    }
    template <class Shape>
    static dims of(const Shape& s) {
        dims r;
        if (s.size() > max_rank) throw std::invalid_argument("exprgrad: tensors have at most 6 dimensions");
        for (std::size_t v : s) r.d[static_cast<std::size_t>(r.rank++)] = v;
        return r;
    }
    std::size_t size() const {
        std::size_t n = 1;
        for (int i = 0; i < rank; ++i) n *= d[static_cast<std::size_t>(i)];
        return n;
    }
    std::size_t operator[](int i) const { return d[static_cast<std::size_t>(i)]; }
    std::size_t& operator[](int i) { return d[static_cast<std::size_t>(i)]; }
    /// Dimension counted from the end for negative i (-1 is the last).
    std::size_t at(int i) const { return d[static_cast<std::size_t>(i < 0 ? rank + i : i)]; }
    void push(std::size_t v) { d[static_cast<std::size_t>(rank++)] = v; }
    friend bool operator==(const dims& a, const dims& b) {
        if (a.rank != b.rank) return false;
        for (int i = 0; i < a.rank; ++i)
            if (a[i] != b[i]) return false;
        return true;
    }
    /// The shape as every message shows it (exprgrad::format_shape): "(2, 3)", "(3,)", "()".
    std::string str() const {
        return format_shape(std::span<const std::size_t>(d.data(), static_cast<std::size_t>(rank)));
    }
    /// The xtensor shape (small-vector, no allocation up to rank 4).
    xt::svector<std::size_t, 4> xshape() const {
        xt::svector<std::size_t, 4> s(static_cast<std::size_t>(rank));
        for (int i = 0; i < rank; ++i) s[static_cast<std::size_t>(i)] = d[static_cast<std::size_t>(i)];
        return s;
    }
};

/// The one error of a bad argument to an op (tensors, ops, their nodes): returns, does not throw, the
/// std::invalid_argument "exprgrad::<op>: <what>", so a call site reads `throw tensors::shape_error(op, msg)`
/// and the compiler sees the throw. Build `what` with dims::str() / format_shape for shapes and
/// format_number for numbers. Example: `throw shape_error("matmul", "shapes " + a.str() + " and " + b.str() +
/// " do not multiply")` → "exprgrad::matmul: shapes (3, 4) and (5, 2) do not multiply".
inline std::invalid_argument shape_error(const char* op, const std::string& what) {
    return std::invalid_argument(std::string("exprgrad::") + op + ": " + what);
}

/// The NumPy broadcast of two shapes; throws naming the op and both shapes when incompatible.
inline dims broadcast(const char* op, const dims& a, const dims& b) {
    dims r;
    r.rank = std::max(a.rank, b.rank);
    for (int i = 0; i < r.rank; ++i) {
        const int ia = a.rank - r.rank + i, ib = b.rank - r.rank + i;
        const std::size_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            throw shape_error(op, "shapes " + a.str() + " and " + b.str() + " do not broadcast");
        }
        r[i] = da == 1 ? db : da;
    }
    return r;
}

/// Resizes a buffer to `s` (reallocating only when the element count grows or the rank changes).
template <class T>
void fit(xt::xarray<T>& buf, const dims& s) {
    bool same = static_cast<int>(buf.dimension()) == s.rank;
    for (int i = 0; same && i < s.rank; ++i) same = buf.shape()[static_cast<std::size_t>(i)] == s[i];
    if (!same) buf.resize(s.xshape());
}

/// A per-thread scratch vector of at least n elements, reused across calls (no steady-state
/// allocation once it has grown).
template <class T>
std::vector<T>& scratch(std::size_t n) {
    thread_local std::vector<T> v;
    if (v.size() < n) v.resize(n);
    return v;
}

/// Normalizes an axis that may count from the end; throws naming the op for an out-of-range axis.
inline int normalize_axis(const char* op, int axis, int rank) {
    const int a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank) {
        throw shape_error(
            op, "axis " + format_number(axis) + " is out of range for a tensor of rank " + format_number(rank));
    }
    return a;
}

}  // namespace exprgrad::tensors
