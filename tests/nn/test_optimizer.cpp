// Optimizers and gradient clipping against hand-computed references.
//
// The references write the update rules of the PyTorch documentation (torch.optim.SGD, Adam, AdamW)
// out step by step in long double, in the textbook order (m̂ / (√v̂ + ε)), independently of the
// implementation's operation order; a few steps are also checked against numbers worked out by hand.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <exprgrad/kernels/parallel.hpp>
#include <exprgrad/nn/optimizer.hpp>
#include <exprgrad/nn/schedule.hpp>
#include <exprgrad/random.hpp>

using namespace exprgrad;
using ld = long double;

namespace {

// A set with one 1-D parameter "w" holding `values`.
template <class T>
nn::parameter_set<T> one_param(const std::vector<double>& values) {
    nn::parameter_set<T> ps;
    auto a = xt::xarray<T>::from_shape({values.size()});
    for (std::size_t i = 0; i < values.size(); ++i) a(i) = static_cast<T>(values[i]);
    ps.add("w", a);
    return ps;
}

template <class T>
void set_grad(nn::parameter_set<T>& ps, const std::vector<double>& g) {
    for (std::size_t i = 0; i < g.size(); ++i) ps[0].grad(i) = static_cast<T>(g[i]);
}

// |got - want| <= tol * max(1, |want|).
void check_close(double got, ld want, double tol) {
    const ld err = std::fabs(static_cast<ld>(got) - want);
    const ld scale = std::fmax(1.0L, std::fabs(want));
    INFO("got ", got, ", want ", static_cast<double>(want), ", rel err ", static_cast<double>(err / scale));
    CHECK(err <= tol * scale);
}

const std::vector<std::vector<double>> grads3 = {{0.5, -1.0, 2.0}, {-0.25, 0.75, 1.5}, {1.0, -0.125, -3.0}};
const std::vector<double> theta0 = {1.0, -2.0, 0.5};

}  // namespace

TEST_CASE_TEMPLATE("sgd with momentum, dampening and weight decay matches the written-out rule", T, float, double) {
    const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-14;
    for (const bool nesterov : {false, true}) {
        const ld lr = 0.1L, mu = 0.9L, tau = nesterov ? 0.0L : 0.1L, wd = 0.01L;
        nn::sgd<T> opt({.lr = 0.1,
                        .momentum = 0.9,
                        .dampening = nesterov ? 0.0 : 0.1,
                        .weight_decay = 0.01,
                        .nesterov = nesterov});
        auto ps = one_param<T>(theta0);
        // Reference: the rule written out in long double, one element at a time:
        //   g = g_t + λθ;  b = g (t = 1) or μ b + (1 − τ) g;  θ −= γ (g + μ b  if nesterov, else b)
        std::vector<ld> th(theta0.begin(), theta0.end()), buf(3, 0);
        for (int t = 1; t <= 3; ++t) {
            set_grad(ps, grads3[t - 1]);
            opt.step(ps);
            for (std::size_t i = 0; i < 3; ++i) {
                ld g = grads3[t - 1][i] + wd * th[i];
                buf[i] = t == 1 ? g : mu * buf[i] + (1 - tau) * g;
                th[i] -= lr * (nesterov ? g + mu * buf[i] : buf[i]);
                check_close(ps[0].value(i), th[i], tol);
                check_close(opt.buffers()[0][0](i), buf[i], tol);
            }
        }
        CHECK(opt.step_count() == 3);
    }
}

TEST_CASE("sgd: three momentum steps worked out by hand") {
    // μ = 0.9, γ = 0.1, θ0 = 1, g = 0.5 every step:
    // b1 = 0.5, θ1 = 0.95; b2 = 0.45 + 0.5 = 0.95, θ2 = 0.855; b3 = 0.855 + 0.5 = 1.355, θ3 = 0.7195.
    nn::sgd<double> opt({.lr = 0.1, .momentum = 0.9});
    auto ps = one_param<double>({1.0});
    const double expect[] = {0.95, 0.855, 0.7195};
    for (double e : expect) {
        set_grad(ps, {0.5});
        opt.step(ps);
        CHECK(ps[0].value(0) == doctest::Approx(e).epsilon(1e-15));
    }
    // Plain SGD keeps no state.
    nn::sgd<double> plain({.lr = 0.5});
    CHECK(plain.buffer_names().empty());
    auto ps2 = one_param<double>({1.0});
    set_grad(ps2, {0.5});
    plain.step(ps2);
    CHECK(ps2[0].value(0) == 0.75);
}

namespace {

// Adam/AdamW reference, textbook order, long double.
struct adam_ref {
    ld lr, b1, b2, eps, wd;
    bool decoupled;
    std::vector<ld> th, m, v;
    int t = 0;
    void step(const std::vector<double>& grad) {
        ++t;
        for (std::size_t i = 0; i < th.size(); ++i) {
            ld g = grad[i];
            if (decoupled)
                th[i] = th[i] - lr * wd * th[i];
            else
                g = g + wd * th[i];
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            const ld mhat = m[i] / (1 - std::pow(b1, static_cast<ld>(t)));
            const ld vhat = v[i] / (1 - std::pow(b2, static_cast<ld>(t)));
            th[i] = th[i] - lr * mhat / (std::sqrt(vhat) + eps);
        }
    }
};

}  // namespace

TEST_CASE_TEMPLATE("adam and adamw match the written-out rule for three steps", T, float, double) {
    const double tol = std::is_same_v<T, float> ? 4e-6 : 1e-13;
    for (const bool decoupled : {false, true}) {
        const nn::adam_options o{.lr = 0.05, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-3, .weight_decay = 0.1};
        auto ps = one_param<T>(theta0);
        std::unique_ptr<nn::optimizer<T>> opt;
        if (decoupled)
            opt = std::make_unique<nn::adamw<T>>(o);
        else
            opt = std::make_unique<nn::adam<T>>(o);
        adam_ref ref{0.05L, 0.8L, 0.95L, 1e-3L, 0.1L, decoupled, {theta0.begin(), theta0.end()}, {0, 0, 0}, {0, 0, 0}};
        for (int t = 0; t < 3; ++t) {
            set_grad(ps, grads3[t]);
            opt->step(ps);
            ref.step(grads3[t]);
            for (std::size_t i = 0; i < 3; ++i) {
                check_close(ps[0].value(i), ref.th[i], tol);
                check_close(opt->buffers()[0][0](i), ref.m[i], tol);
                check_close(opt->buffers()[1][0](i), ref.v[i], tol);
            }
        }
        CHECK(opt->kind() == std::string(decoupled ? "adamw" : "adam"));
    }
}

TEST_CASE("adam: a constant gradient moves every step by lr * g / (|g| + eps), worked out by hand") {
    // With a constant g, bias correction makes m̂ = g and v̂ = g² exactly, so each step is
    // γ g / (|g| + ε): with γ = 0.1, g = 0.5, ε = 1e-8, θ drops by 0.1 / (1 + 2e-8) ≈ 0.099999998.
    nn::adam<double> opt({.lr = 0.1});
    auto ps = one_param<double>({1.0});
    for (int t = 1; t <= 3; ++t) {
        set_grad(ps, {0.5});
        opt.step(ps);
        CHECK(ps[0].value(0) == doctest::Approx(1.0 - t * 0.1 / (1.0 + 2e-8)).epsilon(1e-13));
    }
    // AdamW with λ = 0.5, γ = 0.1, θ0 = 2, g = 1: θ1 = 2 (1 − 0.05) − 0.1 · 1 / (1 + 1e-8) ≈ 1.8.
    nn::adamw<double> w({.lr = 0.1, .weight_decay = 0.5});
    auto ps2 = one_param<double>({2.0});
    set_grad(ps2, {1.0});
    w.step(ps2);
    CHECK(ps2[0].value(0) == doctest::Approx(1.9 - 0.1 / (1.0 + 1e-8)).epsilon(1e-14));
}

TEST_CASE("optimizers reject bad hyperparameters and mismatched parameters") {
    CHECK_THROWS_AS(nn::sgd<float>({.lr = -1}), std::invalid_argument);
    CHECK_THROWS_AS(nn::sgd<float>({.lr = NAN}), std::invalid_argument);
    CHECK_THROWS_AS(nn::sgd<float>({.momentum = 0, .nesterov = true}), std::invalid_argument);
    CHECK_THROWS_AS(nn::sgd<float>({.momentum = 0.9, .dampening = 0.1, .nesterov = true}), std::invalid_argument);
    CHECK_THROWS_AS(nn::adam<float>({.beta1 = 1.0}), std::invalid_argument);
    CHECK_THROWS_AS(nn::adam<float>({.beta2 = -0.1}), std::invalid_argument);
    CHECK_THROWS_AS(nn::adamw<float>({.eps = INFINITY}), std::invalid_argument);
    CHECK_THROWS_AS(nn::adamw<float>({.weight_decay = -0.1}), std::invalid_argument);

    nn::adam<float> opt;
    CHECK_THROWS_AS(opt.set_lr(-0.5), std::invalid_argument);
    auto ps = one_param<float>({1, 2});
    ps[0].grad = xt::zeros<float>({3});  // grad shape differs from value shape
    CHECK_THROWS_WITH_AS(opt.step(ps), doctest::Contains("\"w\""), std::invalid_argument);
    CHECK(opt.step_count() == 0);
    ps[0].zero_grad();
    opt.step(ps);
    // A different set after binding: other name, other shape.
    auto other = one_param<float>({1, 2, 3});
    CHECK_THROWS_AS(opt.step(other), std::invalid_argument);
    nn::parameter_set<float> renamed;
    renamed.add("v", xt::zeros<float>({2}));
    CHECK_THROWS_WITH_AS(opt.step(renamed), doctest::Contains("\"v\""), std::invalid_argument);
    CHECK(opt.step_count() == 1);
}

TEST_CASE("optimizer state: save, restore, continue identically; incompatible states are refused") {
    auto run = [](nn::optimizer<double>& opt, nn::parameter_set<double>& ps, int from, int to) {
        for (int t = from; t < to; ++t) {
            set_grad(ps, grads3[t % 3]);
            opt.step(ps);
        }
    };
    nn::adamw<double> a({.lr = 0.01});
    auto pa = one_param<double>(theta0);
    run(a, pa, 0, 4);
    const auto saved = a.state();
    const xt::xarray<double> saved_value = pa[0].value;
    run(a, pa, 4, 7);

    nn::adamw<double> b({.lr = 0.5});  // lr differs: restored from the state
    auto pb = one_param<double>(theta0);
    pb[0].value = saved_value;
    b.load_state(saved);
    CHECK(b.lr() == 0.01);
    CHECK(b.step_count() == 4);
    run(b, pb, 4, 7);
    CHECK((pb[0].value == pa[0].value));

    nn::adamw<double> other_beta({.lr = 0.01, .beta1 = 0.8});
    CHECK_THROWS_WITH_AS(other_beta.load_state(saved), doctest::Contains("beta1"), std::invalid_argument);
    nn::adam<double> other_kind({.lr = 0.01});
    CHECK_THROWS_WITH_AS(other_kind.load_state(saved), doctest::Contains("adamw"), std::invalid_argument);
    CHECK(other_kind.step_count() == 0);
    auto broken = saved;
    broken.buffers[1].clear();
    CHECK_THROWS_AS(b.load_state(broken), std::invalid_argument);
    CHECK(b.step_count() == 7);
}

TEST_CASE("NaN gradients propagate into the parameters (documented policy)") {
    nn::adam<float> opt;
    auto ps = one_param<float>({1, 2});
    set_grad(ps, {NAN, 1.0});
    opt.step(ps);
    CHECK(std::isnan(ps[0].value(0)));
    CHECK(std::isfinite(ps[0].value(1)));
}

TEST_CASE_TEMPLATE("clip_grad_norm: global L2 norm over all parameters, scaling only above max_norm", T, float,
                   double) {
    nn::parameter_set<T> ps;
    ps.add("a", xt::zeros<T>({2}));
    ps.add("b", xt::zeros<T>({1, 1}));
    ps[0].grad(0) = 3;
    ps[0].grad(1) = 0;
    ps[1].grad(0, 0) = 4;
    // norm = 5; c = 1 / (5 + 1e-6)
    const double n = nn::clip_grad_norm(ps, 1.0);
    CHECK(n == 5.0);
    const double c = 1.0 / (5.0 + 1e-6);
    CHECK(ps[0].grad(0) == static_cast<T>(3) * static_cast<T>(c));
    CHECK(ps[1].grad(0, 0) == static_cast<T>(4) * static_cast<T>(c));
    CHECK(nn::grad_norm(ps) == doctest::Approx(1.0).epsilon(1e-6));
    // Below the threshold: unchanged, the norm still returned.
    const xt::xarray<T> before = ps[0].grad;
    CHECK(nn::clip_grad_norm(ps, 10.0) == doctest::Approx(1.0).epsilon(1e-6));
    CHECK((ps[0].grad == before));
    // Max norm 0 zeroes the gradients.
    nn::clip_grad_norm(ps, 0.0);
    CHECK(ps[1].grad(0, 0) == 0);
    CHECK_THROWS_AS(nn::clip_grad_norm(ps, -1.0), std::invalid_argument);
    CHECK_THROWS_AS(nn::clip_grad_norm(ps, NAN), std::invalid_argument);
}

TEST_CASE("clip_grad_norm: accumulated in double, robust to overflow, non-finite norms leave grads alone") {
    // 10^6 float gradients of 0.1f: a float accumulator drifts visibly, double gives sqrt(n) · 0.1f.
    nn::parameter_set<float> ps;
    ps.add("big", xt::zeros<float>({1000000}));
    ps[0].grad.fill(0.1f);
    const double want = std::sqrt(1e6 * static_cast<double>(0.1f) * static_cast<double>(0.1f));
    CHECK(nn::grad_norm(ps) == doctest::Approx(want).epsilon(1e-10));
    float naive = 0;  // what a float accumulator would give: off by far more than the tolerance above
    for (float g : ps[0].grad) naive += g * g;
    CHECK(std::fabs(std::sqrt(static_cast<double>(naive)) - want) > 1e-4 * want);

    // Squares overflow double, the norm does not: 3e200, 4e200 -> 5e200.
    nn::parameter_set<double> huge;
    huge.add("h", xt::zeros<double>({2}));
    huge[0].grad(0) = 3e200;
    huge[0].grad(1) = 4e200;
    CHECK(nn::clip_grad_norm(huge, 1.0) == doctest::Approx(5e200).epsilon(1e-14));
    CHECK(huge[0].grad(1) == doctest::Approx(0.8).epsilon(1e-12));

    huge[0].grad(0) = NAN;
    huge[0].grad(1) = 2.0;
    CHECK(std::isnan(nn::clip_grad_norm(huge, 1.0)));
    CHECK(huge[0].grad(1) == 2.0);
    CHECK_THROWS_AS(nn::clip_grad_norm(huge, 1.0, true), std::domain_error);
    huge[0].grad(0) = INFINITY;
    CHECK(std::isinf(nn::clip_grad_norm(huge, 1.0)));
    CHECK(huge[0].grad(1) == 2.0);
}

TEST_CASE("clip_grad_value clamps elementwise; NaN stays NaN") {
    auto ps = one_param<double>({0, 0, 0, 0, 0});
    set_grad(ps, {-3.0, 0.5, 2.0, INFINITY, NAN});
    nn::clip_grad_value(ps, 1.0);
    CHECK(ps[0].grad(0) == -1.0);
    CHECK(ps[0].grad(1) == 0.5);
    CHECK(ps[0].grad(2) == 1.0);
    CHECK(ps[0].grad(3) == 1.0);
    CHECK(std::isnan(ps[0].grad(4)));
    CHECK_THROWS_AS(nn::clip_grad_value(ps, -1.0), std::invalid_argument);
}

namespace {

// The blocked, pooled updates (nn/parameter_blocks.hpp) against a naive per-element loop in T: the
// configurations of the partition test below, one step of clip_grad_norm(max_norm 1) then the optimizer.
struct blocked_config {
    int kind;  // 0 adam, 1 adam with L2 decay, 2 adamw, 3 sgd (momentum, dampening, decay), 4 sgd nesterov + decay
    template <class T>
    std::unique_ptr<nn::optimizer<T>> make() const {
        switch (kind) {
            case 0:
                return std::make_unique<nn::adam<T>>(nn::adam_options{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.95});
            case 1:
                return std::make_unique<nn::adam<T>>(nn::adam_options{.lr = 0.01, .weight_decay = 0.1});
            case 2:
                return std::make_unique<nn::adamw<T>>(nn::adam_options{.lr = 0.01, .eps = 1e-3, .weight_decay = 0.1});
            case 3:
                return std::make_unique<nn::sgd<T>>(
                    nn::sgd_options{.lr = 0.1, .momentum = 0.9, .dampening = 0.2, .weight_decay = 0.05});
            default:
                return std::make_unique<nn::sgd<T>>(
                    nn::sgd_options{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.05, .nesterov = true});
        }
    }
};

// Parameters of 40 blocks + 3 elements (above the element counts at which the updates and the norm go to the
// pool), 5 (less than a SIMD batch) and 3 x 4099, filled from a fixed LCG; gradients for `steps` steps.
template <class T>
struct blocked_problem {
    std::vector<std::vector<std::size_t>> shapes{{40 * nn::detail::parameter_block_size + 3}, {5}, {3, 4099}};
    std::vector<std::vector<T>> values;              // values[param]
    std::vector<std::vector<std::vector<T>>> grads;  // grads[step][param]
    explicit blocked_problem(int steps) {
        std::uint64_t s = 12345;
        auto uniform = [&] {  // in [-1, 1)
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            return static_cast<T>(static_cast<double>(s >> 11) / 4503599627370496.0 - 1.0);
        };
        for (const auto& shape : shapes) {
            values.emplace_back(shape.size() == 1 ? shape[0] : shape[0] * shape[1]);
            for (auto& x : values.back()) x = uniform();
        }
        grads.resize(static_cast<std::size_t>(steps));
        for (auto& step : grads)
            for (const auto& v : values) {
                step.emplace_back(v.size());
                for (auto& g : step.back()) g = uniform() * T(0.01);  // norm ≈ 2.4: clipping scales
            }
    }
    void fill(nn::parameter_set<T>& ps) const {
        for (std::size_t p = 0; p < shapes.size(); ++p) {
            auto& w = ps.add(std::string(1, static_cast<char>('a' + p)), xt::xarray<T>::from_shape(shapes[p]));
            std::copy(values[p].begin(), values[p].end(), w.value.begin());
        }
    }
};

// The naive loop: one parameter vector per parameter, coefficients rounded to T as documented.
template <class T>
struct naive_run {
    std::vector<std::vector<T>> th, b0, b1;
    std::vector<double> norms;
};

template <class T>
naive_run<T> run_naive(const blocked_problem<T>& prob, int kind) {
    naive_run<T> r;
    r.th = prob.values;
    for (const auto& v : prob.values) {
        r.b0.emplace_back(v.size(), T(0));
        r.b1.emplace_back(v.size(), T(0));
    }
    for (std::size_t t = 1; t <= prob.grads.size(); ++t) {
        auto g = prob.grads[t - 1];
        ld sum = 0;
        for (const auto& gp : g)
            for (const T x : gp) sum += static_cast<ld>(x) * x;
        const double norm = static_cast<double>(std::sqrt(sum));
        r.norms.push_back(norm);
        const T c = static_cast<T>(1.0 / (norm + 1e-6));
        for (auto& gp : g)
            for (T& x : gp) x = x * c;
        for (std::size_t p = 0; p < g.size(); ++p)
            for (std::size_t i = 0; i < g[p].size(); ++i) {
                T& th = r.th[p][i];
                T gi = g[p][i];
                if (kind <= 2) {
                    const double lr = 0.01, b1 = kind == 0 ? 0.8 : 0.9, b2 = kind == 0 ? 0.95 : 0.999;
                    const double eps = kind == 2 ? 1e-3 : 1e-8, wd = kind == 0 ? 0.0 : 0.1;
                    const double bc1 = 1 - std::pow(b1, static_cast<double>(t));
                    const double bc2 = 1 - std::pow(b2, static_cast<double>(t));
                    if (kind == 2) th = th * static_cast<T>(1 - lr * wd);
                    if (kind == 1) gi = gi + static_cast<T>(wd) * th;
                    T& m = r.b0[p][i];
                    T& v = r.b1[p][i];
                    m = static_cast<T>(b1) * m + static_cast<T>(1 - b1) * gi;
                    v = static_cast<T>(b2) * v + static_cast<T>(1 - b2) * gi * gi;
                    const T denom = std::sqrt(v) / static_cast<T>(std::sqrt(bc2)) + static_cast<T>(eps);
                    th = th - static_cast<T>(lr / bc1) * (m / denom);
                } else {
                    const T lr = T(0.1), mu = T(0.9), wd = T(0.05), keep = static_cast<T>(kind == 3 ? 0.8 : 1.0);
                    T& buf = r.b0[p][i];
                    gi = gi + wd * th;
                    buf = t == 1 ? gi : mu * buf + keep * gi;
                    gi = kind == 4 ? gi + mu * buf : buf;
                    th = th - lr * gi;
                }
            }
    }
    return r;
}

// |got − want| <= ulps · ε_T · max |want| over the array: the naive loop rounds (and fuses) differently; the
// sanitizer build (-Og, where GCC fuses nothing in the naive loop) measured up to 8 ulp after three steps.
template <class T, class Got>
void check_near_array(const Got& got, const std::vector<T>& want, double ulps) {
    double scale = 0;
    for (const T w : want) scale = std::max(scale, std::fabs(static_cast<double>(w)));
    const double tol = ulps * std::numeric_limits<T>::epsilon() * scale;
    double worst = 0;
    for (std::size_t i = 0; i < want.size(); ++i)
        worst = std::max(worst, std::fabs(static_cast<double>(got.data()[i]) - static_cast<double>(want[i])));
    INFO("worst error ", worst, ", tolerance ", tol);
    CHECK(worst <= tol);
}

template <class T>
bool same_bits(const xt::xarray<T>& a, const xt::xarray<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace

TEST_CASE_TEMPLATE("optimizers and clip_grad_norm: the same bits at 1 and 2 threads, a naive loop's values", T, float,
                   double) {
    const std::size_t threads_before = kernels::num_threads();
    const int steps = 3;
    const blocked_problem<T> prob(steps);
    for (int kind = 0; kind <= 4; ++kind) {
        INFO("configuration ", kind);
        std::array<nn::parameter_set<T>, 2> sets;
        std::vector<std::unique_ptr<nn::optimizer<T>>> opts;
        std::vector<std::vector<double>> norms(2);
        for (std::size_t threads : {1, 2}) {
            kernels::set_num_threads(threads);
            auto& ps = sets[threads - 1];
            prob.fill(ps);
            opts.push_back(blocked_config{kind}.template make<T>());
            for (int t = 0; t < steps; ++t) {
                for (std::size_t p = 0; p < ps.size(); ++p)
                    std::copy(prob.grads[t][p].begin(), prob.grads[t][p].end(), ps[p].grad.begin());
                norms[threads - 1].push_back(nn::clip_grad_norm(ps, 1.0));
                opts.back()->step(ps);
            }
        }
        kernels::set_num_threads(threads_before);
        CHECK(norms[0] == norms[1]);
        for (std::size_t p = 0; p < prob.values.size(); ++p) {
            CHECK(same_bits(sets[0][p].value, sets[1][p].value));
            CHECK(same_bits(sets[0][p].grad, sets[1][p].grad));
            for (std::size_t b = 0; b < opts[0]->buffers().size(); ++b)
                CHECK(same_bits(opts[0]->buffers()[b][p], opts[1]->buffers()[b][p]));
        }
        const auto naive = run_naive(prob, kind);
        for (int t = 0; t < steps; ++t) CHECK(norms[0][t] == doctest::Approx(naive.norms[t]).epsilon(1e-13));
        for (std::size_t p = 0; p < prob.values.size(); ++p) {
            check_near_array(sets[0][p].value, naive.th[p], 16);
            check_near_array(opts[0]->buffers()[0][p], naive.b0[p], 16);
            if (kind <= 2) check_near_array(opts[0]->buffers()[1][p], naive.b1[p], 16);
        }
    }
}

namespace {

// Least squares: L(w, b) = 1/(2n) Σ (x_i·w + b − y_i)², with y generated by known (w*, b*) and no noise,
// so the minimum is 0 at (w*, b*). Gradient by hand: ∂L/∂w = Xᵀ r / n, ∂L/∂b = Σ r / n.
struct least_squares {
    static constexpr std::size_t n = 64, d = 4;
    xt::xarray<double> X = xt::xarray<double>::from_shape({n, d});
    xt::xarray<double> y = xt::xarray<double>::from_shape({n});
    double w_star[d] = {1.5, -2.0, 0.25, 3.0};
    double b_star = -0.5;
    least_squares() {
        rng g(2024);
        for (std::size_t i = 0; i < n; ++i) {
            y(i) = b_star;
            for (std::size_t j = 0; j < d; ++j) {
                X(i, j) = g.normal();
                y(i) += X(i, j) * w_star[j];
            }
        }
    }
    double loss_and_grad(nn::parameter_set<double>& ps) const {
        auto& w = ps.at("w");
        auto& b = ps.at("b");
        w.zero_grad();
        b.zero_grad();
        double loss = 0;
        for (std::size_t i = 0; i < n; ++i) {
            double r = b.value() - y(i);
            for (std::size_t j = 0; j < d; ++j) r += X(i, j) * w.value(j);
            loss += 0.5 * r * r / n;
            for (std::size_t j = 0; j < d; ++j) w.grad(j) += X(i, j) * r / n;
            b.grad() += r / n;
        }
        return loss;
    }
};

// Runs `steps` full-batch steps with lr = lr_at(step) and returns the final loss.
template <class LrAt>
double train(nn::optimizer<double>& opt, int steps, LrAt lr_at) {
    const least_squares problem;
    nn::parameter_set<double> ps;
    ps.add("w", xt::zeros<double>({least_squares::d}));
    ps.add("b", xt::xarray<double>(0.0));
    for (int s = 0; s < steps; ++s) {
        problem.loss_and_grad(ps);
        opt.set_lr(lr_at(s));
        opt.step(ps);
    }
    return problem.loss_and_grad(ps);
}

}  // namespace

TEST_CASE("least squares with a hand-written gradient converges under each optimizer") {
    // Initial loss is 1/2 mean((b* + X w*)²) ≈ 7.5; the minimum is 0.
    nn::sgd<double> plain({.lr = 0.2});
    CHECK(train(plain, 300, [](int) { return 0.2; }) < 1e-12);
    nn::sgd<double> momentum({.lr = 0.05, .momentum = 0.9});
    CHECK(train(momentum, 300, [](int) { return 0.05; }) < 1e-12);
    nn::sgd<double> nesterov({.lr = 0.05, .momentum = 0.9, .nesterov = true});
    CHECK(train(nesterov, 300, [](int) { return 0.05; }) < 1e-12);
    // Adam with a constant rate hovers at a distance ~lr from the minimum: decay the rate.
    nn::cosine_warmup cos({.base_lr = 0.1, .warmup_steps = 10, .total_steps = 600, .min_lr = 1e-5});
    nn::adam<double> adam({.lr = 0.1});
    CHECK(train(adam, 600, [&](int s) { return cos.lr_at(s); }) < 1e-8);
    // AdamW's decay pulls towards 0, so its minimum is not (w*, b*): only a small loss is expected.
    nn::adamw<double> adamw({.lr = 0.1, .weight_decay = 1e-4});
    CHECK(train(adamw, 600, [&](int s) { return cos.lr_at(s); }) < 1e-4);
}
