// Internal (not installed): mpi.h for the data-parallel module (src/nn/distributed*.cpp), or nothing in a
// build without MPI (EXPRGRAD_HAVE_MPI is set by meson.build when it found Open MPI).
#pragma once

#ifndef EXPRGRAD_HAVE_MPI
#define EXPRGRAD_HAVE_MPI 0
#endif

#if EXPRGRAD_HAVE_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only: Open MPI's deprecated C++ bindings are not used
#include <mpi.h>
#endif
