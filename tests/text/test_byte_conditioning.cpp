// Exact byte-level conditioning (text/byte_conditioning.hpp) against brute-force enumeration: a toy
// vocabulary and a fixed bigram table over its pieces; every piece sequence of a fixed length is enumerated,
// its probability multiplied out from the table, and the next-byte distribution given "the text starts with
// the prompt" summed directly. No lattice, trie or covering-path logic is shared with the library.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <exprgrad/text/byte_conditioning.hpp>
#include <functional>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

using exprgrad::rng;
using exprgrad::text::covering_path;
using exprgrad::text::end_of_text_outcome;
using exprgrad::text::eos_id;
using exprgrad::text::next_byte_outcomes;
using exprgrad::text::next_piece_log_probs;
using exprgrad::text::piece_id;
using exprgrad::text::piece_kind;
using exprgrad::text::prefix_conditioner;
using exprgrad::text::prefix_conditioning_options;
using exprgrad::text::prefix_generation_options;
using exprgrad::text::unigram_model;
using exprgrad::text::vocabulary;

namespace {

constexpr double ninf = -std::numeric_limits<double>::infinity();
constexpr std::size_t all_pieces = static_cast<std::size_t>(-1);

// Pieces a, b, ab, ba, abb, bab, c (normal); 'z' has no normal piece, so the model adds a byte-fallback
// piece for it (and for every other byte value, which the bigram table gives probability 0).
unigram_model toy() {
    vocabulary v = vocabulary::with_specials();
    for (const char* p : {"a", "b", "ab", "ba", "abb", "bab", "c"}) v.add(p, -1.0);
    return unigram_model(std::move(v));
}

// A bigram model: row "start" for the empty context, else the row of the last piece. Live pieces (the
// normal ones, z's byte piece and optionally <eos>) get random log-weights shifted by a constant (the
// callback is deliberately unnormalized); all other pieces −∞, except the control pieces, which get large
// finite values that the conditioner must ignore unless one is the end piece.
struct Bigram {
    const unigram_model* m;
    std::vector<piece_id> live;
    std::map<piece_id, std::vector<double>> rows;  // key −1: start
    bool with_end = false;

    Bigram(const unigram_model& model, std::uint64_t seed, bool end) : m(&model), with_end(end) {
        const vocabulary& v = model.vocab();
        for (std::size_t i = 0; i < v.size(); ++i) {
            const auto id = static_cast<piece_id>(i);
            if (v[id].kind == piece_kind::normal || (v[id].kind == piece_kind::byte && v[id].text == "z")) {
                live.push_back(id);
            }
        }
        if (end) live.push_back(eos_id);
        rng g(seed);
        std::vector<piece_id> keys = live;
        keys.push_back(-1);
        for (const piece_id k : keys) {
            std::vector<double> row(v.size(), ninf);
            for (const piece_id y : live) row[static_cast<std::size_t>(y)] = 3.0 * g.uniform() - 1.5 + 7.0;
            for (piece_id c = 0; c < 4; ++c)
                if (!(end && c == eos_id)) row[static_cast<std::size_t>(c)] = 50.0;
            rows[k] = row;
        }
    }
    std::vector<double> operator()(std::span<const piece_id> ctx) const {
        return rows.at(ctx.empty() ? -1 : ctx.back());
    }
    // q(y | previous), normalized over the live pieces only (the brute force's own normalization).
    double q(piece_id prev, piece_id y) const {
        const auto& row = rows.at(prev);
        double z = 0;
        for (const piece_id u : live) z += std::exp(row[static_cast<std::size_t>(u)]);
        return std::exp(row[static_cast<std::size_t>(y)]) / z;
    }
};

// Brute force: every sequence of live pieces of exactly `len` pieces after `head` (shorter if it ends with
// <eos>); the text is decode(head + sequence). Returns P(next outcome | text starts with prompt) and, through
// `prefix_mass`, Σ P(sequence) over sequences whose text starts with the prompt.
std::vector<double> brute_next_byte(const Bigram& lm, const std::vector<piece_id>& head, const std::string& prompt,
                                    std::size_t len, double* prefix_mass = nullptr) {
    const vocabulary& v = lm.m->vocab();
    std::string head_text;
    for (const piece_id id : head) head_text += v[id].text;
    std::vector<double> mass(next_byte_outcomes, 0.0);
    double total = 0;
    std::function<void(piece_id, std::string&, double, std::size_t)> rec = [&](piece_id prev, std::string& text,
                                                                               double p, std::size_t depth) {
        if (depth == len) {
            if (text.size() > prompt.size() && text.compare(0, prompt.size(), prompt) == 0) {
                mass[static_cast<unsigned char>(text[prompt.size()])] += p;
                total += p;
            }
            return;
        }
        for (const piece_id y : lm.live) {
            const double py = p * lm.q(prev, y);
            if (y == eos_id) {
                if (text.size() >= prompt.size() && text.compare(0, prompt.size(), prompt) == 0) {
                    if (text.size() == prompt.size()) {
                        mass[end_of_text_outcome] += py;
                    } else {
                        mass[static_cast<unsigned char>(text[prompt.size()])] += py;
                    }
                    total += py;
                }
                continue;
            }
            const std::size_t old = text.size();
            text += v[y].text;
            rec(y, text, py, depth + 1);
            text.resize(old);
        }
    };
    std::string text = head_text;
    rec(head.empty() ? -1 : head.back(), text, 1.0, 0);
    if (prefix_mass) *prefix_mass = total;
    for (double& x : mass) x /= total;
    return mass;
}

std::vector<piece_id> head_of(const unigram_model& m, const std::string& prompt, std::size_t k) {
    auto ids = m.encode(prompt);
    ids.resize(ids.size() - std::min(k, ids.size()));
    return ids;
}

std::string head_text(const unigram_model& m, const std::vector<piece_id>& head) { return m.decode(head); }

}  // namespace

TEST_CASE("next-byte distribution equals brute-force enumeration (bigram toy model)") {
    const unigram_model m = toy();
    const std::vector<std::string> prompts = {"a",   "ab", "aba", "abab", "bab", "abba",
                                              "cab", "ba", "abz", "zab",  "abc"};
    for (const bool end : {false, true}) {
        for (std::uint64_t seed = 1; seed <= 3; ++seed) {
            const Bigram lm(m, seed, end);
            const next_piece_log_probs next = std::cref(lm);
            for (const std::size_t k : {std::size_t{1}, std::size_t{2}, all_pieces}) {
                prefix_conditioning_options o;
                o.backoff_pieces = k;
                if (end) o.end_piece = eos_id;
                const prefix_conditioner pc(m, o);
                for (const std::string& prompt : prompts) {
                    CAPTURE(prompt);
                    CAPTURE(k);
                    CAPTURE(seed);
                    CAPTURE(end);
                    const auto head = head_of(m, prompt, k);
                    // Every piece has ≥ 1 byte: n − |head text| + 1 pieces reach past the prompt's end.
                    const std::size_t len = prompt.size() - head_text(m, head).size() + 1;
                    const auto want = brute_next_byte(lm, head, prompt, len);
                    const auto got = pc.next_byte_distribution(prompt, next);
                    double sum = 0;
                    for (std::size_t y = 0; y < next_byte_outcomes; ++y) {
                        CHECK(std::abs(got[y] - want[y]) <= 1e-12);
                        sum += got[y];
                    }
                    CHECK(std::abs(sum - 1.0) <= 1e-12);
                    if (!end) CHECK(got[end_of_text_outcome] == 0.0);
                }
            }
        }
    }
}

TEST_CASE("condition: path probabilities sum to 1 and the prefix probability equals enumeration") {
    const unigram_model m = toy();
    const Bigram lm(m, 7, false);
    const prefix_conditioner pc(m, {.backoff_pieces = all_pieces});
    for (const std::string prompt : {"abab", "babba", "cabz"}) {
        CAPTURE(prompt);
        const auto c = pc.condition(prompt, std::cref(lm));
        CHECK(c.head.empty());
        CHECK(c.tail_begin == 0);
        double sum = 0;
        for (const covering_path& p : c.paths) {
            sum += p.probability;
            // The path's text starts with the prompt; without its last piece it is a proper prefix.
            std::vector<piece_id> init(p.pieces.begin(), p.pieces.end() - 1);
            CHECK(m.decode(p.pieces).compare(0, prompt.size(), prompt) == 0);
            CHECK(m.decode(init).size() < prompt.size());
        }
        CHECK(std::abs(sum - 1.0) <= 1e-12);
        // P(text starts with prompt) by enumerating all sequences of n pieces (each piece ≥ 1 byte); the
        // brute force's `total` only counts texts longer than the prompt, which n pieces always give unless
        // they are all exactly the prompt: add one more piece (n + 1) to be safe.
        double mass = 0;
        brute_next_byte(lm, {}, prompt, prompt.size() + 1, &mass);
        CHECK(std::abs(c.log_prefix_probability - std::log(mass)) <= 1e-12);
        CHECK(c.model_calls == static_cast<std::size_t>(pc.cost(prompt).first));
    }
}

TEST_CASE("empty prompt: one empty path, no model call, and the model's own first byte") {
    const unigram_model m = toy();
    const Bigram lm(m, 3, false);
    const prefix_conditioner pc(m, {.backoff_pieces = all_pieces});
    const auto c = pc.condition("", std::cref(lm));
    REQUIRE(c.paths.size() == 1);
    CHECK(c.paths[0].pieces.empty());
    CHECK(c.paths[0].probability == 1.0);
    CHECK(c.model_calls == 0);
    const auto got = pc.next_byte_distribution("", std::cref(lm));
    // First byte: a (a, ab, abb), b (b, ba, bab), c, z.
    std::map<char, double> want;
    for (const piece_id y : lm.live) want[m.vocab()[y].text[0]] += lm.q(-1, y);
    for (const auto& [ch, p] : want) CHECK(std::abs(got[static_cast<unsigned char>(ch)] - p) <= 1e-12);
    rng g1(5);
    const auto gen = pc.generate("", std::cref(lm), g1, {.max_new_pieces = 4});
    CHECK(gen.pieces.size() == 4);
}

TEST_CASE("prompt ending on a piece boundary: paths ending exactly at the end, and backoff 0") {
    const unigram_model m = toy();
    const Bigram lm(m, 11, false);
    // "ab|ab": covering paths include ones ending exactly at the end (…, ab) and overhanging ones (…, abb).
    const prefix_conditioner pc(m, {.backoff_pieces = all_pieces});
    const auto c = pc.condition("abab", std::cref(lm));
    bool exact = false, over = false;
    for (const auto& p : c.paths) (m.decode(p.pieces).size() == 4 ? exact : over) = true;
    CHECK(exact);
    CHECK(over);
    // backoff 0: no tail; the next byte is the bigram's first byte after the last canonical piece.
    const prefix_conditioner none(m, {.backoff_pieces = 0});
    const auto got = none.next_byte_distribution("abab", std::cref(lm));
    const auto head = m.encode("abab");
    const auto want = brute_next_byte(lm, head, "abab", 1);
    for (std::size_t y = 0; y < next_byte_outcomes; ++y) CHECK(std::abs(got[y] - want[y]) <= 1e-12);
}

TEST_CASE("bytes only a byte-fallback piece covers, and a prompt no sequence of positive probability produces") {
    const unigram_model m = toy();
    const piece_id z = m.byte_piece('z');
    REQUIRE(m.vocab()[z].kind == piece_kind::byte);
    Bigram lm(m, 5, false);
    const prefix_conditioner pc(m, {.backoff_pieces = all_pieces});
    const auto c = pc.condition("azb", std::cref(lm));
    for (const auto& p : c.paths) CHECK(std::find(p.pieces.begin(), p.pieces.end(), z) != p.pieces.end());
    // The same prompt when the model never emits z's byte piece: refused, naming the tail.
    for (auto& [k, row] : lm.rows) row[static_cast<std::size_t>(z)] = ninf;
    std::erase(lm.live, z);
    CHECK_THROWS_WITH_AS(pc.condition("azb", std::cref(lm)),
                         doctest::Contains("no piece sequence of positive probability produces text starting with "
                                           "the prompt's tail \"azb\""),
                         std::domain_error);
    // A byte outside the table entirely ('q': its fallback piece has probability 0 everywhere).
    CHECK_THROWS_AS(pc.next_byte_distribution("aq", std::cref(lm)), std::domain_error);
}

TEST_CASE("NaN, +inf or a wrong length from the callback is an error") {
    const unigram_model m = toy();
    const prefix_conditioner pc(m, {.backoff_pieces = all_pieces});
    const Bigram lm(m, 2, false);
    for (const double bad : {std::nan(""), std::numeric_limits<double>::infinity()}) {
        auto f = [&](std::span<const piece_id> ctx) {
            auto row = lm(ctx);
            row[5] = bad;
            return row;
        };
        CHECK_THROWS_WITH_AS(
            pc.condition("ab", f),
            doctest::Contains(std::isnan(bad) ? "returned NaN for piece 5" : "returned +inf for piece 5"),
            std::invalid_argument);
        rng g(1);
        CHECK_THROWS_AS(pc.generate("ab", f, g), std::invalid_argument);
    }
    // Even in a control piece's entry (it is ignored, but a NaN anywhere means the model is broken).
    auto control_nan = [&](std::span<const piece_id> ctx) {
        auto row = lm(ctx);
        row[0] = std::nan("");
        return row;
    };
    CHECK_THROWS_AS(pc.next_byte_distribution("a", control_nan), std::invalid_argument);
    auto short_row = [&](std::span<const piece_id>) { return std::vector<double>(3, 0.0); };
    CHECK_THROWS_WITH_AS(pc.condition("a", short_row), doctest::Contains("returned 3 log-probabilities"),
                         std::invalid_argument);
}

TEST_CASE("the tractability bound: refused before any call, naming the option and the count") {
    const unigram_model m = toy();
    const Bigram lm(m, 4, false);
    // Independent count of partial segmentations of "abab"[0, s), s < 4, over {a, b, ab, ba, abb, bab}:
    // s=0: 1 (empty); s=1 "a": 1; s=2 "ab": a|b, ab = 2; s=3 "aba": a|b|a, ab|a, a|ba = 3. Total 7.
    const prefix_conditioner big(m, {.backoff_pieces = all_pieces, .max_model_calls = 7});
    CHECK(big.cost("abab").first == 7.0);
    CHECK(big.condition("abab", std::cref(lm)).model_calls == 7);
    int calls = 0;
    auto counting = [&](std::span<const piece_id> ctx) {
        ++calls;
        return lm(ctx);
    };
    const prefix_conditioner small(m, {.backoff_pieces = all_pieces, .max_model_calls = 6});
    CHECK_THROWS_WITH_AS(small.condition("abab", counting),
                         doctest::Contains("have 7 partial segmentations, each a model call: more than "
                                           "max_model_calls = 6"),
                         std::length_error);
    rng g(1);
    CHECK_THROWS_AS(small.generate("abab", counting, g), std::length_error);
    CHECK(calls == 0);
    // next_byte_distribution also needs one call per path ending exactly at the end (e.g. "ab|ab"): > 7.
    CHECK_THROWS_WITH_AS(big.next_byte_distribution("abab", counting), doctest::Contains("max_model_calls = 7"),
                         std::length_error);
    // A bad end piece.
    CHECK_THROWS_WITH_AS(prefix_conditioner(m, {.end_piece = 4}),
                         doctest::Contains("end_piece must be a control piece"), std::invalid_argument);
}

TEST_CASE("generation: starts with the prompt, greedy takes the most probable path, seeds reproduce") {
    const unigram_model m = toy();
    const Bigram lm(m, 9, true);
    const prefix_conditioner pc(m, {.backoff_pieces = 2, .end_piece = eos_id});
    const std::string prompt = "cabab";
    const auto c = pc.condition(prompt, std::cref(lm));
    std::size_t best = 0;
    for (std::size_t i = 1; i < c.paths.size(); ++i)
        if (c.paths[i].probability > c.paths[best].probability) best = i;
    rng g0(1);
    const auto greedy = pc.generate(prompt, std::cref(lm), g0, {.greedy = true, .max_new_pieces = 0});
    std::vector<piece_id> want = c.head;
    want.insert(want.end(), c.paths[best].pieces.begin(), c.paths[best].pieces.end());
    CHECK(greedy.pieces == want);

    // Sampling: every draw starts with the prompt; the covering-path frequencies match (2).
    std::map<std::vector<piece_id>, int> seen;
    rng g(42);
    const int draws = 20000;
    for (int i = 0; i < draws; ++i) {
        const auto r = pc.generate(prompt, std::cref(lm), g, {.max_new_pieces = 3});
        REQUIRE(r.text.compare(0, prompt.size(), prompt) == 0);
        CHECK(r.text == m.decode(r.pieces));
        std::vector<piece_id> path(r.pieces.begin() + static_cast<std::ptrdiff_t>(c.head.size()), r.pieces.end());
        // Strip the continuation: the covering path is the shortest prefix reaching the prompt's end.
        std::size_t bytes = c.tail_begin, j = 0;
        while (bytes < prompt.size()) bytes += m.vocab()[path[j++]].text.size();
        path.resize(j);
        ++seen[path];
    }
    for (const auto& p : c.paths) {
        const double f = seen[p.pieces] / static_cast<double>(draws);
        CHECK(std::abs(f - p.probability) <= 5 * std::sqrt(p.probability * (1 - p.probability) / draws) + 1e-9);
    }
    rng a(77), b(77);
    const auto ra = pc.generate(prompt, std::cref(lm), a, {.max_new_pieces = 6});
    const auto rb = pc.generate(prompt, std::cref(lm), b, {.max_new_pieces = 6});
    CHECK(ra.pieces == rb.pieces);
    CHECK(ra.ended == rb.ended);
    // min_new_bytes stops as soon as enough bytes follow the prompt.
    rng g2(3);
    const auto r8 = pc.generate(prompt, std::cref(lm), g2, {.greedy = true, .max_new_pieces = 100, .min_new_bytes = 8});
    CHECK((r8.ended || r8.text.size() >= prompt.size() + 8));
    CHECK(r8.text.size() < prompt.size() + 8 + 3);  // the last piece added has at most 3 bytes
}

TEST_CASE("the header's example, by hand: pieces {a, b, ab}") {
    vocabulary v = vocabulary::with_specials();
    for (const char* p : {"a", "b", "ab"}) v.add(p, -1.0);
    const unigram_model m(std::move(v));
    const piece_id a = *m.vocab().find("a"), b = *m.vocab().find("b"), ab = *m.vocab().find("ab");
    // Start: a 0.2, b 0.3, ab 0.5; after a: a 0.1, b 0.9; after anything else: uniform over a, b.
    auto lm = [&](std::span<const piece_id> ctx) {
        std::vector<double> lp(m.size(), ninf);
        auto set = [&](piece_id id, double p) { lp[static_cast<std::size_t>(id)] = std::log(p); };
        if (ctx.empty()) {
            set(a, 0.2), set(b, 0.3), set(ab, 0.5);
        } else if (ctx.back() == a) {
            set(a, 0.1), set(b, 0.9);
        } else {
            set(a, 0.5), set(b, 0.5);
        }
        return lp;
    };
    const prefix_conditioner pc(m, {.backoff_pieces = 1});
    // Covering paths of "a": [a] (mass 0.2, ends at the prompt's end) and [ab] (0.5, overhang "b").
    const auto c = pc.condition("a", lm);
    REQUIRE(c.paths.size() == 2);
    CHECK(std::abs(c.log_prefix_probability - std::log(0.7)) <= 1e-15);
    const auto nb = pc.next_byte_distribution("a", lm);
    CHECK(std::abs(nb['b'] - (0.2 * 0.9 + 0.5) / 0.7) <= 1e-15);
    CHECK(std::abs(nb['a'] - 0.2 * 0.1 / 0.7) <= 1e-15);
    // Empty prompt: "a" and "ab" both start with byte a, "b" with b.
    const auto e = pc.next_byte_distribution("", lm);
    CHECK(std::abs(e['a'] - 0.7) <= 1e-15);
    CHECK(std::abs(e['b'] - 0.3) <= 1e-15);
}
