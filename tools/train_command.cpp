// `graphrun train`: the training loop of the command line, with progress, checkpoints after
// every epoch, a clean stop on SIGINT/SIGTERM, --resume, metrics and figures.
#include <graphrun/tools/commands.hpp>
#include <graphrun/tools/console.hpp>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/communicator.hpp>
#include <graphrun/train/inference.hpp>
#include <graphrun/train/report.hpp>
#include <graphrun/train/safetensors.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

namespace graphrun::cli {
namespace fs = std::filesystem;
namespace {

std::int64_t parameter_count(Trainer& trainer) {
  std::int64_t n = 0;
  for (const auto& p : trainer.model().graph->parameters()) n += numel(p.shape());
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
  Communicator& comm = trainer.communicator();
  // Under mpirun rank 0 reads the checkpoint and sends it to the others, which need no access
  // to the run folder.
  std::vector<std::byte> bytes;
  bool found = comm.rank() == 0 && fs::is_regular_file(run.checkpoint, ec);
  if (comm.size() > 1) {
    if (found) {
      std::ifstream in(run.checkpoint, std::ios::binary);
      std::vector<char> chars{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      if (!in.good() && !in.eof()) throw IoError(fmt::format("cannot read '{}'", run.checkpoint.string()));
      bytes.resize(chars.size());
      std::memcpy(bytes.data(), chars.data(), chars.size());
    }
    comm.broadcast(bytes, 0);
    found = !bytes.empty();
  }
  if (!found)
    throw UsageError(fmt::format("--resume: there is no checkpoint at '{}' (train without --resume "
                                 "first, or give the run folder with --out)",
                                 run.checkpoint.string()));
  if (comm.size() > 1) {
    SafetensorsFile checkpoint = decode_safetensors(bytes, run.checkpoint.string());
    check_resumable(checkpoint.metadata, run.settings, run.checkpoint);
    trainer.load(checkpoint, run.checkpoint.string());
  } else {
    check_resumable(load_safetensors(run.checkpoint).metadata, run.settings, run.checkpoint);
    trainer.load(run.checkpoint);
  }
  if (comm.rank() == 0) metrics.load(trainer.epoch());
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

// The header's data-parallel lines: who trains, how the batch is split, which bits repeat.
void print_parallel(const Trainer& trainer) {
  const int ranks = trainer.communicator().size();
  const std::int64_t shards = trainer.config().shards, batch = trainer.config().batch;
  if (ranks == 1 && shards == 0) return;
  if (shards == 0)
    fmt::print("  data parallel: {}; each batch split in {} parts of {} to {} images, gradients "
               "summed in a fixed ring order (the same bits for the same number of ranks)\n",
               trainer.communicator().describe(), ranks, batch / ranks, (batch + ranks - 1) / ranks);
  else
    fmt::print("  data parallel: {}; each batch split in {} fixed shards of {} to {} images, "
               "summed in shard order (the same bits for any number of ranks up to {})\n",
               trainer.communicator().describe(), shards, batch / shards,
               (batch + shards - 1) / shards, shards);
  fmt::print("  note: statistics over the batch (such as the sparse AE's KL penalty on the mean "
             "activation) are taken over each {} of the batch, not the whole batch\n",
             shards == 0 ? "rank's part" : "shard");
}

void print_header(const Run& run, const Dataset& data, Trainer& trainer) {
  const Settings& s = run.settings;
  const std::int64_t batches = (data.train.count + s.train.batch - 1) / s.train.batch;
  fmt::print("training {} ({}) from {}\n", trainer.model().name, options_text(s.model_options), s.file.string());
  fmt::print("  data {}: {} train / {} test {} of {}{}; {} parameters\n", data.name,
             data.train.count, data.test.count, data.train.is_image() ? "images" : "samples",
             fmt::join(data.train.shape, "x"),
             data.train.normalization.mode == Normalize::none
                 ? ""
                 : data.train.normalization.mode == Normalize::standardize ? ", standardized"
                                                                           : ", scaled to [0, 1]",
             thousands(parameter_count(trainer)));
  fmt::print("  {} epochs of {} batches of {}, {} lr {}, seed {}; run folder {}\n", s.train.epochs,
             batches, s.train.batch, s.train.optimizer.kind, s.train.optimizer.lr, s.train.seed,
             run.dir.string());
  print_parallel(trainer);
  std::fflush(stdout);
}

int stopped(const Run& run, const StopSignals& signals, const Trainer& trainer,
            std::int64_t batches) {
  // Under mpirun every rank stops at the step they agreed on; a rank that was not signalled
  // itself (only another rank was) ends as if by SIGTERM, which is what mpirun forwards.
  const int code = signals.signal() ? signals.exit_code() : 128 + SIGTERM;
  if (trainer.communicator().rank() != 0) return code;
  std::string where = trainer.batch_in_epoch() > 0
                          ? fmt::format("in epoch {} after batch {} of {}", trainer.epoch() + 1,
                                        trainer.batch_in_epoch(), batches)
                          : fmt::format("after epoch {}", trainer.epoch());
  fmt::print(stderr,
             "graphrun: stopped by {} {}; checkpoint saved to {}\n"
             "resume with: {}\n",
             signals.signal() ? signals.signal_name() : "a signal to another rank", where,
             run.checkpoint.string(), resume_command(run));
  return code;
}

int finish(const Run& run, const Dataset& data, Trainer& trainer, const MetricsLog& metrics,
           double seconds) {
  Inference inference(trainer.model(), trainer.parameters(), 256, run.settings.train.seed, trainer.arena());
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
  auto identity = checkpoint_identity(s);
  identity["normalization"] = data.train.normalization.to_json();
  // Under mpirun rank 0 alone evaluates, writes and prints; the others train and follow.
  const bool leader = trainer.communicator().rank() == 0;
  const Split* test = leader && data.test.count > 0 ? &data.test : nullptr;
  const std::int64_t batches = (data.train.count + s.train.batch - 1) / s.train.batch;
  StopSignals signals;
  // Under mpirun rank 0's stdout is a pseudo-terminal of mpirun's even when the job's output goes
  // to a log file, as on a cluster: one line per epoch there, never a redrawn bar.
  ProgressDisplay display(::isatty(STDOUT_FILENO) == 1 && trainer.communicator().size() == 1,
                          s.train.epochs);
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
      if (leader)  // every rank saw the same summed loss
        fmt::print(stderr, "graphrun: training stopped: {}\n{}\n", e.what(),
                 kept ? fmt::format("the last good checkpoint (epoch {}) is kept at {}",
                                    trainer.epoch(), run.checkpoint.string())
                      : std::string("no checkpoint was written"));
      return 1;
    }
    try {
      if (report.interrupted) {
        if (leader) trainer.save(run.checkpoint, identity);
        display.clear();
        return stopped(run, signals, trainer, batches);
      }
      // Metrics first: after a crash between the two, they are ahead of the checkpoint, and
      // --resume drops the rows past it; the other order would lose a row for good.
      if (leader) {
        metrics.add(report);
        metrics.write();
        trainer.save(run.checkpoint, identity);
      }
    } catch (const IoError& e) {
      display.clear();
      return save_failed(run, e, last_saved);
    }
    last_saved = position(trainer);
    if (!trainer.parameters_agree())  // collective; a bug, never expected
      throw std::runtime_error(fmt::format("after epoch {} the parameters of some rank differ from "
                                           "rank 0's", trainer.epoch()));
    display.end_epoch(report);
    // Agreed by every rank (one value from each), so they all stop after the same epoch.
    if (trainer.communicator().any(signals.stopped()) && trainer.epoch() < s.train.epochs)
      return stopped(run, signals, trainer, batches);
  }
  return -1;
}

// Output of ranks other than 0 goes nowhere: rank 0 prints the run once. Their errors still reach
// stderr.
void quiet_stdout() {
  std::fflush(stdout);
  int null = ::open("/dev/null", O_WRONLY);
  if (null < 0) return;
  ::dup2(null, STDOUT_FILENO);
  ::close(null);
}

int train_run(const Run& run, Communicator& comm) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const Settings& s = run.settings;
  const bool leader = comm.rank() == 0;
  if (!leader) quiet_stdout();
  Dataset data = load_data(s);
  auto model = build(s, s.model_options, s.train.batch, data.train.shape);
  require_labels(*model, data.train, "the training images");  // before anything is written
  Trainer trainer(*model, s.train, comm);
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
  } else if (std::error_code ec; leader && fs::exists(run.checkpoint, ec)) {
    fmt::print(stderr, "graphrun: note: starting afresh, replacing the run in {} (--resume would "
                       "continue it)\n", run.dir.string());
  }
  if (leader) write_file_atomic(run.dir / "config.ini", to_ini(s));
  print_header(run, data, trainer);
  if (int code = train_epochs(run, data, trainer, metrics); code >= 0) return code;
  if (!leader) return 0;
  if (comm.size() > 1) {
    const ParallelStats& st = trainer.parallel_stats();
    const double steps = static_cast<double>(std::max<std::int64_t>(st.steps, 1));
    fmt::print("parameters: the same bits on all {} ranks after every epoch (compared by hash)\n"
               "gradient sum on rank 0: {:.3f} ms per step ({:.1f}% of the step), {:.2f} MB sent "
               "per step ({} gradient floats)\n",
               comm.size(), 1e3 * st.reduce_seconds / steps,
               100 * st.reduce_seconds / std::max(st.reduce_seconds + st.compute_seconds, 1e-12),
               static_cast<double>(comm.bytes_sent()) / steps / 1e6, st.gradient_floats);
  }
  return finish(run, data, trainer, metrics, seconds());
}

}  // namespace

// In one process, train_run as it is. Under mpirun, a failure on any rank ends the whole job at
// once (the others would wait in the next sum forever), after saying which rank failed.
int train_command(const Run& run) {
  auto comm = world_communicator();
  if (comm->size() == 1) return train_run(run, *comm);
  int code = 1;
  try {
    code = train_run(run, *comm);
  } catch (const std::exception& e) {
    const bool usage = dynamic_cast<const UsageError*>(&e) || dynamic_cast<const ModelOptionError*>(&e) ||
                       dynamic_cast<const LabelError*>(&e);
    std::fflush(stdout);
    fmt::print(stderr, "graphrun: rank {} of {}: {}{}\n", comm->rank(), comm->size(),
               usage ? "" : "error: ", e.what());
    comm->abort(usage ? 2 : 1);
  }
  if (code == 1 || code == 2) comm->abort(code);
  return code;
}

}  // namespace graphrun::cli
