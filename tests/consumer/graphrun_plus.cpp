// graphrun with one more model: `graphrun-plus model.cae` trains the contractive autoencoder,
// and every other verb and option of graphrun works as before.
#include "cae.hpp"

#include <graphrun/tools/runner.hpp>

int main(int argc, char** argv) {
  graphrun::register_model(cae::builder());
  return graphrun::run_cli(argc, argv);
}
