// End-to-end: `graphrun gradcheck` on the zoo's models with stop_gradient (issue 19). Central
// differences see through stop_gradient, autodiff does not; the library's check holds those
// outputs at their values, so the verb passes and says how many it held.
#include "tools/cli_harness.hpp"

#include <sstream>

namespace graphrun::testing {
namespace {

std::string describe(const CliResult& r) {
  return "exit " + std::to_string(r.code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

}  // namespace

TEST_CASE("graphrun gradcheck passes on the zoo's models with stop_gradient", "[e2e][gradcheck]") {
  TempDir tmp;
  const fs::path zoo = fs::path(GRAPHRUN_SOURCE_DIR) / "models" / "zoo";
  // Small networks and 2 images (-n: gradcheck's batch), so each run takes well under a second.
  struct Case {
    const char* file;
    std::vector<std::string> options;
    const char* held;  // the report's line
  };
  const Case cases[] = {
      // The discriminator's 3 weights and 3 biases read through stop_gradient, and the codes it
      // is trained on.
      {"factor_vae.graph", {"--model.hidden", "8", "--model.disc_hidden", "8"},
       "7 outputs of stop_gradient held at their values"},
      {"adversarial_ae.graph", {"--model.hidden", "8", "--model.disc_hidden", "8"},
       "7 outputs of stop_gradient held at their values"},  // the same, and the prior's codes
      // The straight-through estimator, the codebook loss and the commitment loss.
      {"vq_vae.graph", {"--model.hidden", "8", "--model.codebook", "16"},
       "3 outputs of stop_gradient held at their values"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"gradcheck", (zoo / c.file).string(), "-n", "2"};
    args.insert(args.end(), c.options.begin(), c.options.end());
    args.insert(args.end(), {"--data", tiny_dataset().string()});
    auto r = run_cli_process(args, tmp.path());
    INFO(c.file << "\n" << describe(r));
    CHECK(r.code == 0);
    CHECK(r.out.find(c.held) != std::string::npos);
    CHECK(r.out.find("\nok: worst relative error") != std::string::npos);
  }
}

// On images with a background of exact zeros (as Fashion-MNIST's), zero conv biases put every
// ReLU there at its kink: the verb moves zero-initialised parameters off zero, so the biases are
// checked rather than all skipped (which failed the shipped conv VAE).
TEST_CASE("graphrun gradcheck checks conv biases over a zero background", "[e2e][gradcheck]") {
  TempDir tmp, data;
  write_tiny_dataset(data.path(), 20, 10, 0);
  const fs::path model = fs::path(GRAPHRUN_SOURCE_DIR) / "models" / "conv_vae.graph";
  auto r = run_cli_process({"gradcheck", model.string(), "-n", "1", "--model.hidden", "16", "--data",
                            data.path().string()},
                           tmp.path());
  INFO(describe(r));
  CHECK(r.code == 0);
  CHECK(r.out.find("zero-initialised parameters at random offsets within 0.01") != std::string::npos);
  int biases = 0;
  for (const std::string& line : lines_of(r.out))
    if (line.rfind("enc1.b ", 0) == 0 || line.rfind("enc2.b ", 0) == 0) {
      INFO(line);
      std::istringstream fields(line);
      std::string name, verdict;
      std::int64_t checked = 0, finer = 0, kinks = 0;
      double worst_rel = 0, worst_abs = 0;
      fields >> name >> checked >> finer >> kinks >> worst_rel >> worst_abs >> verdict;
      CHECK(verdict == "ok");
      CHECK(checked > 0);
      ++biases;
    }
  CHECK(biases == 2);
}

}  // namespace graphrun::testing
