// Helpers shared by the checkpoint tests: a self-removing temporary directory, bitwise comparisons and
// raw file access.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <exprgrad/nn/checkpoint.hpp>
#include <exprgrad/nn/init.hpp>
// The tests write .npy files themselves. GCC 12 reports false -Wmaybe-uninitialized positives inside
// std::regex (used by xnpy.hpp) with sanitizers; they are in libstdc++.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <xtensor/xnpy.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "../../src/nn/checkpoint_internal.hpp"

namespace nn_test {

using namespace exprgrad;
namespace fs = std::filesystem;

// A fresh directory under the system temporary directory, removed with its contents at scope exit.
struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string t = (fs::temp_directory_path() / "exprgrad-nn-test-XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

template <class T>
bool same_bits(const xt::xarray<T>& a, const xt::xarray<T>& b) {
    return a.shape() == b.shape() && (a.size() == 0 || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

template <class T>
bool same_params(const nn::parameter_set<T>& a, const nn::parameter_set<T>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].name != b[i].name || !same_bits(a[i].value, b[i].value)) return false;
    return true;
}

template <class T>
bool same_optimizer(const nn::optimizer<T>& a, const nn::optimizer<T>& b) {
    if (a.step_count() != b.step_count() || a.lr() != b.lr() || a.param_names() != b.param_names()) return false;
    if (a.buffers().size() != b.buffers().size()) return false;
    for (std::size_t i = 0; i < a.buffers().size(); ++i)
        for (std::size_t j = 0; j < a.buffers()[i].size(); ++j)
            if (!same_bits(a.buffers()[i][j], b.buffers()[i][j])) return false;
    return true;
}

inline std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_text(const fs::path& p, const std::string& s) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << s;
}

inline std::set<std::string> entries(const fs::path& dir) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
    return out;
}

// Rewrites the manifest's last line, "manifest_checksum <hex>", to match the bytes before it (after a test
// edits the manifest on purpose, so that only the check under test fires). Adds it if missing.
inline void restamp_manifest(const fs::path& dir) {
    std::string man = read_text(dir / "manifest.txt");
    const auto at = man.rfind("manifest_checksum ");
    if (at != std::string::npos && man.find('\n', at) == man.size() - 1) man.erase(at);
    char line[64];
    std::snprintf(line, sizeof line, "manifest_checksum %016llx\n", static_cast<unsigned long long>(nn::fnv1a64(man)));
    write_text(dir / "manifest.txt", man + line);
}

// Rewrites the manifest's checksum line of `rel` to match the file's current bytes (what a tool that
// replaces a file on purpose must do; the corruption tests leave it stale), and the manifest's own.
inline void restamp_checksum(const fs::path& dir, const std::string& rel) {
    const std::string man = read_text(dir / "manifest.txt");
    const std::string key = "checksum " + rel + " ";
    const auto at = man.find(key);
    REQUIRE(at != std::string::npos);
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(nn::fnv1a64(read_text(dir / rel))));
    write_text(dir / "manifest.txt", man.substr(0, at + key.size()) + hex + man.substr(at + key.size() + 16));
    restamp_manifest(dir);
}

}  // namespace nn_test
