// tools/bench_cmd.cc — placeholder (being written).
#include <CLI/CLI.hpp>
#include "cli.h"
namespace lowbit::cli {
Subcommand AddBenchCommand(CLI::App& app) { return {app.add_subcommand("bench"), [] { return 1; }}; }
}
