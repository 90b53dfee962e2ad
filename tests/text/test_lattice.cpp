// The reference tables T1–T6 of ../shared/research/articles_part2.md §2.7 (posts 9768 and 9811, and
// SentencePiece's lattice tests): exact distributions by enumeration, log Z, entropy, marginals as the
// gradient of log Z, Viterbi decoding and ties, n-best, and the samplers by χ² and max-deviation tests.
#include <doctest/doctest.h>

#include <cmath>
#include <exprgrad/text/unigram_model.hpp>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "lattice_fixtures.hpp"

using exprgrad::rng;
using exprgrad::text::mode;
using exprgrad::text::model_options;
using exprgrad::text::piece_span;
using exprgrad::text::sampler;
using exprgrad::text::unigram_model;
using namespace text_test;

namespace {

// Tables are printed with 6 decimals.
constexpr double table_tol = 6e-7;

const PieceScores t1 = {{"watch", -1}, {"ing", -1}, {"wat", -1}, {"ching", -1}, {"w", -1}, {"atching", -1}};
const PieceScores t2 = {{"A", 1.0}, {"B", 1.2}, {"C", 1.5}, {"AB", 1.6}, {"BC", 1.7}, {"ABC", 1.8}};
const PieceScores t3 = {{"A", 0.0}, {"B", 0.0}, {"C", 0.1}, {"AB", 0.2}, {"BC", 0.5}, {"ABC", 1.0}};
const PieceScores t5 = {{"A", -1.0},  {"B", -1.5},  {"C", -1.2},   {"D", -0.7},  {"AB", -1.8},
                        {"BC", -2.0}, {"CD", -1.1}, {"ABC", -2.6}, {"BCD", -3.0}};
const PieceScores t6 = {{"A", 1.0}, {"B", 1.2}, {"C", 2.5}, {"AB", 3.0}, {"BC", 4.0}, {"ABC", 2.0}};

// Runs a sampler n times and checks its frequencies against p with the χ² and max-deviation bounds.
void check_sampler(const unigram_model& m, const std::string& text, double alpha, sampler how, std::uint64_t seed,
                   std::size_t n, const std::map<std::string, double>& p) {
    rng gen(seed);
    const auto freq = frequencies(text, n, [&] { return m.sample_spans(text, alpha, gen, how); });
    INFO("alpha = " << alpha << ", sampler " << static_cast<int>(how) << ", " << n << " draws");
    CHECK(chi2(freq, p, n) < chi2_threshold(p.size() - 1));
    CHECK(worst_deviation(freq, p) < max_deviation(n));
}

}  // namespace

TEST_CASE("T1 'watching': three equal segmentations, exact samplers uniform, the old sampler biased") {
    const unigram_model m = make_model(t1);
    const std::string text = "watching";
    const auto segs = enumerate(text, t1);
    REQUIRE(segs.size() == 3);
    const auto p = distribution(segs, 1.0);
    for (const auto& [k, pk] : p) CHECK(pk == doctest::Approx(1.0 / 3).epsilon(1e-12));
    // The default model (fallback penalty 10): fallback edges do not add segmentations, at any α.
    CHECK(m.log_partition(text, 1.0) == doctest::Approx(std::log(3.0) - 2.0).epsilon(1e-12));
    CHECK(m.entropy(text, 1.0) == doctest::Approx(std::log(3.0)).epsilon(1e-12));
    CHECK(m.log_partition(text, 0.0) == doctest::Approx(std::log(3.0)).epsilon(1e-14));
    CHECK(m.entropy(text, 0.0) == doctest::Approx(std::log(3.0)).epsilon(1e-14));
    for (const double alpha : {0.0, 1.0}) {
        double pieces = 0;
        for (const double c : m.marginals(text, alpha)) pieces += c;
        CHECK(pieces == doctest::Approx(2.0).epsilon(1e-12));  // every segmentation has two pieces
    }
    CHECK(m.nbest(text, 10).size() == 3);
    check_sampler(m, text, 0.0, sampler::reservoir, 11, 60000, p);
    check_sampler(m, text, 0.0, sampler::ffbs, 12, 60000, p);

    const std::size_t n = 100000;
    check_sampler(m, text, 1.0, sampler::reservoir, 1, n, p);
    check_sampler(m, text, 1.0, sampler::ffbs, 2, n, p);

    // Post 9811's dilution, visiting candidates longest first: 1/2, 1/4, 1/4 (notes T1, "old, longest-first").
    const std::map<std::string, double> old = {{"watch ing", 0.5}, {"wat ching", 0.25}, {"w atching", 0.25}};
    check_sampler(m, text, 1.0, sampler::biased_sigmoid, 3, n, old);
    rng gen(4);
    const auto freq = frequencies(text, n, [&] { return m.sample_spans(text, 1.0, gen, sampler::biased_sigmoid); });
    const double bias = freq.at("watch ing") - 1.0 / 3;
    MESSAGE("measured bias of the old sampler on 'watching': P(watch ing) = " << freq.at("watch ing")
                                                                              << " instead of 1/3");
    CHECK(bias > 0.15);
}

TEST_CASE("T2 SentencePiece SampleTest lattice: distribution, log Z and entropy for five alphas") {
    const unigram_model m = make_model(t2);
    const std::string text = "ABC";
    const auto segs = enumerate(text, t2);
    REQUIRE(segs.size() == 4);
    struct Row {
        double alpha, abc_split, ab_c, a_bc, abc, log_z, entropy;
    };
    const Row rows[] = {
        {0.0, 0.25, 0.25, 0.25, 0.25, 1.386294, 1.386294},
        {0.01, 0.252191, 0.250682, 0.249682, 0.247445, 1.414568, 1.386271},
        {0.5, 0.365752, 0.270956, 0.221840, 0.141451, 2.855799, 1.332384},
        {0.7, 0.413546, 0.271719, 0.205361, 0.109374, 3.472986, 1.286328},
        {1.0, 0.483966, 0.265606, 0.178041, 0.072386, 4.425740, 1.200679},
    };
    for (const Row& r : rows) {
        INFO("alpha = " << r.alpha);
        const auto p = distribution(segs, r.alpha);
        CHECK(std::abs(p.at("A B C") - r.abc_split) < table_tol);
        CHECK(std::abs(p.at("AB C") - r.ab_c) < table_tol);
        CHECK(std::abs(p.at("A BC") - r.a_bc) < table_tol);
        CHECK(std::abs(p.at("ABC") - r.abc) < table_tol);
        CHECK(std::abs(m.log_partition(text, r.alpha) - r.log_z) < table_tol);
        CHECK(std::abs(m.entropy(text, r.alpha) - r.entropy) < table_tol);
        CHECK(m.log_partition(text, r.alpha) == doctest::Approx(log_partition_of(segs, r.alpha)).epsilon(1e-13));
        // SentencePiece's own test draws 100 000 samples; so do we, per alpha and exact sampler.
        check_sampler(m, text, r.alpha, sampler::reservoir, 10 + static_cast<std::uint64_t>(r.alpha * 100), 100000, p);
        check_sampler(m, text, r.alpha, sampler::ffbs, 20 + static_cast<std::uint64_t>(r.alpha * 100), 100000, p);
    }
    // The old sigmoid sampler at α = 1 (notes: 0.4979 / 0.2313 / 0.2246 / 0.0462, printed with 4 decimals).
    const std::map<std::string, double> old = {{"A B C", 0.4979}, {"AB C", 0.2313}, {"A BC", 0.2246}, {"ABC", 0.0462}};
    rng gen(5);
    const std::size_t n = 200000;
    const auto freq = frequencies(text, n, [&] { return m.sample_spans(text, 1.0, gen, sampler::biased_sigmoid); });
    CHECK(worst_deviation(freq, old) < max_deviation(n) + 5e-5);
}

TEST_CASE("T3 SentencePiece NBest/Entropy lattice") {
    const unigram_model m = make_model(t3);
    const std::string text = "ABC";
    CHECK(key_of(text, m.encode_spans(text)) == "ABC");
    const auto segs = enumerate(text, t3);
    auto p = distribution(segs, 1.0);
    CHECK(std::abs(p.at("A B C") - 0.162000) < table_tol);
    CHECK(std::abs(p.at("AB C") - 0.197868) < table_tol);
    CHECK(std::abs(p.at("A BC") - 0.241676) < table_tol);
    CHECK(std::abs(p.at("ABC") - 0.398456) < table_tol);
    CHECK(std::abs(m.log_partition(text, 1.0) - 1.920157) < table_tol);
    CHECK(std::abs(m.entropy(text, 1.0) - 1.325303) < table_tol);
    p = distribution(segs, 0.5);
    CHECK(std::abs(p.at("A B C") - 0.204295) < table_tol);
    CHECK(std::abs(p.at("AB C") - 0.225781) < table_tol);
    CHECK(std::abs(p.at("A BC") - 0.249526) < table_tol);
    CHECK(std::abs(p.at("ABC") - 0.320398) < table_tol);
    CHECK(std::abs(m.log_partition(text, 0.5) - 1.638191) < table_tol);
    CHECK(std::abs(m.entropy(text, 0.5) - 1.371528) < table_tol);
    p = distribution(segs, 10.0);
    CHECK(std::abs(p.at("ABC") - 0.9923) < 5e-5);

    // n-best: all four, by score.
    const auto best = m.nbest(text, 10);
    REQUIRE(best.size() == 4);
    CHECK(key_of(text, best[0].spans) == "ABC");
    CHECK(key_of(text, best[1].spans) == "A BC");
    CHECK(key_of(text, best[2].spans) == "AB C");
    CHECK(key_of(text, best[3].spans) == "A B C");
    CHECK(best[1].score == doctest::Approx(0.5));
    // Large α approaches Viterbi: at α = 10 the sampler returns ABC with probability 0.9923.
    check_sampler(m, text, 10.0, sampler::reservoir, 30, 50000, p);
}

TEST_CASE("T4 SentencePiece ViterbiTest: decoding as pieces are added") {
    PieceScores pieces = {{"A", 0}, {"B", 0}, {"C", 0}};
    CHECK(key_of("ABC", make_model(pieces).encode_spans("ABC")) == "A B C");
    pieces.push_back({"AB", 2});
    CHECK(key_of("ABC", make_model(pieces).encode_spans("ABC")) == "AB C");
    pieces.push_back({"BC", 5});
    CHECK(key_of("ABC", make_model(pieces).encode_spans("ABC")) == "A BC");
    pieces.push_back({"ABC", 10});
    CHECK(key_of("ABC", make_model(pieces).encode_spans("ABC")) == "ABC");
}

TEST_CASE("T5 'ABCD': seven segmentations, where the intermediate BytePiece commit fails") {
    const unigram_model m = make_model(t5);
    const std::string text = "ABCD";
    const auto segs = enumerate(text, t5);
    REQUIRE(segs.size() == 7);
    const auto viterbi = m.encode_spans(text);
    CHECK(key_of(text, viterbi) == "AB CD");
    CHECK(m.score(viterbi) == doctest::Approx(-2.9).epsilon(1e-12));
    CHECK(std::abs(m.log_partition(text, 1.0) - (-1.613094)) < table_tol);
    const auto p = distribution(segs, 1.0);
    const std::map<std::string, double> table = {{"AB CD", 0.276124},  {"ABC D", 0.185091},  {"A B CD", 0.137119},
                                                 {"A BC D", 0.124070}, {"AB C D", 0.124070}, {"A BCD", 0.091914},
                                                 {"A B C D", 0.061612}};
    for (const auto& [k, v] : table) CHECK(std::abs(p.at(k) - v) < table_tol);

    const std::size_t n = 200000;
    check_sampler(m, text, 1.0, sampler::reservoir, 40, n, p);
    check_sampler(m, text, 1.0, sampler::ffbs, 41, n, p);
    // The old sigmoid sampler's column of the table.
    const std::map<std::string, double> old = {{"AB CD", 0.329491},  {"ABC D", 0.203298},  {"A B CD", 0.104682},
                                               {"A BC D", 0.096236}, {"AB C D", 0.110793}, {"A BCD", 0.122984},
                                               {"A B C D", 0.032515}};
    check_sampler(m, text, 1.0, sampler::biased_sigmoid, 42, n, old);

    // n-best agrees with the enumeration sorted by score.
    const auto best = m.nbest(text, 7);
    REQUIRE(best.size() == 7);
    for (std::size_t i = 0; i < best.size(); ++i) {
        CHECK(best[i].score == doctest::Approx(segs.at(key_of(text, best[i].spans))).epsilon(1e-12));
        if (i > 0) CHECK(best[i - 1].score >= best[i].score);
    }
    CHECK(m.nbest(text, 3).size() == 3);
    CHECK(m.nbest(text, 0).empty());
}

TEST_CASE("T6 SentencePiece PopulateMarginalTest: marginals, and marginals = gradient of log Z / alpha") {
    unigram_model m = make_model(t6);
    const std::string text = "ABC";
    CHECK(std::abs(m.log_partition(text, 1.0) - 6.235276) < table_tol);
    const auto marg = m.marginals(text, 1.0);
    REQUIRE(marg.size() == m.size());
    const auto& v = m.vocab();
    const std::map<std::string, double> table = {{"A", 0.506151},  {"B", 0.215396},  {"C", 0.694770},
                                                 {"AB", 0.479373}, {"BC", 0.290755}, {"ABC", 0.014476}};
    double total = 0;
    for (const auto& [piece, value] : table) {
        CHECK(std::abs(marg[static_cast<std::size_t>(*v.find(piece))] - value) < table_tol);
        total += marg[static_cast<std::size_t>(*v.find(piece))];
    }
    double all = 0;
    for (const double x : marg) all += x;
    CHECK(all == doctest::Approx(total).epsilon(1e-12));  // no other piece is used

    // Expected counts by enumeration, and finite differences of log Z, for several α.
    const auto segs = enumerate(text, t6);
    for (const double alpha : {0.0, 0.3, 1.0, 2.5}) {
        INFO("alpha = " << alpha);
        const auto p = distribution(segs, alpha);
        const auto mg = m.marginals(text, alpha);
        for (const auto& [piece, score] : t6) {
            double expected = 0;
            for (const auto& [k, pk] : p) {
                // count occurrences of `piece` as a whole word of the key
                std::size_t start = 0;
                while (start <= k.size()) {
                    const std::size_t end = std::min(k.find(' ', start), k.size());
                    if (k.substr(start, end - start) == piece) expected += pk;
                    start = end + 1;
                }
            }
            const auto id = *v.find(piece);
            CHECK(mg[static_cast<std::size_t>(id)] == doctest::Approx(expected).epsilon(1e-12));
            // ∂ log Z / ∂ score = α · marginal; central difference with h = 1e-5 (error O(h²) ≈ 1e-10).
            const double h = 1e-5;
            m.set_score(id, score + h);
            const double up = m.log_partition(text, alpha);
            m.set_score(id, score - h);
            const double down = m.log_partition(text, alpha);
            m.set_score(id, score);
            CHECK((up - down) / (2 * h) == doctest::Approx(alpha * mg[static_cast<std::size_t>(id)]).epsilon(1e-7));
        }
        // entropy = −Σ p log p
        double h = 0;
        for (const auto& [k, pk] : p) h -= pk * std::log(pk);
        CHECK(m.entropy(text, alpha) == doctest::Approx(h).epsilon(1e-12));
    }
}

TEST_CASE("alpha semantics: alpha < 0 is Viterbi, alpha = 0 uniform, invalid alpha throws") {
    const unigram_model m = make_model(t5);
    const std::string text = "ABCD";
    rng gen(7);
    for (int i = 0; i < 100; ++i) {
        CHECK(key_of(text, m.sample_spans(text, -1.0, gen)) == "AB CD");
        CHECK(key_of(text, m.sample_spans(text, -1e-9, gen, sampler::ffbs)) == "AB CD");
    }
    CHECK(m.log_partition(text, 0.0) == doctest::Approx(std::log(7.0)).epsilon(1e-14));
    CHECK(m.entropy(text, 0.0) == doctest::Approx(std::log(7.0)).epsilon(1e-14));
    std::map<std::string, double> uniform;
    for (const auto& [k, s] : enumerate(text, t5)) uniform[k] = 1.0 / 7;
    check_sampler(m, text, 0.0, sampler::reservoir, 50, 70000, uniform);
    check_sampler(m, text, 0.0, sampler::ffbs, 51, 70000, uniform);
    // Large α: the Viterbi segmentation (the runner-up is 0.1 behind: weight ratio e^-100 at α = 1000).
    for (int i = 0; i < 100; ++i) CHECK(key_of(text, m.sample_spans(text, 1000.0, gen)) == "AB CD");

    CHECK_THROWS_AS(m.log_partition(text, -0.5), std::invalid_argument);
    CHECK_THROWS_AS(m.marginals(text, -0.5), std::invalid_argument);
    CHECK_THROWS_AS(m.entropy(text, -0.5), std::invalid_argument);
    CHECK_THROWS_AS(m.log_partition(text, NAN), std::invalid_argument);
    CHECK_THROWS_AS(m.log_partition(text, INFINITY), std::invalid_argument);
    CHECK_THROWS_AS(m.sample(text, NAN, gen), std::invalid_argument);
    CHECK_THROWS_AS(m.sample(text, INFINITY, gen), std::invalid_argument);
    // Finite but so large that α·score sums could overflow: refused, not a wrong answer.
    CHECK(std::isfinite(m.log_partition(text, exprgrad::text::max_alpha)));
    CHECK_THROWS_WITH_AS(m.sample(text, 1e201, gen), doctest::Contains("alpha = "), std::invalid_argument);
    // The unknown piece's score (lowest score − fallback_penalty) must stay in range too.
    exprgrad::text::model_options huge_penalty;
    huge_penalty.fallback_penalty = 1e300;
    CHECK_THROWS_AS(unigram_model(m.vocab(), huge_penalty), std::invalid_argument);
    // The empty text: one empty segmentation.
    CHECK(m.log_partition("", 1.0) == 0.0);
    CHECK(m.encode("").empty());
    CHECK(m.sample("", 0.5, gen).empty());
    CHECK(m.marginals("", 1.0).size() == m.size());
}

TEST_CASE("Viterbi ties: the longer last piece wins in the native mode") {
    // Equal scores: "watch ing", "wat ching", "w atching" all −2; "watch ing" ends with the shortest piece,
    // "w atching" with the longest.
    const unigram_model m = make_model(t1);
    CHECK(key_of("watching", m.encode_spans("watching")) == "w atching");
    const PieceScores tie = {{"A", -1}, {"AB", -1}, {"BC", -1}, {"C", -1}};
    CHECK(key_of("ABC", make_model(tie).encode_spans("ABC")) == "A BC");
}

TEST_CASE("native byte fallback: only where the pieces cannot segment the text (brute force)") {
    // Random vocabularies over {a, b, c} (single letters sometimes missing) and texts over {a, b, c, d}; the
    // reference is enumerate_with_fallback, which restates the rule without the model's trie or lattice.
    rng gen(2024);
    auto pick = [&](std::size_t k) { return static_cast<std::size_t>(gen.uniform() * static_cast<double>(k)); };
    const double scores[] = {-1.0, -1.5, -2.0, -3.25};
    std::size_t with_fallback = 0, without = 0;
    for (int trial = 0; trial < 300; ++trial) {
        PieceScores pieces;
        std::map<std::string, double> seen;
        for (std::size_t i = 0, count = 2 + pick(6); i < count; ++i) {
            std::string w;
            for (std::size_t j = 0, len = 1 + pick(3); j < len; ++j) w += "abc"[pick(3)];
            if (seen.emplace(w, 0.0).second) pieces.push_back({w, scores[pick(4)]});
        }
        // The fallback score: the lowest piece score minus the default penalty.
        double lowest = pieces[0].second;
        for (const auto& [w, sc] : pieces) lowest = std::min(lowest, sc);
        const unigram_model m = make_model(pieces);
        for (int k = 0; k < 8; ++k) {
            std::string text;
            for (std::size_t j = 0, len = 1 + pick(7); j < len; ++j) text += "abcd"[pick(pick(5) == 0 ? 4 : 3)];
            const auto segs = enumerate_with_fallback(text, pieces, lowest - 10.0);
            (enumerate(text, pieces).empty() ? with_fallback : without) += 1;
            INFO("text " << text << ", trial " << trial);
            REQUIRE(!segs.empty());
            for (const double alpha : {0.0, 0.7, 1.0}) {
                CHECK(m.log_partition(text, alpha) == doctest::Approx(log_partition_of(segs, alpha)).epsilon(1e-12));
                // −Σ p log p with −log p = (max − α·s) + log1p(Σ exp(α·s − max) − 1), the "− 1" taken exactly
                // (count of maxima − 1 + the rest), so that tiny entropies are accurate in the reference too.
                double top = -INFINITY;
                for (const auto& [key, sc] : segs) top = std::max(top, alpha * sc);
                double rest = 0, at_top = 0;
                for (const auto& [key, sc] : segs)
                    (alpha * sc == top ? at_top : rest) += alpha * sc == top ? 1.0 : std::exp(alpha * sc - top);
                const double log_sum = std::log1p(at_top - 1 + rest);
                double h = 0;
                for (const auto& [key, sc] : segs) {
                    const double p = std::exp(alpha * sc - top) / (at_top + rest);
                    h += p * ((top - alpha * sc) + log_sum);
                }
                CHECK(m.entropy(text, alpha) == doctest::Approx(h).epsilon(1e-12));
            }
            double best = -INFINITY;
            for (const auto& [key, sc] : segs) best = std::max(best, sc);
            CHECK(m.score(m.encode_spans(text)) == doctest::Approx(best).epsilon(1e-12));
            CHECK(m.nbest(text, 1000).size() == segs.size());
            CHECK(m.decode(m.encode(text)) == text);
            rng g2(static_cast<std::uint64_t>(trial * 8 + k));
            for (const sampler how : {sampler::reservoir, sampler::ffbs, sampler::biased_sigmoid}) {
                const auto spans = m.sample_spans(text, 0.5, g2, how);
                std::string key;
                for (const piece_span& sp : spans) {
                    if (!key.empty()) key += ' ';
                    const std::string piece = text.substr(sp.begin, sp.end - sp.begin);
                    key += m.vocab()[sp.id].kind == exprgrad::text::piece_kind::byte ? "<" + piece + ">" : piece;
                }
                CHECK(segs.count(key) == 1);
            }
        }
    }
    MESSAGE(with_fallback << " texts needed the fallback, " << without << " did not");
    CHECK(with_fallback > 100);
    CHECK(without > 100);
}

TEST_CASE("entropy without cancellation: exact values of notes T2 at large alpha") {
    // 60-digit values from `python3 tests/tools/tok_entropy_exact.py` (a forward DP over Z and
    // S = Σ weight·score in Python's decimal module with prec = 60, H = log Z − α·S/Z), which prints
    // k, α, log Z, H for the text "ABC"×k:
    struct Row {
        int k;
        double alpha, log_z, entropy;
    };
    const Row rows[] = {
        {1, 0.0, 1.38629436111989057245e+00, 1.38629436111989057245e+00},
        {1, 1.0, 4.42574006293729649286e+00, 1.20067881386913732911e+00},
        {1, 30.0, 1.11000000015230071426e+02, 2.89372511721473289122e-07},
        {20, 30.0, 2.22000000030460159905e+03, 5.78745023442946578243e-06},
        {200, 40.0, 2.96000000000075488060e+04, 1.88756762043476465056e-07},
    };
    const unigram_model m = make_model(t2);
    for (const Row& r : rows) {
        std::string text;
        for (int i = 0; i < r.k; ++i) text += "ABC";
        INFO("ABC x " << r.k << ", alpha = " << r.alpha);
        CHECK(m.log_partition(text, r.alpha) == doctest::Approx(r.log_z).epsilon(1e-14));
        // log Z − α·E[score] had relative errors 3e-6 (k = 1, α = 30) and 1 (k = 200, α = 40: it gave 0).
        CHECK(std::abs(m.entropy(text, r.alpha) - r.entropy) <= 1e-12 * r.entropy);
        const auto st = m.analyze(text, r.alpha, true);
        CHECK(std::abs(st.entropy - r.entropy) <= 1e-12 * r.entropy);
    }
}

TEST_CASE("byte fallback: every byte string is encodable and decodes to itself") {
    const unigram_model m = make_model(t5, {}, 10.0);
    const std::string text = std::string("AB\0\xff", 4) + "CD";
    const auto ids = m.encode(text);
    CHECK(m.decode(ids) == text);
    CHECK(ids.size() == 4);  // AB, \0, \xff, CD
    CHECK(m.vocab()[ids[1]].kind == exprgrad::text::piece_kind::byte);
    CHECK(m.vocab()[ids[1]].score == doctest::Approx(-3.0 - 10.0));  // min score − penalty
    CHECK_THROWS_AS(m.decode(std::vector<exprgrad::text::piece_id>{static_cast<int>(m.size())}), std::out_of_range);
    CHECK(m.decode(std::vector<exprgrad::text::piece_id>{0, 1, 2, 3}).empty());  // control pieces
}
