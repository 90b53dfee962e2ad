// UTF-8 helpers for the tokenizer: code-point boundaries over arbitrary bytes. Standard headers only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace exprgrad::text {

/// The length in bytes of the well-formed UTF-8 sequence that starts at `p` (at most `n` bytes are read),
/// or 0 if the bytes there do not start one (a stray continuation byte, an overlong form, a surrogate, a
/// value above U+10FFFF, a truncated sequence, or n == 0). Follows RFC 3629 / Unicode Table 3-7.
/// Example: utf8_sequence_length("\xe4\xbd\xa0", 3) == 3; utf8_sequence_length("\xa0", 1) == 0.
constexpr std::size_t utf8_sequence_length(const unsigned char* p, std::size_t n) noexcept {
    if (n == 0) return 0;
    const unsigned b0 = p[0];
    if (b0 < 0x80) return 1;
    auto cont = [](unsigned b) { return (b & 0xC0u) == 0x80u; };
    if (b0 >= 0xC2 && b0 <= 0xDF) return n >= 2 && cont(p[1]) ? 2 : 0;
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        if (n < 3) return 0;
        const unsigned lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
        return p[1] >= lo && p[1] <= hi && cont(p[2]) ? 3 : 0;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        if (n < 4) return 0;
        const unsigned lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
        return p[1] >= lo && p[1] <= hi && cont(p[2]) && cont(p[3]) ? 4 : 0;
    }
    return 0;
}

/// The same for a string_view at byte offset `pos` (pos ≤ s.size()).
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t pos) noexcept {
    return utf8_sequence_length(reinterpret_cast<const unsigned char*>(s.data()) + pos, s.size() - pos);
}

/// True if `s` is entirely well-formed UTF-8 (the empty string is).
inline bool is_valid_utf8(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t len = utf8_sequence_length(s, i);
        if (len == 0) return false;
        i += len;
    }
    return true;
}

/// The "character" length SentencePiece 0.1.97 assigns to the byte at `p`, from its lead byte alone
/// (string_util::OneCharLen): 1 for 0x00–0xBF, 2 for 0xC0–0xDF, 3 for 0xE0–0xEF, 4 for 0xF0–0xFF; the
/// caller clips it to the bytes left. It does not validate, which is what the compatible mode must copy.
constexpr std::size_t sentencepiece_char_length(unsigned char lead) noexcept {
    constexpr unsigned char table[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return table[lead >> 4];
}

}  // namespace exprgrad::text
