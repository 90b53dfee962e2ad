// tiny_lm's data: the corpus (the Debian fortunes) and the training batches, shared by the flagship
// (examples/tiny_lm/main.cpp) and the token-healing measurement (examples/healing_measure.cpp), so that the
// measurement trains on the flagship's corpus and windows. The flagship draws each sequence from its own
// generators (make_sequences, so that ranks under mpirun can draw their shares); the measurement still
// draws with make_batch, the same distribution in another order (its recorded results predate the change).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include <exprgrad/random.hpp>
#include <exprgrad/text/unigram_model.hpp>

namespace tiny_lm {

/// The native vocabulary format's reserved <eos>; it separates lines in every stream.
inline constexpr std::int32_t eos = 2;

/// The longest corpus line accepted (bytes, without the newline): a longer one means the file is no text.
inline constexpr std::size_t max_line_bytes = std::size_t(1) << 20;

/// Reads the fortunes files under `corpus_dir` until `max_bytes` bytes of lines are kept: fortunes are
/// separated by lines holding "%", trailing spaces and CRs are dropped, empty lines skipped, and every
/// 20th fortune is held out. The raw bytes read are bounded too (2·max_bytes + max_line_bytes), so no
/// content can make it read forever. Missing files of the collection are skipped. Throws
/// std::runtime_error naming --corpus-dir (an empty one is refused) and the file when a file is not a regular file (checked before
/// opening: a FIFO is never opened), cannot be read, or has a line longer than max_line_bytes (with its
/// line number); and when fewer than 100 training or 10 held-out lines are found (the counts found, and
/// whether --max-corpus stopped the reading).
void load_corpus(const std::string& corpus_dir, std::size_t max_bytes, std::vector<std::string>& train,
                 std::vector<std::string>& held_out);

/// B training windows of T + 1 pieces (tokens [B, T], targets shifted by one): each a crop of the stream
/// <eos> line <eos> line ... that starts at a random line (`data`) and anywhere in it, every line segmented
/// afresh by the tokenizer's exact sampler at `alpha` (`sampler`; alpha < 0: Viterbi). Adds the bytes of
/// the lines read (each line plus its newline) to `bytes`. `lines` must not be empty. The generators advance:
/// batch k depends on every batch before it (the healing measurement's order; tiny_lm draws with
/// make_sequences, which any number of processes can share).
void make_batch(const exprgrad::text::unigram_model& tok, const std::vector<std::string>& lines, std::size_t B,
                std::size_t T, double alpha, exprgrad::rng& data, exprgrad::rng& sampler,
                xt::xarray<std::int32_t>& tokens, xt::xarray<std::int32_t>& targets, std::size_t& bytes);

/// The seed of training sequence `index` in the stream keyed by `key` (a generator that is never advanced):
/// SplitMix64 mixing of the key's four state words and the index, so that neighbouring indices give unrelated
/// generators. Example: exprgrad::rng g(sequence_seed(data, 17)) draws sequence 17.
std::uint64_t sequence_seed(const exprgrad::rng& key, std::uint64_t index);

/// Sequences `first` .. first + count − 1 of the run's stream of training sequences as tokens [count, T] and
/// targets: sequence i is drawn as by make_batch (window: a generator seeded by sequence_seed(data, i);
/// segmentation: by sequence_seed(sampler, i)), independently of every other sequence. So the global batch of
/// step s, sequences s·B .. s·B + B − 1, is the same whether one process draws all of it or N ranks each draw
/// a contiguous share, and a resume needs only the step. `data` and `sampler` are not advanced. The sequences
/// are drawn on exprgrad's thread pool (the same result for every thread count).
void make_sequences(const exprgrad::text::unigram_model& tok, const std::vector<std::string>& lines,
                    std::uint64_t first, std::size_t count, std::size_t T, double alpha, const exprgrad::rng& data,
                    const exprgrad::rng& sampler, xt::xarray<std::int32_t>& tokens,
                    xt::xarray<std::int32_t>& targets, std::size_t& bytes);

}  // namespace tiny_lm
