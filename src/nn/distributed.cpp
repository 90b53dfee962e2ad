// The process group of data-parallel training (declared in exprgrad/nn/distributed.hpp).
#include "exprgrad/nn/distributed.hpp"

#include <cstdio>
#include <cstdlib>
#include <limits>

#include "distributed_mpi.hpp"

namespace exprgrad::nn {

namespace {

bool g_alive = false;  // one distributed object at a time (MPI can be initialized once per process)

#if EXPRGRAD_HAVE_MPI
// MPI counts are int: larger buffers go in pieces of at most 1 GiB.
constexpr std::size_t max_piece = std::size_t(1) << 30;
#endif

}  // namespace

bool built_with_mpi() noexcept { return EXPRGRAD_HAVE_MPI != 0; }

bool launched_by_mpirun() noexcept {
    return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

distributed::distributed() {
    if (g_alive) throw std::logic_error("nn::distributed: one object per process (MPI is initialized once)");
    if (!launched_by_mpirun()) {
        g_alive = true;
        return;
    }
#if EXPRGRAD_HAVE_MPI
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    active_ = true;
#else
    const char* n = std::getenv("OMPI_COMM_WORLD_SIZE");
    if (n != nullptr && std::string(n) != "1")
        throw std::runtime_error(std::string("nn::distributed: started by mpirun (OMPI_COMM_WORLD_SIZE=") + n +
                                 ") but this exprgrad was built without MPI, so every rank would train alone; "
                                 "install Open MPI (libopenmpi-dev) and reconfigure, or run without mpirun");
#endif
    g_alive = true;
}

distributed::~distributed() {
#if EXPRGRAD_HAVE_MPI
    if (active_) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
    }
#endif
    g_alive = false;
}

void distributed::abort(int code) noexcept {
    std::fflush(nullptr);
#if EXPRGRAD_HAVE_MPI
    if (active_) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    std::_Exit(code);
}

void distributed::barrier() {
#if EXPRGRAD_HAVE_MPI
    if (size_ > 1) {
        MPI_Request r;
        MPI_Ibarrier(MPI_COMM_WORLD, &r);
        detail::wait_all(1, &r);
    }
#endif
}

void distributed::broadcast_bytes([[maybe_unused]] void* data, [[maybe_unused]] std::size_t bytes) {
#if EXPRGRAD_HAVE_MPI
    if (size_ == 1) return;
    auto* p = static_cast<char*>(data);
    for (std::size_t done = 0; done < bytes;) {
        const std::size_t n = std::min(max_piece, bytes - done);
        MPI_Request r;
        MPI_Ibcast(p + done, static_cast<int>(n), MPI_BYTE, 0, MPI_COMM_WORLD, &r);
        detail::wait_all(1, &r);  // the other ranks wait here while rank 0 works (trains the tokenizer)
        done += n;
    }
#endif
}

void distributed::broadcast(std::string& s) {
    if (size_ == 1) return;
    std::uint64_t n = s.size();
    broadcast_bytes(&n, sizeof n);
    s.resize(static_cast<std::size_t>(n));
    broadcast_bytes(s.data(), s.size());
}

void distributed::broadcast(rng& g) {
    rng::state_type st = g.state();
    broadcast_bytes(st.data(), sizeof st);
    g.set_state(st);
}

void distributed::broadcast(lr_schedule& s) {
    std::uint64_t step = s.current_step();
    broadcast_bytes(&step, sizeof step);
    s.set_step(step);
}

double distributed::sum(double x) {
    sum(std::span<double>(&x, 1));
    return x;
}

void distributed::sum([[maybe_unused]] std::span<double> xs) {
#if EXPRGRAD_HAVE_MPI
    if (size_ == 1) return;
    for (std::size_t done = 0; done < xs.size();) {
        const std::size_t n = std::min(max_piece / sizeof(double), xs.size() - done);
        MPI_Request r;
        MPI_Iallreduce(MPI_IN_PLACE, xs.data() + done, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &r);
        detail::wait_all(1, &r);
        done += n;
    }
#endif
}

void distributed::check_same([[maybe_unused]] std::uint64_t value, [[maybe_unused]] const std::string& what) {
#if EXPRGRAD_HAVE_MPI
    if (size_ == 1) return;
    std::vector<std::uint64_t> all(static_cast<std::size_t>(size_));
    MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
    for (std::size_t r = 1; r < all.size(); ++r)
        if (all[r] != all[0]) {
            char b[160];
            std::snprintf(b, sizeof b, " differs between ranks: rank %zu has %016llx, rank 0 has %016llx", r,
                          static_cast<unsigned long long>(all[r]), static_cast<unsigned long long>(all[0]));
            throw std::runtime_error(what + b);
        }
#endif
}

}  // namespace exprgrad::nn
