// Checkpoints: a directory holding the parameters as .npy files, the optimizer state, the schedule state,
// the generator states and a versioned manifest; written atomically, loaded with full validation.
//
//   nn::save_checkpoint("run/ckpt", params, {.opt = &opt, .sched = &sched, .generators = {{"data", &gen}}});
//   nn::load_checkpoint("run/ckpt", params, {.opt = &opt, .sched = &sched, .generators = {{"data", &gen}}});
//
// Directory layout (format version 1; docs/nn.md has the full description):
//
//   <dir>/manifest.txt                    the manifest (below), written last
//   <dir>/params/<name>.npy               one per parameter, NumPy format 1.0, '<f4' or '<f8', C order
//   <dir>/optimizer/<buffer>/<name>.npy   optimizer buffers (exp_avg, exp_avg_sq, momentum_buffer)
//   <dir>/files/<name>                    the caller's files (e.g. a training history), optional
//
// The manifest is ASCII text, one record per line, fields separated by single spaces, '\n' line ends:
//
//   exprgrad-checkpoint 1                 first line: magic and format version
//   dtype float32                         float32 or float64: the type of every array
//   parameter <name> [d0,d1,...]          one per parameter, in insertion order ([] for a 0-d array)
//   optimizer <kind>                      optional block: sgd, adam or adamw
//   optimizer.step <t>
//   optimizer.hyper <name> <value>        every hyperparameter, lr first
//   optimizer.buffer <name>               buffer names, in order
//   optimizer.param <name>                parameters the buffers belong to (absent before the first step)
//   schedule <kind>                       optional block
//   schedule.step <s>
//   schedule.hyper <name> <value>
//   meta <key> <value>                    caller's records (checkpoint_items::metadata), value %-escaped
//   file <name>                           caller's files (checkpoint_items::files), stored as files/<name>
//   checksum <path> <h>                   one per stored file: FNV-1a 64 of its bytes, 16 hex digits
//   rng <name> <w0> <w1> <w2> <w3>        generator state: four 64-bit words, 16 hex digits each
//   end                                   last line: proves the manifest is complete
//
// A meta value is written with every byte outside '!'..'~' and '%' as %XX (two uppercase hex digits), the
// empty value as a lone '%'. Every file the loader reads (.npy and files/<name>) must have a checksum line,
// and its bytes must match it; the manifest itself has none (its 'end' line proves it complete).
//
// Numbers are exact: integers in decimal, doubles in the shortest decimal form that reads back to the
// same bits (std::to_chars / std::from_chars, independent of the locale).
//
// Atomicity: save_checkpoint writes everything into a fresh sibling directory `<dir>.tmp-XXXXXX`
// (mkdtemp), fsyncs every file and directory, then moves it into place:
//  - if <dir> does not exist: rename(tmp, dir), one atomic step;
//  - if <dir> exists (and is a checkpoint or an empty directory; anything else is refused): on Linux,
//    renameat2(RENAME_EXCHANGE) swaps the two directories in one atomic step and the old one (now under
//    the tmp name) is removed; where the exchange is unsupported, the old checkpoint is renamed to
//    `<dir>.old-XXXXXX`, the new one renamed to <dir>, and the old one removed. In that fallback a crash
//    between the two renames leaves no <dir>, but a complete old checkpoint at <dir>.old-XXXXXX and a
//    complete new one at <dir>.tmp-XXXXXX (POSIX has no atomic replacement of a non-empty directory);
// then the parent directory is fsynced. So <dir> never names a half-written checkpoint. A crash can
// leave stale `<dir>.tmp-*` / `<dir>.old-*` directories behind; they are never read, and
// remove_stale_checkpoint_temporaries(dir) deletes them.
// A `dir` that is a symbolic link is followed: its target is replaced (staged next to it), the link
// stays. One writer per directory at a time.
//
// Loading opens the directory once and reads every file relative to it, so a concurrent save that
// replaces the directory cannot mix two checkpoints. Everything is validated before anything is changed:
// a missing or unreadable file, a malformed manifest line, an unknown version, a dtype or shape that does
// not match, a truncated or malformed .npy file, a NaN or infinity inside one, a file whose checksum does
// not match the manifest, parameters or generators that do not match the ones
// passed, or an optimizer/schedule state that the given objects refuse, throws nn::checkpoint_error
// naming the file (and the manifest line) and the problem, and leaves params, optimizer, schedule and
// generators untouched. Gradients are not saved; loading leaves them as they are.
// The implementation is compiled into libexprgrad (src/nn/checkpoint.cpp) for float and double.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "exprgrad/nn/optimizer.hpp"
#include "exprgrad/nn/parameters.hpp"
#include "exprgrad/nn/schedule.hpp"
#include "exprgrad/random.hpp"

namespace exprgrad::nn {

/// The checkpoint format version this code writes and the only one it reads.
inline constexpr int checkpoint_format_version = 1;

/// Thrown by save_checkpoint and load_checkpoint. what() is "<file>:<line>: <problem>" (":<line>" only
/// for manifest lines).
class checkpoint_error : public std::runtime_error {
  public:
    checkpoint_error(std::filesystem::path file, std::size_t line, const std::string& problem)
        : std::runtime_error(file.string() + (line ? ":" + std::to_string(line) : std::string()) + ": " + problem),
          file_(std::move(file)),
          line_(line),
          problem_(problem) {}

    /// The file (or directory) the problem is in.
    const std::filesystem::path& file() const noexcept { return file_; }
    /// The 1-based manifest line, or 0.
    std::size_t line() const noexcept { return line_; }
    /// The problem, without the location.
    const std::string& problem() const noexcept { return problem_; }

  private:
    std::filesystem::path file_;
    std::size_t line_;
    std::string problem_;
};

/// What a checkpoint holds besides the parameters. Null pointers and empty lists are skipped: saving
/// writes only what is given; loading restores only what is given (and throws if the checkpoint lacks
/// it), ignoring what the checkpoint has beyond it. `metadata` and `files` are only written (read them
/// back with read_checkpoint_info): keys and file names follow is_valid_parameter_name, each at most once;
/// metadata values are any bytes (escaped in the manifest), files any bytes (checksummed).
template <parameter_value T>
struct checkpoint_items {
    optimizer<T>* opt = nullptr;
    lr_schedule* sched = nullptr;
    std::vector<std::pair<std::string, rng*>> generators = {};       ///< (name, generator); names as parameter names
    std::vector<std::pair<std::string, std::string>> metadata = {};  ///< (key, value): e.g. the run's options
    std::vector<std::pair<std::string, std::string>> files = {};     ///< (name, bytes): small files saved with it
};

/// What read_checkpoint_info reports of a checkpoint without loading its arrays.
struct checkpoint_info {
    std::filesystem::path manifest;                              ///< the manifest's absolute path
    std::vector<std::pair<std::string, std::string>> metadata;   ///< in manifest order
    std::vector<std::pair<std::string, std::string>> files;      ///< (name, bytes), checksums verified
    std::optional<std::uint64_t> optimizer_step, schedule_step;  ///< absent without that block
    std::vector<hyperparameter> schedule_hyper;                  ///< e.g. total_steps of cosine_warmup

    /// The value of a metadata key, or nullptr. Example: `if (auto* v = info.meta("seed")) ...`
    const std::string* meta(std::string_view key) const noexcept {
        for (const auto& [k, v] : metadata)
            if (k == key) return &v;
        return nullptr;
    }
    /// The bytes of a saved file, or nullptr.
    const std::string* file(std::string_view name) const noexcept {
        for (const auto& [n, b] : files)
            if (n == name) return &b;
        return nullptr;
    }
};

/// FNV-1a, 64-bit, of `bytes` (offset basis 0xcbf29ce484222325, prime 0x100000001b3): the checksum of
/// the manifest's `checksum` lines; callers use it to pair other files with a checkpoint. Not
/// cryptographic: it detects accidents (a flipped bit, a file from another run), not forgery.
/// Example: fnv1a64("") == 0xcbf29ce484222325, fnv1a64("a") == 0xaf63dc4c8601ec8c.
std::uint64_t fnv1a64(std::string_view bytes) noexcept;

/// Writes a checkpoint of `params` and `items` to the directory `dir`, atomically (see the top of this
/// header): `dir` afterwards holds either the complete previous contents or the complete new checkpoint.
/// `dir`'s parent directories are created if missing; an existing `dir` is replaced only if it is an
/// exprgrad checkpoint or empty. Throws checkpoint_error (naming the file) on any IO failure, or if the
/// optimizer's state belongs to other parameters than `params`, a generator, metadata key or file name is
/// invalid or repeated, or a value is not finite; nothing is left under `dir` or its temporary name then.
/// Example: save_checkpoint("ckpt", params, {.opt = &opt, .sched = &sched, .generators = {{"data", &g}}});
template <parameter_value T>
void save_checkpoint(const std::filesystem::path& dir, const parameter_set<T>& params,
                     const checkpoint_items<T>& items = {});

/// Loads the checkpoint in `dir` into `params` and `items` (see the top of this header). The
/// checkpoint must hold exactly the parameters of `params` (same names, same shapes, dtype T), and the
/// optimizer, schedule and generators requested in `items`; the optimizer's and schedule's kind and
/// hyperparameters (lr excepted) must equal those of the given objects; every array must be finite and
/// every file must match its checksum. On any problem throws checkpoint_error naming the file, and
/// manifest line, and changes nothing. items.metadata and items.files are ignored (see read_checkpoint_info).
/// Example: load_checkpoint("ckpt", params, {.opt = &opt, .sched = &sched, .generators = {{"data", &g}}});
template <parameter_value T>
void load_checkpoint(const std::filesystem::path& dir, parameter_set<T>& params, const checkpoint_items<T>& items = {});

/// Reads and validates the manifest of the checkpoint in `dir` and the files saved with it (checksums
/// verified), without reading any array: what a program checks before building a model to load into.
/// Throws checkpoint_error like load_checkpoint ("no such checkpoint directory" if `dir` is missing).
/// Example: auto info = read_checkpoint_info("run/ckpt"); if (auto* w = info.meta("width")) ...
checkpoint_info read_checkpoint_info(const std::filesystem::path& dir);

/// Deletes the stale staging directories a crash of save_checkpoint(dir, ...) can leave: the siblings of
/// `dir` named exactly `<name>.tmp-XXXXXX` or `<name>.old-XXXXXX` (six characters from mkdtemp's
/// alphabet) that are directories, where <name> is dir's last component; nothing else. Returns their
/// paths. Run it only when no save to `dir` is in progress. Throws checkpoint_error if it cannot list the
/// parent or remove one. Example: for (auto& p : remove_stale_checkpoint_temporaries("run/ckpt")) ...
std::vector<std::filesystem::path> remove_stale_checkpoint_temporaries(const std::filesystem::path& dir);

extern template void save_checkpoint<float>(const std::filesystem::path&, const parameter_set<float>&,
                                            const checkpoint_items<float>&);
extern template void save_checkpoint<double>(const std::filesystem::path&, const parameter_set<double>&,
                                             const checkpoint_items<double>&);
extern template void load_checkpoint<float>(const std::filesystem::path&, parameter_set<float>&,
                                            const checkpoint_items<float>&);
extern template void load_checkpoint<double>(const std::filesystem::path&, parameter_set<double>&,
                                             const checkpoint_items<double>&);

}  // namespace exprgrad::nn
