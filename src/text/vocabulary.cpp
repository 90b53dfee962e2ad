// Vocabulary bookkeeping (see include/exprgrad/text/vocabulary.hpp).
#include <cstdio>
#include <cmath>
#include <exprgrad/format.hpp>
#include <exprgrad/text/vocabulary.hpp>
#include <stdexcept>
#include <string>

namespace exprgrad::text {

namespace {

// A piece's text for an error message: printable ASCII as is, other bytes as \xHH, at most 40 bytes.
std::string printable(std::string_view text) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "'";
    for (std::size_t i = 0; i < text.size() && i < 40; ++i) {
        const auto b = static_cast<unsigned char>(text[i]);
        if (b >= 0x20 && b < 0x7F && b != '\\' && b != '\'') {
            out += static_cast<char>(b);
        } else {
            out += "\\x";
            out += hex[b >> 4];
            out += hex[b & 15];
        }
    }
    if (text.size() > 40) out += "...";
    return out + "'";
}

}  // namespace

piece_id vocabulary::add(std::string text, double score, piece_kind kind) {
    const auto id = static_cast<piece_id>(pieces_.size());
    const std::string where = "vocabulary: piece " + std::to_string(id) + " " + printable(text) + ": ";
    if (!(std::abs(score) <= max_abs_score)) {
        throw std::invalid_argument(where + "score " + format_number(score) +
                                    " is not a finite number in [-1e30, 1e30]");
    }
    if (text.empty()) throw std::invalid_argument(where + "empty text");
    if (pieces_.size() >= 0x7FFFFFFF) throw std::invalid_argument(where + "too many pieces");
    if (kind == piece_kind::byte && text.size() != 1)
        throw std::invalid_argument(where + "a byte piece must be one byte");
    if (kind == piece_kind::byte) {
        const auto [it, inserted] = byte_index_.emplace(static_cast<unsigned char>(text[0]), id);
        if (!inserted) throw std::invalid_argument(where + "duplicates byte piece " + std::to_string(it->second));
    } else {
        auto& index = kind == piece_kind::control ? control_index_ : text_index_;
        const auto [it, inserted] = index.emplace(text, id);
        if (!inserted) throw std::invalid_argument(where + "duplicates piece " + std::to_string(it->second));
    }
    pieces_.push_back(piece{std::move(text), score, kind});
    return id;
}

const piece& vocabulary::at(piece_id id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= pieces_.size()) {
        throw std::out_of_range("vocabulary: piece id " + std::to_string(id) + " is not in [0, " +
                                std::to_string(pieces_.size()) + ")");
    }
    return pieces_[static_cast<std::size_t>(id)];
}

std::optional<piece_id> vocabulary::find(std::string_view text) const {
    const auto it = text_index_.find(std::string(text));
    if (it != text_index_.end()) return it->second;
    if (text.size() == 1) return find_byte(static_cast<unsigned char>(text[0]));
    return std::nullopt;
}

std::optional<piece_id> vocabulary::find_byte(unsigned char b) const {
    const auto it = byte_index_.find(b);
    if (it == byte_index_.end()) return std::nullopt;
    return it->second;
}

std::optional<piece_id> vocabulary::find_control(std::string_view name) const {
    const auto it = control_index_.find(std::string(name));
    if (it == control_index_.end()) return std::nullopt;
    return it->second;
}

void vocabulary::set_score(piece_id id, double score) {
    at(id);
    if (!(std::abs(score) <= max_abs_score)) {
        throw std::invalid_argument("vocabulary: set_score: score " + format_number(score) + " of piece " +
                                    std::to_string(id) + " is not a finite number in [-1e30, 1e30]");
    }
    pieces_[static_cast<std::size_t>(id)].score = score;
}

bool vocabulary::has_reserved_specials() const noexcept {
    if (pieces_.size() < 4) return false;
    for (std::size_t i = 0; i < 4; ++i) {
        if (pieces_[i].kind != piece_kind::control || pieces_[i].text != special_names[i]) return false;
    }
    return true;
}

}  // namespace exprgrad::text
