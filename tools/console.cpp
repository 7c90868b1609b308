#include <graphrun/tools/console.hpp>

#include <fmt/format.h>

#include <signal.h>

#include <cmath>
#include <cstdio>

namespace graphrun::cli {
namespace {

std::atomic<bool> g_stop{false};
volatile sig_atomic_t g_signal = 0;
struct sigaction g_old_int, g_old_term;

extern "C" void on_stop_signal(int sig) {
  if (g_stop.load()) {
    // Asked twice: let the default action end the process.
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  g_signal = sig;
  g_stop.store(true);
}

std::string rate(double per_second) {
  if (per_second >= 1e4) return fmt::format("{:.1f}k", per_second / 1e3);
  return fmt::format("{:.0f}", per_second);
}

}  // namespace

StopSignals::StopSignals() {
  g_stop.store(false);
  g_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

const std::atomic<bool>& StopSignals::flag() const { return g_stop; }
int StopSignals::signal() const { return g_signal; }
int StopSignals::exit_code() const { return g_signal ? 128 + g_signal : 0; }
std::string StopSignals::signal_name() const {
  return g_signal == SIGINT ? "SIGINT" : g_signal == SIGTERM ? "SIGTERM" : "no signal";
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<long long>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

std::string format_loss(const LossReport& r) {
  std::string out = fmt::format("{:.4g}", r.loss);
  if (r.terms.empty()) return out;
  std::string sep = " (";
  for (const auto& [name, v] : r.terms) {
    out += fmt::format("{}{} {:.4g}", sep, name, v);
    sep = ", ";
  }
  return out + ")";
}

ProgressDisplay::ProgressDisplay(bool terminal, std::int64_t epochs)
    : terminal_(terminal), epochs_(epochs) {}

void ProgressDisplay::start_epoch(std::int64_t epoch, std::int64_t done_batches) {
  epoch_ = epoch;
  first_batch_ = done_batches;
  last_draw_ = -1;
}

void ProgressDisplay::update(const Progress& p) {
  if (!terminal_) return;
  bool last = p.batch == p.batches;
  if (!last && last_draw_ >= 0 && p.seconds - last_draw_ < 0.1) return;
  last_draw_ = p.seconds;
  const std::int64_t done = p.batch - first_batch_;
  const double per_batch = done > 0 ? p.seconds / static_cast<double>(done) : 0;
  const double samples = static_cast<double>(p.samples) *
                         static_cast<double>(done) / static_cast<double>(std::max<std::int64_t>(p.batch, 1));
  const double left_epoch = per_batch * static_cast<double>(p.batches - p.batch);
  const double left_run = left_epoch + per_batch * static_cast<double>(p.batches * (epochs_ - epoch_));
  constexpr int width = 20;
  int filled = static_cast<int>(width * p.batch / std::max<std::int64_t>(p.batches, 1));
  std::string bar = std::string(static_cast<std::size_t>(filled), '=') +
                    std::string(static_cast<std::size_t>(width - filled), ' ');
  fmt::print("\r\033[Kepoch {}/{} [{}] {}/{}  {} img/s  loss {:.4g}  ETA {} (run {})", epoch_,
             epochs_, bar, p.batch, p.batches, rate(p.seconds > 0 ? samples / p.seconds : 0),
             p.running_loss, format_duration(left_epoch), format_duration(left_run));
  std::fflush(stdout);
  drawn_ = true;
}

void ProgressDisplay::clear() {
  if (terminal_ && drawn_) {
    fmt::print("\r\033[K");
    std::fflush(stdout);
  }
  drawn_ = false;
}

void ProgressDisplay::end_epoch(const EpochReport& r) {
  clear();
  std::string line = fmt::format("epoch {}/{}  train {}", r.epoch, epochs_, format_loss(r.train));
  if (r.has_test) line += fmt::format("  test {}", format_loss(r.test));
  line += fmt::format("  {:.1f} s  {} img/s", r.seconds, rate(r.samples_per_second));
  fmt::print("{}\n", line);
  std::fflush(stdout);
}

}  // namespace graphrun::cli
