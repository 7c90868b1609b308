// End-to-end: data-parallel training under mpirun (issue 20). Runs of 1, 2 and 3 ranks follow a
// one-process run to float32 rounding, same-N reruns repeat bit for bit, train.shards gives the
// same bits for any N, --resume changes N, and a killed rank ends the whole job quickly with
// the last checkpoint intact. Each run is a few seconds on the tiny data set.
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "tools/mpi_harness.hpp"

namespace graphrun::testing {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> small(const std::string& model, const std::string& out,
                               std::int64_t epochs, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args{model, "--batch", "32", "--model.hidden", "16", "--threads", "1",
                                "--epochs", std::to_string(epochs), "--out", out,
                                "--data", tiny_dataset().string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::string describe(const CliResult& r) {
  return "exit " + std::to_string(r.code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

CliResult mpi_run(int ranks, const std::vector<std::string>& args, const fs::path& cwd,
                  const std::string& tag) {
  MpiProcess p(ranks, args, cwd, tag);
  return p.wait(60s);
}

std::vector<nlohmann::json> metric_rows(const fs::path& run) {
  std::vector<nlohmann::json> rows;
  for (const auto& line : lines_of(read_text(run / "metrics.jsonl"))) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

// Largest |a - b| / max(|a|, |b|, floor) over every parameter of two checkpoints.
double worst_relative(const fs::path& a, const fs::path& b) {
  SafetensorsFile fa = load_safetensors(a), fb = load_safetensors(b);
  double worst = 0;
  for (const auto& [name, t] : fa.tensors) {
    if (name.find('/') != std::string::npos) continue;  // optimizer moments: parameters suffice
    const Tensor& u = fb.tensors.at(name);
    const float* x = t.data<float>();
    const float* y = u.data<float>();
    double scale = 0;
    for (std::int64_t i = 0; i < t.numel(); ++i) scale = std::max(scale, std::abs(static_cast<double>(x[i])));
    for (std::int64_t i = 0; i < t.numel(); ++i)
      worst = std::max(worst, std::abs(static_cast<double>(x[i]) - y[i]) / std::max(scale, 1e-30));
  }
  return worst;
}

}  // namespace

TEST_CASE("mpirun: 1, 2 and 3 ranks train as one process does, to float32 rounding", "[mpi][e2e]") {
  GRAPHRUN_REQUIRE_MPI();
  TempDir tmp;
  auto one = run_cli_process(small("model.vae", "one", 2), tmp.path());
  REQUIRE(one.code == 0);
  const auto reference = metric_rows(tmp / "one");
  for (int ranks : {1, 2, 3}) {
    const std::string out = "np" + std::to_string(ranks);
    CliResult r = mpi_run(ranks, small("model.vae", out, 2), tmp.path(), out);
    INFO(ranks << " ranks: " << describe(r));
    REQUIRE(r.code == 0);
    if (ranks > 1) {
      // Printed once (by rank 0), with the ranks in the header and the parameter check at the end.
      CHECK(r.out.find("data parallel: MPI, " + std::to_string(ranks) + " ranks") != std::string::npos);
      CHECK(r.out.find("parameters: the same bits on all " + std::to_string(ranks) + " ranks") != std::string::npos);
      CHECK(lines_of(r.out).size() == lines_of(one.out).size() + 4);  // 2 header lines, 2 at the end
    }
    const auto rows = metric_rows(tmp / out);
    REQUIRE(rows.size() == reference.size());
    for (std::size_t e = 0; e < rows.size(); ++e) {
      CHECK(rows[e].at("ranks") == ranks);
      for (const char* key : {"train_loss", "train_kl", "test_loss"}) {
        const double a = rows[e].at(key), b = reference[e].at(key);
        INFO("epoch " << e + 1 << " " << key << ": " << a << " vs one process " << b);
        CHECK(std::abs(a - b) <= 2e-5 * std::abs(b));
      }
    }
    const auto checkpoint = load_safetensors(tmp / out / "checkpoint.safetensors");
    CHECK(checkpoint.metadata.at("ranks") == std::to_string(ranks));
    const double worst = worst_relative(tmp / "one" / "checkpoint.safetensors", tmp / out / "checkpoint.safetensors");
    INFO("worst relative parameter difference " << worst);
    if (ranks == 1) CHECK(worst == 0);  // mpirun -np 1 is the one-process path
    else CHECK(worst < 1e-4);
  }
}

TEST_CASE("mpirun: a rerun with the same number of ranks gives the same bits", "[mpi][e2e]") {
  GRAPHRUN_REQUIRE_MPI();
  TempDir tmp;
  for (const char* out : {"a", "b"}) {
    // The DAE: masking noise drawn per row, as in one process, and split at a row not a
    // multiple of 4 (the mask's draws serve 4 elements each).
    CliResult r = mpi_run(3, small("model.dae", out, 1), tmp.path(), out);
    INFO(describe(r));
    REQUIRE(r.code == 0);
  }
  require_same_tensors(tmp / "a" / "checkpoint.safetensors", tmp / "b" / "checkpoint.safetensors");
  CHECK(read_text(tmp / "a" / "metrics.jsonl").substr(0, 60) == read_text(tmp / "b" / "metrics.jsonl").substr(0, 60));
}

TEST_CASE("mpirun: the shared-memory sum gives the ring's bits", "[mpi][e2e]") {
  GRAPHRUN_REQUIRE_MPI();
  TempDir tmp;
  for (int ranks : {2, 3}) {
    const std::string shared = "shared" + std::to_string(ranks), ring = "ring" + std::to_string(ranks);
    CliResult a = mpi_run(ranks, small("model.vae", shared, 1), tmp.path(), shared);
    INFO(describe(a));
    REQUIRE(a.code == 0);
    CHECK(a.out.find("shared-memory sum") != std::string::npos);  // all ranks on this host
    MpiProcess p(ranks, small("model.vae", ring, 1), tmp.path(), ring, {"GRAPHRUN_ALLREDUCE=ring"});
    CliResult b = p.wait(60s);
    INFO(describe(b));
    REQUIRE(b.code == 0);
    CHECK(b.out.find("shared-memory sum") == std::string::npos);
    require_same_tensors(tmp / shared / "checkpoint.safetensors", tmp / ring / "checkpoint.safetensors");
  }
  MpiProcess bad(2, small("model.vae", "bad", 1), tmp.path(), "bad", {"GRAPHRUN_ALLREDUCE=tree"});
  CliResult r = bad.wait(60s);
  CHECK(r.code != 0);
  CHECK(r.err.find("GRAPHRUN_ALLREDUCE='tree'") != std::string::npos);
}

TEST_CASE("mpirun: train.shards gives the same bits for 1, 2 and 3 ranks", "[mpi][e2e]") {
  GRAPHRUN_REQUIRE_MPI();
  TempDir tmp;
  auto one = run_cli_process(small("model.vae", "one", 1, {"--train.shards", "6"}), tmp.path());
  INFO(describe(one));
  REQUIRE(one.code == 0);
  const auto reference = metric_rows(tmp / "one");
  for (int ranks : {2, 3}) {
    const std::string out = "np" + std::to_string(ranks);
    CliResult r = mpi_run(ranks, small("model.vae", out, 1, {"--train.shards", "6"}), tmp.path(), out);
    INFO(describe(r));
    REQUIRE(r.code == 0);
    CHECK(r.out.find("6 fixed shards") != std::string::npos);
    require_same_tensors(tmp / "one" / "checkpoint.safetensors", tmp / out / "checkpoint.safetensors");
    CHECK(metric_rows(tmp / out)[0].at("train_loss") == reference[0].at("train_loss"));
  }
  // Fewer shards than ranks is refused, on every rank, with the reason.
  CliResult bad = mpi_run(3, small("model.vae", "bad", 1, {"--train.shards", "2"}), tmp.path(), "bad");
  CHECK(bad.code != 0);
  CHECK(bad.err.find("fewer than the 3 ranks") != std::string::npos);
}

// Batch norm over each part of the batch, with running averages the ranks must agree on.
constexpr const char* kBatchNormGraph = R"([model]
hidden = 16
[graph]
input x [B, D]
input z [B, 2]
def bn(v, name) {
  m = mean(v, axes=[0], keepdims=1)
  s = mean(square(v - m), axes=[0], keepdims=1)
  mu = if_training(m, moving_average(name + ".mean", m, 0.1))
  var = if_training(s, moving_average(name + ".var", s, 0.1, constant(1)))
  return (v - mu) / sqrt(var + 1e-5)
}
def dense(v, n, name) = v @ param(name + ".w", [dim(v, 1), n], xavier_uniform) + param(name + ".b", [n], zeros)
def decode(v) = dense(relu(bn(dense(v, hidden, "dec1"), "bn2")), D, "dec2")
code = dense(relu(bn(dense(x, hidden, "enc1"), "bn1")), 2, "code")
role loss = sum(bce_with_logits(decode(code), x), axes=[1])
role code = code
role reconstruction = sigmoid(decode(code))
role decoded = sigmoid(decode(z))
)";

TEST_CASE("mpirun: batch norm's running averages are the same bits on every rank", "[mpi][e2e][buffer]") {
  GRAPHRUN_REQUIRE_MPI();
  TempDir tmp;
  {
    std::ofstream out(tmp / "bn.graph", std::ios::binary);
    out << kBatchNormGraph;
  }
  // Shards: each normalises over its own rows, whoever computes it, so any N gives one run's bits.
  const std::vector<std::string> shards{"--train.shards", "6"};
  auto one = run_cli_process(small("bn.graph", "one", 1, shards), tmp.path());
  INFO(describe(one));
  REQUIRE(one.code == 0);
  CHECK(load_safetensors(tmp / "one" / "checkpoint.safetensors").tensors.count("bn1.mean") == 1);
  CliResult three = mpi_run(3, small("bn.graph", "np3", 1, shards), tmp.path(), "np3");
  INFO(describe(three));
  REQUIRE(three.code == 0);
  CHECK(three.out.find("parameters: the same bits on all 3 ranks") != std::string::npos);
  require_same_tensors(tmp / "one" / "checkpoint.safetensors", tmp / "np3" / "checkpoint.safetensors");
  // Default mode: the shared-memory sum and the ring carry the new averages alike.
  CliResult shared = mpi_run(2, small("bn.graph", "shared", 1), tmp.path(), "shared");
  INFO(describe(shared));
  REQUIRE(shared.code == 0);
  CHECK(shared.out.find("shared-memory sum") != std::string::npos);
  CHECK(shared.out.find("parameters: the same bits on all 2 ranks") != std::string::npos);
  MpiProcess p(2, small("bn.graph", "ring", 1), tmp.path(), "ring", {"GRAPHRUN_ALLREDUCE=ring"});
  CliResult ring = p.wait(60s);
  INFO(describe(ring));
  REQUIRE(ring.code == 0);
  require_same_tensors(tmp / "shared" / "checkpoint.safetensors", tmp / "ring" / "checkpoint.safetensors");
}

TEST_CASE("mpirun: --resume continues with another number of ranks", "[mpi][e2e]") {
  GRAPHRUN_REQUIRE_MPI();
  TempDir tmp;
  // Shards make the bits independent of the ranks, so 2 ranks then 3 must equal 1 process.
  const std::vector<std::string> shards{"--train.shards", "6"};
  CliResult first = mpi_run(2, small("model.vae", "run", 1, shards), tmp.path(), "first");
  INFO(describe(first));
  REQUIRE(first.code == 0);
  std::vector<std::string> more = shards;
  more.emplace_back("--resume");
  CliResult second = mpi_run(3, small("model.vae", "run", 2, more), tmp.path(), "second");
  INFO(describe(second));
  REQUIRE(second.code == 0);
  CHECK(second.out.find("resuming after epoch 1") != std::string::npos);
  auto straight = run_cli_process(small("model.vae", "straight", 2, shards), tmp.path());
  REQUIRE(straight.code == 0);
  require_same_tensors(tmp / "run" / "checkpoint.safetensors", tmp / "straight" / "checkpoint.safetensors");
  const auto rows = metric_rows(tmp / "run");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].at("ranks") == 2);
  CHECK(rows[1].at("ranks") == 3);
  CHECK(load_safetensors(tmp / "run" / "checkpoint.safetensors").metadata.at("ranks") == "3");
}

TEST_CASE("mpirun: a killed rank ends the job within seconds and the checkpoint resumes", "[mpi][e2e]") {
  GRAPHRUN_REQUIRE_MPI();
  TempDir tmp;
  MpiProcess p(3, small("model.vae", "run", 1000), tmp.path(), "killed");
  REQUIRE(p.wait_for_output("epoch 2/1000", 60s));
  const pid_t victim = p.rank_pid(1);
  REQUIRE(victim > 0);
  REQUIRE(::kill(victim, SIGKILL) == 0);
  const auto killed_at = std::chrono::steady_clock::now();
  CliResult r = p.wait(30s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  INFO(describe(r) << "\nended " << seconds << " s after the kill");
  CHECK(r.code != 0);
  CHECK(seconds < 10);
  CHECK(r.err.find("rank 1") != std::string::npos);  // mpirun names the rank that died

  SafetensorsFile checkpoint = load_safetensors(tmp / "run" / "checkpoint.safetensors");
  const std::int64_t epoch = std::stoll(checkpoint.metadata.at("epoch"));
  REQUIRE(epoch >= 1);
  CliResult resumed = mpi_run(2, small("model.vae", "run", epoch + 1, {"--resume"}), tmp.path(), "resumed");
  INFO(describe(resumed));
  REQUIRE(resumed.code == 0);
  CHECK(resumed.out.find("resuming after epoch " + std::to_string(epoch)) != std::string::npos);
}

TEST_CASE("mpirun: SIGINT to mpirun saves a checkpoint that resumes to the same bits", "[mpi][e2e]") {
  GRAPHRUN_REQUIRE_MPI();
  TempDir tmp;
  // mpirun turns SIGINT into SIGTERM to every rank, and SIGKILL odls_base_sigkill_timeout (1 s)
  // later: the ranks agree to stop at their next step and rank 0 saves within that second.
  // mpirun's output forwarding is closed by then, so rank 0's "stopped" message is not shown.
  MpiProcess p(2, small("model.dae", "run", 1000), tmp.path(), "stopped");
  REQUIRE(p.wait_for_output("epoch 2/1000", 60s));
  const auto signalled = std::chrono::steady_clock::now();
  REQUIRE(::kill(p.pid(), SIGINT) == 0);
  CliResult r = p.wait(30s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - signalled).count();
  INFO(describe(r) << "\nended " << seconds << " s after SIGINT");
  CHECK(r.code != 0);
  CHECK(seconds < 10);
  SafetensorsFile checkpoint = load_safetensors(tmp / "run" / "checkpoint.safetensors");
  const std::int64_t epoch = std::stoll(checkpoint.metadata.at("epoch"));
  REQUIRE(epoch >= 1);
  CliResult resumed = mpi_run(2, small("model.dae", "run", epoch + 1, {"--resume"}), tmp.path(), "resumed");
  INFO(describe(resumed));
  REQUIRE(resumed.code == 0);
  CliResult straight = mpi_run(2, small("model.dae", "straight", epoch + 1), tmp.path(), "straight");
  REQUIRE(straight.code == 0);
  require_same_tensors(tmp / "run" / "checkpoint.safetensors", tmp / "straight" / "checkpoint.safetensors");
}

}  // namespace graphrun::testing
