// Integer index arrays as operands of take_along_axis and one_hot: an integer array argument (read
// as int64, as the program converts it) or any tensor expression whose values are integers (read
// as T and checked). Out-of-range and non-integer indices throw naming the op and the position.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/tensors/shape.hpp"

namespace exprgrad::tensors::detail {

/// Reads the indices of operand N, each checked to lie in [0, bound).
template <class T>
struct index_reader {
    const std::int64_t* ints = nullptr;
    const T* values = nullptr;
    const char* op = "";
    std::size_t bound = 0;
    int axis = 0;        // for the message: "along axis A of extent n"
    bool depth = false;  // for the message: "for depth n" instead (one_hot)

    /// The index at flat position i; throws "exprgrad::<op>: index v at position i is out of range
    /// [0, bound) <where>" or "... must be an integer".
    std::size_t operator()(std::size_t i) const {
        std::int64_t v = 0;
        if (ints != nullptr) {
            v = ints[i];
        } else {
            const T x = values[i];
            if (!(std::abs(x) < T(1e15)) || x != std::floor(x)) {
                throw shape_error(
                    op, "index " + std::to_string(x) + " at position " + std::to_string(i) + " must be an integer");
            }
            v = static_cast<std::int64_t>(x);
        }
        if (v < 0 || static_cast<std::size_t>(v) >= bound) {
            throw shape_error(
                op, "index " + std::to_string(v) + " at position " + std::to_string(i) + " is out of range [0, " +
                        std::to_string(bound) + ") " +
                        (depth ? "for depth " + std::to_string(bound)
                               : "along axis " + std::to_string(axis) + " of extent " + std::to_string(bound)));
        }
        return static_cast<std::size_t>(v);
    }
};

/// The reader of operand N's indices for op, each in [0, bound); its error message names `axis`,
/// or the depth when `depth` is set. Nothing is allocated unless an index is bad.
template <class N, class Ctx>
index_reader<typename Ctx::value_type> read_indices(const Ctx& ctx, const char* op, std::size_t bound, int axis,
                                                    bool depth) {
    index_reader<typename Ctx::value_type> r;
    r.values = ctx.template in<N>().data;
    if constexpr (is_input<N>::value) {
        if (r.values == nullptr) r.ints = ctx.template ints<N>();
    }
    r.op = op;
    r.bound = bound;
    r.axis = axis;
    r.depth = depth;
    return r;
}

}  // namespace exprgrad::tensors::detail
