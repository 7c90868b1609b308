// End-to-end: crashes and full disks. graphrun train is killed with SIGKILL at seeded random
// moments and its writes are made to fail. Each time the run folder must hold a whole checkpoint
// (or none yet) that agrees with the metrics, and --resume must finish the run with the bits of
// a run that was never stopped.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "tools/cli_harness.hpp"

namespace graphrun::testing {
namespace {

constexpr std::int64_t kEpochs = 80;           // many short epochs: kills often land in a save
constexpr std::int64_t kBatchesPerEpoch = 10;  // the tiny set's 300 images in batches of 32
const std::vector<std::string> kRunFiles = {
    "checkpoint.safetensors", "config.ini",  "metrics.jsonl", "metrics.csv", "loss.png",
    "reconstructions.png",    "samples.png", "latent_pca.png"};

std::vector<std::string> train_args(const std::string& out, std::int64_t epochs, bool resume) {
  std::vector<std::string> args{"model.vae", "--batch", "32", "--model.hidden", "16", "--out", out};
  args.insert(args.end(), {"--epochs", std::to_string(epochs), "--data", tiny_dataset().string()});
  if (resume) args.emplace_back("--resume");
  return args;
}

std::string joined(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) out += (out.empty() ? "" : " ") + a;
  return out;
}

std::string describe(const CliResult& r) {
  return "exit " + std::to_string(r.code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

std::int64_t meta_int(const SafetensorsFile& f, const std::string& key) {
  INFO("checkpoint metadata " << key);
  REQUIRE(f.metadata.count(key) == 1);
  return std::stoll(f.metadata.at(key));
}

// The epochs of metrics.jsonl's rows, which must each parse.
std::vector<std::int64_t> metric_epochs(const fs::path& file) {
  std::vector<std::int64_t> epochs;
  for (const auto& line : lines_of(read_text(file))) {
    INFO(file.string() << ": " << line);
    nlohmann::json row;
    REQUIRE_NOTHROW(row = nlohmann::json::parse(line));
    epochs.push_back(row.at("epoch").get<std::int64_t>());
  }
  return epochs;
}

// Temporary files in `dir`, failing on anything that is neither an output of a run nor the
// temporary file of one ("<output>.tmp.<pid>").
std::vector<std::string> temporaries(const fs::path& dir) {
  std::vector<std::string> found;
  if (!fs::exists(dir)) return found;  // killed before it made the folder
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (std::find(kRunFiles.begin(), kRunFiles.end(), name) != kRunFiles.end()) continue;
    INFO("unexpected file in the run folder: " << name);
    auto at = name.find(".tmp.");
    REQUIRE(at != std::string::npos);
    CHECK(std::find(kRunFiles.begin(), kRunFiles.end(), name.substr(0, at)) != kRunFiles.end());
    CHECK(name.find_first_not_of("0123456789", at + 5) == std::string::npos);
    found.push_back(name);
  }
  return found;
}

// What a kill may leave, checked: the checkpoint, if any, loads whole, has the tensors of a
// finished run and sits at an epoch boundary. metrics.jsonl holds epochs 1..n, where n is the
// checkpoint's epoch or one more (each epoch writes metrics.jsonl, metrics.csv, then the
// checkpoint, and --resume drops the extra row); metrics.csv is between the two.
// Returns the checkpoint's epoch, 0 when there is none.
std::int64_t check_after_kill(const fs::path& dir, const SafetensorsFile& finished) {
  std::int64_t epoch = 0;
  const auto checkpoint = dir / "checkpoint.safetensors";
  if (fs::exists(checkpoint)) {
    SafetensorsFile f;
    REQUIRE_NOTHROW(f = load_safetensors(checkpoint));
    epoch = meta_int(f, "epoch");
    CHECK(epoch >= 1);
    CHECK(meta_int(f, "step") == epoch * kBatchesPerEpoch);
    CHECK(meta_int(f, "batch_in_epoch") == 0);  // only a signal saves inside an epoch
    REQUIRE(f.tensors.size() == finished.tensors.size());
    for (const auto& [name, t] : finished.tensors) {
      INFO("tensor " << name);
      REQUIRE(f.tensors.count(name) == 1);
      CHECK(f.tensors.at(name).shape() == t.shape());
    }
  }
  std::int64_t n = 0;
  if (fs::exists(dir / "metrics.jsonl")) {
    auto epochs = metric_epochs(dir / "metrics.jsonl");
    for (std::size_t i = 0; i < epochs.size(); ++i)
      CHECK(epochs[i] == static_cast<std::int64_t>(i) + 1);
    n = static_cast<std::int64_t>(epochs.size());
  }
  CHECK((n == epoch || n == epoch + 1));
  if (fs::exists(dir / "metrics.csv")) {
    const auto lines = static_cast<std::int64_t>(lines_of(read_text(dir / "metrics.csv")).size());
    CHECK(lines - 1 >= epoch);  // one line of column names
    CHECK(lines - 1 <= n);
  }
  // A killed write leaves at most its own temporary file: the next write of that file removes it.
  auto temps = temporaries(dir);
  std::set<std::string> targets;
  for (const auto& t : temps) CHECK(targets.insert(t.substr(0, t.find(".tmp."))).second);
  return epoch;
}

// The last "epoch k/N" line a run printed; it prints one after saving that epoch's checkpoint.
std::int64_t last_epoch_printed(const std::string& out) {
  std::int64_t last = 0;
  for (const auto& line : lines_of(out))
    if (line.rfind("epoch ", 0) == 0) last = std::stoll(line.substr(6, line.find('/') - 6));
  return last;
}

// Whether the process has ended, leaving it to CliProcess::wait to collect.
bool has_ended(pid_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == pid;
}

// Until the process prints `text`, or ends without it (the caller's checks then report why).
void wait_for(const CliProcess& p, const std::string& text) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (p.out().find(text) == std::string::npos && !has_ended(p.pid())) {
    INFO("waiting for '" << text << "'; stdout so far:\n" << p.out());
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

TEST_CASE("SIGKILL at any moment leaves a whole checkpoint and --resume finishes the run",
          "[e2e]") {
  TempDir tmp;
  const auto started = std::chrono::steady_clock::now();
  auto straight = run_cli_process(train_args("straight", kEpochs, false), tmp.path());
  REQUIRE(straight.code == 0);
  const SafetensorsFile finished = load_safetensors(tmp / "straight" / "checkpoint.safetensors");
  // Kills are placed by progress, plus a fraction of an epoch measured here, so that they spread
  // over the run and into the saves on fast and slow machines alike.
  const auto elapsed = std::chrono::steady_clock::now() - started;
  const auto epoch_ms = std::max<std::int64_t>(
      2, std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() / kEpochs);

  std::mt19937 rng(7);  // fixed: a failure repeats with the same kill moments
  const fs::path dir = tmp / "run";
  std::int64_t saved = 0;
  const int kills = 7;
  for (int k = 0; k < kills; ++k) {
    const bool resume = fs::exists(dir / "checkpoint.safetensors");
    CliProcess p(train_args("run", kEpochs, resume), tmp.path(), {}, "kill" + std::to_string(k));
    if (k == 0) {
      // Early, while it loads, compiles or saves its first epochs.
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 50));
    } else if (k == kills - 1 || saved + 1 >= kEpochs) {
      // Just after the last epoch's line: while the figures are drawn.
      if (saved < kEpochs) wait_for(p, fmt::format("epoch {}/", kEpochs));
    } else {
      const auto target =
          std::min(kEpochs - 1, saved + 1 + static_cast<std::int64_t>(rng() % (kEpochs / 6)));
      wait_for(p, fmt::format("epoch {}/", target));
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % (2 * epoch_ms)));
    }
    REQUIRE(::kill(p.pid(), SIGKILL) == 0);
    CliResult r = p.wait();
    INFO("kill " << k << ": " << describe(r));
    REQUIRE((r.code == 128 + SIGKILL || r.code == 0));
    // It read the checkpoint, not a temporary file.
    if (resume && r.out.find("resuming") != std::string::npos)
      CHECK(r.out.find(fmt::format("resuming after epoch {} (step", saved)) != std::string::npos);
    const std::int64_t epoch = check_after_kill(dir, finished);
    CHECK(epoch >= saved);
    CHECK(epoch >= last_epoch_printed(r.out));
    CHECK(epoch <= std::max(last_epoch_printed(r.out), saved) + 1);
    saved = epoch;
  }

  auto resumed = run_cli_process(train_args("run", kEpochs, saved > 0), tmp.path());
  INFO(describe(resumed));
  REQUIRE(resumed.code == 0);
  auto epochs = metric_epochs(dir / "metrics.jsonl");
  REQUIRE(epochs.size() == static_cast<std::size_t>(kEpochs));
  for (std::size_t i = 0; i < epochs.size(); ++i)
    CHECK(epochs[i] == static_cast<std::int64_t>(i) + 1);
  CHECK(lines_of(read_text(dir / "metrics.csv")).size() == static_cast<std::size_t>(kEpochs) + 1);
  CHECK(meta_int(load_safetensors(dir / "checkpoint.safetensors"), "epoch") == kEpochs);
  for (const auto& name : kRunFiles) CHECK(fs::exists(dir / name));
  CHECK(temporaries(dir).empty());
  require_same_tensors(dir / "checkpoint.safetensors", tmp / "straight" / "checkpoint.safetensors");
}

TEST_CASE("graphrun --resume of a run stopped while drawing its figures draws them", "[e2e]") {
  TempDir tmp;
  REQUIRE(run_cli_process(train_args("run", 1, false), tmp.path()).code == 0);
  const fs::path dir = tmp / "run";
  // What a kill among the figures leaves: some missing, some from before the last checkpoint.
  fs::remove(dir / "samples.png");
  fs::last_write_time(dir / "loss.png", fs::last_write_time(dir / "checkpoint.safetensors") -
                                            std::chrono::seconds(10));
  const std::string checkpoint = read_text(dir / "checkpoint.safetensors");
  auto r = run_cli_process(train_args("run", 1, true), tmp.path());
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(r.out.find("drawing the figures the run did not finish") != std::string::npos);
  CHECK(fs::exists(dir / "samples.png"));
  CHECK(fs::last_write_time(dir / "loss.png") >=
        fs::last_write_time(dir / "checkpoint.safetensors"));
  CHECK(read_text(dir / "checkpoint.safetensors") == checkpoint);
  CHECK(lines_of(read_text(dir / "metrics.jsonl")).size() == 1);

  // Once they are all there, there is nothing to do.
  r = run_cli_process(train_args("run", 1, true), tmp.path());
  CHECK(r.code == 0);
  CHECK(r.out.find("nothing to do") != std::string::npos);
}

TEST_CASE("a full disk stops training with the file and the reason and keeps the last checkpoint",
          "[e2e]") {
  TempDir tmp;
  const fs::path dir = tmp / "run";
  const auto checkpoint = dir / "checkpoint.safetensors";
  // Room for config.ini, the metrics and the logs, not for a checkpoint (about 320 KiB).
  const ChildLimits full{64 * 1024};

  SECTION("a run with a checkpoint keeps it, byte for byte, and resumes once there is room") {
    REQUIRE(run_cli_process(train_args("run", 2, false), tmp.path()).code == 0);
    const std::string before = read_text(checkpoint);
    REQUIRE(before.size() > 64 * 1024);
    CliProcess p(train_args("run", 4, true), tmp.path(), {}, "full", full);
    CliResult r = p.wait();
    INFO(describe(r));
    CHECK(r.code == 1);
    CHECK_THAT(
        r.err,
        Catch::Contains("cannot write 'run/checkpoint.safetensors'") &&
            Catch::Contains("file too large") &&
            Catch::Contains("checkpoint saved after epoch 2 (step 20) is kept unchanged") &&
            Catch::Contains("continue with: graphrun " + joined(train_args("run", 4, true))));
    CHECK(read_text(checkpoint) == before);
    CHECK(meta_int(load_safetensors(checkpoint), "epoch") == 2);
    CHECK(temporaries(dir).empty());

    auto resumed = run_cli_process(train_args("run", 4, true), tmp.path());
    INFO(describe(resumed));
    REQUIRE(resumed.code == 0);
    CHECK(metric_epochs(dir / "metrics.jsonl") == std::vector<std::int64_t>{1, 2, 3, 4});
  }
  SECTION("a first checkpoint that cannot be written leaves none") {
    CliProcess p(train_args("run", 2, false), tmp.path(), {}, "full", full);
    CliResult r = p.wait();
    INFO(describe(r));
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Catch::Contains("run/checkpoint.safetensors") &&
                          Catch::Contains("file too large") &&
                          Catch::Contains("no checkpoint was written"));
    CHECK_FALSE(fs::exists(checkpoint));
    CHECK(temporaries(dir).empty());
  }
}

TEST_CASE("graphrun train into a folder that cannot be made names it and the reason", "[e2e]") {
  TempDir tmp;
  // Root ignores permission bits; a regular file where a folder should be stops everyone.
  write_raw(tmp / "plain", std::span<const char>("keep", 4));
  for (const std::string out : {"plain", "plain/run"}) {
    auto r = run_cli_process(train_args(out, 1, false), tmp.path());
    INFO(describe(r));
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Catch::StartsWith("graphrun: error: cannot write '" + out + "/config.ini'") &&
                          Catch::Contains("cannot create the folder '" + out + "'") &&
                          Catch::Contains("Not a directory"));
  }
  CHECK(read_text(tmp / "plain") == "keep");
}

}  // namespace graphrun::testing
