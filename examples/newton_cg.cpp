// Newton-CG on logistic regression: each step solves H p = -g by conjugate gradients, where H is only
// ever applied to a vector (hvp: the exact Hessian-vector product, reverse mode over the forward-mode
// tangent of the loss; no finite differences). Newton's method converges quadratically near the optimum:
// a handful of steps reach a gradient norm first-order methods need thousands for. Then the curvature at
// the optimum: the Hessian's largest eigenvalue by power iteration (H v / |H v|, again only products).
// Exits 1 unless |g| < 1e-8 within 10 steps.
//
//   build/examples/newton_cg
#include <cmath>
#include <cstdio>

#include <exprgrad/exprgrad.hpp>

using namespace exprgrad;

double dot(const xt::xarray<double>& a, const xt::xarray<double>& b) { return xt::sum(a * b)(); }

int main() {
    // 512 points in 7 dimensions plus a column of ones (the bias), labels from a hidden plane, 10% flipped.
    constexpr auto X = tensor<0>;
    constexpr auto W = tensor<1>;
    constexpr auto Y = tensor<2>;
    rng gen(5);
    xt::xarray<double> x = random::normal(gen, {512, 8});
    for (std::size_t i = 0; i < 512; ++i) x(i, 7) = 1.0;
    const auto clean = xt::cast<double>(evaluate(matmul(X, W), x, random::normal(gen, {8, 1})) > 0.0);
    const xt::xarray<double> y = xt::abs(clean - random::bernoulli(gen, {512, 1}, 0.1));

    const auto z = matmul(X, W);
    const auto loss = mean(softplus(z) - Y * z);
    auto loss_and_grad = value_and_grad(loss, wrt<1>);
    auto hessian = hvp(loss, wrt<1>);  // (x, w, y, v) -> {g·v, {H(w) v}}
    auto hessian_times = [&](const xt::xarray<double>& w, const xt::xarray<double>& v) {
        return xt::xarray<double>(std::get<0>(hessian(x, w, y, v).second));
    };

    xt::xarray<double> w = xt::zeros<double>({8, 1});
    for (int step = 0; step < 10; ++step) {
        auto [value, grads] = loss_and_grad(x, w, y);
        const xt::xarray<double> g = std::get<0>(grads);
        const double gnorm = std::sqrt(dot(g, g));
        std::printf("step %d  loss %.12f  |g| %.3e\n", step, value, gnorm);
        if (gnorm < 1e-8) {
            // Power iteration from a fixed start: the Rayleigh quotient v·Hv tends to the top eigenvalue.
            xt::xarray<double> v = xt::zeros<double>(w.shape());
            v.fill(1 / std::sqrt(8.0));
            double lambda = 0;
            for (int k = 0; k < 20; ++k) {
                const xt::xarray<double> hv = hessian_times(w, v);
                lambda = dot(v, hv);
                v = hv / std::sqrt(dot(hv, hv));
            }
            std::printf("top Hessian eigenvalue at the optimum: %.6f (20 power-iteration steps)\n", lambda);
            return 0;
        }
        // Conjugate gradients on H p = -g, from p = 0, to a residual of 1e-3 |g| (or 8 iterations: n = 8).
        xt::xarray<double> p = xt::zeros<double>(w.shape()), r = -g, d = r;
        double rr = dot(r, r);
        for (int k = 0; k < 8 && std::sqrt(rr) > 1e-3 * gnorm; ++k) {
            const xt::xarray<double> hd = hessian_times(w, d);
            const double alpha = rr / dot(d, hd);
            p += alpha * d;
            r -= alpha * hd;
            const double rr_next = dot(r, r);
            d = r + (rr_next / rr) * d;
            rr = rr_next;
        }
        w += p;  // a full Newton step: no line search needed from w = 0 on this loss
    }
    std::printf("no convergence in 10 Newton steps\n");
    return 1;
}
