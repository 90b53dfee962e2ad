// libFuzzer target for the checkpoint reader (issue #16): arbitrary bytes as a manifest, as an .npy file,
// as a %-escaped meta value, and as a whole checkpoint directory (manifest + one .npy) loaded through the
// public load_checkpoint. Every input must either parse or throw nn::checkpoint_error; anything else (a
// crash, another exception, a sanitizer report) is a finding. Built and run by run_fuzz.sh.
//
// Input: the first byte chooses the reader (mod 5), the rest is its input; for the directory mode the rest
// is split at the first "\n--\n" into manifest.txt and params/w.npy.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "../../src/nn/checkpoint_internal.hpp"

namespace {

namespace fs = std::filesystem;
namespace nn = exprgrad::nn;

const fs::path& work_dir() {
    static const fs::path dir = [] {
        std::string t = (fs::temp_directory_path() / "fuzz_checkpoint.XXXXXX").string();
        if (::mkdtemp(t.data()) == nullptr) std::abort();
        fs::create_directories(fs::path(t) / "ck" / "params");
        return fs::path(t);
    }();
    return dir;
}

void write(const fs::path& p, std::string_view bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <class T>
void load_dir(std::string_view rest) {
    const std::size_t cut = rest.find("\n--\n");
    const std::string_view man = rest.substr(0, cut);
    const std::string_view npy = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + 4);
    const fs::path ck = work_dir() / "ck";
    write(ck / "manifest.txt", man);
    write(ck / "params" / "w.npy", npy);
    nn::parameter_set<T> ps;
    ps.add("w", xt::xarray<T>::from_shape({2}));
    nn::adam<T> opt;
    exprgrad::rng g(1);
    nn::cosine_warmup sched({.base_lr = 0.1, .warmup_steps = 1, .total_steps = 10});
    (void)nn::read_checkpoint_info(ck);
    nn::load_checkpoint(ck, ps, {.opt = &opt, .sched = &sched, .generators = {{"data", &g}}});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    const fs::path shown = "fuzz";
    try {
        switch (data[0] % 5) {
            case 0:
                (void)nn::detail::parse_manifest(rest, shown);
                break;
            case 1:
                (void)nn::detail::parse_npy<float>(rest, shown);
                break;
            case 2:
                (void)nn::detail::parse_npy<double>(rest, shown);
                break;
            case 3: {
                const auto v = nn::detail::unescape_value(rest);
                if (v && nn::detail::unescape_value(nn::detail::escape_value(*v)) != *v) std::abort();
                break;
            }
            default:
                load_dir<float>(rest);
                break;
        }
    } catch (const nn::checkpoint_error&) {
        // The documented way to refuse.
    }
    return 0;
}
