// Checkpoints: bit-identical round trips, resuming training bit-identically, atomic replacement.
#include <doctest/doctest.h>

#include "checkpoint_test_util.hpp"

using namespace exprgrad;
using namespace nn_test;
namespace fs = std::filesystem;

namespace {

// Linear regression trained on minibatches: y = X w* + b* + noise, loss = mean over the batch of r²,
// r = x·w + b − y, gradient by hand: ∂/∂w = 2/B Σ r x, ∂/∂b = 2/B Σ r. The minibatch indices are drawn
// from the trainer's own generator, which the checkpoint must restore for the run to continue identically.
template <class T>
struct regression_data {
    static constexpr std::size_t n = 256, d = 8, batch = 16;
    xt::xarray<T> X = xt::xarray<T>::from_shape({n, d});
    xt::xarray<T> y = xt::xarray<T>::from_shape({n});
    regression_data() {
        rng g(5);
        for (std::size_t i = 0; i < n; ++i) {
            double yi = 0.3;
            for (std::size_t j = 0; j < d; ++j) {
                X(i, j) = static_cast<T>(g.normal());
                yi += static_cast<double>(X(i, j)) * (static_cast<double>(j) - 3.5);
            }
            y(i) = static_cast<T>(yi + 0.1 * g.normal());
        }
    }
};

template <class T>
struct trainer {
    const regression_data<T>& data;
    nn::parameter_set<T> params;
    nn::adam<T> opt{{.lr = 0.0, .weight_decay = 1e-3}};
    nn::cosine_warmup sched{{.base_lr = 0.5, .warmup_steps = 5, .total_steps = 60, .min_lr = 1e-3}};
    rng sampler{77};

    trainer(const regression_data<T>& dt, std::uint64_t init_seed) : data(dt) {
        rng g(init_seed);
        auto& w = params.add("w", xt::xarray<T>::from_shape({regression_data<T>::d}));
        nn::init::normal(w.value, g, 0.0, 0.5);
        params.add("b", xt::xarray<T>(static_cast<T>(g.normal())));  // a 0-d parameter
    }

    nn::checkpoint_items<T> items() { return {&opt, &sched, {{"sampler", &sampler}}}; }

    void run(int steps) {
        for (int s = 0; s < steps; ++s) {
            auto& w = params[0];
            auto& b = params[1];
            params.zero_grad();
            const T scale = static_cast<T>(2.0 / regression_data<T>::batch);
            for (std::size_t k = 0; k < regression_data<T>::batch; ++k) {
                const std::size_t i = sampler.below(regression_data<T>::n);
                T r = b.value() - data.y(i);
                for (std::size_t j = 0; j < regression_data<T>::d; ++j) r += data.X(i, j) * w.value(j);
                for (std::size_t j = 0; j < regression_data<T>::d; ++j) w.grad(j) += scale * r * data.X(i, j);
                b.grad() += scale * r;
            }
            nn::clip_grad_norm(params, 5.0);
            opt.set_lr(sched.lr());
            opt.step(params);
            sched.step();
        }
    }

    T full_loss() const {
        double l = 0;
        for (std::size_t i = 0; i < regression_data<T>::n; ++i) {
            double r = static_cast<double>(params[1].value()) - static_cast<double>(data.y(i));
            for (std::size_t j = 0; j < regression_data<T>::d; ++j)
                r += static_cast<double>(data.X(i, j)) * static_cast<double>(params[0].value(j));
            l += r * r;
        }
        return static_cast<T>(l / regression_data<T>::n);
    }
};

}  // namespace

TEST_CASE_TEMPLATE("train N steps, checkpoint, resume, train M more == N + M steps without a break, bit-identical", T,
                   float, double) {
    temp_dir tmp;
    const regression_data<T> data;
    constexpr int N = 23, M = 37;

    trainer<T> unbroken(data, 1);
    unbroken.run(N + M);
    // The run really trains, from a loss of about 34 to below 0.1 (the noise floor is 0.01): the test
    // compares a meaningful trajectory.
    CHECK(trainer<T>(data, 1).full_loss() > T(10));
    CHECK(unbroken.full_loss() < T(0.1));

    trainer<T> first(data, 1);
    first.run(N);
    nn::save_checkpoint(tmp.path / "ckpt", first.params, first.items());

    trainer<T> resumed(data, 999);  // other initial parameters, fresh optimizer, schedule and sampler
    CHECK_FALSE(same_params(resumed.params, first.params));
    nn::load_checkpoint(tmp.path / "ckpt", resumed.params, resumed.items());
    CHECK(same_params(resumed.params, first.params));
    CHECK(same_optimizer<T>(resumed.opt, first.opt));
    resumed.run(M);

    CHECK(same_params(resumed.params, unbroken.params));
    CHECK(same_optimizer<T>(resumed.opt, unbroken.opt));
    CHECK(resumed.sched.current_step() == N + M);
    CHECK(resumed.sampler.state() == unbroken.sampler.state());

    // Each restored piece matters: without the sampler's state the run diverges.
    trainer<T> no_sampler(data, 999);
    nn::load_checkpoint(tmp.path / "ckpt", no_sampler.params, {&no_sampler.opt, &no_sampler.sched, {}});
    no_sampler.run(M);
    CHECK_FALSE(same_params(no_sampler.params, unbroken.params));
}

TEST_CASE("round trip: every array bit-identical, -0 and denormals included; the files are standard .npy") {
    temp_dir tmp;
    nn::parameter_set<float> ps;
    auto& a = ps.add("layer.0.weight", xt::xarray<float>::from_shape({2, 3}));
    ps.add("scalar", xt::xarray<float>(-0.0f));
    ps.add("empty", xt::xarray<float>::from_shape({0, 4}));
    auto& c = ps.add("cube", xt::xarray<float>::from_shape({2, 2, 2}));
    rng g(3);
    nn::init::normal(a.value, g, 0, 1);
    nn::init::uniform(c.value, g, -1, 1);
    // NaN and infinities are refused since issue #16 (test_checkpoint_files.cpp): no state to continue from.
    a.value(0, 1) = -0.0f;
    a.value(1, 2) = std::numeric_limits<float>::denorm_min();
    nn::sgd<float> opt({.lr = 0.1, .momentum = 0.9});
    for (auto& p : ps) nn::init::normal(p.grad, g, 0, 1);
    opt.step(ps);
    nn::step_decay sched({.base_lr = 0.1, .step_size = 10, .gamma = 0.5});
    for (int i = 0; i < 13; ++i) sched.step();
    rng data(11), dropout(12);
    data.next_u64();
    const fs::path dir = tmp.path / "sub" / "ckpt";  // parents are created
    nn::save_checkpoint(dir, ps, {&opt, &sched, {{"data", &data}, {"dropout", &dropout}}});

    CHECK(entries(tmp.path / "sub") == std::set<std::string>{"ckpt"});
    CHECK(entries(dir) == std::set<std::string>{"manifest.txt", "params", "optimizer"});
    const std::string man = read_text(dir / "manifest.txt");
    CHECK(man.rfind("exprgrad-checkpoint 1\ndtype float32\nparameter layer.0.weight [2,3]\nparameter scalar []\n", 0) ==
          0);
    CHECK(man.find("optimizer sgd\noptimizer.step 1\noptimizer.hyper lr 0.1\n") != std::string::npos);
    CHECK(man.find("schedule step_decay\nschedule.step 13\n") != std::string::npos);
    // "end", then the manifest's own checksum: the FNV-1a 64 of every byte before that line.
    const auto last = man.rfind("\nend\nmanifest_checksum ");
    REQUIRE(last != std::string::npos);
    char sum[40];
    std::snprintf(sum, sizeof sum, "manifest_checksum %016llx\n",
                  static_cast<unsigned long long>(nn::fnv1a64(man.substr(0, last + 5))));
    CHECK(man.substr(last + 5) == sum);
    const std::string npy = read_text(dir / "params" / "cube.npy");
    CHECK(npy.rfind("\x93NUMPY\x01\x00", 0) == 0);
    CHECK(npy.find("'descr': '<f4'") != std::string::npos);
    CHECK(npy.find("'shape': (2, 2, 2)") != std::string::npos);
    CHECK(fs::exists(dir / "optimizer" / "momentum_buffer" / "layer.0.weight.npy"));

    nn::parameter_set<float> back;
    back.add("layer.0.weight", xt::zeros<float>({2, 3}));
    back.add("scalar", xt::xarray<float>(1.0f));
    back.add("empty", xt::zeros<float>({0, 4}));
    back.add("cube", xt::zeros<float>({2, 2, 2}));
    nn::sgd<float> opt2({.lr = 0.5, .momentum = 0.9});
    nn::step_decay sched2({.base_lr = 0.1, .step_size = 10, .gamma = 0.5});
    rng data2(0), dropout2(0);
    nn::load_checkpoint(dir, back, {&opt2, &sched2, {{"dropout", &dropout2}, {"data", &data2}}});
    CHECK(same_params(back, ps));
    CHECK(std::signbit(back.at("scalar").value()));
    CHECK(same_optimizer<float>(opt2, opt));
    CHECK(sched2.current_step() == 13);
    CHECK(data2.state() == data.state());
    CHECK(dropout2.state() == dropout.state());

    // Parameters alone (e.g. for inference): the other entries are ignored.
    nn::parameter_set<float> only;
    only.add("layer.0.weight", xt::zeros<float>({2, 3}));
    only.add("scalar", xt::xarray<float>(1.0f));
    only.add("empty", xt::zeros<float>({0, 4}));
    only.add("cube", xt::zeros<float>({2, 2, 2}));
    nn::load_checkpoint(dir, only);
    CHECK(same_params(only, ps));

    // An optimizer that has not stepped yet has no buffers to save; it loads back as fresh.
    nn::adam<double> fresh;
    nn::parameter_set<double> pd;
    pd.add("x", xt::zeros<double>({3}));
    nn::save_checkpoint(tmp.path / "fresh", pd, {&fresh, nullptr, {}});
    nn::adam<double> fresh2;
    nn::load_checkpoint(tmp.path / "fresh", pd, {&fresh2, nullptr, {}});
    CHECK(fresh2.step_count() == 0);
    CHECK(fresh2.param_names().empty());
}

TEST_CASE("a Fortran-ordered .npy file (as NumPy writes for F-contiguous arrays) loads with the right element order") {
    temp_dir tmp;
    nn::parameter_set<double> ps;
    ps.add("m", xt::zeros<double>({2, 3}));
    nn::save_checkpoint(tmp.path / "ck", ps);
    // Header padded so that magic + version + length + header is a multiple of 64 bytes (here 128), as NumPy does.
    std::string header = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }";
    header += std::string(128 - 10 - header.size() - 1, ' ') + "\n";
    std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
    bytes += static_cast<char>(header.size());
    bytes += '\0';
    bytes += header;
    for (int k = 0; k < 6; ++k) {  // column-major: element (i, j) is k = i + 2 j
        const double v = k;
        bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    write_text(tmp.path / "ck" / "params" / "m.npy", bytes);
    restamp_checksum(tmp.path / "ck", "params/m.npy");  // as a tool replacing the file would
    nn::load_checkpoint(tmp.path / "ck", ps);
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j) CHECK(ps[0].value(i, j) == static_cast<double>(i + 2 * j));
}

TEST_CASE("overwriting replaces the checkpoint whole, with rename exchange and with the two-rename fallback") {
    temp_dir tmp;
    const fs::path dir = tmp.path / "ckpt";
    for (const bool exchange : {true, false}) {
        const nn::detail::save_options options{.use_rename_exchange = exchange};
        nn::parameter_set<double> ps;
        ps.add("w", xt::xarray<double>(1.0));
        ps.add("v", xt::zeros<double>({2}));
        nn::detail::save_checkpoint(dir, ps, {}, options);
        ps[0].value() = 2.0;
        nn::detail::save_checkpoint(dir / "", ps, {}, options);  // a trailing separator names the same directory
        ps[0].value() = 3.0;
        nn::detail::save_checkpoint(dir, ps, {}, options);
        nn::parameter_set<double> back;
        back.add("w", xt::xarray<double>(0.0));
        back.add("v", xt::zeros<double>({2}));
        nn::load_checkpoint(dir, back);
        CHECK(back[0].value() == 3.0);
        CHECK(entries(tmp.path) == std::set<std::string>{"ckpt"});  // no .tmp-* or .old-* left behind

        // A checkpoint with fewer parameters replaces one with more: nothing of the old one survives.
        nn::parameter_set<double> small;
        small.add("w", xt::xarray<double>(4.0));
        nn::detail::save_checkpoint(dir, small, {}, options);
        CHECK(entries(dir / "params") == std::set<std::string>{"w.npy"});
        fs::remove_all(dir);
    }
}

TEST_CASE("save refuses to replace what is not a checkpoint and leaves nothing behind on failure") {
    temp_dir tmp;
    const fs::path dir = tmp.path / "precious";
    fs::create_directory(dir);
    write_text(dir / "thesis.tex", "do not delete");
    nn::parameter_set<float> ps;
    ps.add("w", xt::zeros<float>({2}));
    CHECK_THROWS_WITH_AS(nn::save_checkpoint(dir, ps), doctest::Contains("not an exprgrad checkpoint"),
                         nn::checkpoint_error);
    CHECK(read_text(dir / "thesis.tex") == "do not delete");
    write_text(tmp.path / "file", "x");
    CHECK_THROWS_AS(nn::save_checkpoint(tmp.path / "file", ps), nn::checkpoint_error);
    // The optimizer's state belongs to other parameters: refused before anything is written.
    nn::parameter_set<float> other;
    other.add("u", xt::zeros<float>({2}));
    nn::adam<float> opt;
    opt.step(other);
    CHECK_THROWS_WITH_AS(nn::save_checkpoint(tmp.path / "ck", ps, {&opt, nullptr, {}}),
                         doctest::Contains("other parameters"), nn::checkpoint_error);
    rng g(1);
    CHECK_THROWS_AS(nn::save_checkpoint(tmp.path / "ck", ps, {nullptr, nullptr, {{"a b", &g}}}), nn::checkpoint_error);
    CHECK_THROWS_AS(nn::save_checkpoint(tmp.path / "ck", ps, {nullptr, nullptr, {{"g", &g}, {"g", &g}}}),
                    nn::checkpoint_error);
    CHECK(entries(tmp.path) == std::set<std::string>{"precious", "file"});
    // An empty directory may be replaced.
    fs::create_directory(tmp.path / "empty");
    nn::save_checkpoint(tmp.path / "empty", ps);
    CHECK(fs::exists(tmp.path / "empty" / "manifest.txt"));
}
