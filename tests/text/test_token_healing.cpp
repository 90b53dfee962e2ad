// Token healing on the toy vocabulary of ../shared/research/articles_part1.md §4.4 (post 9762): Su's
// example probabilities 0.10 / 0.02 / 0.05 / 0.01 → 0.5556 / 0.1111 / 0.2778 / 0.0556, and the general mode
// backing off k = 2 on "import numpy" to emit " as np".
#include <doctest/doctest.h>

#include <cmath>
#include <exprgrad/text/sampler.hpp>
#include <exprgrad/text/token_healing.hpp>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "lattice_fixtures.hpp"

using exprgrad::rng;
using exprgrad::text::healing_mode;
using exprgrad::text::healing_options;
using exprgrad::text::piece_id;
using exprgrad::text::stochastic_segmenter;
using exprgrad::text::token_healer;
using exprgrad::text::unigram_model;
using exprgrad::text::vocabulary;

namespace {

// The notes' toy vocabulary, with greedy-longest-match behaviour from the scores: every listed word −1,
// every single character −5 (so a word always beats its characters).
unigram_model toy_model() {
    vocabulary v = vocabulary::with_specials();
    const char* words[] = {
        "广州",   "白云", "白云山", "白云机场",          "白云路", "机场", "太阳", "太阳能", "import",
        " numpy", " as",  " np",    "import numpy as np"};
    for (const char* w : words) v.add(w, -1.0);
    const char* chars[] = {"广", "州", "的", "白", "云", "山", "机", "场", "路", "能", "太", "阳"};
    for (const char* c : chars) v.add(c, -5.0);
    for (const char c : std::string("abcdefghijklmnopqrstuvwxyz ")) v.add(std::string(1, c), -5.0);
    return unigram_model(std::move(v));
}

std::string text_of(const unigram_model& m, const std::vector<piece_id>& ids) {
    std::string s;
    for (const piece_id id : ids) s += (s.empty() ? "" : "|") + m.vocab()[id].text;
    return s;
}

piece_id id_of(const unigram_model& m, const std::string& text) { return *m.vocab().find(text); }

}  // namespace

TEST_CASE("toy tokenizer segments the notes' prompts") {
    const unigram_model m = toy_model();
    CHECK(text_of(m, m.encode("广州的白云")) == "广州|的|白云");
    CHECK(text_of(m, m.encode("太阳")) == "太阳");
    CHECK(text_of(m, m.encode("import numpy")) == "import| numpy");
}

TEST_CASE("su mode: the post's example renormalization and emission") {
    const unigram_model m = toy_model();
    const token_healer healer(m);
    // Candidates for r = 白云: exactly the four pieces starting with it (白 is a proper prefix: excluded).
    std::vector<std::string> cands;
    for (const piece_id id : healer.pieces_starting_with("白云")) cands.push_back(m.vocab()[id].text);
    CHECK(cands == std::vector<std::string>{"白云", "白云山", "白云机场", "白云路"});
    std::vector<std::string> sun;
    for (const piece_id id : healer.pieces_starting_with("太阳")) sun.push_back(m.vocab()[id].text);
    CHECK(sun == std::vector<std::string>{"太阳", "太阳能"});

    const std::map<std::string, double> p = {{"白云", 0.10}, {"白云山", 0.02}, {"白云机场", 0.05}, {"白云路", 0.01}};
    auto lm = [&](std::span<const piece_id> context) {
        // After 广州|的 the model prefers other pieces too; those are not allowed and must not matter.
        CHECK(text_of(m, std::vector<piece_id>(context.begin(), context.end())) == "广州|的");
        std::vector<double> logp(m.size(), std::log(0.3));
        for (const auto& [t, q] : p) logp[static_cast<std::size_t>(id_of(m, t))] = std::log(q);
        return logp;
    };
    rng gen(9);
    const auto r = healer.heal("广州的白云", lm, gen);
    CHECK(r.backed_off == 1);
    REQUIRE(r.steps.size() == 1);
    const std::vector<double> expected = {0.5556, 0.1111, 0.2778, 0.0556};  // the post's numbers, 4 decimals
    REQUIRE(r.steps[0].probabilities.size() == 4);
    double sum = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK(std::abs(r.steps[0].probabilities[i] - expected[i]) < 5e-5);
        sum += r.steps[0].probabilities[i];
    }
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-15));

    // Sampling: 白云机场 emits 机场, 白云 emits nothing; frequencies follow q.
    const std::size_t n = 40000;
    std::map<std::string, double> freq;
    for (std::size_t i = 0; i < n; ++i) {
        const auto h = healer.heal("广州的白云", lm, gen);
        const std::string chosen = m.vocab()[h.context.back()].text;
        CHECK(h.emitted == chosen.substr(std::string("白云").size()));
        freq[chosen] += 1.0 / n;
    }
    CHECK(std::abs(freq["白云机场"] - 0.05 / 0.18) < text_test::max_deviation(n));
    CHECK(std::abs(freq["白云"] - 0.10 / 0.18) < text_test::max_deviation(n));

    // Greedy takes the most probable candidate.
    healing_options greedy;
    greedy.greedy = true;
    CHECK(healer.heal("广州的白云", lm, gen, greedy).emitted.empty());
}

TEST_CASE("general mode: 'import numpy' backs off k = 2 and can emit ' as np'") {
    const unigram_model m = toy_model();
    const token_healer healer(m);
    const auto ids = m.encode("import numpy");
    CHECK(healer.backoff(ids, 4) == 2);
    CHECK(healer.backoff(ids, 1) == 0);  // " numpy" alone is a prefix of no longer piece

    // Su's k = 1: only " numpy" itself is allowed, so backing off does not help.
    auto uniform = [&](std::span<const piece_id>) { return std::vector<double>(m.size(), 0.0); };
    rng gen(3);
    const auto su = healer.heal("import numpy", uniform, gen);
    REQUIRE(su.steps.size() == 1);
    CHECK(su.steps[0].candidates == std::vector<piece_id>{id_of(m, " numpy")});
    CHECK(su.emitted.empty());

    // A language model that knows the big piece.
    auto lm = [&](std::span<const piece_id> context) {
        std::vector<double> logp(m.size(), std::log(1e-4));
        if (context.empty()) {
            logp[static_cast<std::size_t>(id_of(m, "import numpy as np"))] = std::log(0.6);
            logp[static_cast<std::size_t>(id_of(m, "import"))] = std::log(0.3);
        } else {
            logp[static_cast<std::size_t>(id_of(m, " numpy"))] = std::log(0.5);
        }
        return logp;
    };
    healing_options opt;
    opt.mode = healing_mode::general;
    opt.greedy = true;
    const auto r = healer.heal("import numpy", lm, gen, opt);
    CHECK(r.backed_off == 2);
    CHECK(r.emitted == " as np");
    CHECK(text_of(m, r.context) == "import numpy as np");
    // The first step allows the big piece (extends "import numpy") and the prefixes "i" and "import".
    std::vector<std::string> allowed;
    for (const piece_id id : r.steps[0].candidates) allowed.push_back(m.vocab()[id].text);
    CHECK(allowed == std::vector<std::string>{"import numpy as np", "i", "import"});

    // Sampling: either the big piece at once, or "import" then " numpy" (two steps, nothing emitted).
    opt.greedy = false;
    bool saw_long = false, saw_split = false;
    for (int i = 0; i < 200; ++i) {
        const auto s = healer.heal("import numpy", lm, gen, opt);
        const std::string t = text_of(m, s.context);
        if (t == "import numpy as np") {
            saw_long = true;
            CHECK(s.emitted == " as np");
        } else {
            CHECK(m.decode(s.context).substr(0, 12) == "import numpy");
            if (t == "import| numpy") saw_split = true;
        }
        for (const auto& st : s.steps) {
            double sum = 0;
            for (const double q : st.probabilities) sum += q;
            CHECK(sum == doctest::Approx(1.0));
        }
    }
    CHECK(saw_long);
    CHECK(saw_split);
}

TEST_CASE("healing rejects a malformed language model and handles the empty prompt") {
    const unigram_model m = toy_model();
    const token_healer healer(m);
    rng gen(1);
    auto short_lm = [](std::span<const piece_id>) { return std::vector<double>(3, 0.0); };
    CHECK_THROWS_AS(healer.heal("太阳", short_lm, gen), std::invalid_argument);
    auto nan_lm = [&](std::span<const piece_id>) { return std::vector<double>(m.size(), NAN); };
    CHECK_THROWS_AS(healer.heal("太阳", nan_lm, gen), std::invalid_argument);
    const auto empty = healer.heal("", short_lm, gen);
    CHECK(empty.context.empty());
    CHECK(empty.emitted.empty());
    // All candidates impossible: the original piece is kept.
    auto zero = [&](std::span<const piece_id>) { return std::vector<double>(m.size(), -INFINITY); };
    const auto kept = healer.heal("太阳", zero, gen);
    CHECK(text_of(m, kept.context) == "太阳");
}

TEST_CASE("stochastic segmentation for data loaders") {
    const unigram_model m = toy_model();
    stochastic_segmenter a(m, 0.2, 42), b(m, 0.2, 42);
    std::set<std::string> seen;
    for (int i = 0; i < 200; ++i) {
        const auto x = a("白云机场");
        CHECK(x == b("白云机场"));  // same seed, same draws
        CHECK(m.decode(x) == "白云机场");
        seen.insert(text_of(m, x));
    }
    CHECK(seen.count("白云机场") == 1);
    CHECK(seen.count("白云|机场") == 1);  // the split form a model must also see
}
