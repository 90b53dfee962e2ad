// The vocabulary of a unigram tokenizer: an ordered list of pieces (byte strings with a natural-log score
// and a kind), indexed by id and by text. Standard headers only; the file formats are in vocab_io.hpp.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace exprgrad::text {

/// A piece id: its index in the vocabulary.
using piece_id = std::int32_t;

/// The reserved ids of the native format and of vocabularies made by this library (training, jieba import):
/// `<pad>`, `<bos>`, `<eos>` and `<mask>` are control pieces 0–3. Imported SentencePiece vocabularies keep
/// SentencePiece's own ids instead (`<unk>`, `<s>`, `</s>` at 0–2 by default).
inline constexpr piece_id pad_id = 0;
inline constexpr piece_id bos_id = 1;
inline constexpr piece_id eos_id = 2;
inline constexpr piece_id mask_id = 3;
/// The names of the reserved control pieces, in id order.
inline constexpr std::string_view special_names[4] = {"<pad>", "<bos>", "<eos>", "<mask>"};

/// What a piece is.
enum class piece_kind : std::uint8_t {
    normal,   ///< matched in text; its bytes are its text
    control,  ///< a name such as `<bos>`: never matched inside text, decodes to nothing
    byte,     ///< byte fallback: exactly one byte; used by the lattice only where normal pieces cannot go
              ///< (see mode::native) and for unknown characters' bytes
};

/// The largest score magnitude a piece may have. Real vocabularies stay below 1e3; the bound keeps every
/// lattice sum (up to 2^32 pieces, times α ≤ 1e200) finite in float64 and every score finite in float32.
inline constexpr double max_abs_score = 1e30;

/// One vocabulary entry. `text` holds raw bytes (any bytes; for control pieces, the name).
struct piece {
    std::string text;
    double score = 0.0;  ///< natural-log score in [-max_abs_score, max_abs_score] (imported scores may be > 0)
    piece_kind kind = piece_kind::normal;

    friend bool operator==(const piece&, const piece&) = default;
};

/// An ordered set of pieces. Invariants, checked by add(): |score| ≤ max_abs_score; pieces are non-empty;
/// normal pieces are unique by text; byte pieces are exactly one byte and unique by that byte; control names
/// are unique among control pieces. A byte piece may share its text with a one-byte normal piece: a
/// SentencePiece model trained with byte fallback has both `▁` (a space, normal) and `<0x20>` (byte).
///
/// Example:
///     vocabulary v = vocabulary::with_specials();   // ids 0-3: <pad> <bos> <eos> <mask>
///     piece_id id = v.add("ing", -3.2);
///     assert(v.find("ing") == id);
class vocabulary {
  public:
    vocabulary() = default;

    /// A vocabulary holding just the four reserved control pieces at ids 0–3.
    static vocabulary with_specials() {
        vocabulary v;
        for (std::string_view name : special_names) v.add(std::string(name), 0.0, piece_kind::control);
        return v;
    }

    /// Appends a piece and returns its id. Throws std::invalid_argument naming the piece if the score is
    /// NaN or |score| > max_abs_score, the text is empty, a byte piece is not one byte long, or the text duplicates a
    /// piece of the same kind (normal, byte and control pieces each have their own namespace).
    piece_id add(std::string text, double score, piece_kind kind = piece_kind::normal);

    /// The number of pieces, V.
    std::size_t size() const noexcept { return pieces_.size(); }
    bool empty() const noexcept { return pieces_.empty(); }

    /// The piece with id `id`; the index must be in [0, V).
    const piece& operator[](piece_id id) const { return pieces_[static_cast<std::size_t>(id)]; }
    /// The same, throwing std::out_of_range naming the id if it is not in [0, V).
    const piece& at(piece_id id) const;
    const std::vector<piece>& pieces() const noexcept { return pieces_; }

    /// The id of the normal piece whose text is `text`, else of the byte piece whose byte it is, if any.
    std::optional<piece_id> find(std::string_view text) const;
    /// The id of the byte piece (kind `byte`) of byte `b`, if any.
    std::optional<piece_id> find_byte(unsigned char b) const;
    /// The id of the control piece named `name`, if any.
    std::optional<piece_id> find_control(std::string_view name) const;

    /// Replaces the score of piece `id` (|score| ≤ max_abs_score; throws std::invalid_argument otherwise,
    /// std::out_of_range for a bad id). Models hold their own copy: see unigram_model::set_score.
    void set_score(piece_id id, double score);

    /// True if ids 0–3 are the reserved control pieces `<pad> <bos> <eos> <mask>`.
    bool has_reserved_specials() const noexcept;

    friend bool operator==(const vocabulary& a, const vocabulary& b) { return a.pieces_ == b.pieces_; }

  private:
    std::vector<piece> pieces_;
    std::unordered_map<std::string, piece_id> text_index_;     // normal pieces
    std::unordered_map<unsigned char, piece_id> byte_index_;   // byte pieces
    std::unordered_map<std::string, piece_id> control_index_;  // control pieces
};

}  // namespace exprgrad::text
