// End-to-end tests under MPI: the real graphrun binary started by mpirun with N ranks on this
// machine (loopback, as root in CI: --allow-run-as-root, --oversubscribe, no ssh). Every wait
// has a deadline after which mpirun and its ranks are killed, so nothing can hang the suite.
#pragma once

#include <dirent.h>

#include <fstream>
#include <sstream>

#include "tools/cli_harness.hpp"

namespace graphrun::testing {

#ifdef GRAPHRUN_MPIEXEC
inline constexpr bool kMpiTests = true;
#else
inline constexpr bool kMpiTests = false;
#endif

// Call first in an [mpi] test: false (with a warning in the report) when built without MPI.
#define GRAPHRUN_REQUIRE_MPI()                                                              \
  do {                                                                                      \
    if (!::graphrun::testing::kMpiTests) {                                                  \
      WARN("skipped: graphrun was built without MPI (CMake found no libopenmpi-dev)");      \
      return;                                                                               \
    }                                                                                       \
  } while (0)

// mpirun -np N graphrun ARGS..., in `cwd`, output to <tag>.out and <tag>.err there.
class MpiProcess {
 public:
  MpiProcess(int ranks, const std::vector<std::string>& args, const fs::path& cwd,
             const std::string& tag = "mpi", const std::vector<std::string>& env = {})
      : out_(cwd / (tag + ".out")), err_(cwd / (tag + ".err")) {
#ifdef GRAPHRUN_MPIEXEC
    std::vector<std::string> argv{GRAPHRUN_MPIEXEC, "--allow-run-as-root", "--oversubscribe",
                                  "-np", std::to_string(ranks), GRAPHRUN_BINARY};
#else
    std::vector<std::string> argv{"/bin/false"};
    (void)ranks;
#endif
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    // Shared memory without CMA (containers often forbid process_vm_readv); each rank one thread
    // unless the test says otherwise, as the ranks share this machine's cores.
    std::vector<std::string> mine = {"OMPI_MCA_btl_vader_single_copy_mechanism=none",
                                     "OMPI_MCA_rmaps_base_oversubscribe=1"};
    mine.insert(mine.end(), env.begin(), env.end());
    std::vector<std::string> envs = child_environment(mine);
    std::vector<char*> cenv;
    for (auto& e : envs) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = posix_spawn(&pid_, argv[0].c_str(), &actions, nullptr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
  }
  MpiProcess(const MpiProcess&) = delete;
  MpiProcess& operator=(const MpiProcess&) = delete;
  ~MpiProcess() { stop_hard(); }

  pid_t pid() const { return pid_; }
  std::string out() const { return read_text(out_); }
  std::string err() const { return read_text(err_); }

  // The pid of rank `rank` (a child of mpirun whose environment says so), or -1.
  pid_t rank_pid(int rank) const {
    std::ifstream children("/proc/" + std::to_string(pid_) + "/task/" + std::to_string(pid_) + "/children");
    pid_t child = 0;
    const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
    while (children >> child) {
      std::ifstream env("/proc/" + std::to_string(child) + "/environ", std::ios::binary);
      std::string var;
      while (std::getline(env, var, '\0'))
        if (var == want) return child;
    }
    return -1;
  }

  // Waits until stdout holds `text`; false after `limit`.
  bool wait_for_output(const std::string& text, std::chrono::seconds limit) const {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (out().find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  // Waits up to `limit` for mpirun to end; kills the job (and fails) after that.
  CliResult wait(std::chrono::seconds limit = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::string out_now = out(), err_now = err();
        stop_hard();
        FAIL("mpirun did not finish in " << limit.count() << " s; stdout:\n" << out_now << "\nstderr:\n" << err_now);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
    CliResult r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_text(out_);
    r.err = read_text(err_);
    return r;
  }

 private:
  // SIGTERM lets mpirun take its ranks down; SIGKILL after 5 s, and then its ranks by pid.
  void stop_hard() {
    if (pid_ <= 0) return;
    std::vector<pid_t> ranks;
    for (int r = 0; r < 64; ++r)
      if (pid_t p = rank_pid(r); p > 0) ranks.push_back(p);
    ::kill(pid_, SIGTERM);
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (::waitpid(pid_, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
    for (pid_t p : ranks) ::kill(p, SIGKILL);
    pid_ = -1;
  }

  fs::path out_, err_;
  pid_t pid_ = -1;
};

}  // namespace graphrun::testing
