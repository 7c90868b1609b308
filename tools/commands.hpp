// One function per verb; each returns the process exit code.
#pragma once

#include <graphrun/tools/cli.hpp>
#include <graphrun/tools/session.hpp>

namespace graphrun::cli {

int train_command(const Run& run);

int eval_command(const Run& run);
int sample_command(const Run& run);
int reconstruct_command(const Run& run);
int encode_command(const Run& run);
int interpolate_command(const Run& run);
int anomaly_command(const Run& run);

int graph_command(const Run& run);
int info_command(const Run& run);
int gradcheck_command(const Run& run);
int profile_command(const Run& run);

// Reads the run folders' config.ini, metrics.jsonl and iw.json; prints a Markdown table and draws
// compare.png.
int compare_command(const CliConfig& config);

int list_command();
int list_ops_command(bool markdown);
int list_keys_command(const std::string& model, bool markdown);
int version_command();

}  // namespace graphrun::cli
