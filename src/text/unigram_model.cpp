// The lattice algorithms of the unigram tokenizer (include/exprgrad/text/unigram_model.hpp).
//
// Every algorithm walks the lattice "push" style: positions s in order (left to right, or right to left for
// backward quantities), and from each s the edges (s, e) that the mode allows, found by walking the trie.
// Edges into one end e therefore arrive with decreasing length (increasing s), which is the tie order of
// native and SentencePiece Viterbi; the jieba mode runs right to left as jieba does. Nothing is stored per
// edge: the arrays are O(n) (O(n·k) for k-best), in thread-local scratch reused across calls.
#include <cstdio>
#include <algorithm>
#include <cmath>
#include <exprgrad/format.hpp>
#include <exprgrad/text/unigram_model.hpp>
#include <exprgrad/text/utf8.hpp>
#include <limits>
#include <stdexcept>
#include <string>

namespace exprgrad::text {

namespace {


constexpr double neg_inf = -std::numeric_limits<double>::infinity();
constexpr std::uint32_t none = 0xFFFFFFFFu;

// log(exp(x) + exp(y)) for y finite; x may be −∞.
inline double log_add(double x, double y) noexcept {
    if (x == neg_inf) return y;
    return x > y ? x + std::log1p(std::exp(y - x)) : y + std::log1p(std::exp(x - y));
}

// One edge (s, e) gathered by the backward pass; lw = α·score + bwd[e].
struct out_edge {
    std::size_t end;
    piece_id id;
    double score;
    double lw;
};

struct scratch_buffers {
    std::vector<double> fwd, bwd;
    std::vector<float> fwd32;
    std::vector<std::uint32_t> from;
    std::vector<piece_id> via;
    std::vector<unsigned char> boundary;
    std::vector<unsigned char> reach;
    std::vector<double> ent, exs;
    std::vector<out_edge> out_edges;
};

scratch_buffers& scratch() {
    thread_local scratch_buffers s;
    return s;
}

void check_alpha(double alpha, const char* what, bool allow_negative) {
    if (std::isnan(alpha) || alpha == std::numeric_limits<double>::infinity()) {
        throw std::invalid_argument(std::string("unigram_model::") + what + ": alpha is " +
                                    (std::isnan(alpha) ? "NaN" : "+inf") + "; it must be finite");
    }
    if (alpha > max_alpha) {
        throw std::invalid_argument(std::string("unigram_model::") + what + ": alpha = " + format_number(alpha) +
                                    " > 1e200; alpha * score sums would overflow (use alpha < 0 for Viterbi)");
    }
    if (!allow_negative && alpha < 0) {
        throw std::invalid_argument(std::string("unigram_model::") + what + ": alpha = " + format_number(alpha) +
                                    " < 0; the segmentation distribution needs alpha >= 0");
    }
}

void check_length(std::string_view text) {
    if (text.size() >= none) throw std::length_error("unigram_model: text longer than 2^32 - 2 bytes");
}

}  // namespace

// The mode's edge set over one text. is_start(s): edges may leave s. edges_from(s, f) calls
// f(e, id, score) for every edge (s, e) with increasing e.
//
// Native byte fallback: the regular edges are the normal pieces (one-byte pieces at every position, longer
// ones where the trie matches, within code points' boundaries if asked). If they segment the text, they are
// the whole lattice. Otherwise (`fallback`) a byte-fallback edge (s, s + 1) is added at every position s
// where no regular edge starts; since every position then has an outgoing edge, n is reachable.
template <mode M>
struct lattice_walker {
    const unigram_model& m;
    const unsigned char* t;
    std::size_t n;
    const unsigned char* boundary;  // [n + 1]; null in the native mode without utf8_boundaries
    bool fallback = false;          // native: the regular pieces do not segment the text

    lattice_walker(const unigram_model& model, std::string_view text) : m(model), n(text.size()), boundary(nullptr) {
        t = reinterpret_cast<const unsigned char*>(text.data());
        const bool need = M != mode::native || m.options_.utf8_boundaries;
        if (need) compute_boundaries();
        if constexpr (M == mode::native) fallback = !regular_pieces_segment();
    }

    void compute_boundaries() {
        auto& b = scratch().boundary;
        b.assign(n + 1, 0);
        for (std::size_t i = 0; i < n;) {
            b[i] = 1;
            std::size_t len;
            if constexpr (M == mode::sentencepiece) {
                len = std::min(sentencepiece_char_length(t[i]), n - i);
            } else {
                len = utf8_sequence_length(t + i, n - i);
                if (len == 0) len = 1;  // an invalid byte is a character of its own
            }
            i += len;
        }
        b[n] = 1;
        boundary = b.data();
    }

    // Native: calls f(e, id, score) for the regular edges (s, e), with increasing e; returns whether any.
    template <class F>
    bool regular_edges_from(std::size_t s, F&& f) const {
        const unsigned char b = t[s];
        bool any = false;
        if (m.byte_is_normal_[b]) {
            const piece_id byte = m.byte_id_[b];
            f(s + 1, byte, m.scores_[static_cast<std::size_t>(byte)]);
            any = true;
        }
        const std::size_t room = std::min(n - s, m.trie_.max_key_length());
        if (boundary == nullptr) {
            m.trie_.for_each_prefix(t + s, room, [&](std::size_t len, piece_id id) {
                f(s + len, id, m.scores_[static_cast<std::size_t>(id)]);
                any = true;
            });
        } else if (boundary[s]) {
            m.trie_.for_each_prefix(t + s, room, [&](std::size_t len, piece_id id) {
                if (!boundary[s + len]) return;
                f(s + len, id, m.scores_[static_cast<std::size_t>(id)]);
                any = true;
            });
        }
        return any;
    }

    // Native: whether the regular edges alone form a path 0 → n (one reachability pass, skipped when every
    // byte of the text has a one-byte normal piece).
    bool regular_pieces_segment() const {
        bool all_bytes = true;
        for (std::size_t i = 0; i < n && all_bytes; ++i) all_bytes = m.byte_is_normal_[t[i]];
        if (all_bytes) return true;
        auto& reach = scratch().reach;
        reach.assign(n + 1, 0);
        reach[0] = 1;
        for (std::size_t s = 0; s < n; ++s) {
            if (reach[s]) regular_edges_from(s, [&](std::size_t e, piece_id, double) { reach[e] = 1; });
        }
        return reach[n] != 0;
    }

    // Native: single bytes leave every position. Compatible modes: only character starts.
    bool is_start(std::size_t s) const noexcept { return M == mode::native || boundary[s]; }

    // The length of the character at s (compatible modes).
    std::size_t char_length(std::size_t s) const noexcept {
        std::size_t e = s + 1;
        while (e < n && !boundary[e]) ++e;
        return e - s;
    }

    template <class F>
    void edges_from(std::size_t s, F&& f) const {
        const unsigned char b = t[s];
        if constexpr (M == mode::native) {
            // The fallback edge (s, s + 1) comes only where no regular edge starts, so e still increases.
            if (!regular_edges_from(s, f) && fallback) {
                const piece_id byte = m.byte_id_[b];
                f(s + 1, byte, m.scores_[static_cast<std::size_t>(byte)]);
            }
        } else {
            const std::size_t room = std::min(n - s, m.trie_.max_key_length());
            const std::size_t clen = char_length(s);
            bool has_char_piece = false;  // sentencepiece: a piece of exactly one character; jieba: any word
            if (clen == 1 && m.byte_is_normal_[b]) {
                const piece_id byte = m.byte_id_[b];
                f(s + 1, byte, m.scores_[static_cast<std::size_t>(byte)]);
                has_char_piece = true;
            }
            m.trie_.for_each_prefix(t + s, room, [&](std::size_t len, piece_id id) {
                if constexpr (M == mode::sentencepiece) {
                    // SentencePiece does not check where a piece ends (pieces are whole characters).
                    if (len == clen) has_char_piece = true;
                    f(s + len, id, m.scores_[static_cast<std::size_t>(id)]);
                } else {
                    if (!boundary[s + len]) return;
                    has_char_piece = true;
                    f(s + len, id, m.scores_[static_cast<std::size_t>(id)]);
                }
            });
            if (!has_char_piece) f(s + clen, unknown_id, m.unknown_score_);
        }
    }
};

namespace {

// Follows from/via back from n.
std::vector<piece_span> backtrack(std::size_t n, const std::vector<std::uint32_t>& from,
                                  const std::vector<piece_id>& via) {
    std::vector<piece_span> out;
    for (std::size_t e = n; e > 0;) {
        const std::uint32_t s = from[e];
        // Unreachable only if every path's weight underflowed to zero (α·score overflowing to -inf).
        if (s == none)
            throw std::domain_error("unigram_model: no segmentation of finite score reaches byte " + std::to_string(e));
        out.push_back(piece_span{s, static_cast<std::uint32_t>(e), via[e]});
        e = s;
    }
    std::reverse(out.begin(), out.end());
    return out;
}

// Native Viterbi, left to right, in double.
template <mode M>
std::vector<piece_span> viterbi_forward(const lattice_walker<M>& w) {
    auto& sc = scratch();
    auto& best = sc.fwd;
    best.assign(w.n + 1, 0.0);
    sc.from.assign(w.n + 1, none);
    sc.via.assign(w.n + 1, unknown_id);
    sc.from[0] = 0;
    for (std::size_t s = 0; s < w.n; ++s) {
        if (sc.from[s] == none || !w.is_start(s)) continue;
        const double here = best[s];
        w.edges_from(s, [&](std::size_t e, piece_id id, double score) {
            const double c = here + score;
            // The first candidate (the longest piece into e) is taken; a later one must be strictly better.
            if (sc.from[e] == none || c > best[e]) {
                best[e] = c;
                sc.from[e] = static_cast<std::uint32_t>(s);
                sc.via[e] = id;
            }
        });
    }
    return backtrack(w.n, sc.from, sc.via);
}

// SentencePiece 0.1.97's Model::EncodeOptimized with its exact arithmetic. The best score of each position
// is stored as float. A piece candidate is computed in double: `score` there is a conditional expression
// whose other branch (the user-defined pieces' length * max_score_ - 0.1) is a double, so the piece's float
// score and the float best score of the start position are added as doubles and compared, as doubles, with
// the stored float; the winner is stored rounded to float. The unknown-character candidate is float + float
// (unk_score_ and the best score are both float), compared in float. Ties (equal values) keep the earlier
// candidate, i.e. the longest last piece.
std::vector<piece_span> viterbi_sentencepiece(const lattice_walker<mode::sentencepiece>& w,
                                              const std::vector<float>& scores, float unknown) {
    auto& sc = scratch();
    auto& best = sc.fwd32;
    best.assign(w.n + 1, 0.0f);
    sc.from.assign(w.n + 1, none);
    sc.via.assign(w.n + 1, unknown_id);
    sc.from[0] = 0;
    for (std::size_t s = 0; s < w.n; ++s) {
        if (sc.from[s] == none || !w.is_start(s)) continue;
        const float here = best[s];
        w.edges_from(s, [&](std::size_t e, piece_id id, double) {
            bool better;
            float stored;
            if (id == unknown_id) {
                const float c = unknown + here;
                better = c > best[e];
                stored = c;
            } else {
                const double c = static_cast<double>(scores[static_cast<std::size_t>(id)]) + static_cast<double>(here);
                better = c > static_cast<double>(best[e]);
                stored = static_cast<float>(c);
            }
            if (sc.from[e] == none || better) {
                best[e] = stored;
                sc.from[e] = static_cast<std::uint32_t>(s);
                sc.via[e] = id;
            }
        });
    }
    return backtrack(w.n, sc.from, sc.via);
}

// jieba's route: right to left, best[s] = max over words (s, e) of score + best[e]; ties go to the larger e.
std::vector<piece_span> viterbi_jieba(const lattice_walker<mode::jieba>& w) {
    auto& sc = scratch();
    sc.fwd.assign(w.n + 1, neg_inf);
    sc.from.assign(w.n + 1, none);  // here: the end of the word chosen at s
    sc.via.assign(w.n + 1, unknown_id);
    sc.fwd[w.n] = 0;
    for (std::size_t s = w.n; s-- > 0;) {
        if (!w.is_start(s)) continue;
        w.edges_from(s, [&](std::size_t e, piece_id id, double score) {
            if (sc.fwd[e] == neg_inf) return;
            const double c = score + sc.fwd[e];
            // Edges come with increasing e, so ">=" lets the longer word win a tie, like jieba's max over
            // (score, end) tuples.
            if (sc.from[s] == none || c >= sc.fwd[s]) {
                sc.fwd[s] = c;
                sc.from[s] = static_cast<std::uint32_t>(e);
                sc.via[s] = id;
            }
        });
    }
    std::vector<piece_span> out;
    for (std::size_t s = 0; s < w.n;) {
        const std::uint32_t e = sc.from[s];
        out.push_back(piece_span{static_cast<std::uint32_t>(s), e, sc.via[s]});
        s = e;
    }
    return out;
}

// Forward log partition functions into sc.fwd: fwd[e] = log Σ over paths 0 → e of exp(α·score).
template <mode M>
void forward(const lattice_walker<M>& w, double alpha) {
    auto& f = scratch().fwd;
    f.assign(w.n + 1, neg_inf);
    f[0] = 0;
    for (std::size_t s = 0; s < w.n; ++s) {
        if (f[s] == neg_inf || !w.is_start(s)) continue;
        const double here = f[s];
        w.edges_from(s, [&](std::size_t e, piece_id, double score) { f[e] = log_add(f[e], here + alpha * score); });
    }
}

// Backward log partition functions into sc.bwd: bwd[s] = log Σ over paths s → n; if `visit` is given,
// visit(s, e, id, score, log posterior of the edge) for every edge on some path (needs sc.fwd); with
// `moments`, also the entropy sc.ent[s] and expected score sc.exs[s] of the distribution of paths s → n.
//
// The edges leaving s are gathered first (at most m + 1 of them). With k the edge of largest
// lw = α·score + bwd[e] and r = Σ_{j≠k} exp(lw_j − lw_k): bwd[s] = lw_k + log1p(r), the posterior of edge j
// among those leaving s is q_j = exp(lw_j − lw_k) / (1 + r), and −log q_j = lw_k − lw_j + log1p(r) (for k:
// log1p(r)), so each term is computed without cancellation. The entropy follows from the chain rule over
// the first edge of the path, with non-negative terms only:
//     H[s] = Σ_j q_j · (H[e_j] − log q_j),   E[s] = Σ_j q_j · (score_j + E[e_j]).
// (This is the mirror of the forward recursion H[e] = Σ_s q(s,e)·(H[s] − log q(s,e)) over the posterior of
// the last edge; the backward form shares the pass that computes the marginals.)
template <mode M, class Visit>
void backward(const lattice_walker<M>& w, double alpha, Visit&& visit, bool moments = false) {
    auto& sc = scratch();
    auto& b = sc.bwd;
    b.assign(w.n + 1, neg_inf);
    b[w.n] = 0;
    if (moments) {
        sc.ent.assign(w.n + 1, 0.0);
        sc.exs.assign(w.n + 1, 0.0);
    }
    const double log_z = sc.fwd.empty() ? 0.0 : sc.fwd[w.n];
    auto& out = sc.out_edges;
    for (std::size_t s = w.n; s-- > 0;) {
        if (!w.is_start(s)) continue;
        out.clear();
        std::size_t k = 0;
        w.edges_from(s, [&](std::size_t e, piece_id id, double score) {
            if (b[e] == neg_inf) return;
            const double lw = alpha * score + b[e];
            if (!out.empty() && lw > out[k].lw) k = out.size();
            out.push_back(out_edge{e, id, score, lw});
        });
        if (out.empty()) continue;
        const double top = out[k].lw;
        double r = 0.0;
        for (std::size_t j = 0; j < out.size(); ++j) {
            if (j != k) r += std::exp(out[j].lw - top);
        }
        const double l1r = std::log1p(r);
        b[s] = top + l1r;
        if (moments) {
            double h = 0.0, x = 0.0;
            for (std::size_t j = 0; j < out.size(); ++j) {
                const out_edge& d = out[j];
                const double q = (j == k ? 1.0 : std::exp(d.lw - top)) / (1.0 + r);
                const double neg_log_q = j == k ? l1r : (top - d.lw) + l1r;
                h += q * (sc.ent[d.end] + neg_log_q);
                x += q * (d.score + sc.exs[d.end]);
            }
            sc.ent[s] = h;
            sc.exs[s] = x;
        }
        if constexpr (!std::is_same_v<std::decay_t<Visit>, std::nullptr_t>) {
            if (sc.fwd[s] != neg_inf) {
                for (const out_edge& d : out) visit(s, d.end, d.id, d.score, sc.fwd[s] + d.lw - log_z);
            }
        }
    }
}

template <mode M>
std::vector<piece_span> sample_reservoir(const lattice_walker<M>& w, double alpha, rng& gen) {
    auto& sc = scratch();
    auto& lz = sc.fwd;
    lz.assign(w.n + 1, neg_inf);
    sc.from.assign(w.n + 1, none);
    sc.via.assign(w.n + 1, unknown_id);
    lz[0] = 0;
    for (std::size_t s = 0; s < w.n; ++s) {
        if (lz[s] == neg_inf || !w.is_start(s)) continue;
        const double here = lz[s];
        w.edges_from(s, [&](std::size_t e, piece_id id, double score) {
            const double c = here + alpha * score;  // prefix log partition function + α·score
            if (lz[e] == neg_inf) {
                // The first candidate has probability w/Z = 1: taken without a draw.
                lz[e] = c;
                sc.from[e] = static_cast<std::uint32_t>(s);
                sc.via[e] = id;
                return;
            }
            // New Z = Z + w; accept with probability w / (Z + w), computed from one exp.
            const double d = c - lz[e];
            double accept;
            if (d > 0) {
                const double q = std::exp(-d);
                lz[e] = c + std::log1p(q);
                accept = 1.0 / (1.0 + q);
            } else {
                const double q = std::exp(d);
                lz[e] += std::log1p(q);
                accept = q / (1.0 + q);
            }
            if (gen.uniform() < accept) {
                sc.from[e] = static_cast<std::uint32_t>(s);
                sc.via[e] = id;
            }
        });
    }
    return backtrack(w.n, sc.from, sc.via);
}

template <mode M>
std::vector<piece_span> sample_ffbs(const lattice_walker<M>& w, double alpha, rng& gen) {
    auto& sc = scratch();
    sc.fwd.clear();
    backward(w, alpha, nullptr);
    const auto& b = sc.bwd;
    std::vector<piece_span> out;
    for (std::size_t s = 0; s < w.n;) {
        const double u = gen.uniform();
        double acc = 0;
        piece_span chosen{}, last{};
        bool done = false, any = false;
        w.edges_from(s, [&](std::size_t e, piece_id id, double score) {
            if (done || b[e] == neg_inf) return;
            acc += std::exp(alpha * score + b[e] - b[s]);
            last = piece_span{static_cast<std::uint32_t>(s), static_cast<std::uint32_t>(e), id};
            any = true;
            if (u < acc) {
                chosen = last;
                done = true;
            }
        });
        // The probabilities sum to 1 up to rounding: a u beyond the rounded sum takes the last edge.
        if (!done) chosen = last;
        if (!any) break;  // unreachable: every start has an edge on a path to n
        out.push_back(chosen);
        s = chosen.end;
    }
    return out;
}

template <mode M>
std::vector<piece_span> sample_biased(const lattice_walker<M>& w, double alpha, rng& gen) {
    auto& sc = scratch();
    auto& path = sc.fwd;  // the score of the path held at each position (not a partition function)
    path.assign(w.n + 1, 0.0);
    sc.from.assign(w.n + 1, none);
    sc.via.assign(w.n + 1, unknown_id);
    sc.from[0] = 0;
    for (std::size_t s = 0; s < w.n; ++s) {
        if (sc.from[s] == none || !w.is_start(s)) continue;
        const double here = path[s];
        w.edges_from(s, [&](std::size_t e, piece_id id, double score) {
            const double c = here + score;
            bool take = sc.from[e] == none;
            if (!take) take = gen.uniform() < 1.0 / (1.0 + std::exp(-alpha * (c - path[e])));
            if (take) {
                path[e] = c;
                sc.from[e] = static_cast<std::uint32_t>(s);
                sc.via[e] = id;
            }
        });
    }
    return backtrack(w.n, sc.from, sc.via);
}

struct nbest_entry {
    double score;
    std::uint32_t prev_pos;
    std::uint32_t prev_rank;
    piece_id id;
};

template <mode M>
std::vector<scored_segmentation> nbest_impl(const lattice_walker<M>& w, std::size_t k) {
    std::vector<scored_segmentation> result;
    if (k == 0) return result;
    const std::size_t n = w.n;
    if (k > std::numeric_limits<std::uint32_t>::max() / 2 || (n + 1) > std::vector<nbest_entry>().max_size() / k) {
        throw std::length_error("unigram_model::nbest: n too large for this text");
    }
    std::vector<nbest_entry> table((n + 1) * k);
    std::vector<std::uint32_t> count(n + 1, 0);
    table[0] = nbest_entry{0.0, none, 0, unknown_id};
    count[0] = 1;
    for (std::size_t s = 0; s < n; ++s) {
        if (count[s] == 0 || !w.is_start(s)) continue;
        w.edges_from(s, [&](std::size_t e, piece_id id, double score) {
            nbest_entry* list = &table[e * k];
            for (std::uint32_t r = 0; r < count[s]; ++r) {
                const double c = table[s * k + r].score + score;
                std::uint32_t& cnt = count[e];
                if (cnt == k && !(c > list[cnt - 1].score)) break;  // the rest of s's list is no better
                // Insert after every entry at least as good: the earlier-found path wins a tie.
                std::uint32_t pos = cnt < k ? cnt : cnt - 1;
                while (pos > 0 && list[pos - 1].score < c) {
                    if (pos < k) list[pos] = list[pos - 1];
                    --pos;
                }
                list[pos] = nbest_entry{c, static_cast<std::uint32_t>(s), r, id};
                if (cnt < k) ++cnt;
            }
        });
    }
    for (std::uint32_t r = 0; r < count[n]; ++r) {
        scored_segmentation seg;
        seg.score = table[n * k + r].score;
        std::size_t e = n;
        std::uint32_t rank = r;
        while (e > 0) {
            const nbest_entry& entry = table[e * k + rank];
            seg.spans.push_back(piece_span{entry.prev_pos, static_cast<std::uint32_t>(e), entry.id});
            e = entry.prev_pos;
            rank = entry.prev_rank;
        }
        std::reverse(seg.spans.begin(), seg.spans.end());
        result.push_back(std::move(seg));
    }
    return result;
}

}  // namespace

unigram_model::unigram_model(vocabulary vocab, model_options options) : vocab_(std::move(vocab)), options_(options) {
    if (!std::isfinite(options_.fallback_penalty)) {
        throw std::invalid_argument("unigram_model: fallback_penalty is not finite");
    }
    double min_normal = std::numeric_limits<double>::infinity();
    for (const piece& p : vocab_.pieces()) {
        if (p.kind == piece_kind::normal) min_normal = std::min(min_normal, p.score);
    }
    if (min_normal == std::numeric_limits<double>::infinity()) min_normal = 0.0;

    // A SentencePiece vocabulary with byte pieces comes from a model trained with --byte_fallback=true.
    bool had_byte_pieces = false;
    for (const piece& p : vocab_.pieces()) had_byte_pieces = had_byte_pieces || p.kind == piece_kind::byte;
    spm_byte_fallback_ = options_.mode == mode::sentencepiece && had_byte_pieces;

    // Byte fallback: every byte value gets a piece (find() prefers the normal one-byte piece).
    for (unsigned b = 0; b < 256; ++b) {
        const std::string one(1, static_cast<char>(b));
        auto id = vocab_.find(one);
        if (!id) id = vocab_.add(one, min_normal - options_.fallback_penalty, piece_kind::byte);
        byte_id_[b] = *id;
        byte_is_normal_[b] = vocab_[*id].kind == piece_kind::normal;
        const auto byte_piece = vocab_.find_byte(static_cast<unsigned char>(b));
        unknown_byte_id_[b] = spm_byte_fallback_ && byte_piece ? *byte_piece : *id;
    }

    std::vector<std::pair<std::string, std::int32_t>> keys;
    scores_.resize(vocab_.size());
    scores_f32_.resize(vocab_.size());
    for (std::size_t i = 0; i < vocab_.size(); ++i) {
        const piece& p = vocab_.pieces()[i];
        scores_[i] = p.score;
        scores_f32_[i] = static_cast<float>(p.score);
        if (p.kind == piece_kind::normal && p.text.size() >= 2) keys.emplace_back(p.text, static_cast<std::int32_t>(i));
    }
    trie_ = prefix_matcher(std::move(keys));

    switch (options_.mode) {
        case mode::native:
            unknown_score_ = min_normal - options_.fallback_penalty;
            break;
        case mode::sentencepiece:
            // float arithmetic, as SentencePiece's `min_score() - kUnkPenalty`
            unknown_score_ =
                static_cast<double>(static_cast<float>(min_normal) - static_cast<float>(options_.fallback_penalty));
            break;
        case mode::jieba:
            unknown_score_ =
                std::isnan(options_.unknown_score) ? min_normal - options_.fallback_penalty : options_.unknown_score;
            break;
    }
    if (!(std::abs(unknown_score_) <= max_abs_score)) {
        throw std::invalid_argument("unigram_model: the unknown piece's score " + format_number(unknown_score_) +
                                    " is outside [-1e30, 1e30] (lowest normal score minus fallback_penalty)");
    }
}

void unigram_model::set_score(piece_id id, double score) {
    if (vocab_.at(id).kind == piece_kind::control) {
        throw std::invalid_argument("unigram_model::set_score: piece " + std::to_string(id) + " is a control piece");
    }
    vocab_.set_score(id, score);
    scores_[static_cast<std::size_t>(id)] = score;
    scores_f32_[static_cast<std::size_t>(id)] = static_cast<float>(score);
}

namespace {

// Calls f(walker) with the lattice walker of the model's mode.
template <class F>
decltype(auto) with_walker(const unigram_model& m, std::string_view text, F&& f) {
    switch (m.options().mode) {
        case mode::native:
            return f(lattice_walker<mode::native>(m, text));
        case mode::sentencepiece:
            return f(lattice_walker<mode::sentencepiece>(m, text));
        case mode::jieba:
            break;
    }
    return f(lattice_walker<mode::jieba>(m, text));
}

}  // namespace

std::vector<piece_span> unigram_model::encode_spans(std::string_view text) const {
    check_length(text);
    switch (options_.mode) {
        case mode::native:
            return viterbi_forward(lattice_walker<mode::native>(*this, text));
        case mode::sentencepiece:
            return expand_unknown(text, viterbi_sentencepiece(lattice_walker<mode::sentencepiece>(*this, text),
                                                              scores_f32_, static_cast<float>(unknown_score_)));
        case mode::jieba:
            break;
    }
    return viterbi_jieba(lattice_walker<mode::jieba>(*this, text));
}

std::vector<piece_span> unigram_model::expand_unknown(std::string_view text, std::vector<piece_span> spans) const {
    if (!spm_byte_fallback_) return spans;
    bool any = false;
    for (const piece_span& s : spans) any = any || s.id == unknown_id;
    if (!any) return spans;
    std::vector<piece_span> out;
    out.reserve(spans.size() + 8);
    for (const piece_span& s : spans) {
        if (s.id != unknown_id) {
            out.push_back(s);
            continue;
        }
        for (std::uint32_t i = s.begin; i < s.end; ++i)
            out.push_back(piece_span{i, i + 1, unknown_byte_id_[static_cast<unsigned char>(text[i])]});
    }
    return out;
}

std::vector<piece_id> unigram_model::encode(std::string_view text) const { return ids_of(text, encode_spans(text)); }

std::vector<piece_span> unigram_model::sample_spans(std::string_view text, double alpha, rng& gen, sampler how) const {
    check_alpha(alpha, "sample", true);
    if (alpha < 0) return encode_spans(text);
    check_length(text);
    return expand_unknown(text, with_walker(*this, text, [&](const auto& w) {
                              switch (how) {
                                  case sampler::reservoir:
                                      return sample_reservoir(w, alpha, gen);
                                  case sampler::ffbs:
                                      return sample_ffbs(w, alpha, gen);
                                  case sampler::biased_sigmoid:
                                      break;
                              }
                              return sample_biased(w, alpha, gen);
                          }));
}

std::vector<piece_id> unigram_model::sample(std::string_view text, double alpha, rng& gen, sampler how) const {
    return ids_of(text, sample_spans(text, alpha, gen, how));
}

double unigram_model::log_partition(std::string_view text, double alpha) const {
    check_alpha(alpha, "log_partition", false);
    check_length(text);
    return with_walker(*this, text, [&](const auto& w) {
        forward(w, alpha);
        return scratch().fwd[w.n];
    });
}

lattice_stats unigram_model::analyze(std::string_view text, double alpha, std::span<double> accumulate,
                                     double weight) const {
    check_alpha(alpha, "analyze", false);
    check_length(text);
    if (!accumulate.empty() && accumulate.size() != vocab_.size()) {
        throw std::invalid_argument("unigram_model::analyze: accumulator has " + std::to_string(accumulate.size()) +
                                    " entries, the vocabulary " + std::to_string(vocab_.size()));
    }
    lattice_stats stats;
    auto run = [&](const auto& w) {
        forward(w, alpha);
        auto& sc = scratch();
        stats.log_partition = sc.fwd[w.n];
        if (accumulate.empty()) {
            backward(w, alpha, nullptr, true);
        } else {
            backward(
                w, alpha,
                [&](std::size_t s, std::size_t e, piece_id id, double, double log_post) {
                    const double p = std::exp(log_post);
                    if (id == unknown_id) {
                        for (std::size_t i = s; i < e; ++i)
                            accumulate[static_cast<std::size_t>(unknown_byte_id_[w.t[i]])] += weight * p;
                    } else {
                        accumulate[static_cast<std::size_t>(id)] += weight * p;
                    }
                },
                true);
        }
        // Unreachable end (every path's weight underflowed): no distribution, report 0.
        stats.entropy = sc.bwd[0] == neg_inf ? 0.0 : sc.ent[0];
        stats.expected_score = sc.bwd[0] == neg_inf ? 0.0 : sc.exs[0];
    };
    with_walker(*this, text, run);
    return stats;
}

lattice_stats unigram_model::analyze(std::string_view text, double alpha, bool with_marginals) const {
    if (!with_marginals) return analyze(text, alpha, std::span<double>{}, 0.0);
    std::vector<double> m(vocab_.size(), 0.0);
    lattice_stats stats = analyze(text, alpha, std::span<double>(m), 1.0);
    stats.marginals = std::move(m);
    return stats;
}

std::vector<double> unigram_model::marginals(std::string_view text, double alpha) const {
    check_alpha(alpha, "marginals", false);
    return analyze(text, alpha, true).marginals;
}

double unigram_model::entropy(std::string_view text, double alpha) const {
    check_alpha(alpha, "entropy", false);
    return analyze(text, alpha, false).entropy;
}

std::vector<scored_segmentation> unigram_model::nbest(std::string_view text, std::size_t n) const {
    check_length(text);
    return with_walker(*this, text, [&](const auto& w) { return nbest_impl(w, n); });
}

double unigram_model::score(std::span<const piece_span> spans) const {
    double total = 0.0;
    for (const piece_span& s : spans) {
        if (s.id == unknown_id) {
            total += unknown_score_;
        } else {
            vocab_.at(s.id);  // range check
            total += scores_[static_cast<std::size_t>(s.id)];
        }
    }
    return total;
}

std::string unigram_model::decode(std::span<const piece_id> ids) const {
    std::string out;
    for (const piece_id id : ids) {
        const piece& p = vocab_.at(id);
        if (p.kind != piece_kind::control) out += p.text;
    }
    return out;
}

std::vector<piece_id> unigram_model::ids_of(std::string_view text, std::span<const piece_span> spans) const {
    std::vector<piece_id> ids;
    ids.reserve(spans.size());
    for (const piece_span& s : spans) {
        if (s.id != unknown_id) {
            ids.push_back(s.id);
            continue;
        }
        if (s.end > text.size() || s.begin > s.end)
            throw std::out_of_range("unigram_model::ids_of: span outside the text");
        for (std::uint32_t i = s.begin; i < s.end; ++i)
            ids.push_back(unknown_byte_id_[static_cast<unsigned char>(text[i])]);
    }
    return ids;
}

}  // namespace exprgrad::text
