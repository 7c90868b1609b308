#include <graphrun/tools/runner.hpp>

int main(int argc, char** argv) { return graphrun::run_cli(argc, argv); }
