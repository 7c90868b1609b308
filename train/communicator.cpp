#include <graphrun/train/communicator.hpp>
#ifdef GRAPHRUN_HAS_MPI
#include <graphrun/train/mpi/mpi_communicator.hpp>
#endif

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace graphrun {
namespace {

int env_int(const char* name, int otherwise) {
  const char* v = std::getenv(name);
  if (!v || !*v) return otherwise;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  return end && *end == '\0' && n >= 0 ? static_cast<int>(n) : otherwise;
}

}  // namespace

void Communicator::all_reduce_sum(std::span<const float> in, std::span<float> out) {
  if (in.size() != out.size())
    throw std::invalid_argument(fmt::format("all_reduce_sum: {} inputs for {} outputs", in.size(), out.size()));
  std::copy(in.begin(), in.end(), out.begin());
  all_reduce_sum(out);
}

std::span<float> Communicator::sum_input(std::size_t n) {
  input_.resize(n);
  return input_;
}

void SingleProcess::abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

Communicator& single_process() {
  static SingleProcess one;
  return one;
}

bool mpi_built() {
#ifdef GRAPHRUN_HAS_MPI
  return true;
#else
  return false;
#endif
}

std::pair<int, int> launcher_rank_and_size() {
  int size = env_int("OMPI_COMM_WORLD_SIZE", env_int("PMI_SIZE", 1));
  int rank = env_int("OMPI_COMM_WORLD_RANK", env_int("PMI_RANK", 0));
  return {rank, size};
}

std::unique_ptr<Communicator> world_communicator() {
  const auto [rank, size] = launcher_rank_and_size();
  const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE");
#ifdef GRAPHRUN_HAS_MPI
  if (launched) return make_mpi_communicator();
#endif
  if (size > 1)
    throw std::runtime_error(fmt::format(
        "started as rank {} of {} by an MPI launcher, but this graphrun was built without MPI: "
        "install Open MPI (Debian: libopenmpi-dev openmpi-bin, as setup.sh does) and rebuild",
        rank, size));
  (void)launched;
  return std::make_unique<SingleProcess>();
}

}  // namespace graphrun
