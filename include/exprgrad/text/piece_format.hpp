// The text form of segmentations used by the `exprgrad tok` command line (docs/tokenizer.md, "Command-line
// contract"): pieces joined by single spaces; inside a piece a space byte is written U+2581 ("▁"), tab, CR,
// LF and backslash as \t, \r, \n, \\, and a byte that is not part of well-formed UTF-8 as <0xAB>.
// Standard headers only.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "lattice.hpp"

namespace exprgrad::text {

/// One piece in the piece format. Example: format_piece(" a\tb\xff") == "▁a\\tb<0xFF>". (LF is not part of
/// the contract; a line never contains one, but a vocabulary piece may, so it is escaped too.)
std::string format_piece(std::string_view bytes);

/// A segmentation of `text` in the piece format. With `merge_unknown`, consecutive spans with id
/// unknown_id are printed as one piece, as SentencePiece prints runs of unknown characters. If `byte_pieces`
/// is given, a span whose id is a byte piece (kind `byte`) of that vocabulary is printed `<0xHH>`, as
/// spm_encode prints the byte fallback of a model trained with --byte_fallback=true. Throws
/// std::out_of_range if a span's id is not in `byte_pieces` (when given) or a span lies outside `text`.
std::string format_segmentation(std::string_view text, std::span<const piece_span> spans, bool merge_unknown = false,
                                const vocabulary* byte_pieces = nullptr);

/// The bytes of a line in the piece format: pieces are separated by spaces (runs of spaces count as one
/// separator), "▁" becomes a space, escapes and <0xHH> become their bytes (hex digits in either case).
/// Throws std::invalid_argument naming the column (1-based byte offset) of a backslash not followed by
/// one of \ t r n. A '<' that does not start a well-formed <0xHH> is kept as text.
/// Ambiguity: a piece whose text is literally "<0x41>" is printed as such and parsed back as the byte 'A'.
std::string parse_pieces(std::string_view line);

}  // namespace exprgrad::text
