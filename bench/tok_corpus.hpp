// The benchmark corpus of the tokenizer: the English files of Debian's `fortunes` package, one text per
// line, with runs of spaces collapsed and edge spaces stripped (the form SentencePiece normalizes to, so
// both libraries see the same bytes). Shared by bench_tok.cpp and peers/bench_tok_spm.cpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace tok_bench {

inline std::vector<std::string> fortunes_lines() {
    const std::filesystem::path dir = "/usr/share/games/fortunes";
    std::vector<std::string> lines;
    if (!std::filesystem::exists(dir)) return lines;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const auto name = entry.path().filename().string();
        // Plain fortune files only (no .dat / .u8 / symlinks), and not the Chinese ones.
        if (!entry.is_regular_file() || name.find('.') != std::string::npos) continue;
        if (name == "chinese" || name == "tang300" || name == "song100") continue;
        files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        for (std::string line; std::getline(in, line);) {
            std::string norm;
            for (const char c : line) {
                if (c == ' ' && (norm.empty() || norm.back() == ' ')) continue;
                norm += c;
            }
            while (!norm.empty() && norm.back() == ' ') norm.pop_back();
            lines.push_back(std::move(norm));
        }
    }
    return lines;
}

inline std::size_t total_bytes(const std::vector<std::string>& lines) {
    std::size_t n = 0;
    for (const auto& l : lines) n += l.size();
    return n;
}

}  // namespace tok_bench
