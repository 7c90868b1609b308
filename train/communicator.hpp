// Data-parallel training's one link between processes. The Trainer is handed a Communicator and
// sums each step's gradients through it; nothing in graph/ or ops/ knows of it. A single process
// is the default; the MPI implementation (train/mpi/) is compiled only when CMake found MPI.
//
// Every collective is deterministic: the result's bits depend on the inputs and the number of
// ranks only, never on timing or on the MPI library's choice of algorithm.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace graphrun {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Sums `data` elementwise over every rank, in place; every rank ends with the same bits. The
  // order is fixed: a ring reduce-scatter then allgather over `size()` chunks, chunk c summed as
  // ((x_c + x_c+1) + x_c+2) + ... around the ring. Moves 2 (size - 1) / size * data.size_bytes()
  // out of each rank.
  virtual void all_reduce_sum(std::span<float> data) = 0;
  // The same sum (same order, same bits) of `in` into `out`, of the same length. An `in` from
  // sum_input() is read where it lies, which spares a copy where the ranks share memory.
  virtual void all_reduce_sum(std::span<const float> in, std::span<float> out);
  // A buffer of n floats for the next all_reduce_sum's input; valid until the sum after that.
  // Collective: every rank asks for the same n.
  virtual std::span<float> sum_input(std::size_t n);
  // Half of all_reduce_sum, for ranks that share the update (each its own part, then they
  // gather the parameters): sums `in`, which sum_input() returned, over every rank in place, but
  // only this rank's chunk, [len * rank / size, len * (rank + 1) / size), with the same additions
  // as all_reduce_sum; the rest of `in` is left as it was. Returns false, doing nothing, where
  // that saves nothing over all_reduce_sum (the default; MPI's ring).
  virtual bool reduce_scatter_sum(std::span<float>) { return false; }
  // n floats that every rank reads and writes as the same memory, not copies (where the ranks
  // share a host), or an empty span where they cannot (the default; MPI across hosts).
  // Collective, every rank asking for the same n; valid until the next call. A rank's writes
  // are seen by the others after the next barrier().
  virtual std::span<float> shared_floats(std::size_t) { return {}; }
  // Returns when every rank has called it.
  virtual void barrier() {}
  // In place: rank r's block, data[offsets[r], offsets[r + 1]), is copied to every rank.
  // offsets has size() + 1 ascending entries. A copy, so the result is exact.
  virtual void all_gather(std::span<float> data, std::span<const std::int64_t> offsets) = 0;
  // Rank `root`'s bytes to every rank (resized on the others).
  virtual void broadcast(std::vector<std::byte>& bytes, int root) = 0;
  // Whether any rank passed true: a decision every rank takes together.
  virtual bool any(bool mine) = 0;
  // Ends every process of the job now, with `code` (a failure on one rank that the others would
  // wait for forever). Never returns.
  [[noreturn]] virtual void abort(int code) = 0;

  // "1 process", "MPI, 3 ranks on 1 host"
  virtual std::string describe() const = 0;
  // Bytes this rank has sent through the collectives so far.
  std::int64_t bytes_sent() const { return bytes_sent_; }

 protected:
  std::int64_t bytes_sent_ = 0;

 private:
  std::vector<float> input_;
};

// One process: the sums are the inputs, nothing moves.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  using Communicator::all_reduce_sum;
  void all_reduce_sum(std::span<float>) override {}
  void all_gather(std::span<float>, std::span<const std::int64_t>) override {}
  void broadcast(std::vector<std::byte>&, int) override {}
  bool any(bool mine) override { return mine; }
  [[noreturn]] void abort(int code) override;
  std::string describe() const override { return "1 process"; }
};

// The process-wide single-process communicator, the Trainer's default.
Communicator& single_process();

// Whether this library was built with MPI.
bool mpi_built();
// This process's rank and the job's size as the MPI launcher set them in the environment
// (Open MPI's OMPI_COMM_WORLD_*, or PMI_RANK/PMI_SIZE): {0, 1} without a launcher. Readable
// before MPI starts, e.g. to let only rank 0 of a job run a single-process verb.
std::pair<int, int> launcher_rank_and_size();

// The job's communicator: MPI's (MPI_COMM_WORLD, initialised here and finalised when it is
// destroyed) when built with MPI and started by a launcher, else a single process. Throws
// std::runtime_error when a launcher started several ranks of a build without MPI (each would
// train alone and overwrite the others' files).
std::unique_ptr<Communicator> world_communicator();

}  // namespace graphrun
