// Running an external program (Graphviz `dot`) without a shell.
#pragma once

#include <string>
#include <vector>

namespace graphrun::cli {

struct SpawnResult {
  bool found = false;  // false: the program is not on PATH (or could not start)
  int exit_code = -1;  // its exit status; 128 + n when killed by signal n
  std::string error;   // why it could not start
};

// Runs argv[0] (looked up on PATH) with argv via posix_spawnp and waits for it.
SpawnResult run_program(const std::vector<std::string>& argv);

}  // namespace graphrun::cli
