// Checks piece_kl (distribution_score.hpp) against values worked by hand from its definition, and its
// refusals. Exit 0 when every check passes; each failure is printed.
#include "distribution_score.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace {

int failures = 0;

void check(bool ok, const char* what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    failures += !ok;
}

bool near(double a, double b) { return std::abs(a - b) <= 1e-12 * std::max(1.0, std::abs(b)); }

template <class F>
bool throws(F f) {
    try {
        f();
    } catch (const std::invalid_argument&) {
        return true;
    }
    return false;
}

}  // namespace

int main() {
    using tiny_lm::piece_kl;
    // V = 2. Reference 0 1 0 1: P1 = (1/2, 1/2); pairs (0,1) twice, (1,0) once: P2 = (2/3, 1/3).
    // Samples 0 0 1: Q1(0) = (2 + 1/2) / (3 + 1) = 0.625, Q1(1) = 0.375; pairs (0,0), (0,1): c(0,.) = 2, c(1,.) = 0.
    // Q2(0,1) = 0.625 (1 + 0.375) / 3, Q2(1,0) = 0.375 (0 + 0.625) / 1.
    // KL1 = 1/2 ln(0.5/0.625) + 1/2 ln(0.5/0.375); KL2 = 2/3 ln((2/3)/Q2(0,1)) + 1/3 ln((1/3)/Q2(1,0)).
    const double q01 = 0.625 * 1.375 / 3, q10 = 0.375 * 0.625;
    const double kl1 = 0.5 * std::log(0.5 / 0.625) + 0.5 * std::log(0.5 / 0.375);
    const double kl2 = 2.0 / 3 * std::log(2.0 / 3 / q01) + 1.0 / 3 * std::log(1.0 / 3 / q10);
    const auto m = piece_kl({{0, 1, 0, 1}}, {{0, 0, 1}}, 2);
    check(near(m.kl_unigram, kl1) && near(m.kl_bigram, kl2), "the worked example (V = 2)");
    check(m.reference_pieces == 4 && m.sample_pieces == 3, "the counts");
    // Pairs never cross two streams: samples {0} and {1} have no pair, so Q2(x, y) = Q1(x) Q1(y) = 1/4.
    const auto apart = piece_kl({{0, 1, 0, 1}}, {{0}, {1}}, 2);
    check(near(apart.kl_unigram, 0.0) &&
              near(apart.kl_bigram, 2.0 / 3 * std::log(2.0 / 3 / 0.25) + 1.0 / 3 * std::log(1.0 / 3 / 0.25)),
          "no pair across streams");
    // Many alternating samples: Q1 -> (1/2, 1/2), Q2 -> 1/2 on (0,1) and (1,0). The reference 0 1 0 1 0 1 has
    // P1 = (1/2, 1/2) and P2 = (3/5, 2/5): KL1 -> 0, KL2 -> 3/5 ln(6/5) + 2/5 ln(4/5), up to the smoothing.
    std::vector<std::int32_t> many;
    for (int i = 0; i < 100000; ++i) many.push_back(i % 2);
    const auto close = piece_kl({{0, 1, 0, 1, 0, 1}}, {many}, 2);
    check(close.kl_unigram < 1e-6 && std::abs(close.kl_bigram - (0.6 * std::log(1.2) + 0.4 * std::log(0.8))) < 1e-4,
          "many alternating samples: the limit");
    // A sample that never leaves piece 0 is far from an alternating reference.
    const auto far = piece_kl({{0, 1, 0, 1, 0, 1, 0}}, {std::vector<std::int32_t>(1000, 0)}, 2);
    check(far.kl_bigram > 3 && far.kl_unigram > 1, "a sample stuck on one piece: far");
    check(throws([] { piece_kl({{0, 1}}, {{0}}, 0); }), "V = 0 refused");
    check(throws([] { piece_kl({{0, 2}}, {{0}}, 2); }), "a reference id outside [0, V) refused");
    check(throws([] { piece_kl({{0, 1}}, {{-1}}, 2); }), "a negative sample id refused");
    check(throws([] { piece_kl({{0}, {1}}, {{0}}, 2); }), "a reference without a pair refused");
    return failures == 0 ? 0 : 1;
}
