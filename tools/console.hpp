// Console plumbing for long runs: SIGINT/SIGTERM turned into a stop flag the Trainer polls, and
// a progress display that redraws one line on a terminal and prints one line per epoch otherwise.
#pragma once

#include <graphrun/train/trainer.hpp>

#include <atomic>
#include <cstdint>
#include <string>

namespace graphrun::cli {

// While alive, the first SIGINT or SIGTERM sets the stop flag; a second one of the same kind
// gets the default action (so a stuck run can still be killed). The old handlers come back when
// the object dies.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  const std::atomic<bool>& flag() const;
  bool stopped() const { return flag().load(); }
  int signal() const;     // SIGINT, SIGTERM, or 0
  int exit_code() const;  // 128 + signal
  std::string signal_name() const;
};

class ProgressDisplay {
 public:
  // `terminal`: redraw a bar with '\r'; otherwise only the per-epoch lines.
  ProgressDisplay(bool terminal, std::int64_t epochs);

  // `done_batches`: how far into the epoch the trainer already is (a resumed epoch).
  void start_epoch(std::int64_t epoch, std::int64_t done_batches);
  void update(const Progress& p);
  // Clears the bar and prints the epoch's summary line.
  void end_epoch(const EpochReport& r);
  // Clears the bar (before printing anything else).
  void clear();

 private:
  bool terminal_;
  std::int64_t epochs_, epoch_ = 0, first_batch_ = 0;
  double last_draw_ = -1;
  bool drawn_ = false;
};

// "1:05", "2:03:10"
std::string format_duration(double seconds);
// "264.31 (recon 240.12, kl 24.19)"
std::string format_loss(const LossReport& r);

}  // namespace graphrun::cli
