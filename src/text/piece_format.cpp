// The piece format (include/exprgrad/text/piece_format.hpp).
#include <exprgrad/text/piece_format.hpp>
#include <exprgrad/text/utf8.hpp>
#include <stdexcept>
#include <string>

namespace exprgrad::text {

namespace {

constexpr std::string_view lower_one_eighth_block = "\xe2\x96\x81";  // U+2581

void append_byte_token(std::string& out, unsigned char b) {
    static constexpr char hex[] = "0123456789ABCDEF";
    out += "<0x";
    out += hex[b >> 4];
    out += hex[b & 15];
    out += '>';
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string format_piece(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() + 4);
    for (std::size_t i = 0; i < bytes.size();) {
        const std::size_t len = utf8_sequence_length(bytes, i);
        if (len == 0) {
            append_byte_token(out, static_cast<unsigned char>(bytes[i]));
            ++i;
            continue;
        }
        if (len == 1) {
            switch (bytes[i]) {
                case ' ':
                    out += lower_one_eighth_block;
                    break;
                case '\t':
                    out += "\\t";
                    break;
                case '\r':
                    out += "\\r";
                    break;
                case '\n':
                    out += "\\n";
                    break;
                case '\\':
                    out += "\\\\";
                    break;
                default:
                    out += bytes[i];
            }
        } else {
            out.append(bytes.substr(i, len));
        }
        i += len;
    }
    return out;
}

std::string format_segmentation(std::string_view text, std::span<const piece_span> spans, bool merge_unknown,
                                const vocabulary* byte_pieces) {
    std::string out;
    bool first = true;
    for (std::size_t k = 0; k < spans.size(); ++k) {
        std::size_t begin = spans[k].begin, end = spans[k].end;
        if (end > text.size() || begin > end) {
            throw std::out_of_range("format_segmentation: span [" + std::to_string(begin) + ", " + std::to_string(end) +
                                    ") outside a text of " + std::to_string(text.size()) + " bytes");
        }
        if (byte_pieces != nullptr && spans[k].id != unknown_id &&
            byte_pieces->at(spans[k].id).kind == piece_kind::byte) {
            if (!first) out += ' ';
            first = false;
            append_byte_token(out, static_cast<unsigned char>(byte_pieces->at(spans[k].id).text[0]));
            continue;
        }
        if (merge_unknown && spans[k].id == unknown_id) {
            while (k + 1 < spans.size() && spans[k + 1].id == unknown_id) end = spans[++k].end;
        }
        if (!first) out += ' ';
        first = false;
        out += format_piece(text.substr(begin, end - begin));
    }
    return out;
}

std::string parse_pieces(std::string_view line) {
    std::string out;
    out.reserve(line.size());
    for (std::size_t i = 0; i < line.size();) {
        const char c = line[i];
        if (c == ' ') {
            ++i;
        } else if (line.substr(i, 3) == lower_one_eighth_block) {
            out += ' ';
            i += 3;
        } else if (c == '\\') {
            if (i + 1 >= line.size()) {
                throw std::invalid_argument("column " + std::to_string(i + 1) + ": backslash at the end of the line");
            }
            switch (line[i + 1]) {
                case 't':
                    out += '\t';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case '\\':
                    out += '\\';
                    break;
                default: {
                    // The byte after the backslash, as \xHH when it is not printable ASCII (a control, NUL or
                    // part of a multi-byte character would garble the message).
                    const auto b = static_cast<unsigned char>(line[i + 1]);
                    const std::string shown = b >= 0x20 && b < 0x7F ? std::string(1, static_cast<char>(b))
                                                                    : std::string("\\x") + "0123456789abcdef"[b >> 4] +
                                                                          "0123456789abcdef"[b & 15];
                    throw std::invalid_argument("column " + std::to_string(i + 1) + ": unknown escape '\\" + shown +
                                                "' (expected \\t, \\r, \\n or \\\\)");
                }
            }
            i += 2;
        } else if (c == '<' && i + 5 < line.size() && line[i + 1] == '0' && line[i + 2] == 'x' &&
                   hex_value(line[i + 3]) >= 0 && hex_value(line[i + 4]) >= 0 && line[i + 5] == '>') {
            out += static_cast<char>(hex_value(line[i + 3]) * 16 + hex_value(line[i + 4]));
            i += 6;
        } else {
            out += c;
            ++i;
        }
    }
    return out;
}

}  // namespace exprgrad::text
