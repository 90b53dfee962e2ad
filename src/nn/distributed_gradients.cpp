// The gradient all-reduce in buckets (declared in exprgrad/nn/distributed_gradients.hpp), compiled once
// into libexprgrad for float and double.
#include "exprgrad/nn/distributed_gradients.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>

#include "distributed_mpi.hpp"

namespace exprgrad::nn {

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

#if EXPRGRAD_HAVE_MPI
template <class T>
MPI_Datatype mpi_type() {
    return std::is_same_v<T, float> ? MPI_FLOAT : MPI_DOUBLE;
}
// MPI counts are int: a bucket larger than this many elements is summed in several requests.
constexpr std::size_t max_piece = std::size_t(1) << 28;
#endif

}  // namespace

template <parameter_value T>
struct distributed_gradients<T>::impl {
    distributed& world;
    parameter_set<T>& params;
    std::vector<std::vector<std::size_t>> buckets;
    std::vector<char> started;            // per bucket, this step
    bool in_step = false;
    T weight = T(1);
    distributed_gradient_stats stats;
#if EXPRGRAD_HAVE_MPI
    std::vector<MPI_Request> requests;  // of this step, in the order started
#endif

    impl(distributed& w, parameter_set<T>& p, std::vector<std::vector<std::size_t>> b)
        : world(w), params(p), buckets(std::move(b)) {}

    // The weight is applied in place and each gradient summed in place (one request per parameter): no
    // copy into a separate buffer and back (two more passes over every gradient per step).
    void start(std::size_t b) {
        for (const std::size_t i : buckets[b])
            if (params[i].grad.size() != params[i].value.size())
                throw std::invalid_argument("nn::distributed_gradients: parameter \"" + params[i].name +
                                            "\" has a gradient of another size than its value");
        started[b] = 1;
        for (const std::size_t i : buckets[b]) {
            T* g = params[i].grad.data();
            const std::size_t size = params[i].grad.size();
            if (weight != T(1))
                for (std::size_t k = 0; k < size; ++k) g[k] *= weight;
#if EXPRGRAD_HAVE_MPI
            if (world.size() > 1)
                for (std::size_t done = 0; done < size;) {
                    const std::size_t n = std::min(max_piece, size - done);
                    requests.emplace_back();
                    MPI_Iallreduce(MPI_IN_PLACE, g + done, static_cast<int>(n), mpi_type<T>(), MPI_SUM,
                                   MPI_COMM_WORLD, &requests.back());
                    done += n;
                }
#endif
        }
    }

    void advance() {
#if EXPRGRAD_HAVE_MPI
        if (!requests.empty()) {
            int flag = 0;
            MPI_Testall(static_cast<int>(requests.size()), requests.data(), &flag, MPI_STATUSES_IGNORE);
        }
#endif
    }
};

template <parameter_value T>
distributed_gradients<T>::distributed_gradients(distributed& world, parameter_set<T>& params,
                                                std::vector<std::vector<std::size_t>> buckets)
    : impl_(std::make_unique<impl>(world, params, std::move(buckets))) {
    std::vector<char> seen(params.size(), 0);
    for (std::size_t b = 0; b < impl_->buckets.size(); ++b) {
        std::size_t n = 0;
        for (const std::size_t i : impl_->buckets[b]) {
            if (i >= params.size())
                throw std::invalid_argument("nn::distributed_gradients: bucket " + std::to_string(b) + " names parameter " +
                                            std::to_string(i) + " of a set of " + std::to_string(params.size()));
            if (seen[i])
                throw std::invalid_argument("nn::distributed_gradients: parameter \"" + params[i].name +
                                            "\" is in two buckets");
            seen[i] = 1;
            n += params[i].value.size();
        }
        impl_->stats.bytes_per_step += n * sizeof(T);
    }
    for (std::size_t i = 0; i < params.size(); ++i)
        if (!seen[i])
            throw std::invalid_argument("nn::distributed_gradients: parameter \"" + params[i].name +
                                        "\" is in no bucket (its gradient would not be summed)");
    impl_->started.assign(impl_->buckets.size(), 0);
}

template <parameter_value T>
distributed_gradients<T>::~distributed_gradients() = default;

template <parameter_value T>
void distributed_gradients<T>::begin(double weight) {
    if (impl_->in_step) throw std::logic_error("nn::distributed_gradients::begin: the previous step was not finished");
    if (!std::isfinite(weight))
        throw std::invalid_argument("nn::distributed_gradients::begin: weight " + std::to_string(weight) +
                                    " is not finite");
    impl_->weight = static_cast<T>(weight);
    impl_->started.assign(impl_->buckets.size(), 0);
    impl_->in_step = true;
}

template <parameter_value T>
void distributed_gradients<T>::grad_ready(std::size_t b) {
    if (b >= impl_->buckets.size())
        throw std::out_of_range("nn::distributed_gradients::grad_ready: bucket " + std::to_string(b) + " of " +
                                std::to_string(impl_->buckets.size()));
    if (!impl_->in_step) throw std::logic_error("nn::distributed_gradients::grad_ready: outside begin()/finish()");
    if (impl_->started[b])
        throw std::logic_error("nn::distributed_gradients::grad_ready: bucket " + std::to_string(b) +
                               " announced twice in one step");
    const double t0 = now();
    impl_->advance();
    impl_->start(b);
    impl_->stats.hook_seconds += now() - t0;
}

template <parameter_value T>
void distributed_gradients<T>::progress() {
    if (!impl_->in_step) return;
    const double t0 = now();
    impl_->advance();
    impl_->stats.hook_seconds += now() - t0;
}

template <parameter_value T>
void distributed_gradients<T>::finish() {
    if (!impl_->in_step) throw std::logic_error("nn::distributed_gradients::finish: without begin()");
    for (std::size_t b = 0; b < impl_->buckets.size(); ++b)
        if (!impl_->started[b]) impl_->start(b);
    const double t0 = now();
    impl_->stats.step_enters.push_back(t0);
#if EXPRGRAD_HAVE_MPI
    detail::wait_all(static_cast<int>(impl_->requests.size()), impl_->requests.data());
    impl_->requests.clear();
#endif
    const double t1 = now();
    impl_->in_step = false;
    impl_->stats.wait_seconds += t1 - t0;
    impl_->stats.step_waits.push_back(t1 - t0);
    ++impl_->stats.steps;
}

template <parameter_value T>
std::size_t distributed_gradients<T>::buckets() const noexcept {
    return impl_->buckets.size();
}

template <parameter_value T>
const distributed_gradient_stats& distributed_gradients<T>::stats() const noexcept {
    return impl_->stats;
}

template <parameter_value T>
void distributed_gradients<T>::reset_stats() noexcept {
    const std::size_t bytes = impl_->stats.bytes_per_step;
    impl_->stats = {};
    impl_->stats.bytes_per_step = bytes;
}

namespace {
double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
}
}  // namespace

template <parameter_value T>
typename distributed_gradients<T>::wait_split distributed_gradients<T>::split_waits() {
    const distributed_gradient_stats& st = impl_->stats;
    std::vector<double> latest = st.step_enters;  // the last rank's entry into finish(), per step
#if EXPRGRAD_HAVE_MPI
    if (impl_->world.size() > 1) {
        unsigned long long n[2] = {latest.size(), ~static_cast<unsigned long long>(latest.size())};
        MPI_Allreduce(MPI_IN_PLACE, n, 2, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
        if (n[0] != latest.size() || ~n[1] != latest.size())
            throw std::logic_error("nn::distributed_gradients::split_waits: the ranks ran different numbers of steps");
        if (!latest.empty())
            MPI_Allreduce(MPI_IN_PLACE, latest.data(), static_cast<int>(latest.size()), MPI_DOUBLE, MPI_MAX,
                          MPI_COMM_WORLD);
    }
#endif
    std::vector<double> imbalance, exposed;
    for (std::size_t i = 0; i < latest.size(); ++i) {
        const double done = st.step_enters[i] + st.step_waits[i];
        imbalance.push_back(latest[i] - st.step_enters[i]);
        exposed.push_back(std::max(0.0, done - latest[i]));
    }
    return {median(imbalance), median(exposed)};
}

template <parameter_value T>
double distributed_gradients<T>::blocking_seconds(int reps) {
    if (reps < 1) throw std::invalid_argument("nn::distributed_gradients::blocking_seconds: reps < 1");
    if (impl_->world.size() == 1) return 0;
    std::vector<double> times;
#if EXPRGRAD_HAVE_MPI
    std::vector<std::vector<T>> scratch;  // copies: the gradients are left alone
    for (const auto& bucket : impl_->buckets)
        for (const std::size_t i : bucket)
            scratch.emplace_back(impl_->params[i].grad.data(), impl_->params[i].grad.data() + impl_->params[i].grad.size());
    for (int r = 0; r < reps; ++r) {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = now();
        for (auto& buf : scratch)
            for (std::size_t done = 0; done < buf.size();) {
                const std::size_t n = std::min(max_piece, buf.size() - done);
                MPI_Allreduce(MPI_IN_PLACE, buf.data() + done, static_cast<int>(n), mpi_type<T>(), MPI_SUM,
                              MPI_COMM_WORLD);
                done += n;
            }
        times.push_back(now() - t0);
    }
#endif
    if (times.empty()) return 0;
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

template class distributed_gradients<float>;
template class distributed_gradients<double>;

}  // namespace exprgrad::nn
