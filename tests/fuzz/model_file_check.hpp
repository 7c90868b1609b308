// What the model-file fuzz target checks on one input, shared with the regression test. The input
// is written as model.<name> for every registered builder and as config.ini (where only a
// `builder = NAME` line names the model), and each is read with load_settings: a bad file must
// end in cli::UsageError, a good one must read back the same from its to_ini text. Returns ""
// when so, else what went wrong; any other exception escapes, as a finding too.
#pragma once

#include <graphrun/models/model.hpp>
#include <graphrun/tools/model_file.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz/fuzz_file.hpp"

namespace graphrun::fuzz {

inline std::string check_model_file(const std::filesystem::path& dir, const std::uint8_t* data,
                                    std::size_t size) {
  std::vector<std::string> names = {"config.ini"};
  for (const auto* b : all_models()) names.push_back("model." + b->name);
  for (const auto& name : names) {
    auto path = write_input(dir, name, data, size);
    cli::Settings settings;
    try {
      settings = cli::load_settings(path, {});
    } catch (const cli::UsageError&) {
      continue;
    }
    std::string ini = cli::to_ini(settings);
    auto again_path = write_input(dir, "again.ini",
                                  reinterpret_cast<const std::uint8_t*>(ini.data()), ini.size());
    cli::Settings again;
    try {
      again = cli::load_settings(again_path, {});
    } catch (const cli::UsageError& e) {
      return name + " loads, but its to_ini text does not: " + e.what() + "\n" + ini;
    }
    again.file = settings.file;
    if (cli::to_ini(again) != ini) return name + ": to_ini text reads back different:\n" + ini;
  }
  return "";
}

}  // namespace graphrun::fuzz
