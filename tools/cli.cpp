#include <graphrun/tools/cli.hpp>

#include <graphrun/models/graph_model.hpp>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <array>
#include <sstream>
#include <utility>

namespace graphrun::cli {
namespace po = boost::program_options;
namespace {

constexpr std::array<std::pair<Verb, const char*>, 12> kVerbs = {{
    {Verb::train, "train"},
    {Verb::eval, "eval"},
    {Verb::sample, "sample"},
    {Verb::reconstruct, "reconstruct"},
    {Verb::encode, "encode"},
    {Verb::interpolate, "interpolate"},
    {Verb::anomaly, "anomaly"},
    {Verb::graph, "graph"},
    {Verb::info, "info"},
    {Verb::gradcheck, "gradcheck"},
    {Verb::profile, "profile"},
    {Verb::compare, "compare"},
}};

// Shorthands for the most used keys; every key also has its long form --section.key.
constexpr std::array<std::pair<const char*, const char*>, 8> kShorthands = {{
    {"epochs", "train.epochs"},
    {"batch", "train.batch"},
    {"lr", "train.lr"},
    {"seed", "train.seed"},
    {"threads", "train.threads"},
    {"data", "data.dataset"},
    {"limit", "data.limit"},
    {"check-numerics", "train.check_numerics"},
}};

po::options_description describe_options() {
  po::options_description general("Options");
  general.add_options()
      ("help,h", "print this help")
      ("version", "print the version")
      ("list", "list the registered models (with their keys' summary) and ops")
      ("list-ops", "list the op names, one per line (with --markdown: a table)")
      ("list-keys", po::value<std::string>()->value_name("MODEL"),
       "list every model-file key of MODEL (a builder name or file) with default and help")
      ("markdown", "with --list-ops or --list-keys: print a Markdown table");
  po::options_description run("Run options (override the model file)");
  run.add_options()
      ("epochs", po::value<std::string>()->value_name("N"), "train.epochs: total epochs")
      ("batch", po::value<std::string>()->value_name("N"), "train.batch: images per step")
      ("lr", po::value<std::string>()->value_name("X"), "train.lr: learning rate")
      ("seed", po::value<std::string>()->value_name("N"), "train.seed")
      ("threads", po::value<std::string>()->value_name("N"), "train.threads (0 = all cores)")
      ("data", po::value<std::string>()->value_name("SET"),
       "data.dataset: fashion-mnist, mnist, cifar-10, a folder, or a .npy, .npz or .csv file")
      ("limit", po::value<std::string>()->value_name("N"),
       "data.limit: first N train and test images")
      ("check-numerics", "train.check_numerics = true: name the first node making NaN/Inf")
      ("out,o", po::value<std::string>()->value_name("DIR"),
       "run folder (default runs/<model file name>, e.g. runs/model.vae)")
      ("resume", "train: continue from <run folder>/checkpoint.safetensors")
      ("checkpoint", po::value<std::string>()->value_name("FILE"),
       "the checkpoint other verbs read (default <run folder>/checkpoint.safetensors)")
      ("count,n", po::value<std::int64_t>()->value_name("N"),
       "sample: images (64); reconstruct: images (16); interpolate: steps (10); "
       "anomaly: top-k shown (16); encode: rows (0 = all); profile: steps (50)")
      ("class", po::value<std::int64_t>()->value_name("N"),
       "sample, interpolate: the class a conditional model (input y) decodes")
      ("normal-classes", po::value<std::string>()->value_name("LIST"),
       "anomaly: the normal classes (e.g. 0 or 0,3); the others are anomalies, scored by AUROC "
       "and average precision (default: [data] classes)")
      ("iw", po::value<std::int64_t>()->value_name("K"),
       "eval: also estimate -log p(x) with K importance samples per image (iw.json)")
      ("trace", po::value<std::string>()->value_name("FILE"),
       "profile: write the last steps' timeline to FILE (Chrome trace JSON, for Perfetto)");
  general.add(run);
  return general;
}

// Pulls --section.key VALUE and --section.key=VALUE out of argv; returns the rest.
std::vector<std::string> take_key_overrides(int argc, char** argv, std::vector<Override>& out) {
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool keyed = false;
    for (const char* section : {"--model.", "--train.", "--data."})
      keyed = keyed || arg.rfind(section, 0) == 0;
    if (!keyed) {
      rest.push_back(arg);
      continue;
    }
    auto eq = arg.find('=');
    std::string key = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    if (eq != std::string::npos) {
      out.push_back({key, arg.substr(eq + 1), "--" + key});
    } else if (i + 1 < argc) {
      out.push_back({key, argv[++i], "--" + key});
    } else {
      throw UsageError(fmt::format("option '{}' needs a value", arg));
    }
  }
  return rest;
}

void take_positionals(const std::vector<std::string>& positionals, CliConfig& c) {
  std::size_t at = 0;
  if (!positionals.empty()) {
    for (const auto& [verb, name] : kVerbs)
      if (positionals[0] == name) {
        c.verb = verb;
        c.verb_given = true;
        at = 1;
      }
  }
  if (c.verb == Verb::compare) {
    c.runs.assign(positionals.begin() + static_cast<std::ptrdiff_t>(at), positionals.end());
    if (c.runs.empty()) throw UsageError("'compare' needs one or more RUN_FOLDERs (e.g. runs/model.vae)");
    return;
  }
  if (at >= positionals.size()) {
    if (at == 1) throw UsageError(fmt::format("'{}' needs a MODEL (e.g. model.vae)", positionals[0]));
    throw UsageError("no MODEL given; try 'graphrun model.vae', or 'graphrun --help'");
  }
  c.model = positionals[at];
  if (at + 1 < positionals.size()) {
    // Two words and no verb: the first was most likely meant as one ('graphrun manifold runs/x').
    std::string hint;
    if (at == 0) {
      std::vector<std::string> verbs;
      for (const auto& [verb, name] : kVerbs) verbs.emplace_back(name);
      const std::string close = closest_name(c.model, verbs);
      hint = close.empty() ? fmt::format("; '{}' is not a verb ({})", c.model, fmt::join(verbs, ", "))
                           : fmt::format("; '{}' is not a verb: did you mean '{}'?", c.model, close);
    }
    throw UsageError(fmt::format("unexpected argument '{}' after the model '{}'{}",
                                 positionals[at + 1], c.model, hint));
  }
}

}  // namespace

std::string verb_name(Verb verb) {
  for (const auto& [v, name] : kVerbs)
    if (v == verb) return name;
  return "?";
}

CliConfig parse_args(int argc, char** argv) {
  CliConfig c;
  c.args.assign(argv + std::min(argc, 1), argv + argc);
  std::vector<std::string> rest = take_key_overrides(argc, argv, c.overrides);
  auto options = describe_options();
  po::options_description hidden;
  hidden.add_options()("args", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(options).add(hidden);
  po::positional_options_description positional;
  positional.add("args", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(rest).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(fmt::format("{} (see graphrun --help)", e.what()));
  }
  c.markdown = vm.count("markdown") > 0;
  if (vm.count("help")) c.action = Action::help;
  else if (vm.count("version")) c.action = Action::version;
  else if (vm.count("list")) c.action = Action::list;
  else if (vm.count("list-ops")) c.action = Action::list_ops;
  else if (vm.count("list-keys")) {
    c.action = Action::list_keys;
    c.model = vm["list-keys"].as<std::string>();
  }
  if (c.action != Action::run) return c;
  take_positionals(vm.count("args") ? vm["args"].as<std::vector<std::string>>()
                                    : std::vector<std::string>{},
                   c);
  for (const auto& [option, key] : kShorthands) {
    if (!vm.count(option)) continue;
    std::string value = std::string(option) == "check-numerics" ? "true" : vm[option].as<std::string>();
    c.overrides.push_back({key, value, fmt::format("--{}", option)});
  }
  if (vm.count("out")) c.out = vm["out"].as<std::string>();
  if (vm.count("checkpoint")) c.checkpoint = vm["checkpoint"].as<std::string>();
  c.resume = vm.count("resume") > 0;
  if (c.resume && c.verb != Verb::train) throw UsageError("--resume only applies to 'train'");
  if (vm.count("trace")) {
    if (c.verb != Verb::profile) throw UsageError("--trace only applies to 'profile'");
    c.trace = vm["trace"].as<std::string>();
    if (c.trace.empty()) throw UsageError("--trace needs a file name");
  }
  if (vm.count("class")) {
    if (c.verb != Verb::sample && c.verb != Verb::interpolate)
      throw UsageError("--class only applies to 'sample' and 'interpolate'");
    c.decode_class = vm["class"].as<std::int64_t>();
    if (*c.decode_class < 0) throw UsageError("--class must be a class number, 0 or more");
  }
  if (vm.count("normal-classes")) {
    if (c.verb != Verb::anomaly) throw UsageError("--normal-classes only applies to 'anomaly'");
    std::string list = vm["normal-classes"].as<std::string>();
    std::size_t at = 0;
    while (at <= list.size()) {
      std::size_t comma = std::min(list.find(',', at), list.size());
      std::string item = list.substr(at, comma - at);
      std::int64_t v = -1;
      auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
      if (item.empty() || ec != std::errc() || end != item.data() + item.size() || v < 0)
        throw UsageError(fmt::format("--normal-classes '{}': class numbers separated by commas, e.g. 0,3", list));
      c.normal_classes.push_back(v);
      at = comma + 1;
    }
  }
  if (vm.count("iw")) {
    if (c.verb != Verb::eval) throw UsageError("--iw only applies to 'eval'");
    c.iw = vm["iw"].as<std::int64_t>();
    if (c.iw < 1 || c.iw > 1000000) throw UsageError("--iw must be in 1..1000000");
  }
  if (vm.count("count")) {
    c.count = vm["count"].as<std::int64_t>();
    if (c.count < 0 || c.count > 100000) throw UsageError("--count must be in 0..100000");
  }
  return c;
}

std::string help_text() {
  std::ostringstream options;
  options << describe_options();
  return fmt::format(R"(graphrun: train and use autoencoders described by a model file.

Usage: graphrun [VERB] MODEL [options]
       graphrun compare RUN_FOLDER... [--out DIR]
       graphrun --list | --list-ops [--markdown] | --list-keys MODEL [--markdown] | --version

MODEL is a model file (model.vae), looked for in the current folder, then in graphrun's
models/ folders; a bare name means model.NAME, else NAME.graph, else zoo/NAME.graph (vae:
model.vae; conv_vae: conv_vae.graph; vq_vae: zoo/vq_vae.graph). Its extension names the model.

Verbs (train is the default):
  train        train, checkpoint after every epoch, write metrics and figures to the run folder
               (Ctrl-C or SIGTERM: checkpoint mid-epoch and stop; --resume continues)
  eval         test-set loss and its terms, from the checkpoint; --iw K: -log p(x) with K
               importance samples per image (iw.json)
  sample       decode draws from the prior into samples.png (VAE only)
  reconstruct  test images over their reconstructions: reconstructions.png
  encode       test codes with labels: codes.csv
  interpolate  decode straight lines between test images' codes: interpolation.png
  anomaly      per-image scores (loss) as anomaly.csv; top-scoring images: anomalies.png
  graph        the forward and backward graph as DOT (+ SVG and PNG when Graphviz is installed)
  info         node counts, parameters and the training program's memory plan
  gradcheck    autodiff against central differences in float64, batch 4 (exit 1 on failure)
  profile      where a training step's time goes: each kernel, the optimizer and the batch,
               over -n steps (50) on real batches; --trace FILE also writes a timeline
  compare      a Markdown table of runs (settings that differ, losses, -log p(x), time) and
               their test-loss curves in compare.png (in --out, else the current folder)

{}
Any model-file key can be set as --SECTION.KEY VALUE (or =VALUE), for example
  --model.latent 2  --model.hidden 256,128  --train.optimizer sgd  --data.limit 2000

Outputs go to the run folder (default runs/<model file name>/, e.g. runs/model.vae/): checkpoint.safetensors,
config.ini (the effective settings, runnable again), metrics.jsonl, metrics.csv and PNG figures.

Exit codes: 0 done; 1 failed (error, NaN loss, gradient check failed); 2 bad usage, model
file or value; 130 / 143 stopped by SIGINT / SIGTERM after saving a checkpoint.
)",
                     options.str());
}

}  // namespace graphrun::cli
