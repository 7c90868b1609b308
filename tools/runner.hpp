// The graphrun command line as a library call, so a researcher's own main() can register
// builders and then hand over to the runner.
#pragma once

namespace graphrun {

// Runs `graphrun [VERB] MODEL [options]`; returns the process exit code (0 ok, 1 failure,
// 2 bad usage or bad model file). Never calls exit().
int run_cli(int argc, char** argv);

}  // namespace graphrun
