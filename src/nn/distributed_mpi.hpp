// Internal (not installed): mpi.h for the data-parallel module (src/nn/distributed*.cpp), or nothing in a
// build without MPI (EXPRGRAD_HAVE_MPI is set by meson.build when it found Open MPI).
#pragma once

#ifndef EXPRGRAD_HAVE_MPI
#define EXPRGRAD_HAVE_MPI 0
#endif

#if EXPRGRAD_HAVE_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only: Open MPI's deprecated C++ bindings are not used
#include <mpi.h>

#include <time.h>

#include <chrono>

namespace exprgrad::nn::detail {

// Waits for `count` requests: polls for 1 ms (a sum that is about to complete costs no wake-up: a step's
// all-reduce on a quiet machine), then polls every 50 µs, sleeping in between. MPI_Wait would spin at 100% CPU for as long as the slowest rank
// takes (seconds while rank 0 trains the tokenizer), taking a core from whatever else runs on the machine
// (on an oversubscribed machine: from the rank being waited for). Open MPI advances non-blocking
// collectives inside MPI_Testall, so the polling also drives them.
inline void wait_all(int count, MPI_Request* requests) {
    if (count == 0) return;
    const auto start = std::chrono::steady_clock::now();
    int done = 0;
    for (;;) {
        MPI_Testall(count, requests, &done, MPI_STATUSES_IGNORE);
        if (done) return;
        if (std::chrono::steady_clock::now() - start > std::chrono::milliseconds(1)) {
            const timespec pause{0, 50'000};
            nanosleep(&pause, nullptr);
        }
    }
}

}  // namespace exprgrad::nn::detail
#endif
