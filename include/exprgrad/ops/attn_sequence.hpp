// The sequence placeholders of flex attention's masks (issue 20): what a mask may read besides the positions, set
// by the kernels per call. attn::q_len and attn::k_len are the sequence lengths T_q and T_k (so a mask can align
// bottom-right); attn::q_doc and attn::k_doc are the document (segment) ids of the query and key positions, read
// from the per-position ids passed as flex_documents.
//
//   auto same_doc = sym::min(attn::q_doc - attn::k_doc + 1_c, attn::k_doc - attn::q_doc + 1_c);  // > 0 ⇔ equal ids
//
// They are sym variables at fixed positions past the parameters (q_len = var<64>, k_len = var<65>, q_doc =
// var<66>, k_doc = var<67>), so to_string prints x64 .. x67. Masks only: a score modification that reads them
// fails to compile with a sentence naming flex_attention.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include <xtensor/xtensor.hpp>

#include "exprgrad/ops/attn_placeholders.hpp"

namespace exprgrad::ops::attn {

/// Position of q_len among a modification's arguments; the parameters are param<0> .. param<58> before it.
inline constexpr int first_sequence = 64;
/// T_q, the number of queries, as a number.
inline constexpr sym::Var<first_sequence> q_len{};
/// T_k, the number of keys, as a number.
inline constexpr sym::Var<first_sequence + 1> k_len{};
/// The document id of query position q_idx (flex_documents::q[b][q_idx]), as a number.
inline constexpr sym::Var<first_sequence + 2> q_doc{};
/// The document id of key position k_idx (flex_documents::k[b][k_idx]), as a number.
inline constexpr sym::Var<first_sequence + 3> k_doc{};

}  // namespace exprgrad::ops::attn

namespace exprgrad::ops {

/// Per-position document (segment) ids for masks that read attn::q_doc / attn::k_doc, e.g. several sequences
/// packed into one row of a batch: q [B, T_q] holds the id of each query position, k [B, T_k] of each key. Ids are
/// integers with |id| < 2^24 (exact as float); flex attention throws std::invalid_argument naming the op and the
/// offending value otherwise, or when the shapes do not match q and k. Example, two documents of lengths 3 and 2
/// packed in one row, self-attention: `flex_documents::self(xt::xtensor<std::int64_t, 2>{{0, 0, 0, 1, 1}})`.
struct flex_documents {
    xt::xtensor<std::int64_t, 2> q;
    xt::xtensor<std::int64_t, 2> k;
    /// The same ids for queries and keys (self-attention, T_q = T_k).
    static flex_documents self(xt::xtensor<std::int64_t, 2> ids) {
        flex_documents d{ids, {}};
        d.k = std::move(ids);
        return d;
    }
};

}  // namespace exprgrad::ops

namespace exprgrad::ops::detail::flex {

/// Whether expression E reads any variable var<I> with Lo <= I < Hi.
template <class E, int Lo, int Hi>
constexpr bool reads_any_of() {
    return []<int... Is>(std::integer_sequence<int, Is...>) {
        return (reads_v<E, Lo + Is> || ... || false);
    }(std::make_integer_sequence<int, Hi - Lo>{});
}

/// Whether a mask reads the sequence placeholders (lengths or document ids), and the document ids in particular.
template <class E>
inline constexpr bool reads_sequence_v = sym::arity_v<E> > attn::first_sequence;
template <class E>
inline constexpr bool reads_documents_v = reads_v<E, attn::first_sequence + 2> || reads_v<E, attn::first_sequence + 3>;

/// What the sequence placeholders read for one batch entry: T_q, T_k and the document ids (null when the mask
/// reads none; k_doc holds T_k ids padded to whole key blocks).
template <class T>
struct sequence_view {
    T q_len = 0, k_len = 0;
    const T* q_doc = nullptr;
    const T* k_doc = nullptr;
};

}  // namespace exprgrad::ops::detail::flex
