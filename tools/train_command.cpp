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

// Restores the checkpoint and the metrics rows up to it; false when every epoch is trained.
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
  if (trainer.epoch() >= epochs) return false;
  if (trainer.batch_in_epoch() > 0)
    fmt::print("resuming epoch {} at batch {} (step {}), up to {} epochs\n", trainer.epoch() + 1,
               trainer.batch_in_epoch() + 1, trainer.step(), epochs);
  else
    fmt::print("resuming after epoch {} (step {}), up to {} epochs\n", trainer.epoch(),
               trainer.step(), epochs);
  return true;
}

// Whether every figure of the finished run is there and newer than its checkpoint. The figures
// are drawn after the last checkpoint is saved, so a run killed while drawing them lacks some, or
// still has those of an earlier, shorter run.
bool figures_drawn(const Run& run, const Dataset& data, const Model& model) {
  std::error_code ec;
  const auto saved = fs::last_write_time(run.checkpoint, ec);
  if (ec) return false;
  for (const auto& name : training_figure_names(model, data)) {
    const auto drawn = fs::last_write_time(run.dir / name, ec);
    if (ec || drawn < saved) return false;
  }
  return true;
}

// Where a checkpoint stands, for messages: "after epoch 3 (step 30)" or, for one saved on a
// signal, "in epoch 4 after batch 5 (step 35)".
std::string position(const Trainer& trainer) {
  if (trainer.batch_in_epoch() > 0)
    return fmt::format("in epoch {} after batch {} (step {})", trainer.epoch() + 1,
                       trainer.batch_in_epoch(), trainer.step());
  return fmt::format("after epoch {} (step {})", trainer.epoch(), trainer.step());
}

std::string resume_command(const Run& run) {
  return command_line(run, run.cli.resume ? "" : "--resume");
}

// A failed write of the metrics or the checkpoint (disk full, file size limit, folder removed)
// ends the run. Every write is atomic, so the checkpoint on disk is the last one saved, whole;
// the message says which one that is and how to go on once there is room.
int save_failed(const Run& run, const IoError& e, const std::string& last_saved) {
  std::error_code ec;
  std::string kept;
  if (!last_saved.empty())
    kept = fmt::format(
        "the checkpoint saved {} is kept unchanged at {}\n"
        "once the problem is fixed, continue with: {}",
        last_saved, run.checkpoint.string(), resume_command(run));
  else if (fs::exists(run.checkpoint, ec))
    kept = fmt::format("the earlier run's checkpoint at {} is unchanged", run.checkpoint.string());
  else
    kept = "no checkpoint was written";
  fmt::print(stderr, "graphrun: training stopped, cannot save: {}\n{}\n", e.what(), kept);
  return 1;
}

void print_header(const Run& run, const Dataset& data, Trainer& trainer) {
  const Settings& s = run.settings;
  const std::int64_t batches = (data.train.count + s.train.batch - 1) / s.train.batch;
  fmt::print("training {} ({}) from {}\n", trainer.model().name, options_text(s.model_options), s.file.string());
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
             signals.signal_name(), where, run.checkpoint.string(), resume_command(run));
  return signals.exit_code();
}

int finish(const Run& run, const Dataset& data, Trainer& trainer, const MetricsLog& metrics,
           double seconds) {
  Inference inference(trainer.model(), trainer.parameters(), 256, run.settings.train.seed);
  std::vector<fs::path> figures;
  try {
    figures = write_training_figures(run.dir, inference, data, metrics.rows(), trainer.model(),
                                     run.settings.train.seed);
  } catch (const IoError& e) {
    fmt::print(stderr,
               "graphrun: cannot draw the figures: {}\nthe checkpoint {} is complete at {}\n"
               "once the problem is fixed, draw the figures with: {}\n",
               e.what(), position(trainer), run.checkpoint.string(), resume_command(run));
    return 1;
  }
  std::string files = "checkpoint.safetensors config.ini metrics.jsonl metrics.csv";
  for (const auto& f : figures) files += fmt::format(" {}", f.filename().string());
  fmt::print("done in {:.1f} s; wrote {}/: {}\n", seconds, run.dir.string(), files);
  return 0;
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
  std::string last_saved = run.cli.resume ? position(trainer) : "";
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
    try {
      if (report.interrupted) {
        trainer.save(run.checkpoint, identity);
        display.clear();
        return stopped(run, signals, trainer, batches);
      }
      // Metrics first: after a crash between the two, they are ahead of the checkpoint, and
      // --resume drops the rows past it; the other order would lose a row for good.
      metrics.add(report);
      metrics.write();
      trainer.save(run.checkpoint, identity);
    } catch (const IoError& e) {
      display.clear();
      return save_failed(run, e, last_saved);
    }
    last_saved = position(trainer);
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
  require_labels(*model, data.train, "the training images");  // before anything is written
  Trainer trainer(*model, s.train);
  MetricsLog metrics(run.dir);
  auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  if (run.cli.resume) {
    if (!resume(run, trainer, metrics)) {
      if (figures_drawn(run, data, *model)) {
        fmt::print("{} has already trained {} epochs; nothing to do (raise --epochs to go on)\n",
                   run.checkpoint.string(), trainer.epoch());
        return 0;
      }
      fmt::print("{} has already trained {} epochs; drawing the figures the run did not finish\n",
                 run.checkpoint.string(), trainer.epoch());
      return finish(run, data, trainer, metrics, seconds());
    }
  } else if (std::error_code ec; fs::exists(run.checkpoint, ec)) {
    fmt::print(stderr, "graphrun: note: starting afresh, replacing the run in {} (--resume would "
                       "continue it)\n", run.dir.string());
  }
  write_file_atomic(run.dir / "config.ini", to_ini(s));
  print_header(run, data, trainer);
  if (int code = train_epochs(run, data, trainer, metrics); code >= 0) return code;
  return finish(run, data, trainer, metrics, seconds());
}

}  // namespace graphrun::cli
