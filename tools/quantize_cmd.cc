// tools/quantize_cmd.cc — placeholder (being written).
#include <CLI/CLI.hpp>
#include "cli.h"
namespace lowbit::cli {
Subcommand AddQuantizeCommand(CLI::App& app) { return {app.add_subcommand("quantize"), [] { return 1; }}; }
Subcommand AddDequantizeCommand(CLI::App& app) { return {app.add_subcommand("dequantize"), [] { return 1; }}; }
}
