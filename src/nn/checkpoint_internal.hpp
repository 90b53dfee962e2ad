// Internal (not installed): the checkpoint reader's pieces and the options only tests use. Tests and the
// fuzz target include it by a path into src/; programs use <exprgrad/nn/checkpoint.hpp>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/nn/checkpoint.hpp"

namespace exprgrad::nn::detail {

/// Options of save_checkpoint that only tests change.
struct save_options {
    /// false exercises the portable two-rename replacement instead of renameat2(RENAME_EXCHANGE).
    bool use_rename_exchange = true;
};

/// save_checkpoint with explicit options (the public one passes save_options{}).
template <parameter_value T>
void save_checkpoint(const std::filesystem::path& dir, const parameter_set<T>& params, const checkpoint_items<T>& items,
                     const save_options& options);

struct manifest_param {
    std::string name;
    std::vector<std::size_t> shape;
    std::size_t line;
};

/// A parsed manifest (the format is described in nn/checkpoint.hpp).
struct manifest {
    std::string dtype;
    std::vector<manifest_param> params;
    bool has_opt = false;
    std::size_t opt_line = 0;
    std::string opt_kind;
    std::optional<std::uint64_t> opt_step;
    std::vector<hyperparameter> opt_hyper;
    std::vector<std::string> opt_buffers;
    std::vector<std::string> opt_params;
    bool has_sched = false;
    std::size_t sched_line = 0;
    std::string sched_kind;
    std::optional<std::uint64_t> sched_step;
    std::vector<hyperparameter> sched_hyper;
    std::vector<std::pair<std::string, std::string>> metadata;  ///< values unescaped
    std::vector<std::string> files;
    struct checksum {
        std::string path;  ///< relative to the checkpoint directory, '/'-separated
        std::uint64_t value;
        std::size_t line;
    };
    std::vector<checksum> checksums;
    struct generator {
        std::string name;
        rng::state_type state;
        std::size_t line;
    };
    std::vector<generator> generators;

    /// The checksum line of `path`, or nullptr.
    const checksum* checksum_of(std::string_view path) const noexcept {
        for (const auto& c : checksums)
            if (c.path == path) return &c;
        return nullptr;
    }
};

/// Parses and validates manifest text; `shown` names it in errors. Throws checkpoint_error(shown, line, ...).
/// The text must end with the line "manifest_checksum <16 lowercase hex digits>" after 'end': the FNV-1a 64
/// of every byte before that line (checked after the body parses; a mismatch or a missing line is refused).
manifest parse_manifest(std::string_view text, const std::filesystem::path& shown);

/// Parses a whole .npy file holding a T array (NumPy format 1.0 or 2.0, '<f4' for float, '<f8' for double,
/// C or Fortran order), checks that every value is finite, and returns it in row-major order. Throws
/// checkpoint_error(shown, 0, ...) on anything else.
template <parameter_value T>
xt::xarray<T> parse_npy(std::string_view bytes, const std::filesystem::path& shown);

/// %-escaping of manifest meta values (see nn/checkpoint.hpp): escape_value(" a%") == "%20a%25",
/// escape_value("") == "%". unescape_value inverts it; nullopt for a malformed text.
std::string escape_value(std::string_view raw);
std::optional<std::string> unescape_value(std::string_view text);

}  // namespace exprgrad::nn::detail
