// Plain types of the segmentation lattice shared by the model, the samplers and the CLI.
// Standard headers only.
//
// The lattice of a text t[0, n) has a node at every byte position and an edge (s, e, piece) for every
// piece the model allows over t[s, e). A segmentation is a path 0 → n; its score is the sum of its edges'
// scores, and at inverse temperature α ≥ 0 the model's distribution over segmentations is
//     P(w) = exp(α · score(w)) / Z(α),   log Z(α) = logsumexp over all paths of α · score(path).
// unigram_model (unigram_model.hpp) runs the lattice algorithms without storing the edges.
#pragma once

#include <cstdint>
#include <vector>

#include "vocabulary.hpp"

namespace exprgrad::text {

/// The id of an edge that stands for an unknown character in the SentencePiece- and jieba-compatible
/// modes: one edge spanning the whole character, scored as those libraries score an unknown character.
/// encode() expands it into the byte-fallback pieces of its bytes.
inline constexpr piece_id unknown_id = -1;

/// One edge of a segmentation: bytes [begin, end) of the text and the piece covering them (or unknown_id).
struct piece_span {
    std::uint32_t begin = 0;
    std::uint32_t end = 0;
    piece_id id = unknown_id;

    friend bool operator==(const piece_span&, const piece_span&) = default;
};

/// How sample() draws a segmentation. The first two draw exactly from P(w) ∝ exp(α · score(w)).
enum class sampler {
    /// Post 9811's single pass: each end position keeps a running log partition function and replaces its
    /// held edge with probability w / Z (single-item weighted reservoir sampling), where an edge's weight
    /// is the prefix's log partition function plus α·score, not the sampled prefix path's score. The first
    /// candidate of each position is always accepted. One uniform draw per lattice edge, O(n) memory.
    reservoir,
    /// Filtering then sampling: the backward log partition functions β(s) = log Σ over paths s → n are
    /// computed right to left, then edges are drawn left to right with probability
    /// exp(α·score + β(e) − β(s)). This is forward-filtering backward-sampling (SentencePiece's
    /// Lattice::Sample) run on the mirrored lattice; the distribution is the same. One categorical draw per
    /// output piece.
    ffbs,
    /// BIASED, kept for comparison only: post 9768's "Viterbi sampling" (BytePiece 0.4), where a new
    /// candidate replaces the held one with probability σ(α · (score_new − score_held)) and the held path's
    /// score, not a partition function, is carried forward. Candidates are visited longest first. It does
    /// not sample P(w): on "watching" with three equal segmentations it gives 1/2, 1/4, 1/4 (notes §2.7 T1).
    biased_sigmoid,
};

/// A segmentation with its score (the sum of the edges' scores, as used by Viterbi).
struct scored_segmentation {
    std::vector<piece_span> spans;
    double score = 0.0;
};

}  // namespace exprgrad::text
