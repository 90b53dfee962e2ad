// A synthetic ListOps generator (after Nangia & Bowman 2018 and the Long Range Arena task), written for
// this example. The grammar, with whitespace-separated tokens:
//
//   list  := "[" op arg arg ... "]"        2 .. max_args arguments
//   arg   := digit | list
//   op    := "MAX" | "MIN" | "MED" | "SM"  (one token with its bracket: "[MAX", "[MIN", "[MED", "[SM")
//   digit := "0" | ... | "9"
//
// Values: MAX and MIN of the arguments; MED the median, rounded down when the count is even
// (⌊(a + b)/2⌋ of the two middle values); SM the sum modulo 10. The label is the value of the whole
// expression, 10 classes. Example: "[MAX 2 9 [MIN 4 7 ] 0 ]" has value 9.
//
// Sampling: the root is a list; every argument at nesting depth < max_depth is a list with probability
// p_list, otherwise a digit (at max_depth always a digit); the argument count and the operator are
// uniform. Expressions whose token count falls outside [min_len, max_len] are rejected, and so is any
// expression already drawn, so the training, validation and test splits never share an expression.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include <exprgrad/random.hpp>

namespace listops {

// Token ids. <mask> is id 0 as in the paper's code; <pad> fills a batch up to its longest sequence.
enum token : std::uint8_t {
    mask_id = 0,
    pad_id = 1,
    digit0 = 2,  // digits are 2..11
    op_max = 12,
    op_min = 13,
    op_med = 14,
    op_sm = 15,
    close = 16,
};
inline constexpr std::size_t vocab_size = 17;
inline constexpr std::size_t num_classes = 10;

inline std::string token_text(std::uint8_t t) {
    static const char* const ops[] = {"[MAX", "[MIN", "[MED", "[SM", "]"};
    if (t == mask_id) return "<mask>";
    if (t == pad_id) return "<pad>";
    if (t < op_max) return std::string(1, static_cast<char>('0' + (t - digit0)));
    return ops[t - op_max];
}

struct example {
    std::vector<std::uint8_t> tokens;
    int label = 0;
    int depth = 0;  // nesting depth of lists (1 for a flat list)
};

struct options {
    std::size_t min_len = 16, max_len = 256;
    int max_depth = 8;
    int max_args = 5;
    double p_list = 0.3;
};

namespace detail {
// Appends an expression's tokens to `out` and returns its value (-1 once `out` exceeds `limit`, which
// abandons the draw early).
inline int draw(exprgrad::rng& g, const options& o, int depth, bool list, std::size_t limit,
                std::vector<std::uint8_t>& out, int& deepest) {
    if (out.size() > limit) return -1;
    if (!list) {
        const int v = static_cast<int>(g.below(10));
        out.push_back(static_cast<std::uint8_t>(digit0 + v));
        return v;
    }
    deepest = std::max(deepest, depth);
    const int op = static_cast<int>(g.below(4));
    const int n = 2 + static_cast<int>(g.below(static_cast<std::uint64_t>(o.max_args - 1)));
    out.push_back(static_cast<std::uint8_t>(op_max + op));
    int vals[16];
    for (int i = 0; i < n; ++i) {
        const bool sub = depth < o.max_depth && g.uniform() < o.p_list;
        vals[i] = draw(g, o, depth + 1, sub, limit, out, deepest);
        if (vals[i] < 0) return -1;
    }
    out.push_back(close);
    switch (op_max + op) {
        case op_max:
            return *std::max_element(vals, vals + n);
        case op_min:
            return *std::min_element(vals, vals + n);
        case op_med: {
            std::sort(vals, vals + n);
            return n % 2 ? vals[n / 2] : (vals[n / 2 - 1] + vals[n / 2]) / 2;
        }
        default: {
            int s = 0;
            for (int i = 0; i < n; ++i) s += vals[i];
            return s % 10;
        }
    }
}
}  // namespace detail

/// Draws `count` distinct expressions not already in `seen` (which they are added to).
inline std::vector<example> generate(exprgrad::rng& g, const options& o, std::size_t count,
                                     std::unordered_set<std::string>& seen) {
    if (o.min_len < 3 || o.min_len > o.max_len || o.max_args < 2 || o.max_args > 16 || o.max_depth < 1 ||
        !(o.p_list >= 0 && o.p_list <= 1))
        throw std::invalid_argument(
            "listops::generate: need 3 <= min_len <= max_len, 2 <= max_args <= 16, "
            "max_depth >= 1, p_list in [0, 1]");
    std::vector<example> out;
    out.reserve(count);
    std::size_t tries = 0;
    while (out.size() < count) {
        if (++tries > 1000 * (count + 100))
            throw std::runtime_error("listops::generate: too few distinct expressions with these options");
        example e;
        e.label = detail::draw(g, o, 1, true, o.max_len, e.tokens, e.depth);
        if (e.label < 0 || e.tokens.size() < o.min_len || e.tokens.size() > o.max_len) continue;
        if (!seen.insert(std::string(e.tokens.begin(), e.tokens.end())).second) continue;
        out.push_back(std::move(e));
    }
    return out;
}

/// The expression as text, e.g. "[MAX 2 9 [MIN 4 7 ] 0 ]".
inline std::string to_text(const std::vector<std::uint8_t>& tokens) {
    std::string s;
    for (std::size_t i = 0; i < tokens.size(); ++i) s += (i ? " " : "") + token_text(tokens[i]);
    return s;
}

}  // namespace listops
