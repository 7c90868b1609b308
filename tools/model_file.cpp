#include <graphrun/models/graph_model.hpp>
#include <graphrun/tools/model_file.hpp>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace graphrun::cli {
namespace fs = std::filesystem;
namespace {

const std::vector<SettingKey>& run_keys() {
  static const std::vector<SettingKey> keys = {
      {"train", "epochs", "10", "passes over the training set (with --resume: the total)"},
      {"train", "batch", "128", "images per optimizer step"},
      {"train", "lr", "0.001", "learning rate"},
      {"train", "optimizer", "adam", "adam or sgd"},
      {"train", "momentum", "0.9", "sgd momentum, in [0, 1)"},
      {"train", "weight_decay", "0", "adam: decoupled (AdamW); sgd: L2 added to the gradient"},
      {"train", "clip_norm", "0", "clip the global gradient norm to this (0 = off)"},
      {"train", "seed", "1", "seeds init, data order and noise: the run follows from it"},
      {"train", "threads", "0", "worker threads, 0 = one per core (results do not change)"},
      {"train", "sgemm", "openblas",
       "float32 matmul products (and convolutions off tap products): openblas, or onednn "
       "(faster on AVX-512, allocates in every step)"},
      {"train", "check_numerics", "false", "stop at the first node making NaN or Inf (slower)"},
      {"train", "shards", "0",
       "under mpirun: 0 = one part per rank (same bits for the same ranks); K = K fixed shards "
       "summed in order (same bits for any ranks up to K)"},
      {"data", "dataset", "fashion-mnist",
       "fashion-mnist, mnist, cifar-10, or a folder (IDX files, CIFAR-10 batches, images in class "
       "subfolders) or a .npy, .npz or .csv file"},
      {"data", "train", "", "the training samples' file or folder, in place of dataset"},
      {"data", "test", "", "the test samples' file or folder (same formats)"},
      {"data", "test_fraction", "0", "hold out this fraction of the training samples as the test set (seeded)"},
      {"data", "labels", "", "CSV: the label column; .npy: a labels .npy; .npz: the labels array"},
      {"data", "classes", "", "train on these classes only, e.g. 0,3 (the test set keeps all)"},
      {"data", "normalize", "auto", "none, scale, standardize, or auto (8-bit data scaled to [0, 1])"},
      {"data", "limit", "0", "use the first N train and N test images (0 = all)"},
  };
  return keys;
}

struct Entry {
  std::string value;
  std::string origin;
};
using Entries = std::map<std::string, Entry>;  // "section.key"

std::string section_of(const std::string& key) {
  auto dot = key.find('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}
std::string name_of(const std::string& key) {
  auto dot = key.find('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

[[noreturn]] void unknown_key(const std::string& key, const std::string& origin,
                              const ModelBuilder& builder) {
  const std::string section = section_of(key), name = name_of(key);
  std::vector<std::string> valid, elsewhere;
  std::string closest;
  std::size_t best = 3;
  for (const auto& k : setting_keys(builder)) {
    if (k.section == section) valid.push_back(k.name);
    if (k.name == name && k.section != section) elsewhere.push_back("[" + k.section + "]");
    if (k.section == section && edit_distance(k.name, name) < best) {
      best = edit_distance(k.name, name);
      closest = k.name;
    }
  }
  std::string msg = section.empty()
                        ? fmt::format("{}: unknown key '{}' outside any section", origin, name)
                        : fmt::format("{}: unknown key '{}' in [{}]", origin, name, section);
  if (!elsewhere.empty()) msg += fmt::format(" (it belongs in {})", fmt::join(elsewhere, " or "));
  else if (!closest.empty()) msg += fmt::format(" (did you mean '{}'?)", closest);
  if (valid.empty())
    msg += "\n  sections are [model], [train] and [data]; the only key outside them is 'builder'";
  else
    msg += fmt::format("\n  valid [{}] keys{}: {}", section,
                       section == "model" ? " for " + builder.name : "", fmt::join(valid, ", "));
  throw UsageError(msg);
}

// Line numbers of each "section.key" in the text, scanning as Boost's parser does: '#' starts a
// comment, "[name]" opens a section, anything else needs '='.
std::map<std::string, std::vector<int>> key_lines(const std::string& text) {
  std::map<std::string, std::vector<int>> lines;
  std::istringstream in(text);
  std::string line, section;
  for (int number = 1; std::getline(in, line); ++number) {
    line = line.substr(0, line.find('#'));
    auto first = line.find_first_not_of(" \t\r"), last = line.find_last_not_of(" \t\r");
    if (first == std::string::npos) continue;
    line = line.substr(first, last - first + 1);
    if (line.front() == '[' && line.back() == ']') {
      section = line.substr(1, line.size() - 2);
      continue;
    }
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq);
    key.erase(key.find_last_not_of(" \t") + 1);
    lines[section.empty() ? key : section + "." + key].push_back(number);
  }
  return lines;
}

int invalid_line(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = line.substr(0, line.find('#'));
    auto first = line.find_first_not_of(" \t\r"), last = line.find_last_not_of(" \t\r");
    if (first == std::string::npos) continue;
    bool section = line[first] == '[' && line[last] == ']';
    if (!section && line.find('=') == std::string::npos) return number;
  }
  return 0;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw UsageError(fmt::format("cannot read model file '{}'", file.string()));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A graph file's [model], [train] and [data] lines as entries.
std::vector<std::pair<std::string, Entry>> graph_entries(const GraphSyntax& syntax) {
  std::vector<std::pair<std::string, Entry>> out;
  for (const auto& s : syntax.settings)
    out.push_back({s.section + "." + s.key, {s.value, fmt::format("{}:{}", syntax.file, s.line)}});
  return out;
}

// The file's entries as (key, value, "file:line"); syntax errors and repeats are UsageErrors.
std::vector<std::pair<std::string, Entry>> read_file_entries(const fs::path& file,
                                                             const std::string& text) {
  std::istringstream stream(text);
  boost::program_options::parsed_options parsed(nullptr);
  try {
    parsed = boost::program_options::parse_config_file(stream, {}, true);
  } catch (const boost::program_options::error& e) {
    throw UsageError(fmt::format("{}:{}: {}", file.string(), invalid_line(text), e.what()));
  }
  auto lines = key_lines(text);
  std::map<std::string, std::size_t> seen;
  std::vector<std::pair<std::string, Entry>> out;
  for (const auto& o : parsed.options) {
    const auto& at = lines[o.string_key];
    std::size_t n = seen[o.string_key]++;
    int line = n < at.size() ? at[n] : 0;
    if (n > 0)
      throw UsageError(fmt::format("{}:{}: key '{}' is set twice (first on line {})", file.string(),
                                   line, o.string_key, at.empty() ? 0 : at[0]));
    out.push_back({o.string_key, {o.value.empty() ? "" : o.value[0],
                                  fmt::format("{}:{}", file.string(), line)}});
  }
  return out;
}

[[noreturn]] void bad_value(const std::string& key, const Entry& e, const std::string& want) {
  throw UsageError(fmt::format("{}: {} = '{}' is not {}", e.origin, key, e.value, want));
}

template <class T>
T number(const Entries& entries, const std::string& key, const std::string& want,
         bool (*ok)(T)) {
  const Entry& e = entries.at(key);
  T v{};
  auto [end, ec] = std::from_chars(e.value.data(), e.value.data() + e.value.size(), v);
  if (e.value.empty() || ec != std::errc() || end != e.value.data() + e.value.size() || !ok(v))
    bad_value(key, e, want);
  return v;
}

bool parse_bool(const Entries& entries, const std::string& key) {
  const Entry& e = entries.at(key);
  for (const char* t : {"true", "1", "yes", "on"})
    if (e.value == t) return true;
  for (const char* f : {"false", "0", "no", "off"})
    if (e.value == f) return false;
  bad_value(key, e, "true or false");
}

// "0, 3" -> {"0", "3"}; "" -> {}.
std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    out.push_back(item);
  }
  if (out.size() == 1 && out[0].empty()) out.clear();
  return out;
}

void apply_run_keys(const Entries& en, Settings& s) {
  auto positive = [](std::int64_t v) { return v >= 1; };
  auto non_negative = [](std::int64_t v) { return v >= 0; };
  auto rate = [](double v) { return std::isfinite(v) && v > 0; };
  auto non_negative_d = [](double v) { return std::isfinite(v) && v >= 0; };
  auto unit = [](double v) { return v >= 0 && v < 1; };
  s.train.epochs = number<std::int64_t>(en, "train.epochs", "a positive integer", positive);
  s.train.batch = number<std::int64_t>(en, "train.batch", "a positive integer", positive);
  s.train.optimizer.lr = number<double>(en, "train.lr", "a positive number", rate);
  s.train.optimizer.kind = en.at("train.optimizer").value;
  if (s.train.optimizer.kind != "adam" && s.train.optimizer.kind != "sgd")
    bad_value("train.optimizer", en.at("train.optimizer"), "adam or sgd");
  s.train.optimizer.momentum = number<double>(en, "train.momentum", "in [0, 1)", unit);
  s.train.optimizer.weight_decay =
      number<double>(en, "train.weight_decay", "a number >= 0", non_negative_d);
  s.train.optimizer.clip_norm =
      number<double>(en, "train.clip_norm", "a number >= 0", non_negative_d);
  s.train.seed = number<std::uint64_t>(en, "train.seed", "an integer >= 0",
                                       [](std::uint64_t) { return true; });
  s.threads = static_cast<int>(number<std::int64_t>(en, "train.threads", "an integer in 0..1024",
                                                    [](std::int64_t v) { return v >= 0 && v <= 1024; }));
  const Entry& sgemm = en.at("train.sgemm");
  if (sgemm.value != "openblas" && sgemm.value != "onednn")
    bad_value("train.sgemm", sgemm, "openblas or onednn");
  s.sgemm = sgemm.value == "onednn" ? SgemmLibrary::onednn : SgemmLibrary::openblas;
  if (!sgemm_library_available(s.sgemm))
    throw UsageError(fmt::format("{}: train.sgemm = onednn, but oneDNN could not be loaded: "
                                 "install Debian's libdnnl2",
                                 sgemm.origin));
  s.train.check_numerics = parse_bool(en, "train.check_numerics");
  s.train.shards = number<std::int64_t>(en, "train.shards", "an integer in 0..4096 (0 = off)",
                                        [](std::int64_t v) { return v >= 0 && v <= 4096; });
  DataSpec& d = s.data;
  d.dataset = en.at("data.dataset").value;
  if (d.dataset.empty()) bad_value("data.dataset", en.at("data.dataset"), "a data set name or folder");
  d.train = en.at("data.train").value;
  d.test = en.at("data.test").value;
  d.test_fraction = number<double>(en, "data.test_fraction", "in [0, 1)", unit);
  d.labels = en.at("data.labels").value;
  d.classes.clear();
  for (const auto& c : split_list(en.at("data.classes").value)) {
    std::int64_t v = -1;
    auto [end, ec] = std::from_chars(c.data(), c.data() + c.size(), v);
    if (ec != std::errc() || end != c.data() + c.size() || v < 0)
      bad_value("data.classes", en.at("data.classes"), "class numbers separated by commas, e.g. 0,3");
    d.classes.push_back(v);
  }
  try {
    d.normalize = parse_normalize(en.at("data.normalize").value);
  } catch (const std::invalid_argument&) {
    bad_value("data.normalize", en.at("data.normalize"), "none, scale, standardize or auto");
  }
  d.seed = s.train.seed;
  s.limit = number<std::int64_t>(en, "data.limit", "an integer >= 0 (0 = all)", non_negative);
}

std::string builder_of(const fs::path& file, const std::vector<std::pair<std::string, Entry>>& entries) {
  std::string ext = file.extension().string();
  if (!ext.empty()) ext.erase(0, 1);
  std::vector<std::string> names;
  for (const auto* b : all_models()) names.push_back(b->name);
  bool ext_registered = std::find(names.begin(), names.end(), ext) != names.end();
  for (const auto& [key, e] : entries) {
    if (key != "builder") continue;
    if (std::find(names.begin(), names.end(), e.value) == names.end())
      throw UsageError(fmt::format("{}: builder = '{}' is not a registered model; registered: {}",
                                   e.origin, e.value, fmt::join(names, ", ")));
    if (ext_registered && e.value != ext)
      throw UsageError(fmt::format("{}: builder = '{}' contradicts the file's extension '.{}'",
                                   e.origin, e.value, ext));
    return e.value;
  }
  if (!ext_registered)
    throw UsageError(fmt::format(
        "'{}': the extension '.{}' names no registered model ({}); rename the file or add a line "
        "'builder = NAME' at its top",
        file.string(), ext, fmt::join(names, ", ")));
  return ext;
}

}  // namespace

std::vector<SettingKey> setting_keys(const ModelBuilder& builder) {
  std::vector<SettingKey> keys;
  for (const auto& k : builder.keys) keys.push_back({"model", k.name, k.default_value, k.help});
  keys.insert(keys.end(), run_keys().begin(), run_keys().end());
  return keys;
}

std::string options_text(const ModelOptions& options) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : options) parts.push_back(k + "=" + v);
  return fmt::format("{}", fmt::join(parts, " "));
}

Settings load_settings(const fs::path& file, const std::vector<Override>& overrides) {
  const std::string text = read_text(file);
  Settings s;
  s.file = file;
  std::vector<std::pair<std::string, Entry>> file_entries;
  if (has_graph_section(text)) {
    try {
      s.graph = parse_graph_text(text, file.string());
    } catch (const GraphFileError& e) {
      throw UsageError(e.what());
    }
    s.model = "graph";
    s.builder = std::make_shared<const ModelBuilder>(graph_model_builder(s.graph));
    file_entries = graph_entries(*s.graph);
  } else {
    file_entries = read_file_entries(file, text);
    s.model = builder_of(file, file_entries);
    s.builder = std::make_shared<const ModelBuilder>(find_model(s.model));
  }
  const ModelBuilder& builder = *s.builder;
  Entries en;
  for (const auto& k : setting_keys(builder)) en[k.section + "." + k.name] = {k.default_value, "default"};
  auto set = [&](const std::string& key, const Entry& e) {
    if (!en.count(key)) unknown_key(key, e.origin, builder);
    en[key] = e;
  };
  for (const auto& [key, e] : file_entries)
    if (key != "builder") set(key, e);
  for (const auto& o : overrides) set(o.key, {o.value, o.origin});
  apply_run_keys(en, s);
  for (const auto& [key, e] : en) {
    s.origin[key] = e.origin;
    if (section_of(key) == "model") s.model_options[name_of(key)] = e.value;
  }
  // A builder's values are checked now, cheaply; a graph file is built by every verb from the
  // data's own sample shape, which only the data know ([B, C, H, W] graphs need images).
  if (!s.graph) {
    try {
      build_model(builder, s.model_options, 2, 784);
    } catch (const std::invalid_argument& e) {
      rethrow_model_error(s, e);
    }
  }
  return s;
}

void rethrow_model_error(const Settings& s, const std::exception& e) {
  // A graph file's errors already point at their line.
  if (dynamic_cast<const GraphFileError*>(&e)) throw UsageError(e.what());
  std::string what = e.what(), found;
  auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (const auto& [key, value] : s.model_options) {
    for (auto at = what.find(key); at != std::string::npos; at = what.find(key, at + 1)) {
      bool left = at == 0 || !is_word(what[at - 1]);
      bool right = at + key.size() == what.size() || !is_word(what[at + key.size()]);
      if (left && right && key.size() > found.size()) found = key;
    }
  }
  if (found.empty())
    throw UsageError(fmt::format("{}: model '{}' ({}): {}", s.file.string(), s.model,
                                 options_text(s.model_options), what));
  // "model option 'k': 'v' is not ..." reads better as "model.k = 'v' is not ...".
  const std::string& value = s.model_options.at(found);
  const std::string prefix = fmt::format("model option '{}': '{}' ", found, value);
  if (what.rfind(prefix, 0) == 0)
    throw UsageError(fmt::format("{}: model.{} = '{}' {}", s.origin.at("model." + found), found,
                                 value, what.substr(prefix.size())));
  throw UsageError(fmt::format("{}: model.{} = '{}': {}", s.origin.at("model." + found), found,
                               value, what));
}

std::string to_ini(const Settings& s) {
  const ModelBuilder& builder = *s.builder;
  std::string out = fmt::format(
      "# The effective settings of a graphrun run, in model-file syntax: pass this file to\n"
      "# graphrun to run it again. Read from {}; '# set by' marks command-line overrides.\n",
      s.file.string());
  if (!s.graph) out += fmt::format("builder = {}\n", s.model);
  std::map<std::string, std::string> values;
  for (const auto& [k, v] : s.model_options) values["model." + k] = v;
  const auto& t = s.train;
  values["train.epochs"] = std::to_string(t.epochs);
  values["train.batch"] = std::to_string(t.batch);
  values["train.lr"] = fmt::format("{}", t.optimizer.lr);
  values["train.optimizer"] = t.optimizer.kind;
  values["train.momentum"] = fmt::format("{}", t.optimizer.momentum);
  values["train.weight_decay"] = fmt::format("{}", t.optimizer.weight_decay);
  values["train.clip_norm"] = fmt::format("{}", t.optimizer.clip_norm);
  values["train.seed"] = std::to_string(t.seed);
  values["train.threads"] = std::to_string(s.threads);
  values["train.sgemm"] = sgemm_library_name(s.sgemm);
  values["train.check_numerics"] = t.check_numerics ? "true" : "false";
  values["train.shards"] = std::to_string(t.shards);
  values["data.dataset"] = s.data.dataset;
  values["data.train"] = s.data.train;
  values["data.test"] = s.data.test;
  values["data.test_fraction"] = fmt::format("{}", s.data.test_fraction);
  values["data.labels"] = s.data.labels;
  values["data.classes"] = fmt::format("{}", fmt::join(s.data.classes, ","));
  values["data.normalize"] = to_string(s.data.normalize);
  values["data.limit"] = std::to_string(s.limit);
  std::string section;
  for (const auto& k : setting_keys(builder)) {
    if (k.section != section) out += fmt::format("\n[{}]\n", section = k.section);
    std::string key = k.section + "." + k.name;
    auto origin = s.origin.count(key) ? s.origin.at(key) : "";
    out += fmt::format("{} = {}", k.name, values.at(key));
    out += origin.rfind("--", 0) == 0 ? fmt::format("  # set by {}\n", origin) : "\n";
  }
  if (s.graph) out += "\n[graph]\n" + s.graph->graph_text;
  return out;
}

std::vector<fs::path> model_search_path() {
  std::vector<fs::path> dirs;
#ifdef GRAPHRUN_SOURCE_MODELS_DIR
  dirs.emplace_back(GRAPHRUN_SOURCE_MODELS_DIR);
#endif
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    dirs.push_back((exe.parent_path() / ".." / "models").lexically_normal());
    dirs.push_back((exe.parent_path() / ".." / "share" / "graphrun" / "models").lexically_normal());
  }
#ifdef GRAPHRUN_INSTALL_MODELS_DIR
  dirs.emplace_back(GRAPHRUN_INSTALL_MODELS_DIR);
#else
  dirs.emplace_back("/usr/local/share/graphrun/models");
  dirs.emplace_back("/usr/share/graphrun/models");
#endif
  std::vector<fs::path> unique;
  for (const auto& d : dirs)
    if (std::find(unique.begin(), unique.end(), d) == unique.end()) unique.push_back(d);
  return unique;
}

std::vector<std::pair<std::string, fs::path>> graph_files_on_search_path() {
  std::vector<std::pair<std::string, fs::path>> out;
  std::set<std::string> seen;
  for (const auto& dir : model_search_path()) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<std::string> names;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (it.depth() > 1) it.disable_recursion_pending();
      if (it->is_regular_file(ec) && it->path().extension() == ".graph")
        names.push_back(it->path().lexically_relative(dir).generic_string());
    }
    std::sort(names.begin(), names.end());
    for (const auto& n : names)
      if (seen.insert(n).second) out.emplace_back(n, dir);
  }
  return out;
}

fs::path find_model_file(const std::string& name) {
  fs::path given(name);
  std::error_code ec;
  if (fs::is_directory(given, ec)) {
    if (fs::is_regular_file(given / "config.ini", ec)) return given / "config.ini";  // a run folder
    throw UsageError(fmt::format("'{}' is a folder, not a model file (nor a run folder: it has no "
                                 "config.ini)", name));
  }
  if (fs::is_regular_file(given, ec)) return given;
  std::vector<fs::path> names{given};
  // A bare name is a builder's model file first (vae: model.vae), then a graph file (conv_vae:
  // conv_vae.graph, zoo/vq_vae: zoo/vq_vae.graph).
  if (!given.has_extension()) {
    names.push_back(given.parent_path() / ("model." + given.filename().string()));
    names.push_back(name + ".graph");
  }
  for (std::size_t i = 1; i < names.size(); ++i)  // the current folder first, as for a full name
    if (fs::is_regular_file(names[i], ec)) return names[i];
  std::vector<fs::path> looked;
  if (given.is_relative()) {
    for (const auto& dir : model_search_path()) {
      for (const auto& n : names)
        if (fs::is_regular_file(dir / n, ec)) return dir / n;
      looked.push_back(dir);
    }
  }
  // A bare name may also be a graph file in a folder of the shipped ones (vae_gan:
  // zoo/vae_gan.graph), when only one has that name.
  if (!given.has_extension() && !given.has_parent_path()) {
    std::vector<fs::path> found;
    for (const auto& [listed, dir] : graph_files_on_search_path())
      if (fs::path(listed).filename() == name + ".graph") found.push_back(dir / listed);
    if (found.size() == 1) return found.front();
    if (found.size() > 1) {
      std::string which;
      for (const auto& f : found) which += fmt::format("{}'{}'", which.empty() ? "" : ", ", f.string());
      throw UsageError(fmt::format("the model name '{}' is more than one graph file ({}); give its path", name, which));
    }
  }
  std::string where = fmt::format("'{}'", fs::absolute(given, ec).parent_path().string());
  for (const auto& d : looked) where += fmt::format(", '{}'", d.string());
  throw UsageError(fmt::format("cannot find the model file '{}' (looked in {}); graphrun --list "
                               "lists the shipped model and graph files",
                               name, where));
}

}  // namespace graphrun::cli
