// End-to-end test helpers: run the real graphrun binary (posix_spawn, output to files), a tiny
// IDX data set written by the test, and readers for the files a run leaves.
#pragma once

#include <graphrun/train/idx.hpp>
#include <graphrun/train/safetensors.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "train/temp_dir.hpp"

extern char** environ;

namespace graphrun::testing {

namespace fs = std::filesystem;

struct CliResult {
  int code = -1;
  std::string out, err;
};

// Limits for the child alone, to provoke the failures of a full disk without filling one.
struct ChildLimits {
  // RLIMIT_FSIZE in bytes (rounded down to 512), with SIGXFSZ ignored: a write past it then
  // fails with EFBIG, as a full disk fails with ENOSPC, instead of killing the process.
  std::optional<std::uint64_t> file_size;
};

// `mine` (NAME=value entries), then every variable of this process that `mine` does not set:
// the environment a spawned child gets.
inline std::vector<std::string> child_environment(const std::vector<std::string>& mine) {
  std::vector<std::string> envs = mine;
  for (char** e = environ; *e; ++e) {
    std::string var = *e;
    bool replaced = false;
    for (const auto& m : mine) replaced |= var.substr(0, var.find('=')) == m.substr(0, m.find('='));
    if (!replaced) envs.push_back(var);
  }
  return envs;
}

// A graphrun process started in `cwd` with stdout and stderr going to files there.
class CliProcess {
 public:
  CliProcess(const std::vector<std::string>& args, const fs::path& cwd,
             const std::vector<std::string>& env = {}, const std::string& tag = "run",
             const ChildLimits& limits = {})
      : out_(cwd / (tag + ".out")), err_(cwd / (tag + ".err")) {
    std::vector<std::string> argv{GRAPHRUN_BINARY};
    if (limits.file_size) {
      // posix_spawn cannot set limits; the shell sets them on itself, then becomes graphrun
      // (same pid), so the test process keeps its own.
      argv = {"/bin/sh", "-c",
              "ulimit -f " + std::to_string(*limits.file_size / 512) +
                  " && trap '' XFSZ && exec \"$0\" \"$@\"",
              GRAPHRUN_BINARY};
    }
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::vector<std::string> envs = child_environment(env);
    std::vector<char*> cenv;
    for (auto& e : envs) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
    posix_spawn_file_actions_addopen(&actions, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = posix_spawn(&pid_, argv[0].c_str(), &actions, nullptr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
  }
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;
  ~CliProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  pid_t pid() const { return pid_; }
  std::string out() const { return read_text(out_); }

  // Waits up to `limit` (times GRAPHRUN_TEST_SLOWDOWN in sanitizer builds) for the process to
  // end; kills it (and fails) after that.
  CliResult wait(std::chrono::seconds limit = std::chrono::seconds(60)) {
#ifdef GRAPHRUN_TEST_SLOWDOWN
    limit *= GRAPHRUN_TEST_SLOWDOWN;
#endif
    auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        FAIL("graphrun did not finish in time; stdout: " << out());
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
  fs::path out_, err_;
  pid_t pid_ = -1;
};

inline CliResult run_cli_process(const std::vector<std::string>& args, const fs::path& cwd,
                                 const std::vector<std::string>& env = {}) {
  CliProcess p(args, cwd, env);
  return p.wait();
}

// A tiny MNIST-layout data set: 28x28 images whose class (0..9) sets a bright bar's row and
// width, plus noise below `noise` (0: a background of exact zeros, as Fashion-MNIST's), so a
// model has something to learn in one epoch.
inline void write_tiny_dataset(const fs::path& dir, std::int64_t train = 300, std::int64_t test = 100,
                               int noise = 30) {
  std::mt19937 rng(42);
  auto make = [&](const std::string& prefix, std::int64_t n) {
    std::vector<std::uint8_t> pixels(static_cast<std::size_t>(n * 28 * 28)), labels;
    for (std::int64_t i = 0; i < n; ++i) {
      auto label = static_cast<std::uint8_t>(rng() % 10);
      labels.push_back(label);
      for (int r = 0; r < 28; ++r)
        for (int c = 0; c < 28; ++c) {
          bool bar = r >= 3 + 2 * label && r < 7 + 2 * label && c >= 4 && c < 10 + 2 * label;
          int v = bar ? 200 + static_cast<int>(rng() % 56) : noise > 0 ? static_cast<int>(rng() % noise) : 0;
          pixels[static_cast<std::size_t>((i * 28 + r) * 28 + c)] = static_cast<std::uint8_t>(v);
        }
    }
    std::vector<std::int64_t> image_dims{n, 28, 28}, label_dims{n};
    write_idx(dir / (prefix + "-images-idx3-ubyte"), image_dims, pixels, false);
    write_idx(dir / (prefix + "-labels-idx1-ubyte"), label_dims, labels, true);
  };
  make("train", train);
  make("t10k", test);
}

// The data set the e2e tests share, written once per test process.
inline const fs::path& tiny_dataset() {
  static TempDir dir;
  static bool written = false;
  if (!written) {
    write_tiny_dataset(dir.path());
    written = true;
  }
  return dir.path();
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return lines;
}

// Every tensor of two checkpoints has the same shape and the same bytes.
inline void require_same_tensors(const fs::path& a, const fs::path& b) {
  SafetensorsFile fa = load_safetensors(a), fb = load_safetensors(b);
  REQUIRE(fa.tensors.size() == fb.tensors.size());
  for (const auto& [name, t] : fa.tensors) {
    INFO("tensor " << name);
    REQUIRE(fb.tensors.count(name) == 1);
    const Tensor& u = fb.tensors.at(name);
    REQUIRE(t.shape() == u.shape());
    CHECK(std::memcmp(t.raw(), u.raw(), t.bytes()) == 0);
  }
  CHECK(fa.metadata.at("step") == fb.metadata.at("step"));
}

}  // namespace graphrun::testing
