// Construction of the double-array trie (include/exprgrad/text/matcher.hpp).
//
// Keys are sorted; each trie node is a range of keys sharing a prefix. A node's children must occupy the
// cells base + label for all their labels, so for each node we search the lowest base whose cells are all
// free. Free cells are kept in an ascending doubly linked list, so the search skips occupied regions.
#include <algorithm>
#include <exprgrad/text/matcher.hpp>
#include <stdexcept>
#include <string>

namespace exprgrad::text {

namespace {

class free_list {
  public:
    // Cell i is free iff linked; index `cap` is the sentinel.
    explicit free_list(std::size_t capacity) { grow(capacity); }

    std::size_t capacity() const noexcept { return next_.size() - 1; }

    void grow(std::size_t new_capacity) {
        const std::size_t old = next_.empty() ? 0 : capacity();
        if (new_capacity <= old) return;
        // Rebuild the sentinel at the new end, keeping the existing free cells and appending the new ones.
        std::vector<std::size_t> free_cells;
        if (!next_.empty()) {
            for (std::size_t i = next_[old]; i != old; i = next_[i]) free_cells.push_back(i);
        }
        for (std::size_t i = old; i < new_capacity; ++i) free_cells.push_back(i);
        next_.assign(new_capacity + 1, 0);
        prev_.assign(new_capacity + 1, 0);
        std::size_t last = new_capacity;
        for (const std::size_t i : free_cells) {
            next_[last] = i;
            prev_[i] = last;
            last = i;
        }
        next_[last] = new_capacity;
        prev_[new_capacity] = last;
        free_.assign(new_capacity, 0);
        for (const std::size_t i : free_cells) free_[i] = 1;
    }

    bool is_free(std::size_t i) const noexcept { return i < free_.size() && free_[i]; }
    std::size_t first() const noexcept { return next_[capacity()]; }
    std::size_t next(std::size_t i) const noexcept { return next_[i]; }
    bool at_end(std::size_t i) const noexcept { return i == capacity(); }

    void take(std::size_t i) {
        next_[prev_[i]] = next_[i];
        prev_[next_[i]] = prev_[i];
        free_[i] = 0;
    }

  private:
    std::vector<std::size_t> next_, prev_;
    std::vector<unsigned char> free_;
};

struct work_item {
    std::uint32_t cell;
    std::size_t lo, hi, depth;
};

}  // namespace

prefix_matcher::prefix_matcher(std::vector<std::pair<std::string, std::int32_t>> keys) {
    std::sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t i = 0; i < keys.size(); ++i) {
        if (keys[i].first.empty()) throw std::invalid_argument("prefix_matcher: empty key");
        if (keys[i].second < 0) throw std::invalid_argument("prefix_matcher: negative value");
        if (i > 0 && keys[i].first == keys[i - 1].first) throw std::invalid_argument("prefix_matcher: duplicate key");
        max_length_ = std::max(max_length_, keys[i].first.size());
    }
    size_ = keys.size();

    free_list free_slots(1024);
    cells_.assign(free_slots.capacity(), cell{});
    auto ensure = [&](std::size_t n) {
        if (n <= free_slots.capacity()) return;
        const std::size_t cap = std::max(n, 2 * free_slots.capacity());
        free_slots.grow(cap);
        cells_.resize(cap, cell{});
    };
    free_slots.take(0);
    cells_[0].check = -2;  // the root: never free, never anyone's child
    std::uint32_t max_base = 0;

    std::vector<work_item> stack{{0, 0, keys.size(), 0}};
    std::vector<unsigned char> labels;
    std::vector<std::size_t> bounds;
    while (!stack.empty()) {
        const work_item w = stack.back();
        stack.pop_back();
        std::size_t lo = w.lo;
        if (lo < w.hi && keys[lo].first.size() == w.depth) {
            cells_[w.cell].value = keys[lo].second;
            ++lo;
        }
        if (lo == w.hi) continue;
        labels.clear();
        bounds.clear();
        for (std::size_t i = lo; i < w.hi; ++i) {
            const auto c = static_cast<unsigned char>(keys[i].first[w.depth]);
            if (labels.empty() || labels.back() != c) {
                labels.push_back(c);
                bounds.push_back(i);
            }
        }
        bounds.push_back(w.hi);
        // The lowest base b ≥ 0 with every b + label free.
        std::size_t base = 0;
        for (std::size_t p = free_slots.first();; p = free_slots.next(p)) {
            if (free_slots.at_end(p)) {
                // No fit among the current cells: place the children past the end.
                base = free_slots.capacity();
                ensure(base + 256);
                break;
            }
            if (p < labels.front()) continue;
            const std::size_t b = p - labels.front();
            ensure(b + 256);
            bool fits = true;
            for (const unsigned char c : labels) {
                if (!free_slots.is_free(b + c)) {
                    fits = false;
                    break;
                }
            }
            if (fits) {
                base = b;
                break;
            }
        }
        if (base > 0x7FFFFF00u) throw std::length_error("prefix_matcher: trie too large");
        cells_[w.cell].base = static_cast<std::uint32_t>(base);
        max_base = std::max(max_base, static_cast<std::uint32_t>(base));
        for (std::size_t k = 0; k < labels.size(); ++k) {
            const std::size_t t = base + labels[k];
            free_slots.take(t);
            cells_[t].check = static_cast<std::int32_t>(w.cell);
            stack.push_back(work_item{static_cast<std::uint32_t>(t), bounds[k], bounds[k + 1], w.depth + 1});
        }
    }
    // Every base + byte must index a cell, so the search needs no bounds check.
    cells_.resize(std::max<std::size_t>(max_base + 257, 257), cell{});
    cells_.shrink_to_fit();
}

}  // namespace exprgrad::text
