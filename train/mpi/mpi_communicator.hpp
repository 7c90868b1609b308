// The MPI communicator, compiled only when CMake found MPI (GRAPHRUN_HAS_MPI). Not installed:
// callers go through world_communicator() (train/communicator.hpp).
#pragma once

#include <graphrun/train/communicator.hpp>

#include <memory>

namespace graphrun {

// MPI_COMM_WORLD. Initialises MPI (funneled: only the thread that calls the collectives talks to
// MPI; TBB's workers never do) unless the program already did, and finalises it on destruction
// if it initialised it.
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace graphrun
