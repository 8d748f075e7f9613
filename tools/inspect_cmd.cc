// tools/inspect_cmd.cc — placeholder (being written).
#include <CLI/CLI.hpp>
#include "cli.h"
namespace lowbit::cli {
Subcommand AddInspectCommand(CLI::App& app) { return {app.add_subcommand("inspect"), [] { return 1; }}; }
Subcommand AddErrorCommand(CLI::App& app) { return {app.add_subcommand("error"), [] { return 1; }}; }
}
