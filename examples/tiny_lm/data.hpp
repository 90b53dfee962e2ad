// tiny_lm's data: the corpus (the Debian fortunes) and the training batches, shared by the flagship
// (examples/tiny_lm/main.cpp) and the token-healing measurement (examples/healing_measure.cpp), so that the
// measurement trains on exactly the flagship's data.
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

/// Reads the fortunes files under `corpus_dir` up to `max_bytes` bytes: fortunes are separated by lines
/// holding "%", trailing spaces and CRs are dropped, empty lines skipped, and every 20th fortune is held
/// out. Throws std::runtime_error naming the directory when fewer than 100 training or 10 held-out lines
/// are found.
void load_corpus(const std::string& corpus_dir, std::size_t max_bytes, std::vector<std::string>& train,
                 std::vector<std::string>& held_out);

/// B training windows of T + 1 pieces (tokens [B, T], targets shifted by one): each a crop of the stream
/// <eos> line <eos> line ... that starts at a random line (`data`) and anywhere in it, every line segmented
/// afresh by the tokenizer's exact sampler at `alpha` (`sampler`; alpha < 0: Viterbi). Adds the bytes of
/// the lines read (each line plus its newline) to `bytes`. `lines` must not be empty.
void make_batch(const exprgrad::text::UnigramModel& tok, const std::vector<std::string>& lines, std::size_t B,
                std::size_t T, double alpha, exprgrad::rng& data, exprgrad::rng& sampler,
                xt::xarray<std::int32_t>& tokens, xt::xarray<std::int32_t>& targets, std::size_t& bytes);

}  // namespace tiny_lm
