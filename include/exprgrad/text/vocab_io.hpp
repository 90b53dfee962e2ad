// Vocabulary files: the native versioned format, SentencePiece vocabulary exports and jieba dictionaries.
// Standard headers only; compiled in src/text/vocab_io.cpp. Formats in full: docs/tokenizer.md.
//
// Native format, version 1 (UTF-8 text, LF line ends):
//     exprgrad-unigram<TAB>version=1<TAB>pieces=N<TAB>utf8_boundaries=0
//     control<TAB>0<TAB><pad>                      ← ids 0–3 must be <pad> <bos> <eos> <mask>
//     ...
//     normal<TAB>-7.5629286766052246<TAB>▁the     ← kind, score (%.17g, finite), escaped piece
//     byte<TAB>-25.1<TAB>\xff
// One line per piece, ids in line order, exactly N of them. In the piece field, backslash, tab, LF, CR and
// other C0 control bytes, DEL, and bytes that are not part of well-formed UTF-8 are escaped (\\ \t \n \r
// \xHH); everything else, the space included, is literal.
//
// SentencePiece (`spm_train`'s .vocab, `spm_export_vocab`): `piece<TAB>score` per line, ids in line order.
// `<unk>`, `<s>`, `</s>`, `<pad>` and `<mask>` are control pieces, `<0xHH>` byte pieces; U+2581 becomes a
// space in piece text (so text is encoded as is; SentencePiece writes spaces as U+2581).
//
// jieba (`dict.txt`): `word freq [tag]`, separated by single spaces; freq a non-negative integer. As in
// jieba, a repeated word takes its last frequency while total sums every line; words of frequency 0 are
// not pieces (jieba never matches them). Score = log(freq) − log(total); the model's unknown-character score
// is log(1/total). Ids 0–3 are the reserved specials.
//
// Every format: a UTF-8 byte-order mark (EF BB BF) at the start of the file is skipped, so it never glues
// itself to the first piece or the header. A NUL byte anywhere is an error naming its line and column (a
// vocabulary is UTF-8 text; NULs mean a binary file or UTF-16).
//
// Line ends: LF; one CR before an LF (or at the end of the file) is dropped in every format, so CRLF files
// are accepted (jieba strips it as well). A jieba dictionary whose frequencies sum to 0 is an error naming
// its last line.
//
// Errors: malformed content throws vocabulary_file_error, whose message is "FILE:LINE: problem"; nothing is
// returned or changed then. A field or line quoted in a problem is shortened to about 60 characters (then
// "..." and its size in bytes), with control and stray bytes written \xHH, so a bad 10 MB line gives a short
// message. A path that cannot be opened or read, or that is a directory, gives "FILE: problem" (no line). Writes are
// atomic: a temporary file in the same directory, fsync, rename.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

#include "unigram_model.hpp"
#include "vocabulary.hpp"

namespace exprgrad::text {

/// The vocabulary file formats.
enum class vocab_format { native, sentencepiece, jieba };

/// "native", "spm" (or "sentencepiece") and "jieba"; throws std::invalid_argument otherwise.
vocab_format parse_vocab_format(std::string_view name);

/// A malformed or unreadable vocabulary file. what() is "FILE:LINE: problem" (LINE omitted when the problem
/// concerns the whole file, e.g. it cannot be opened).
class vocabulary_file_error : public std::runtime_error {
  public:
    vocabulary_file_error(std::string file, std::size_t line, std::string problem);
    const std::string& file() const noexcept { return file_; }
    std::size_t line() const noexcept { return line_; }  ///< 1-based; 0 for the whole file
    const std::string& problem() const noexcept { return problem_; }

  private:
    std::string file_;
    std::size_t line_;
    std::string problem_;
};

/// A parsed vocabulary with the model options its format implies (the mode; utf8_boundaries for native;
/// unknown_score for jieba).
struct loaded_vocabulary {
    vocabulary vocab;
    model_options options;
};

/// Parses file content; `name` is used in error messages. Throws vocabulary_file_error, and
/// std::invalid_argument for a `format` outside the enum (a cast integer; it was read as jieba).
loaded_vocabulary parse_vocabulary(std::string_view content, vocab_format format, std::string_view name = "<memory>");

/// Reads and parses a file. Throws vocabulary_file_error (also when it cannot be opened or read, naming the
/// system's reason, when the path is a directory: "PATH: is a directory, not a vocabulary file", and beyond
/// 1 GiB). Devices and pipes are read until their end, a NUL byte (an error at its line) or 1 GiB. An empty
/// path throws std::invalid_argument("load_vocabulary: empty path ..."), a format outside the enum too.
loaded_vocabulary load_vocabulary(const std::string& path, vocab_format format);

/// load_vocabulary, then the model. Example: auto m = load_model("fortunes.vocab", vocab_format::native);
unigram_model load_model(const std::string& path, vocab_format format);

/// The native format text of a vocabulary. Throws std::invalid_argument if ids 0–3 are not the reserved
/// specials. Pass model.vocab() to keep the byte-fallback pieces and their ids.
std::string format_native(const vocabulary& vocab, const model_options& options = {});

/// Writes format_native(...) atomically. Throws std::runtime_error naming the file on an I/O error.
void save_native(const std::string& path, const vocabulary& vocab, const model_options& options = {});

/// Replaces `path` with `content` atomically (temporary file in the same directory, fsync, rename): readers
/// see the old or the new file, never a partial one. Throws std::runtime_error naming the file, and
/// std::invalid_argument("write_file_atomically: empty path ...") for "".
void write_file_atomically(const std::string& path, std::string_view content);

}  // namespace exprgrad::text
