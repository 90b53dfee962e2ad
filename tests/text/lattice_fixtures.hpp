// Shared helpers of the text tests: small vocabularies, a brute-force enumeration of segmentations that
// does not use the model's trie or lattice code, and statistical tolerances derived from the sample size.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <exprgrad/text/unigram_model.hpp>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace text_test {

using exprgrad::text::model_options;
using exprgrad::text::piece_kind;
using exprgrad::text::piece_span;
using exprgrad::text::unigram_model;
using exprgrad::text::vocabulary;

using PieceScores = std::vector<std::pair<std::string, double>>;

// A native model with the reserved specials and the given pieces, with the library's default fallback
// penalty. The reference tables of the notes assume a lattice of the listed pieces only, which is what the
// native mode gives for every text those pieces can segment (byte-fallback edges exist only otherwise).
inline unigram_model make_model(const PieceScores& pieces, model_options options = {},
                                double penalty = model_options{}.fallback_penalty) {
    vocabulary v = vocabulary::with_specials();
    for (const auto& [text, score] : pieces) v.add(text, score);
    options.fallback_penalty = penalty;
    return unigram_model(std::move(v), options);
}

// All segmentations of `text` into the given pieces, with their scores, by plain recursion.
inline std::map<std::string, double> enumerate(const std::string& text, const PieceScores& pieces) {
    std::map<std::string, double> out;
    std::function<void(std::size_t, std::string, double)> rec = [&](std::size_t pos, std::string key, double score) {
        if (pos == text.size()) {
            out[key] = score;
            return;
        }
        for (const auto& [piece, s] : pieces) {
            if (pos + piece.size() <= text.size() && text.compare(pos, piece.size(), piece) == 0) {
                rec(pos + piece.size(), key.empty() ? piece : key + " " + piece, score + s);
            }
        }
    };
    rec(0, "", 0.0);
    return out;
}

// The native mode's byte-fallback rule, restated by enumeration: the segmentations into the given pieces if
// there are any; otherwise those whose edges are the pieces matching at each position, plus a one-byte
// fallback edge "<c>" scored fallback_score at each position where no piece matches.
inline std::map<std::string, double> enumerate_with_fallback(const std::string& text, const PieceScores& pieces,
                                                             double fallback_score) {
    auto plain = enumerate(text, pieces);
    if (!plain.empty()) return plain;
    std::map<std::string, double> out;
    std::function<void(std::size_t, std::string, double)> rec = [&](std::size_t pos, std::string key, double score) {
        if (pos == text.size()) {
            out[key] = score;
            return;
        }
        bool any = false;
        for (const auto& [piece, s] : pieces) {
            if (pos + piece.size() <= text.size() && text.compare(pos, piece.size(), piece) == 0) {
                any = true;
                rec(pos + piece.size(), key.empty() ? piece : key + " " + piece, score + s);
            }
        }
        if (!any) {
            const std::string fb = "<" + text.substr(pos, 1) + ">";
            rec(pos + 1, key.empty() ? fb : key + " " + fb, score + fallback_score);
        }
    };
    rec(0, "", 0.0);
    return out;
}

// The distribution P(w) ∝ exp(α·score) over an enumeration.
inline std::map<std::string, double> distribution(const std::map<std::string, double>& segs, double alpha) {
    double max_score = -INFINITY;
    for (const auto& [k, s] : segs) max_score = std::max(max_score, alpha * s);
    double z = 0;
    for (const auto& [k, s] : segs) z += std::exp(alpha * s - max_score);
    std::map<std::string, double> p;
    for (const auto& [k, s] : segs) p[k] = std::exp(alpha * s - max_score) / z;
    return p;
}

inline double log_partition_of(const std::map<std::string, double>& segs, double alpha) {
    double max_score = -INFINITY;
    for (const auto& [k, s] : segs) max_score = std::max(max_score, alpha * s);
    double z = 0;
    for (const auto& [k, s] : segs) z += std::exp(alpha * s - max_score);
    return max_score + std::log(z);
}

// "A BC" for spans over text.
inline std::string key_of(const std::string& text, const std::vector<piece_span>& spans) {
    std::string key;
    for (const piece_span& s : spans) {
        if (!key.empty()) key += ' ';
        key += text.substr(s.begin, s.end - s.begin);
    }
    return key;
}

// The upper 1e-6 quantile of χ² with k degrees of freedom (Wilson–Hilferty, z = 4.753): a correct sampler
// fails a test with this threshold about once in a million runs.
inline double chi2_threshold(std::size_t k) {
    const double kk = static_cast<double>(k), z = 4.753;
    const double c = 1.0 - 2.0 / (9.0 * kk) + z * std::sqrt(2.0 / (9.0 * kk));
    return kk * c * c * c;
}

// A max-deviation bound for frequencies from n draws: 5 standard deviations of the worst cell (p = 1/2
// at most), about 6e-7 two-sided per cell.
inline double max_deviation(std::size_t n) { return 5.0 * std::sqrt(0.25 / static_cast<double>(n)); }

// Frequencies of sampled segmentations; `draw` returns the spans of one sample.
template <class Draw>
std::map<std::string, double> frequencies(const std::string& text, std::size_t n, Draw&& draw) {
    std::map<std::string, double> counts;
    for (std::size_t i = 0; i < n; ++i) counts[key_of(text, draw())] += 1.0;
    for (auto& [k, c] : counts) c /= static_cast<double>(n);
    return counts;
}

// χ² statistic of observed frequencies (from n draws) against p; cells missing from p count as failures.
inline double chi2(const std::map<std::string, double>& freq, const std::map<std::string, double>& p, std::size_t n) {
    double stat = 0;
    for (const auto& [k, pk] : p) {
        const auto it = freq.find(k);
        const double f = it == freq.end() ? 0.0 : it->second;
        stat += static_cast<double>(n) * (f - pk) * (f - pk) / pk;
    }
    for (const auto& [k, f] : freq) {
        if (p.find(k) == p.end()) stat += 1e300;  // a segmentation that should not exist
    }
    return stat;
}

inline double worst_deviation(const std::map<std::string, double>& freq, const std::map<std::string, double>& p) {
    double worst = 0;
    for (const auto& [k, pk] : p) {
        const auto it = freq.find(k);
        worst = std::max(worst, std::abs((it == freq.end() ? 0.0 : it->second) - pk));
    }
    for (const auto& [k, f] : freq) {
        if (p.find(k) == p.end()) worst = std::max(worst, f);
    }
    return worst;
}

}  // namespace text_test
