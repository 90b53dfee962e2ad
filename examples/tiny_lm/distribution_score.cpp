#include "distribution_score.hpp"

#include <cmath>
#include <stdexcept>
#include <unordered_map>

namespace tiny_lm {

namespace {

struct counts {
    std::vector<double> uni, first;  // c(x), c(x, ·)
    std::unordered_map<std::uint64_t, double> pair;
    double pieces = 0, pairs = 0;
};

counts count(const std::vector<std::vector<std::int32_t>>& streams, std::size_t V, const char* what) {
    counts c;
    c.uni.assign(V, 0.0);
    c.first.assign(V, 0.0);
    for (const auto& s : streams) {
        for (std::size_t i = 0; i < s.size(); ++i) {
            if (s[i] < 0 || static_cast<std::size_t>(s[i]) >= V)
                throw std::invalid_argument(std::string("piece_kl: ") + what + " piece id " + std::to_string(s[i]) +
                                            " outside [0, " + std::to_string(V) + ")");
            c.uni[static_cast<std::size_t>(s[i])] += 1;
            c.pieces += 1;
            if (i > 0) {
                const auto x = static_cast<std::uint64_t>(s[i - 1]), y = static_cast<std::uint64_t>(s[i]);
                c.pair[x * V + y] += 1;
                c.first[x] += 1;
                c.pairs += 1;
            }
        }
    }
    return c;
}

}  // namespace

distribution_match piece_kl(const std::vector<std::vector<std::int32_t>>& reference,
                            const std::vector<std::vector<std::int32_t>>& samples, std::size_t V) {
    if (V == 0) throw std::invalid_argument("piece_kl: an empty vocabulary (V = 0)");
    const counts r = count(reference, V, "reference"), s = count(samples, V, "sample");
    if (r.pairs == 0) throw std::invalid_argument("piece_kl: the reference has no pair of adjacent pieces");
    const double Vd = static_cast<double>(V);
    auto q1 = [&](std::size_t x) { return (s.uni[x] + 0.5) / (s.pieces + 0.5 * Vd); };
    distribution_match m;
    m.reference_pieces = static_cast<std::size_t>(r.pieces);
    m.sample_pieces = static_cast<std::size_t>(s.pieces);
    for (std::size_t x = 0; x < V; ++x)
        if (r.uni[x] > 0) {
            const double p = r.uni[x] / r.pieces;
            m.kl_unigram += p * std::log(p / q1(x));
        }
    for (const auto& [key, c] : r.pair) {
        const std::size_t x = key / V, y = key % V;
        const auto it = s.pair.find(key);
        const double cs = it == s.pair.end() ? 0.0 : it->second;
        const double q = q1(x) * (cs + q1(y)) / (s.first[x] + 1.0);
        const double p = c / r.pairs;
        m.kl_bigram += p * std::log(p / q);
    }
    return m;
}

std::vector<std::int32_t> viterbi_resegment(const exprgrad::text::unigram_model& tok,
                                            const std::vector<std::int32_t>& sampled, std::int32_t eos) {
    std::vector<std::int32_t> out;
    std::vector<exprgrad::text::piece_id> line;
    auto flush = [&] {
        if (line.empty()) return;
        for (const auto id : tok.encode(tok.decode(line))) out.push_back(static_cast<std::int32_t>(id));
        line.clear();
    };
    for (const std::int32_t id : sampled) {
        if (id == eos) {
            flush();
            out.push_back(eos);
        } else {
            line.push_back(static_cast<exprgrad::text::piece_id>(id));
        }
    }
    flush();
    return out;
}

}  // namespace tiny_lm
