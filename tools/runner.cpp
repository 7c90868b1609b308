#include <graphrun/tools/runner.hpp>

namespace graphrun {

int run_cli(int, char**) { return 0; }

}  // namespace graphrun
