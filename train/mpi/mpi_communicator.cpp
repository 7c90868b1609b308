// MPI_COMM_WORLD as a Communicator. The sum is a ring written with MPI_Sendrecv rather than
// MPI_Allreduce: Open MPI picks its reduction algorithm (and so the order of the additions) by
// message size and rank count, so its bits can change with the model; a ring's cannot.
//
// When every rank is on one host, the sum goes through an MPI shared-memory window instead: each
// rank puts its buffer in the window, sums its own chunk reading the others' buffers in place,
// and copies the summed chunks out (or stops there: reduce_scatter_sum). No message is copied
// through Open MPI's shared-memory transport in fragments, and the additions are the ring's, in
// the ring's order, so the bits are the same either way (a test compares them). all_gather goes
// through a second window the same way. GRAPHRUN_ALLREDUCE=ring forces the ring (and
// MPI_Allgatherv).
#include <graphrun/train/mpi/mpi_communicator.hpp>

#include <fmt/format.h>
// The C API only: without these, Open MPI's and MPICH's mpi.h pull in their deprecated C++
// bindings, which need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>

namespace graphrun {
namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw std::runtime_error(fmt::format("{} failed: {}", what, std::string(text, static_cast<std::size_t>(len))));
}

int as_count(std::size_t n) {
  if (n > static_cast<std::size_t>(INT_MAX))
    throw std::length_error(fmt::format("an MPI message of {} elements is over MPI's int count", n));
  return static_cast<int>(n);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
      // A rank waiting for the others' gradients yields its core instead of spinning (unless
      // the user chose): on a machine shared with other work, spinning ranks steal the time of
      // the ranks they wait for (measured: 3x longer sums on 2 busy cores, bench/RESULTS.md).
      ::setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
      int provided = 0;
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_mpi_ = true;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    // Hosts: one leader per shared-memory node.
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
    int node_rank = 0;
    MPI_Comm_rank(node, &node_rank);
    int leader = node_rank == 0 ? 1 : 0;
    MPI_Allreduce(&leader, &hosts_, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    const char* choice = std::getenv("GRAPHRUN_ALLREDUCE");
    const std::string_view want = choice ? choice : "";
    if (!want.empty() && want != "ring" && want != "shared")
      throw std::invalid_argument(fmt::format("GRAPHRUN_ALLREDUCE='{}': the gradient sum is 'ring' "
                                              "or 'shared' (shared memory, all ranks on one host)", want));
    if (want == "shared" && hosts_ > 1)
      throw std::invalid_argument(fmt::format("GRAPHRUN_ALLREDUCE=shared needs every rank on one "
                                              "host; this job spans {}", hosts_));
    if (size_ > 1 && hosts_ == 1 && want != "ring") node_ = node;  // one host: ranks in world order
    else MPI_Comm_free(&node);
  }
  ~MpiCommunicator() override {
    sums_.release();
    gathers_.release();
    release_shared();
    if (node_ != MPI_COMM_NULL) MPI_Comm_free(&node_);
    if (!owns_mpi_) return;
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(std::span<float> data) override {
    const int n = size_;
    if (n == 1 || data.empty()) return;
    if (node_ != MPI_COMM_NULL) {
      std::span<float> in = sum_input(data.size());
      std::memcpy(in.data(), data.data(), data.size_bytes());
      return shared_sum(data);
    }
    const std::size_t len = data.size();
    auto begin = [&](int c) { return len * static_cast<std::size_t>(c) / static_cast<std::size_t>(n); };
    auto count = [&](int c) { return begin(c + 1) - begin(c); };
    if (recv_.size() < count(n - 1)) recv_.resize(count(n - 1));  // the largest chunk
    const int right = (rank_ + 1) % n, left = (rank_ + n - 1) % n;
    float* d = data.data();
    // Reduce-scatter: after step s, chunk (r - s - 1) holds x_c + ... + x_r; rank r ends owning
    // chunk r + 1, summed from rank r + 1 around the ring.
    for (int s = 0; s < n - 1; ++s) {
      const int send = (rank_ - s + 2 * n) % n, recv = (rank_ - s - 1 + 2 * n) % n;
      check(MPI_Sendrecv(d + begin(send), as_count(count(send)), MPI_FLOAT, right, 17,
                         recv_.data(), as_count(count(recv)), MPI_FLOAT, left, 17, MPI_COMM_WORLD,
                         MPI_STATUS_IGNORE),
            "MPI_Sendrecv (reduce-scatter)");
      bytes_sent_ += static_cast<std::int64_t>(count(send) * sizeof(float));
      float* __restrict dst = d + begin(recv);
      const float* __restrict acc = recv_.data();
      const std::size_t m = count(recv);
      for (std::size_t i = 0; i < m; ++i) dst[i] = acc[i] + dst[i];
    }
    // Allgather: the owned chunks travel once more around the ring, copied.
    for (int s = 0; s < n - 1; ++s) {
      const int send = (rank_ + 1 - s + 2 * n) % n, recv = (rank_ - s + 2 * n) % n;
      check(MPI_Sendrecv(d + begin(send), as_count(count(send)), MPI_FLOAT, right, 18,
                         d + begin(recv), as_count(count(recv)), MPI_FLOAT, left, 18,
                         MPI_COMM_WORLD, MPI_STATUS_IGNORE),
            "MPI_Sendrecv (allgather)");
      bytes_sent_ += static_cast<std::int64_t>(count(send) * sizeof(float));
    }
  }

  void all_reduce_sum(std::span<const float> in, std::span<float> out) override {
    if (!is_sum_input(in)) return Communicator::all_reduce_sum(in, out);
    if (in.size() != out.size())
      throw std::invalid_argument(fmt::format("all_reduce_sum: {} inputs for {} outputs", in.size(), out.size()));
    shared_sum(out);
  }

  std::span<float> sum_input(std::size_t n) override {
    if (node_ == MPI_COMM_NULL) return Communicator::sum_input(n);
    if (n > sums_.floats) sums_.grow(n, node_, size_);
    return {sums_.buffer(rank_), n};
  }

  bool reduce_scatter_sum(std::span<float> in) override {
    if (size_ == 1 || !is_sum_input(in)) return false;
    sum_own_chunk(in.size());
    sums_.turn = !sums_.turn;
    bytes_sent_ += static_cast<std::int64_t>((in.size() - chunk(in.size(), rank_).second) * sizeof(float));
    return true;
  }

  std::span<float> shared_floats(std::size_t n) override {
    if (node_ == MPI_COMM_NULL) return {};
    release_shared();
    // Rank 0 holds all of it; the others map rank 0's part.
    void* mine = nullptr;
    const auto bytes = static_cast<MPI_Aint>(rank_ == 0 ? n * sizeof(float) : 0);
    check(MPI_Win_allocate_shared(bytes, sizeof(float), MPI_INFO_NULL, node_, &mine, &shared_window_),
          "MPI_Win_allocate_shared");
    MPI_Aint size = 0;
    int unit = 0;
    float* base = nullptr;
    check(MPI_Win_shared_query(shared_window_, 0, &size, &unit, &base), "MPI_Win_shared_query");
    check(MPI_Win_lock_all(MPI_MODE_NOCHECK, shared_window_), "MPI_Win_lock_all");
    return {base, n};
  }

  void barrier() override {
    if (shared_window_ != MPI_WIN_NULL) MPI_Win_sync(shared_window_);
    check(MPI_Barrier(node_ != MPI_COMM_NULL ? node_ : MPI_COMM_WORLD), "MPI_Barrier");
    if (shared_window_ != MPI_WIN_NULL) MPI_Win_sync(shared_window_);
  }

  void all_gather(std::span<float> data, std::span<const std::int64_t> offsets) override {
    if (offsets.size() != static_cast<std::size_t>(size_) + 1 || offsets.front() < 0 ||
        offsets.back() > static_cast<std::int64_t>(data.size()) ||
        !std::is_sorted(offsets.begin(), offsets.end()))
      throw std::invalid_argument("all_gather: offsets must be size() + 1 ascending bounds inside the data");
    if (size_ == 1) return;
    if (node_ != MPI_COMM_NULL) return shared_gather(data, offsets);
    counts_.resize(static_cast<std::size_t>(size_));
    displs_.resize(static_cast<std::size_t>(size_));
    for (int r = 0; r < size_; ++r) {
      const auto i = static_cast<std::size_t>(r);
      counts_[i] = as_count(static_cast<std::size_t>(offsets[i + 1] - offsets[i]));
      displs_[i] = as_count(static_cast<std::size_t>(offsets[i]));
    }
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data.data(), counts_.data(),
                         displs_.data(), MPI_FLOAT, MPI_COMM_WORLD),
          "MPI_Allgatherv");
    bytes_sent_ += counts_[static_cast<std::size_t>(rank_)] * static_cast<std::int64_t>(sizeof(float)) * (size_ - 1);
  }

  void broadcast(std::vector<std::byte>& bytes, int root) override {
    unsigned long long n = bytes.size();
    check(MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root, MPI_COMM_WORLD), "MPI_Bcast");
    if (rank_ != root) bytes.resize(n);
    for (std::size_t at = 0; at < n;) {
      const std::size_t part = std::min<std::size_t>(n - at, std::size_t{1} << 30);
      check(MPI_Bcast(bytes.data() + at, static_cast<int>(part), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
      if (rank_ == root) bytes_sent_ += static_cast<std::int64_t>(part);
      at += part;
    }
  }

  bool any(bool mine) override {
    int in = mine ? 1 : 0, out = 0;
    check(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD), "MPI_Allreduce");
    return out != 0;
  }

  [[noreturn]] void abort(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

  std::string describe() const override {
    return fmt::format("MPI, {} rank{} on {} host{}{}", size_, size_ == 1 ? "" : "s", hosts_,
                       hosts_ == 1 ? "" : "s", node_ != MPI_COMM_NULL ? ", shared-memory sum" : "");
  }

 private:
  // An MPI shared-memory window of two buffers of `floats` per rank, used by turns: a rank may
  // fill its buffer of the next collective while the others still read this one's.
  struct SharedBuffers {
    MPI_Win window = MPI_WIN_NULL;
    std::vector<float*> base;  // each rank's part of the window
    std::size_t floats = 0;
    bool turn = false;

    float* buffer(int rank) const { return base[static_cast<std::size_t>(rank)] + (turn ? floats : 0); }
    // Collective: every rank asks for the same size, so all reach here together.
    void grow(std::size_t n, MPI_Comm comm, int ranks) {
      release();
      MPI_Info info;
      MPI_Info_create(&info);
      MPI_Info_set(info, "alloc_shared_noncontig", "true");  // each rank's part on its own pages
      void* mine = nullptr;
      const auto bytes = static_cast<MPI_Aint>(2 * n * sizeof(float));
      const int rc = MPI_Win_allocate_shared(bytes, sizeof(float), info, comm, &mine, &window);
      MPI_Info_free(&info);
      check(rc, "MPI_Win_allocate_shared");
      base.assign(static_cast<std::size_t>(ranks), nullptr);
      for (int r = 0; r < ranks; ++r) {
        MPI_Aint size = 0;
        int unit = 0;
        check(MPI_Win_shared_query(window, r, &size, &unit, &base[static_cast<std::size_t>(r)]),
              "MPI_Win_shared_query");
      }
      check(MPI_Win_lock_all(MPI_MODE_NOCHECK, window), "MPI_Win_lock_all");
      floats = n;
      turn = false;
    }
    void release() {
      if (window == MPI_WIN_NULL) return;
      MPI_Win_unlock_all(window);
      MPI_Win_free(&window);
      floats = 0;
    }
    // Every rank's writes to the window are seen by every rank after it (MPI's separate memory
    // model asks for the syncs around the barrier).
    void fence(MPI_Comm comm) const {
      MPI_Win_sync(window);
      check(MPI_Barrier(comm), "MPI_Barrier (shared memory)");
      MPI_Win_sync(window);
    }
  };

  // Chunk c of len values: {begin, count}.
  std::pair<std::size_t, std::size_t> chunk(std::size_t len, int c) const {
    const auto n = static_cast<std::size_t>(size_);
    const std::size_t b = len * static_cast<std::size_t>(c) / n, e = len * static_cast<std::size_t>(c + 1) / n;
    return {b, e - b};
  }

  void release_shared() {
    if (shared_window_ == MPI_WIN_NULL) return;
    MPI_Win_unlock_all(shared_window_);
    MPI_Win_free(&shared_window_);
  }

  bool is_sum_input(std::span<const float> in) const {
    return node_ != MPI_COMM_NULL && in.size() <= sums_.floats && in.data() == sums_.buffer(rank_);
  }

  // After every rank filled its sum_input of len: this rank's chunk, summed as the ring sums it,
  // ((x_c + x_c+1) + x_c+2) + ... from rank c, in place in this rank's buffer. In blocks, so the
  // running sum stays in cache while each rank's part is added.
  void sum_own_chunk(std::size_t len) {
    const int n = size_;
    sums_.fence(node_);
    const auto [b0, m] = chunk(len, rank_);
    float* own = sums_.buffer(rank_) + b0;
    constexpr std::size_t kBlock = 2048;
    for (std::size_t b = 0; b < m; b += kBlock) {
      const std::size_t e = std::min(m, b + kBlock);
      for (int k = 1; k < n; ++k) {
        const float* __restrict src = sums_.buffer((rank_ + k) % n) + b0;
        float* __restrict dst = own;
        for (std::size_t i = b; i < e; ++i) dst[i] = dst[i] + src[i];
      }
    }
  }

  // The whole sum into out: each rank sums its chunk, then copies the others' summed chunks.
  void shared_sum(std::span<float> out) {
    const std::size_t len = out.size();
    sum_own_chunk(len);
    sums_.fence(node_);
    for (int c = 0; c < size_; ++c) {
      const auto [b, m] = chunk(len, c);
      std::memcpy(out.data() + b, sums_.buffer(c) + b, m * sizeof(float));
    }
    sums_.turn = !sums_.turn;
    // What the ring would send; here it is what the others read of this rank's buffer.
    const std::size_t own = chunk(len, rank_).second;
    bytes_sent_ += static_cast<std::int64_t>((len - own + static_cast<std::size_t>(size_ - 1) * own) * sizeof(float));
  }

  void shared_gather(std::span<float> data, std::span<const std::int64_t> offsets) {
    const auto len = static_cast<std::size_t>(offsets.back());
    if (len > gathers_.floats) gathers_.grow(len, node_, size_);
    auto block = [&](int r) {
      const auto i = static_cast<std::size_t>(r);
      return std::pair{static_cast<std::size_t>(offsets[i]), static_cast<std::size_t>(offsets[i + 1] - offsets[i])};
    };
    const auto [b, m] = block(rank_);
    std::memcpy(gathers_.buffer(rank_) + b, data.data() + b, m * sizeof(float));
    gathers_.fence(node_);
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      const auto [rb, rm] = block(r);
      std::memcpy(data.data() + rb, gathers_.buffer(r) + rb, rm * sizeof(float));
    }
    gathers_.turn = !gathers_.turn;
    bytes_sent_ += static_cast<std::int64_t>(m * sizeof(float)) * (size_ - 1);
  }

  int rank_ = 0, size_ = 1, hosts_ = 1;
  bool owns_mpi_ = false;
  MPI_Comm node_ = MPI_COMM_NULL;  // set when the collectives go through shared memory
  SharedBuffers sums_, gathers_;
  MPI_Win shared_window_ = MPI_WIN_NULL;  // shared_floats()
  std::vector<float> recv_;
  std::vector<int> counts_, displs_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

}  // namespace graphrun
