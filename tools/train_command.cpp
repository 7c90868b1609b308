// `graphrun train`: the training loop of the command line, with progress, checkpoints after
// every epoch, a clean stop on SIGINT/SIGTERM, --resume, metrics and figures.
#include <graphrun/tools/commands.hpp>
#include <graphrun/tools/console.hpp>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/inference.hpp>
#include <graphrun/train/report.hpp>
#include <graphrun/train/safetensors.hpp>

#include <fmt/format.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace graphrun::cli {
namespace fs = std::filesystem;
namespace {

std::int64_t parameter_count(Trainer& trainer) {
  std::int64_t n = 0;
  for (const auto& [name, t] : trainer.parameters()) n += t.numel();
  return n;
}

std::string thousands(std::int64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Restores the checkpoint and the metrics rows up to it; false when there is nothing left to do.
bool resume(const Run& run, Trainer& trainer, MetricsLog& metrics) {
  std::error_code ec;
  if (!fs::is_regular_file(run.checkpoint, ec))
    throw UsageError(fmt::format("--resume: there is no checkpoint at '{}' (train without --resume "
                                 "first, or give the run folder with --out)",
                                 run.checkpoint.string()));
  check_resumable(load_safetensors(run.checkpoint).metadata, run.settings, run.checkpoint);
  trainer.load(run.checkpoint);
  metrics.load(trainer.epoch());
  const std::int64_t epochs = run.settings.train.epochs;
  if (trainer.epoch() >= epochs) {
    fmt::print("{} has already trained {} epochs; nothing to do (raise --epochs to go on)\n",
               run.checkpoint.string(), trainer.epoch());
    return false;
  }
  if (trainer.batch_in_epoch() > 0)
    fmt::print("resuming epoch {} at batch {} (step {}), up to {} epochs\n", trainer.epoch() + 1,
               trainer.batch_in_epoch() + 1, trainer.step(), epochs);
  else
    fmt::print("resuming after epoch {} (step {}), up to {} epochs\n", trainer.epoch(),
               trainer.step(), epochs);
  return true;
}

void print_header(const Run& run, const Dataset& data, Trainer& trainer) {
  const Settings& s = run.settings;
  const std::int64_t batches = (data.train.count + s.train.batch - 1) / s.train.batch;
  fmt::print("training {} ({}) from {}\n", s.model, options_text(s.model_options), s.file.string());
  fmt::print("  data {}: {} train / {} test images of {}x{}; {} parameters\n", s.dataset,
             data.train.count, data.test.count, data.train.rows, data.train.cols,
             thousands(parameter_count(trainer)));
  fmt::print("  {} epochs of {} batches of {}, {} lr {}, seed {}; run folder {}\n", s.train.epochs,
             batches, s.train.batch, s.train.optimizer.kind, s.train.optimizer.lr, s.train.seed,
             run.dir.string());
  std::fflush(stdout);
}

int stopped(const Run& run, const StopSignals& signals, const Trainer& trainer,
            std::int64_t batches) {
  std::string where = trainer.batch_in_epoch() > 0
                          ? fmt::format("in epoch {} after batch {} of {}", trainer.epoch() + 1,
                                        trainer.batch_in_epoch(), batches)
                          : fmt::format("after epoch {}", trainer.epoch());
  fmt::print(stderr,
             "graphrun: stopped by {} {}; checkpoint saved to {}\n"
             "resume with: {}\n",
             signals.signal_name(), where, run.checkpoint.string(),
             command_line(run, run.cli.resume ? "" : "--resume"));
  return signals.exit_code();
}

void finish(const Run& run, const Dataset& data, Trainer& trainer, const MetricsLog& metrics,
            double seconds) {
  Inference inference(trainer.model(), trainer.parameters(), 256, run.settings.train.seed);
  auto figures = write_training_figures(run.dir, inference, data, metrics.rows(), trainer.model(),
                                        run.settings.train.seed);
  std::string files = "checkpoint.safetensors config.ini metrics.jsonl metrics.csv";
  for (const auto& f : figures) files += fmt::format(" {}", f.filename().string());
  fmt::print("done in {:.1f} s; wrote {}/: {}\n", seconds, run.dir.string(), files);
}

// Trains up to the configured epochs; returns the exit code when the run ends early (signal or
// NaN), -1 when every epoch is done. The signal handlers live only as long as this loop, so a
// Ctrl-C while the figures are drawn ends the process at once (the checkpoint is already saved).
int train_epochs(const Run& run, const Dataset& data, Trainer& trainer, MetricsLog& metrics) {
  const Settings& s = run.settings;
  const auto identity = checkpoint_identity(s);
  const Split* test = data.test.count > 0 ? &data.test : nullptr;
  const std::int64_t batches = (data.train.count + s.train.batch - 1) / s.train.batch;
  StopSignals signals;
  ProgressDisplay display(::isatty(STDOUT_FILENO) == 1, s.train.epochs);
  while (trainer.epoch() < s.train.epochs) {
    display.start_epoch(trainer.epoch() + 1, trainer.batch_in_epoch());
    EpochReport report;
    try {
      report = trainer.train_epoch(data.train, test, [&](const Progress& p) { display.update(p); },
                                   &signals.flag());
    } catch (const NumericsError& e) {
      display.clear();
      std::error_code ec;
      bool kept = fs::exists(run.checkpoint, ec) && trainer.epoch() > 0;
      fmt::print(stderr, "graphrun: training stopped: {}\n{}\n", e.what(),
                 kept ? fmt::format("the last good checkpoint (epoch {}) is kept at {}",
                                    trainer.epoch(), run.checkpoint.string())
                      : std::string("no checkpoint was written"));
      return 1;
    }
    if (report.interrupted) {
      trainer.save(run.checkpoint, identity);
      display.clear();
      return stopped(run, signals, trainer, batches);
    }
    metrics.add(report);
    metrics.write();
    trainer.save(run.checkpoint, identity);
    display.end_epoch(report);
    if (signals.stopped() && trainer.epoch() < s.train.epochs)
      return stopped(run, signals, trainer, batches);
  }
  return -1;
}

}  // namespace

int train_command(const Run& run) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const Settings& s = run.settings;
  Dataset data = load_data(s);
  auto model = build(s, s.model_options, s.train.batch, data.train.features());
  Trainer trainer(*model, s.train);
  MetricsLog metrics(run.dir);
  if (run.cli.resume) {
    if (!resume(run, trainer, metrics)) return 0;
  } else if (std::error_code ec; fs::exists(run.checkpoint, ec)) {
    fmt::print(stderr, "graphrun: note: starting afresh, replacing the run in {} (--resume would "
                       "continue it)\n", run.dir.string());
  }
  write_file_atomic(run.dir / "config.ini", to_ini(s));
  print_header(run, data, trainer);
  if (int code = train_epochs(run, data, trainer, metrics); code >= 0) return code;
  finish(run, data, trainer, metrics, std::chrono::duration<double>(Clock::now() - start).count());
  return 0;
}

}  // namespace graphrun::cli
