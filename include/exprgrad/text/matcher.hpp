// Finding every vocabulary piece that starts at a text position: a double-array trie (Aoe, 1989).
// Standard headers only; construction is compiled (src/text/matcher.cpp), the search is inline.
//
// Why a double array: a search step is one add and one compare on a 12-byte cell, and all cells are in one
// array, so the walk from a position touches about one cache line per byte. An Aho–Corasick automaton finds
// the same matches with one transition per text byte, but the lattice algorithms need the matches grouped
// by start (or end) position anyway, and a per-position trie walk delivers exactly that; for an
// 8000-piece English vocabulary the walk stops after about 3 bytes on average (docs/tokenizer.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace exprgrad::text {

/// A static set of byte-string keys, each with a non-negative int32 value, that finds all keys which are
/// prefixes of a given byte range. Keys must be non-empty and distinct.
///
/// Example:
///     prefix_matcher m({{"a", 0}, {"ab", 1}});
///     m.for_each_prefix(p, n, [](std::size_t len, std::int32_t v) { ... });   // (1, 0) then (2, 1) for "abc"
class prefix_matcher {
  public:
    prefix_matcher() = default;
    /// Builds the trie. Throws std::invalid_argument for an empty key, a duplicate key or a negative value.
    explicit prefix_matcher(std::vector<std::pair<std::string, std::int32_t>> keys);

    /// Calls f(length, value) for every key equal to bytes [p, p + length) with length ≤ n, shortest first.
    /// f may return void, or bool where false stops the search.
    template <class F>
    void for_each_prefix(const unsigned char* p, std::size_t n, F&& f) const {
        if (cells_.empty()) return;
        const cell* cells = cells_.data();
        std::uint32_t s = 0;
        for (std::size_t i = 0; i < n; ++i) {
            // Every base is at most size - 257, so t is in range without a bounds check.
            const std::uint32_t t = cells[s].base + p[i];
            if (cells[t].check != static_cast<std::int32_t>(s)) return;
            s = t;
            if (cells[s].value >= 0) {
                if constexpr (std::is_same_v<decltype(f(i + 1, cells[s].value)), bool>) {
                    if (!f(i + 1, cells[s].value)) return;
                } else {
                    f(i + 1, cells[s].value);
                }
            }
        }
    }

    /// The value of the key equal to [p, p + n), or -1.
    std::int32_t find(const unsigned char* p, std::size_t n) const {
        if (cells_.empty()) return -1;
        std::uint32_t s = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint32_t t = cells_[s].base + p[i];
            if (cells_[t].check != static_cast<std::int32_t>(s)) return -1;
            s = t;
        }
        return cells_[s].value;
    }

    /// The number of keys, and the length of the longest one.
    std::size_t size() const noexcept { return size_; }
    std::size_t max_key_length() const noexcept { return max_length_; }
    /// Memory held by the cells, in bytes.
    std::size_t memory_bytes() const noexcept { return cells_.size() * sizeof(cell); }

  private:
    struct cell {
        std::uint32_t base = 0;   // children of this cell are at base + byte
        std::int32_t check = -1;  // the parent cell, or -1 if the cell is free
        std::int32_t value = -1;  // the value of the key ending here, or -1
    };
    std::vector<cell> cells_;
    std::size_t size_ = 0;
    std::size_t max_length_ = 0;
};

}  // namespace exprgrad::text
