// run_cli: parse the command line into a plain config, hand it to one verb, and turn whatever
// escapes into a message on stderr and an exit code.
#include <graphrun/tools/commands.hpp>
#include <graphrun/tools/runner.hpp>
#include <graphrun/train/communicator.hpp>

#include <fmt/format.h>

#include <cstdio>

namespace graphrun {
namespace {

int run_verb(const cli::Run& run) {
  using cli::Verb;
  // Under mpirun only `train` is data parallel; the other verbs run once, on rank 0.
  if (auto [rank, size] = launcher_rank_and_size(); size > 1 && run.cli.verb != Verb::train) {
    if (rank > 0) return 0;
    fmt::print(stderr, "graphrun: note: '{}' runs in one process: ranks 1 to {} of this MPI job "
                       "do nothing\n", cli::verb_name(run.cli.verb), size - 1);
  }
  switch (run.cli.verb) {
    case Verb::train: return cli::train_command(run);
    case Verb::eval: return cli::eval_command(run);
    case Verb::sample: return cli::sample_command(run);
    case Verb::reconstruct: return cli::reconstruct_command(run);
    case Verb::encode: return cli::encode_command(run);
    case Verb::interpolate: return cli::interpolate_command(run);
    case Verb::anomaly: return cli::anomaly_command(run);
    case Verb::graph: return cli::graph_command(run);
    case Verb::info: return cli::info_command(run);
    case Verb::gradcheck: return cli::gradcheck_command(run);
    case Verb::profile: return cli::profile_command(run);
    case Verb::compare: break;  // dispatched before a model file is opened
  }
  return 1;
}

int dispatch(const cli::CliConfig& config) {
  switch (config.action) {
    case cli::Action::help: fmt::print("{}", cli::help_text()); return 0;
    case cli::Action::version: return cli::version_command();
    case cli::Action::list: return cli::list_command();
    case cli::Action::list_ops: return cli::list_ops_command(config.markdown);
    case cli::Action::list_keys: return cli::list_keys_command(config.model, config.markdown);
    case cli::Action::run: break;
  }
  if (config.verb == cli::Verb::compare) return cli::compare_command(config);
  return run_verb(cli::open_run(config));
}

}  // namespace

int run_cli(int argc, char** argv) {
  try {
    return dispatch(cli::parse_args(argc, argv));
  } catch (const cli::UsageError& e) {
    fmt::print(stderr, "graphrun: {}\n", e.what());
    return 2;
  } catch (const ModelOptionError& e) {
    fmt::print(stderr, "graphrun: {}\n", e.what());
    return 2;
  } catch (const LabelError& e) {  // labels missing or a class out of range: bad usage
    fmt::print(stderr, "graphrun: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "graphrun: error: {}\n", e.what());
    return 1;
  }
}

}  // namespace graphrun
